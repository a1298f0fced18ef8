
import pytest
import torch
from hypothesis import settings

# Property tests run many float64 linear-algebra calls; keep them deterministic and bounded.
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("ci")
# One torch thread per test process: the suite runs one pytest worker per core (pytest-xdist), and
# its tensors are small, where a second thread only adds synchronisation (ufm_structure's 2 000
# steps: 0.64 s on one thread, 4.9 s on two, 2-core AMD EPYC). Tests of threading set their own.
torch.set_num_threads(1)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
