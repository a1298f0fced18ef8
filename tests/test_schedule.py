"""nclib.schedule: which epochs a run measures, and what a sparse history still pins down."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nclib.data import TensorDataset
from nclib.models import LinearHead, NCModel, mlp
from nclib.schedule import MetricSchedule, log_spaced
from nclib.sweep import train_batched
from nclib.train import TrainConfig, train


def test_log_spaced_by_hand():
    assert sorted(log_spaced(20)) == [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 19]  # ⌈1.25^k⌉
    assert log_spaced(0) == set()
    with pytest.raises(ValueError, match="growth must be > 1"):
        log_spaced(10, growth=1.0)


@given(st.integers(1, 2000), st.floats(1.05, 3.0))
@settings(max_examples=50, deadline=None)
def test_log_spaced_is_sparse_and_starts_dense(last, growth):
    grid = log_spaced(last, growth)
    assert 1 in grid and max(grid) <= last
    # about log(last)/log(growth) points, never more than one per integer
    assert len(grid) <= min(last, 2 + int(__import__("math").log(last) / __import__("math").log(growth)) + 1)


def test_due_rules():
    s = MetricSchedule("auto", epochs=100, n_train=5000, window=10)
    assert s.error_threshold == 5
    never_fit = [None]
    assert s.due(0, [999], never_fit) and s.due(8, [999], never_fit)      # log grid
    assert not s.due(9, [999], never_fit) and not s.due(50, [999], never_fit)
    assert s.due(50, [5], never_fit)                                      # about to fit
    assert s.due(55, [0], [50]) and s.due(60, [0], [50]) and not s.due(61, [0], [50])
    assert s.due(91, [999], never_fit) and s.due(150, [999], never_fit)   # the end, and past it
    assert s.due(50, [999, 3], [None, None])                              # any model decides
    every = MetricSchedule("every", epochs=100, n_train=5000)
    assert all(every.due(e, [999], never_fit) for e in range(120))
    with pytest.raises(ValueError, match="measure must be one of"):
        MetricSchedule("sometimes", 10, 10)


def _blobs(n_per_class=30, C=3, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n_per_class)
    x = 1.2 * torch.randn(C, dim, generator=g)[y] + 0.6 * torch.randn(len(y), dim, generator=g)
    return TensorDataset(x, y, [str(c) for c in range(C)])


def _model(seed=0):
    torch.manual_seed(seed)
    return NCModel(mlp((6,), 4, width=16), LinearHead(4, 3))


def test_sparse_history_finds_the_terminal_phase_and_keeps_the_end():
    data = _blobs()
    cfg = dict(epochs=60, batch_size=15, lr=0.01, momentum=0.9, weight_decay=0.0, measure_window=5)
    auto = train(_model(), data, data, TrainConfig(**cfg, measure="auto"), progress=False)
    every = train(_model(), data, data, TrainConfig(**cfg, measure="every"), progress=False)
    epochs = auto.column("epoch")
    assert len(every.records) == 61 and len(epochs) < 61
    assert epochs == sorted(epochs) and epochs[0] == 0 and epochs[-1] == 60
    assert set(range(56, 61)) <= set(epochs)
    assert len(auto.running) == 60 and every.terminal_epoch is not None
    # measurements are the same numbers on the same trajectory; the first fit is found exactly here
    for r in auto.records:
        assert r == pytest.approx(every.at(r["epoch"]), rel=1e-6, abs=1e-9)
    assert auto.terminal_epoch == every.terminal_epoch
    assert auto.terminal_after is not None and auto.terminal_after < auto.terminal_epoch
    with pytest.raises(KeyError, match="was not measured"):
        auto.at(next(e for e in range(61) if e not in epochs))


def test_batched_training_follows_the_same_schedule():
    data = _blobs()
    cfg = TrainConfig(epochs=30, batch_size=15, lr=0.01, momentum=0.9, weight_decay=0.0)
    hs = train_batched([_model(0), _model(1)], data, data, cfg, progress=False)
    assert hs[0].column("epoch") == hs[1].column("epoch")
    assert hs[0].column("epoch")[-1] == 30 and len(hs[0].running) == 30
