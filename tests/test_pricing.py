"""Pricing a sweep before it runs (nclib.pricing, `run --dry-run`): the arithmetic against a hand
computation, rates measured once per model, recorded runs left out. The CLI's dry run end to end
is the first step of tests/test_confirmatory.py's run of the design it prices."""

import pytest

from nclib.records import repo_root
from nclib.pricing import Rates, _measured_epochs, measure_rates, project, run_cost
from nclib.schedule import MetricSchedule

ROOT = repo_root()


def params(epochs=10, until=None, max_epochs=None, backbone="mlp", n_train=1000, n_test=100, measure="auto"):
    return {"backbone": backbone, "dataset": "fashion_mnist", "width": 32, "d": 16, "C": 10, "n_train": n_train,
            "n_test": n_test, "config": {"epochs": epochs, "batch_size": 32, "eval_batch_size": 100,
                                         "channels_last": False, "until_accuracy": until, "max_epochs": max_epochs,
                                         "measure": measure, "measure_window": 3}}


def test_the_cost_of_a_run_is_the_hand_computation():
    r = Rates(train=1e-3, measure=2e-4, test=1e-4, threads=1, images=100)
    # fixed budget, every epoch measured: 10 epochs × 1000 × 1e-3 + 11 passes × (1000 × 2e-4 + 100 × 1e-4)
    c = run_cost("a", params(measure="every"), r)
    assert c.low == pytest.approx(10 + 11 * 0.21) and c.epochs == (10, 10)
    # until fit: the schedule's epochs at the low end, max_epochs (every epoch measured) at the high end
    c = run_cost("b", params(until=1.0, max_epochs=40), r)
    assert c.epochs == (10, 40) and c.high == pytest.approx(40 + 41 * 0.21) and c.low < c.high


@pytest.mark.parametrize("epochs, window", [(10, 3), (60, 10), (300, 10), (5, 10)])
def test_measured_epochs_bound_what_the_auto_schedule_measures_without_a_fit(epochs, window):
    """Without a fit the auto schedule measures its grid and the last window; the estimate adds two
    windows for the fit and never exceeds every epoch."""
    s = MetricSchedule("auto", epochs, 10_000, window)
    measured = sum(s.due(e, [10_000], [None]) for e in range(epochs + 1))
    assert measured <= _measured_epochs(epochs, window) <= epochs + 1


def test_rates_are_measured_once_per_model_and_recorded_runs_cost_nothing():
    calls = []

    def fake(p, threads):
        calls.append(p["backbone"])
        return Rates(1e-3, 1e-4, 1e-4, threads, 10)

    plan = [{"run_id": f"r{i}", "name": f"r{i}", "params": params(backbone=b)}
            for i, b in enumerate(["mlp", "mlp", "mlp_relu", "mlp"])]
    out = project(plan, 1, recorded={"r0"}, measure=fake)
    assert sorted(calls) == ["mlp", "mlp_relu"] and len(out["costs"]) == 3
    assert out["low_hours"] == pytest.approx(sum(c.low for c in out["costs"]) / 3600)


def test_measured_rates_are_positive_and_undo_the_thread_count():
    import torch

    before = torch.get_num_threads()
    r = measure_rates(params(), threads=1, batches=3, repeats=2)
    assert r.train > 0 and r.measure > 0 and r.test > 0 and r.images == 96
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="unknown dataset"):
        measure_rates({**params(), "dataset": "imagenet"})
