import os

import pytest
import torch
from hypothesis import settings

# Property tests run many float64 linear-algebra calls; keep them deterministic and bounded.
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("ci")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
