
import os
import subprocess
import sys

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


@pytest.fixture
def chapter_10(tmp_path):
    """Chapter 10 run as a plain script on the records under ``results_root`` at ``scale`` (99
    resamples): returns what it printed; a chapter that raises fails the test with its stderr."""
    from nclib.chapters import inject_parameters
    from nclib.records import repo_root

    def run(results_root, scale: str = "tiny") -> str:
        root = repo_root()
        script = tmp_path / "ch10.py"
        script.write_text(inject_parameters((root / "book" / "ch10_reference.py").read_text(),
                                            {"results_root": str(results_root), "scale": scale, "n_resamples": 99}))
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                             cwd=root / "book", env={**os.environ, "MPLBACKEND": "Agg"})
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    return run
