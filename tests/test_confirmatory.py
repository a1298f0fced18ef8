"""Chapter 10's confirmatory analysis (nclib.confirmatory): Holm across the family, the collapse
gate, replication agreement, the collapse summary; every outcome on constructed grids."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nclib import confirmatory, report
from nclib.collapse import CollapseCriterion
from nclib.history import History
from nclib.records import repo_root
from nclib.verdicts import LABELS, Verdict
from test_report import _nc_runs


def _summary(table, seed=0):
    runs = _nc_runs(table, extra_seeds=range(table.shape[1], 10), rng=np.random.default_rng(seed))
    return report.summarise_settings(runs, main_seed=0, n_resamples=999, power_sims=300)[("mlp", "toy", 9)]


def _collapse(share, runs=100):
    return confirmatory.CollapseSummary("x", runs, int(share * runs), 50, 0.2, 0.05, ())


@pytest.fixture(scope="module")
def effect():
    rng = np.random.default_rng(2)
    return _summary(70 + rng.standard_normal((7, 6)) + 1.5 * np.arange(7)[:, None])


@pytest.fixture(scope="module")
def null():
    return _summary(70 + np.random.default_rng(3).standard_normal((7, 6)), seed=4)


def test_holm_adjusts_the_family_and_the_key_shows_both(effect, null):
    out = confirmatory.decide_family({"a": (effect, "permutation"), "b": (null, "permutation")},
                                     {"a": _collapse(1.0), "b": _collapse(1.0)})
    p = [effect.grids["permutation"].p, null.grids["permutation"].p]
    from nclib.stats import holm

    adj = holm(p)
    assert "Holm-adjusted" in out["a"].key and f"{adj[0]:.2g}" in out["a"].key
    assert out["a"].label == ("holds" if adj[0] <= 0.05 else "not distinguishable from seed noise")
    assert out["a"].label == "holds"
    assert out["b"].label != "holds"


def test_holm_can_turn_a_raw_detection_into_none():
    """A p between α/2 and α holds alone and fails in a family of two whose other p is large."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        S = _summary(70 + rng.standard_normal((5, 6)) + 0.5 * np.arange(5)[:, None], seed=int(rng.integers(99)))
        if 0.025 < S.grids["permutation"].p <= 0.05:
            break
    else:
        pytest.skip("no grid with 0.025 < p ≤ 0.05 drawn")
    alone = confirmatory.decide_family({"a": (S, "permutation")}, {"a": _collapse(1.0)})["a"]
    pair = confirmatory.decide_family({"a": (S, "permutation"), "b": (S, "permutation")},
                                      {"a": _collapse(1.0), "b": _collapse(1.0)})["a"]
    assert alone.label == "holds" and pair.label != "holds"


def test_networks_that_did_not_collapse_make_the_verdict_untestable(effect):
    out = confirmatory.decide_family({"a": (effect, "permutation")}, {"a": _collapse(0.5)})
    assert out["a"].label == "untestable at this size" and "collapse criterion" in out["a"].key
    assert "Holm" not in out["a"].key  # it left the family


def test_a_missing_grid_is_untestable(effect):
    out = confirmatory.decide_family({"a": (None, "permutation"), "b": (effect, "rotation")},
                                     {"a": _collapse(1.0), "b": _collapse(1.0)})
    assert out["a"].label == out["b"].label == "untestable at this size"


def test_replication_agreement_is_the_power_at_the_estimate(effect, null):
    from nclib.stats import f_test_power

    ga = effect.grids["permutation"]
    want = float(f_test_power(7, 6, ga.effect / ga.sigma))
    assert confirmatory.replication_agreement(effect, "holds") == pytest.approx(want)
    assert confirmatory.replication_agreement(effect, "not distinguishable from seed noise") == pytest.approx(1 - want)
    assert 0 <= confirmatory.replication_agreement(null, "not distinguishable from seed noise") <= 1


def _history(fit_at, last, nc1_fit, nc1_last):
    h = History()
    h.observe({"epoch": 0, "train_accuracy": 0.1, "train_nc1": 5.0}, [])
    if fit_at is not None:
        h.observe({"epoch": fit_at, "train_accuracy": 1.0, "train_nc1": nc1_fit}, [])
    h.observe({"epoch": last, "train_accuracy": 1.0 if fit_at is not None else 0.99, "train_nc1": nc1_last}, [])
    return h


def test_collapse_summary_counts_medians_and_reasons():
    runs = [({"backbone": "b", "kind": "base", "index": 0, "seed": s}, h) for s, h in enumerate(
        [_history(100, 300, 0.1, 0.07), _history(100, 300, 0.12, 0.08), _history(None, 300, None, 0.2)])]
    runs.append(({"backbone": "other"}, _history(100, 300, 0.1, 0.07)))
    runs.append(({"backbone": "b", "head": "learnable", "seed": 7}, _history(None, 300, None, 0.2)))  # Figure 3's
    c = confirmatory.collapse_summary(runs, "b")
    assert (c.runs, c.collapsed, c.terminal_epochs) == (4, 2, 100)  # 200, 200 and two unfitted (0)
    assert c.nc1_first_fit == pytest.approx(0.11) and c.nc1_last == pytest.approx(0.14)  # 0.07, 0.08, 0.2, 0.2
    assert c.failures == (("base 0 seed 2", "never fitted every training label"),
                          ("learnable head seed 7", "never fitted every training label"))
    assert c.share == pytest.approx(2 / 4)
    strict = confirmatory.collapse_summary(runs, "b", CollapseCriterion(nc1_max=0.075, nc1_fraction=0.1))
    assert strict.collapsed == 1
    table = confirmatory.collapse_table([c], "caption")
    assert table.rows[0][:2] == ["b", "2 / 4"] and "never fitted" in table.rows[0][-1]


def test_a_collapsed_tiny_sweep_gets_its_confirmatory_verdicts_in_chapter_10(tmp_path, chapter_10):
    """End to end, the path the reference sweep takes: the confirmatory design at tiny scale, priced
    by the dry run, then trained long enough that its 80-image networks collapse (the chapter's own
    criterion, not a relaxed one), then its further parts (the rotation grid and the C > d grid,
    each in its own folder, copying the runs they share, and Figure 3), then chapter 10 on those
    records decides the five verdicts, the test and the further parts as one family. A 3 × 2 grid cannot reach power 0.8, so the design itself makes them all
    "untestable at this size", whatever the accuracies."""
    root = repo_root()
    cli = [sys.executable, "-m", "nclib.experiments", "run", "--experiment", "confirmatory", "--scale", "tiny",
           "--results", str(tmp_path), "--param", "epochs=120", "--param", "milestones=[60]"]
    # first priced: the dry run lists the plan and its cost and writes nothing
    dry = subprocess.run(cli + ["--workers", "2", "--dry-run"], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "confirmatory at tiny scale: 12 planned runs, 0 recorded, 12 to train" in dry.stdout
    assert dry.stdout.count("mlp_relu-fashion_mnist-d16-") == 6 and dry.stdout.count("mlp_gauss-fashion_mnist-d16-") == 6
    assert "worker-hours" in dry.stdout and "wall time with 2 worker(s)" in dry.stdout
    assert not list(tmp_path.iterdir())  # nothing written, nothing trained
    run = subprocess.run(cli + ["--device", "cpu", "--workers", "1", "--runner", "script"], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # the next part, the rotation grid, in its own folder: M* and 2 rotations × 2 seeds on mlp_relu,
    # whose M* row is the primary grid's (the same run ids): priced as copied, then copied
    rot = [c if c != "confirmatory" else "confirmatory_rotations" for c in cli]
    dry = subprocess.run(rot + ["--dry-run"], cwd=root, capture_output=True, text=True, timeout=300)
    assert ("confirmatory_rotations at tiny scale: 6 planned runs, 2 recorded (2 of them in confirmatory/tiny, "
            "copied, not trained), 4 to train") in dry.stdout, dry.stdout + dry.stderr[-2000:]
    # then the three further parts in one command, in the written order: the rotation grid, the
    # C > d grid and Figure 3 (chapter 7, both heads under the 2 seeds)
    parts = [c if c != "confirmatory" else "confirmatory_rotations,confirmatory_small,confirmatory_tpt" for c in cli]
    run = subprocess.run(parts + ["--device", "cpu", "--workers", "1", "--runner", "script"], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    folder, primary = tmp_path / "confirmatory_rotations" / "tiny", tmp_path / "confirmatory" / "tiny"
    assert len(list((folder / "runs").glob("*rota0*.json"))) == 4
    copied = sorted(p.name for p in (folder / "reused").glob("*.json"))
    assert len(copied) == 2 and all("-base-" in name for name in copied)
    for name in copied:  # the record itself, unchanged; trained once, in the primary grid's folder
        assert (folder / "runs" / name).read_bytes() == (primary / "runs" / name).read_bytes()
        assert json.loads((folder / "reused" / name).read_text())["from"] == "confirmatory/tiny"
    trained = [json.loads(line)["run_id"] for line in (folder / "trainings.jsonl").read_text().splitlines()]
    assert len(trained) == 4 and not any("-base-" in i for i in trained)
    # the C > d grid (d = 5): 6 runs trained, its 4 runs at d = 16 copied
    folder = tmp_path / "confirmatory_small" / "tiny"
    assert sorted(p.name.split("-")[2] for p in (folder / "reused").glob("*.json")) == ["d16"] * 4
    trained = [json.loads(line)["run_id"] for line in (folder / "trainings.jsonl").read_text().splitlines()]
    assert len(trained) == 6 and all("-d5-" in i for i in trained)
    text = chapter_10(tmp_path)
    assert "confirmatory design at tiny scale: all 12 planned runs are recorded" in text
    assert "the rotation grid at tiny scale: all 6 planned runs are recorded" in text
    assert "the C > d grid at tiny scale: all 10 planned runs are recorded" in text
    assert re.search(r"^mlp_relu\s+6 / 6\s", text, re.M) and re.search(r"^mlp_gauss\s+6 / 6\s", text, re.M), text
    # one rotation run may leave a label of its 80 unfitted (on this CPU: 5 / 6); either way the
    # tiny rotation grid is untestable, by its power or by the collapse gate
    assert re.search(r"^mlp_relu, rotation grid\s+\d / 6\s", text, re.M), text
    assert re.search(r"^ref_conf_rot: untestable at this size \(", text, re.M), text
    assert re.search(r"^mlp_relu, C > d grid\s+\d / 6\s", text, re.M), text  # its d = 5 runs only
    assert re.search(r"^ref_conf_small: untestable at this size \(", text, re.M), text
    # Figure 3: its tiny networks collapse less than the grids' (this CPU: 1 of 4), so whichever
    # label it gets, by the collapse gate or by its rule, it is decided and printed
    assert "Figure 3 at tiny scale: all 4 planned runs are recorded" in text
    assert re.search(r"^mlp_relu, Figure 3\s+\d / 4\s", text, re.M), text
    assert re.search(r"^ref_conf_fig3: ", text, re.M), text
    for name in ("ref_conf_perm", "ref_conf_control"):
        line = next((ln for ln in text.splitlines() if ln.startswith(f"{name}: ")), "")
        assert line.startswith(f"{name}: untestable at this size (permutation test p = "), text[-3000:]
        assert ("Holm-adjusted" in line) == (name == "ref_conf_perm"), line  # the control is no member
        assert "< 0.8 against an effect as large as the seed sd" in line
    # the budget rule, from the records: every further part ran, so each counts the CPU time of
    # the runs it trained (unpriced here: this test recorded no dry run)
    for part in ("confirmatory_rotations", "confirmatory_small", "confirmatory_tpt"):
        assert re.search(rf"^{part}\s+—\s+[\d.]+\s+complete: [\d.]+ h used$", text, re.M), text[-3000:]



def test_members_decided_by_their_own_rule_count_in_holm_as_if_their_p_were_one(effect):
    alone = confirmatory.decide_family({"a": (effect, "permutation")}, {"a": _collapse(1.0)})["a"]
    padded = confirmatory.decide_family({"a": (effect, "permutation")}, {"a": _collapse(1.0)}, others=2)["a"]
    p = effect.grids["permutation"].p
    assert f"Holm-adjusted {p:.2g}" in alone.key and f"Holm-adjusted {min(1.0, 3 * p):.2g}" in padded.key
    assert confirmatory.family_members({"a": (effect, "permutation"), "b": (None, "rotation"),
                                        "c": (effect, "permutation")},
                                       {"a": _collapse(1.0), "b": _collapse(1.0), "c": _collapse(0.5)}) == ["a"]


def test_figure_3_in_the_family_is_decided_at_the_bonferroni_level_by_hand():
    """Three seeds whose growth of p̂ is 2, 3 and 4 (times a constant): mean 3, sd 1, so the 95% t
    interval of the mean starts at 3 − 4.303/√3 > 0 and the 1 − 0.05/3 one at 3 − 7.65/√3 < 0."""
    from scipy import stats as st
    from nclib import tpt_margins
    from test_report import _tpt_run

    assert 3 - st.t.ppf(0.975, 2) / 3 ** 0.5 > 0 > 3 - st.t.ppf(1 - 0.05 / 6, 2) / 3 ** 0.5
    rows = tpt_margins.margin_growth([_tpt_run(lambda e, j=j: 0.01 * e * j, lambda e: 1 + 0.01 * e, seed=s)
                                      for s, j in enumerate((2, 3, 4))])
    one = confirmatory.decide_figure3(rows, _collapse(1.0), 1)
    assert one == tpt_margins.decide_fig3(rows) and one.label == "holds"
    three = confirmatory.decide_figure3(rows, _collapse(1.0), 3)
    assert three.label == "not distinguishable from seed noise"
    assert three.sureness.startswith("98.3% t intervals") and three.key.endswith("Bonferroni over a family of 3")
    gated = confirmatory.decide_figure3(rows, _collapse(0.5), 1)
    assert gated.label == "untestable at this size" and "collapse criterion" in gated.key
    with pytest.raises(ValueError, match="family_size"):
        confirmatory.decide_figure3(rows, _collapse(1.0), 0)


def test_the_design_corrects_its_family_counts_figure_3_once_collapsed_and_leaves_the_control_alone(effect, null):
    from nclib import tpt_margins
    from nclib.stats import holm
    from test_report import _tpt_run

    rows = tpt_margins.margin_growth([_tpt_run(lambda e, j=j: 0.01 * e * j, lambda e: 1 + 0.01 * e, seed=s)
                                      for s, j in enumerate((2, 3, 4))])
    tests = {"a": (effect, "permutation"), "b": (null, "permutation")}
    cs = {"a": _collapse(1.0), "b": _collapse(1.0), "f": _collapse(1.0), "c": _collapse(1.0)}
    out = confirmatory.decide_design(tests, cs, control=("c", (effect, "permutation")), figure3=("f", rows))
    p = [effect.grids["permutation"].p, null.grids["permutation"].p]
    assert f"Holm-adjusted {holm(p + [1.0])[0]:.2g}" in out["a"].key  # a family of three
    assert out["f"].key.endswith("Bonferroni over a family of 3") and out["f"].label != "holds"
    # alone, at the raw level, and its key says so: no Holm-adjusted p for a family it is not in
    assert out["c"].label == "holds" and "Holm" not in out["c"].key
    assert out["c"].key.startswith(f"permutation test p = {p[0]:.2g} on the")
    gated = confirmatory.decide_design(tests, {**cs, "c": _collapse(0.5)}, control=("c", (effect, "permutation")))
    assert gated["c"].label == "untestable at this size" and "collapse criterion" in gated["c"].key
    # Figure 3's networks did not collapse: it is untestable and leaves the family
    gated = confirmatory.decide_design(tests, {**cs, "f": _collapse(0.5)}, figure3=("f", rows))
    assert gated["f"].label == "untestable at this size" and f"Holm-adjusted {holm(p)[0]:.2g}" in gated["a"].key
    assert set(confirmatory.decide_design(tests, cs)) == {"a", "b"}  # no Figure 3 sweep, no control
    # the family's size, counted by hand: both grids and Figure 3; Figure 3 out once not collapsed;
    # a grid out when its runs did not collapse; never below 1
    assert confirmatory.figure3_family_size(tests, cs, "f") == 3
    assert confirmatory.figure3_family_size(tests, {**cs, "f": _collapse(0.5)}, "f") == 2
    assert confirmatory.figure3_family_size(tests, {**cs, "b": _collapse(0.5)}, "f") == 2
    assert confirmatory.figure3_family_size({}, {"f": _collapse(0.5)}, "f") == 1


def _verdict(label, key="k"):
    return Verdict(label, "rule", "control", f"sure-{key}", key)


@pytest.mark.parametrize("test, control, said", [
    ("holds", "not distinguishable from seed noise", "as the paper claims. Its size: sure-t"),
    ("not distinguishable from seed noise", "not distinguishable from seed noise", "not supported at this size"),
    ("untestable at this size", "not distinguishable from seed noise", "says nothing either way"),
    ("holds", "holds", "pipeline is suspect"),
    ("not distinguishable from seed noise", "holds", "pipeline is suspect"),
    ("holds", "untestable at this size", "nothing checked the pipeline"),
])
def test_the_reading_is_the_one_the_chapter_wrote_for_the_two_verdicts(test, control, said):
    assert said in confirmatory.reading(_verdict(test, "t"), _verdict(control, "c"))


def test_without_both_verdicts_there_is_no_reading():
    v = _verdict("holds")
    assert "not both decided" in confirmatory.reading(v, None)
    assert "not both decided" in confirmatory.reading(None, v)


@given(test=st.sampled_from(sorted(LABELS)), control=st.sampled_from(sorted(LABELS)))
def test_a_control_that_finds_an_effect_always_makes_the_pipeline_suspect(test, control):
    text = confirmatory.reading(_verdict(test), _verdict(control))
    assert ("pipeline is suspect" in text) == (control == "holds")
    assert ("as the paper claims" in text) == (test == "holds" and control == "not distinguishable from seed noise")
