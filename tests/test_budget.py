"""The confirmatory budget rule (nclib.budget) and the price records it reads (nclib.pricing):
a recorded dry run reads back as what format_projection wrote, machine time adds CPU time and
priced minutes as a hand count does, and the rule walks the further parts in order."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nclib.budget import apply_budget_rule, machine_time
from nclib.experiments import RecordedResults
from nclib.pricing import PriceRecord, Rates, RunCost, format_projection, price_record_path, read_price_record
from nclib.records import run_cpu_seconds

ROOT = Path(__file__).resolve().parents[1]


def price_file(tmp_path, minutes: dict, experiment="exp", copied=()):
    """A dry run as --record-price writes it: a header, then format_projection's text."""
    plan = [{"run_id": r, "name": r, "params": {}} for r in [*copied, *minutes]]
    costs = [RunCost(r, (300, 300), 60 * m, 60 * m) for r, m in minutes.items()]
    projection = {"rates": {("mlp", "fashion_mnist", 256, 32): Rates(2e-5, 7e-6, 7e-6, 1, 100)},
                  "costs": costs, "load": 0.0, "cores": 2, "low_hours": sum(minutes.values()) / 60,
                  "high_hours": sum(minutes.values()) / 60, "longest_low_hours": max(minutes.values(), default=0) / 60}
    text = format_projection(experiment, "reference", plan, set(copied), projection, 2, "CPU: test",
                             {r: "other/reference" for r in copied})
    path = tmp_path / f"dry_run-{experiment}-reference.txt"
    path.write_text("# priced by `python -m nclib.experiments run ...` on CPU: test, 2026-12-07, commit abc\n"
                    + text + "\n")
    return path


def record(run_id, cpu=None, group=1):
    extra = {} if cpu is None else {"group_cpu_time_s": cpu * group, "group_size": group}
    return {"run_id": run_id, "extra": extra, "wall_time_s": 9999.0}


def results(records, planned=None, missing=(), reused=None, experiment="exp"):
    return RecordedResults(experiment, "reference", Path("."), records, planned or len(records) + len(missing),
                           None, list(missing), reused or {})


def test_a_recorded_dry_run_reads_back_as_it_was_written(tmp_path):
    p = read_price_record(price_file(tmp_path, {"a": 4.2, "b": 3.9, "c": 4.25}, copied=["z"]))
    assert (p.experiment, p.scale, p.where) == ("exp", "reference", "CPU: test, 2026-12-07, commit abc")
    assert p.plan == "4 planned runs, 1 recorded (1 of them in other/reference, copied, not trained), 3 to train"
    assert p.projection.startswith("0.21 worker-hours; wall time with 2 worker(s): 0.10 h")
    assert p.minutes == {"a": 4.2, "b": 3.9, "c": pytest.approx(4.2, abs=0.051)}  # printed to 0.1 min
    assert p.hours == pytest.approx((4.2 + 3.9 + 4.25) / 60, abs=0.005)  # printed to 0.01 h


def test_the_committed_price_records_read_back():
    for path in sorted((ROOT / "results" / "bench").glob("dry_run-*.txt")):
        p = read_price_record(path)
        assert path.name == f"dry_run-{p.experiment}-{p.scale}.txt"
        assert price_record_path(path.parent, p.experiment, p.scale) == path  # where readers look
        assert p.hours == pytest.approx(sum(p.minutes.values()) / 60, abs=0.01 + 0.05 * len(p.minutes) / 60)


@pytest.mark.parametrize("text, said", [("", "first line"), ("# priced by `x` on y\nnothing\nprojected: 1 worker-hours",
                                                              "at <scale> scale"),
                                        ("# priced by `x` on y\ne at s scale: 1 planned\n  a  1 epochs, 1.0 min", "projected")])
def test_a_file_that_is_not_a_price_record_is_named_with_what_it_lacks(tmp_path, text, said):
    path = tmp_path / "p.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=said) as e:
        read_price_record(path)
    assert str(path) in str(e.value)


def test_machine_time_is_cpu_time_and_the_price_of_runs_older_than_the_cpu_clock(tmp_path):
    price = read_price_record(price_file(tmp_path, {"old1": 4.2, "old2": 3.9, "new": 4.2}))
    # two runs trained together share their group's CPU time; the copy costs nothing here
    rec = results([record("old1"), record("old2"), record("new", cpu=300.0, group=2), record("copy", cpu=1e6)],
                  reused={"copy": "other/reference"})
    assert run_cpu_seconds(rec.records[2]) == 300.0 and run_cpu_seconds(rec.records[0]) is None
    s = machine_time(rec, price)
    assert (s.measured, s.priced) == (1, 2)
    assert s.hours == pytest.approx(300 / 3600 + (4.2 + 3.9) / 60)
    # the measured run was priced at 4.2 min: its 5 CPU-minutes are 1.19 × its price
    assert s.measured_price_hours == pytest.approx(4.2 / 60)
    assert "1 runs by their CPU time (0.08 h, 1.19 × their price)" in s.describe()
    assert "2 runs recorded before" in s.describe()
    assert machine_time(None).hours == 0


def test_a_run_with_neither_cpu_time_nor_a_price_is_an_error_that_names_it(tmp_path):
    with pytest.raises(ValueError, match="old9"):
        machine_time(results([record("old9")]), read_price_record(price_file(tmp_path, {"a": 1.0})))
    with pytest.raises(ValueError, match="none given"):
        machine_time(results([record("old9")]))


def parts(tmp_path, prices):
    return [(n, None, read_price_record(price_file(tmp_path, {f"{n}-{i}": 6.0 for i in range(int(h * 10))}, n)))
            for n, h in prices]


def test_the_rule_runs_a_part_only_if_it_fits_and_considers_the_next_one(tmp_path):
    # 16 h spent, budget 24: rotations (8.6 h) do not fit, C > d (7.9 h) fits, Figure 3 (1.3 h) then does not
    rows = apply_budget_rule(16.0, parts(tmp_path, [("rot", 8.6), ("small", 7.9), ("fig3", 1.3)]),
                             primary_complete=True)
    assert [r.decision.split(" (")[0] for r in rows] == ["does not fit", "fits", "does not fit"]
    assert [r.spent_before_hours for r in rows] == pytest.approx([16.0, 16.0, 23.9])
    # 16.2 h spent: C > d no longer fits, so Figure 3 does
    rows = apply_budget_rule(16.2, parts(tmp_path, [("rot", 8.6), ("small", 7.9), ("fig3", 1.3)]),
                             primary_complete=True)
    assert [r.decision.split(" (")[0] for r in rows] == ["does not fit", "does not fit", "fits"]
    assert rows[2].cost_hours == pytest.approx(1.3)


def test_nothing_runs_before_the_primary_design_is_complete_and_an_unpriced_part_waits_for_its_price(tmp_path):
    rows = apply_budget_rule(1.0, parts(tmp_path, [("rot", 1.0)]), primary_complete=False)
    assert rows[0].decision.startswith("waits") and rows[0].cost_hours == 0
    rows = apply_budget_rule(1.0, [("rot", None, None)], primary_complete=True)
    assert rows[0].decision.startswith("not priced") and rows[0].price_hours is None


def test_a_started_part_counts_its_measured_time_and_the_price_of_what_is_left(tmp_path):
    price = read_price_record(price_file(tmp_path, {"f-0": 6.0, "f-1": 6.0, "f-2": 6.0}, "fig3"))
    started = results([record("f-0", cpu=720.0), record("m", cpu=0.0)], planned=4, missing=["f-1", "f-2"],
                      reused={"m": "confirmatory/reference"}, experiment="fig3")
    row, = apply_budget_rule(23.5, [("fig3", started, price)], primary_complete=True)
    assert row.cost_hours == pytest.approx(0.2 + 0.2)  # 720 CPU-s measured, 2 × 6 min priced to go
    assert row.decision.startswith("started, 2 of 4 runs recorded")
    assert "2.00 × their price" in machine_time(started, price).describe()
    # a measured run its dry run did not price: no ratio rather than a ratio over some of the runs
    unpriced = results([record("f-0", cpu=720.0), record("x", cpu=60.0)], experiment="fig3")
    assert machine_time(unpriced, price).measured_price_hours == 0
    assert "price" not in machine_time(unpriced, price).describe()
    done = results([record("f-0", cpu=720.0), record("f-1", cpu=360.0), record("f-2", cpu=360.0)], experiment="fig3")
    row, = apply_budget_rule(23.5, [("fig3", done, price)], primary_complete=True)
    assert row.cost_hours == pytest.approx(0.4) and row.decision.startswith("complete")


@settings(max_examples=60, deadline=None)
@given(spent=st.floats(0, 30), prices=st.lists(st.floats(0.1, 12), min_size=1, max_size=4),
       budget=st.floats(1, 40))
def test_the_rule_never_commits_more_than_the_budget_and_is_greedy_in_order(spent, prices, budget):
    plans = [(f"p{i}", None, PriceRecord(f"p{i}", "reference", "here", {}, h)) for i, h in enumerate(prices)]
    rows = apply_budget_rule(spent, plans, primary_complete=True, budget_hours=budget)
    total = spent
    for row, h in zip(rows, prices):
        assert row.spent_before_hours == pytest.approx(total)
        assert row.decision.startswith("fits") == (total + h <= budget)
        total += row.cost_hours
    assert total <= max(budget, spent) + 1e-9


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="spent_hours"):
        apply_budget_rule(float("nan"), [], primary_complete=True)
    with pytest.raises(ValueError, match="budget_hours"):
        apply_budget_rule(1.0, [], primary_complete=True, budget_hours=0)
