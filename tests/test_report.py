"""nclib.report: the analysis of Section 5 runs on constructed inputs, where each verdict must come
out (holds, holds but vacuous, violated, not distinguishable, untestable), the design of the
Section 5.2 runs, and the two float64 checks of the machinery on a tiny model."""

import math

import numpy as np
import pytest
import torch

from nclib import report, tpt_margins, training_checks
from nclib.etf import describe_structure
from nclib.data import TensorDataset
from nclib.models import build_backbone
from nclib.sweep import equivalent_classifiers
from nclib.history import History
from nclib.train import TrainConfig

# ----------------------------------------------------------------------------------------------
# Section 5.1
# ----------------------------------------------------------------------------------------------


def _tpt_run(p_hat, rho, norm=None, t0=10, t1=30, head="etf", seed=0, delta=1.0):
    """A history whose terminal phase runs from t0 to t1, with p̂ and ρ̄ given as functions of the
    epoch and p_min = δ·ρ̄·p̂ (exact for an equal-difference classifier)."""
    norm = norm or (lambda e: 1.0)
    h = History()
    for e in range(0, t1 + 1):
        acc = 1.0 if e >= t0 else 0.9
        sf, r, n = p_hat(e), rho(e), norm(e)
        h.observe({"epoch": e, "train_accuracy": acc, "train_loss": 1.0 / (1 + e), "test_accuracy": 0.7,
                   "test_loss": 1.0, "train_p_min": delta * n * r * sf if acc == 1.0 else -0.1,
                   "train_scale_free_margin": sf if acc == 1.0 else -0.01, "train_feature_rms": r,
                   "train_classifier_norm": n}, [])
    return ({"backbone": "mlp", "dataset": "toy", "head": head, "seed": seed}, h)


def test_margin_growth_splits_log_p_min_exactly_for_an_etf_like_head():
    (row,) = tpt_margins.margin_growth([_tpt_run(lambda e: 0.01 * math.exp(0.05 * e), lambda e: 1 + 0.1 * e)])
    assert row.reached and row.t == (10, 20, 30) and row.window == tuple(range(20, 31))
    for late in (True, False):
        assert row.log_growth("p_min", late) == pytest.approx(row.scale_part(late) + row.log_growth("scale_free", late))
    assert row.log_growth("scale_free") == pytest.approx(0.05 * 10)  # the fitted line of log p̂ over 20..30
    assert row.log_growth("scale_free", late=False) == pytest.approx(0.05 * 20)


def test_a_run_that_leaves_the_terminal_phase_is_still_counted():
    runs = _runs(lambda e, j: 0.01 * e, lambda e: 1.0, n=4)
    runs[0][1].records[25]["train_p_min"] = -0.01
    runs[0][1].records[25]["train_scale_free_margin"] = -0.001
    rows = tpt_margins.margin_growth(runs)
    assert rows[0].left_terminal_phase and math.isnan(rows[0].log_growth("p_min"))
    assert np.isfinite(rows[0].change("p_min"))  # still counted: the change is defined below 0
    v = tpt_margins.decide_fig3(rows)
    assert v.label == "holds" and "fell below 0 again" in v.detail and "4 runs" in v.sureness


def test_a_run_that_never_fits_is_not_reached():
    p, h = _tpt_run(lambda e: 0.1, lambda e: 1.0, t0=10, t1=30)
    for r in h.records:
        r["train_accuracy"] = 0.9
    h.terminal_epoch = None
    (row,) = tpt_margins.margin_growth([(p, h)])
    assert not row.reached and math.isnan(row.log_growth("p_min"))


def _runs(p_hat, rho, n=5, jitter=0.0):
    rng = np.random.default_rng(0)
    out = []
    for s in range(n):
        j = 1 + jitter * rng.standard_normal()
        out.append(_tpt_run(lambda e, j=j: p_hat(e, j), rho, seed=s))
    return out


def test_fig3_holds_when_the_scale_free_margin_grows():
    rows = tpt_margins.margin_growth(_runs(lambda e, j: 0.01 * e * j, lambda e: 1 + 0.01 * e))
    v = tpt_margins.decide_fig3(rows)
    assert v.label == "holds"
    # the control, decided by the same rule, fails the claim: its growth is rescaling only
    assert "rescaled copies" in v.control and "holds but vacuous" in v.control
    assert "the scales grew" in v.control and "the control passes" in v.control
    assert tpt_margins.decide_fig3(tpt_margins.rescaled_control(rows)).label == "holds but vacuous"


def test_fig3_control_reads_shrinking_scales_as_a_pass():
    # weight decay can shrink the scales over the second half: the rescaled copies' p_min then
    # falls ("violated" by the rule), which is what rescaling alone does, not a failed control
    rows = tpt_margins.margin_growth(_runs(lambda e, j: 0.1, lambda e: 1 - 0.01 * e))
    v = tpt_margins.decide_fig3(rows)
    assert "violated, change of p_min" in v.control
    assert "the scales shrank" in v.control and "the control passes" in v.control
    assert "suspect" not in v.control


def test_fig3_holds_but_vacuous_when_only_the_features_grow():
    v = tpt_margins.decide_fig3(tpt_margins.margin_growth(_runs(lambda e, j: 0.1, lambda e: 1 + 0.05 * e)))
    assert v.label == "holds but vacuous"


def test_fig3_violated_when_the_margin_falls():
    v = tpt_margins.decide_fig3(tpt_margins.margin_growth(_runs(lambda e, j: 0.5 - 0.01 * e, lambda e: 1.0)))
    assert v.label == "violated"


def test_fig3_not_distinguishable_when_runs_disagree():
    ups = _runs(lambda e, j: 0.1 + 0.002 * e, lambda e: 1.0, n=3)
    downs = _runs(lambda e, j: 0.2 - 0.002 * e, lambda e: 1.0, n=3)
    v = tpt_margins.decide_fig3(tpt_margins.margin_growth(ups + downs))
    assert v.label == "not distinguishable from seed noise"


def test_fig3_untestable_with_too_few_runs_in_the_terminal_phase():
    v = tpt_margins.decide_fig3(tpt_margins.margin_growth(_runs(lambda e, j: 0.01 * e, lambda e: 1.0, n=2)))
    assert v.label == "untestable at this size" and "2 of 2" in v.key


def test_rescaled_control_grows_p_min_by_the_scales_only():
    rows = tpt_margins.margin_growth(_runs(lambda e, j: 0.01 * e, lambda e: 1 + 0.05 * e, n=3))
    for r, c in zip(rows, tpt_margins.rescaled_control(rows)):
        assert abs(c.log_growth("scale_free")) < 1e-12
        assert c.log_growth("p_min") == pytest.approx(r.scale_part())


def test_growth_table_and_numbers():
    rows = tpt_margins.margin_growth(_runs(lambda e, j: 0.01 * e, lambda e: 1.0, n=3))
    t = tpt_margins.growth_table(rows, "caption")
    assert len(t.rows) == 3 and "10 / 20 / 30" in t.rows[0]
    nums = tpt_margins.chapter7_numbers(rows)
    assert nums["n_tpt"] == "3 of 3" and nums["etf_share_late"] == "0%"


# ----------------------------------------------------------------------------------------------
# Section 5.2
# ----------------------------------------------------------------------------------------------


def test_design_trains_each_classifier_once_per_seed():
    _, heads = equivalent_classifiers(4, 3, 5, 5, 0, 10)
    plan = report.design(heads, 0, control_seeds=range(4), grid_seeds=range(3), grid_permutations=2,
                         grid_rotations=3)
    assert len(plan[0]) == 11  # every head at the main seed, no duplicates
    assert [(h.kind, h.index) for h in plan[1]] == [("base", 0), ("permutation", 1), ("permutation", 2),
                                                    ("rotation", 1), ("rotation", 2), ("rotation", 3)]
    assert [(h.kind, h.index) for h in plan[3]] == [("base", 0)]


def _final(acc, train_acc=1.0):
    h = History()
    h.observe({"epoch": 0, "train_accuracy": 0.1, "train_loss": 2.0, "test_accuracy": 0.1, "test_loss": 2.0}, [])
    h.observe({"epoch": 20, "train_accuracy": train_acc, "train_loss": 1e-3, "test_accuracy": acc / 100,
               "test_loss": 0.5}, [])
    return h


def _nc_runs(table, kind="permutation", extra_seeds=(), seed_noise=1.0, main_seed=0, rng=None):
    """Runs whose final test accuracies (points) are ``table`` (rows: M*, then kind 1, 2, …; columns:
    seeds 0, 1, …), plus M* at ``extra_seeds`` and ten more classifiers of each kind at the main
    seed (values around the table's mean)."""
    rng = rng or np.random.default_rng(0)
    runs = []
    mk = lambda k, i, s, acc: ({"backbone": "mlp", "dataset": "toy", "d": 9, "structure": "simplex_etf",
                                "kind": k, "index": i, "seed": s}, _final(acc))
    a, b = table.shape
    for i in range(a):
        for j in range(b):
            runs.append(mk("base" if i == 0 else kind, i, j, table[i, j]))
    mean = table.mean()
    for s in extra_seeds:
        runs.append(mk("base", 0, s, mean + seed_noise * rng.standard_normal()))
    for k in ("permutation", "rotation"):
        for i in range(1, 11):
            if k == kind and i < a:
                continue
            runs.append(mk(k, i, main_seed, mean + seed_noise * rng.standard_normal()))
    return runs


def test_grid_reads_back_the_table_and_drops_incomplete_rows():
    rng = np.random.default_rng(1)
    table = 70 + rng.standard_normal((4, 3))
    runs = _nc_runs(table)
    runs = [(p, h) for p, h in runs if not (p["kind"] == "permutation" and p["index"] == 3 and p["seed"] == 2)]
    cells = report.settings(runs)[("mlp", "toy", 9)]
    g = report.grid(cells, "permutation")
    assert g.shape == (4, 2) and g.seeds == (0, 1)  # row 3 is still at two seeds: the column goes
    np.testing.assert_allclose(g.values, table[:, :2], atol=1e-9)
    g2 = report.grid({k: v for k, v in cells.items() if not (k[0] == "permutation" and k[1] == 3)}, "permutation")
    np.testing.assert_allclose(g2.values, table[:3], atol=1e-9)
    assert g2.row_labels() == ["M*", "M* P1", "M* P2"]
    assert report.grid(cells, "rotation") is None  # no rotation at a second seed
    with pytest.raises(ValueError):
        report.grid(cells, "shuffle")


def _summary(table, **kw):
    runs = _nc_runs(table, **kw)
    return report.summarise_settings(runs, main_seed=0, n_resamples=999, power_sims=400)[("mlp", "toy", 9)]


def test_nc_gen_holds_with_a_consistent_classifier_effect():
    rng = np.random.default_rng(2)
    table = 70 + rng.standard_normal((7, 5)) + 3 * np.arange(7)[:, None]
    S = _summary(table, extra_seeds=range(5, 10))
    v = report.decide_nc_gen(S, "permutation")
    assert v.label == "holds" and "interval" in v.sureness
    lo, hi = S.grids["permutation"].effect_interval
    assert lo < np.std(3 * np.arange(7), ddof=1) < hi


def test_nc_gen_not_distinguishable_with_a_powerful_grid_and_no_effect():
    rng = np.random.default_rng(3)
    table = 70 + rng.standard_normal((7, 6))
    S = _summary(table, extra_seeds=range(6, 10), rng=np.random.default_rng(4))
    ga = S.grids["permutation"]
    assert ga.p > 0.05 and ga.power_at(ga.seed_sd) >= 0.8
    pooled = np.sqrt(((table - table.mean(axis=1, keepdims=True)) ** 2).sum() / (7 * 5))
    assert ga.seed_sd == pytest.approx(pooled)
    v = report.decide_nc_gen(S, "permutation")
    assert v.label == "not distinguishable from seed noise"
    assert "detected with probability 0.8" in v.sureness
    assert ("upper bound" in v.sureness) == (ga.effect_upper < ga.seed_sd)  # equivalence only when supported
    assert 0.02 < ga.detectable.size < 0.09  # the control: the test's false-positive rate is about α


def test_nc_gen_untestable_with_a_weak_grid_or_none():
    rng = np.random.default_rng(5)
    S = _summary(70 + rng.standard_normal((3, 2)))
    ga = S.grids["permutation"]
    assert ga.p > 0.05 and ga.power_at(ga.seed_sd) < 0.8
    weak = report.decide_nc_gen(S, "permutation")
    assert weak.label == "untestable at this size"
    # a 3 × 2 grid never reaches power 0.8 over the simulated range: the sureness says up to where,
    # not "an effect above inf points"
    assert ga.tau80 == float("inf") and "inf" not in weak.sureness
    top = ga.detectable.ratios[-1] * ga.sigma
    assert f"no permutation effect with sd up to {top:.2f} points" in weak.sureness
    v = report.decide_nc_gen(S, "rotation")
    assert v.label == "untestable at this size" and "no grid" in v.key
    assert report.decide_nc_gen(None).label == "untestable at this size"


def test_summary_groups_and_numbers():
    rng = np.random.default_rng(6)
    S = _summary(70 + rng.standard_normal((4, 3)), extra_seeds=range(3, 6))
    assert set(S.groups) == {"permutations", "rotations", "seeds (M* fixed)"}
    assert len(S.groups["seeds (M* fixed)"]) == 6 and len(S.groups["rotations"]) == 10
    assert S.n_tpt == S.n_models and S.epochs == (20, 20)
    nums = report.chapter8_numbers(S)
    assert nums["n_models"] == str(S.n_models) and nums["label"] == report.decide_nc_gen(S, "permutation").label
    assert report.chapter8_numbers(None, prefix="small_")["small_sd_perm"] == "n/a"
    t = report.anova_table(S.grids["permutation"], "toy")
    assert t.rows[0][0].startswith("classifier") and "permutation test" in t.rows[0][-1]
    table = report.summary_table({S.setting: S}, {S.setting: {"permutation": report.decide_nc_gen(S)}}, "cap")
    assert len(table.rows) == 1


def test_describe_structure_finds_a_cross_polytope():
    M = torch.cat([torch.eye(3), -torch.eye(3)], dim=1)
    assert "3 antipodal class pairs" in describe_structure(M)
    assert "cross-polytope" in describe_structure(M)


# ----------------------------------------------------------------------------------------------
# The machinery's checks
# ----------------------------------------------------------------------------------------------


def test_decide_batched_outcomes():
    chaos = training_checks.decide_batched([1e-7, 3e-2], [1e-7, 5e-2], [1e-15, 2e-15])
    assert chaos.label == "holds" and "2 models" in chaos.sureness
    fault = training_checks.decide_batched([1e-2, 3e-2], [1e-7, 1e-7], [1e-2, 2e-15])
    assert fault.label == "violated"
    assert training_checks.decide_batched([], [], []).label == "untestable at this size"


def test_decide_identity_outcomes():
    assert training_checks.decide_identity(1e-15, 0.3).label == "holds"
    assert training_checks.decide_identity(1e-3, 0.3).label == "violated"
    assert training_checks.decide_identity(1e-15, 1e-15).label == "untestable at this size"
    assert training_checks.decide_identity(float("nan"), float("nan")).label == "untestable at this size"


def test_history_gap():
    a, b = _final(70.0), _final(71.0)
    assert training_checks.history_gap(a, b, keys=("test_accuracy", "test_loss")) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        training_checks.history_gap(a, History())


def _toy_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1).float()
    return TensorDataset(x, y, [str(c) for c in range(4)])


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: a second thread only spins (10× slower here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_checks_on_a_tiny_model_batched_equals_sequential_and_a_rotated_head_is_a_rotated_init(one_thread):
    tr, te = _toy_data(48, 0), _toy_data(32, 1)
    _, heads = equivalent_classifiers(4, 3, 1, 1, 0, 10)
    fn = lambda: build_backbone("mlp", (1, 4, 4), 3, 8)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=0)
    check = training_checks.batched_check(fn, heads, 0, tr, te, cfg)
    assert max(check["batched64"]) < 1e-10 and len(check["batched32"]) == len(heads)
    assert training_checks.decide_batched(check["batched32"], check["noise32"], check["batched64"]).label == "holds"
    R = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    gaps = training_checks.identity_check(fn, heads[0].M, R, 0, tr, te, cfg)
    assert gaps["identity"] < 1e-10 < 1e-3 < gaps["control"]


def test_run_names_and_the_missing_runs_of_one_setting():
    from nclib.report import missing_in_setting, run_name

    assert run_name(("mlp", "fashion_mnist", 32), "perm01", 3) == "mlp-fashion_mnist-d32-perm01-seed3"
    missing = ["mlp-fashion_mnist-d32-base-seed1-16b350625a", "mlp-fashion_mnist-d5-perm02-seed0-0aa",
               "mlp-fashion_mnist-d3-base-seed0-1bb", "small_cnn-fashion_mnist-d5-base-seed0-2cc"]
    assert missing_in_setting(missing, ("mlp", "fashion_mnist", 5)) == [missing[1]]
    assert missing_in_setting(missing, ("mlp", "fashion_mnist", 3)) == [missing[2]]  # d3 is not a prefix of d32
    assert missing_in_setting(missing, ("mlp", "cifar10", 32)) == []
    assert missing_in_setting([], ("mlp", "fashion_mnist", 32)) == []


def test_a_grid_without_any_variation_is_untestable_with_the_reason():
    """Probe: every run of the grid ends at the same test accuracy (models stuck on one class)."""
    S = _summary(np.full((4, 3), 10.0))
    assert "permutation" not in S.grids and "0/0" in S.undefined["permutation"]
    v = report.decide_nc_gen(S, "permutation")
    assert v.label == "untestable at this size" and "0/0" in v.key


def test_box_figure_accuracy_axes_end_at_100_percent():
    import matplotlib

    matplotlib.use("Agg")
    from nclib.report_plots import plot_boxes

    rng = np.random.default_rng(7)
    S = _summary(80 + rng.normal(0, 0.5, (4, 3)))
    fig = plot_boxes(S)
    for ax in fig.axes:
        if "accuracy" in ax.get_title():
            assert ax.get_ylim()[1] <= 100.0, ax.get_title()


def test_heat_map_labels_contrast_with_their_cells():
    """White on viridis's dark end, black on its bright (yellow) end, by the WCAG contrast ratio;
    the grid figure labels every cell so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nclib.plots import cell_text_color
    from nclib.report_plots import plot_grids

    fig, ax = plt.subplots()
    im = ax.imshow(np.array([[0.0, 1.0]]), cmap="viridis", vmin=0, vmax=1)
    assert cell_text_color(im, 0.0) == "w" and cell_text_color(im, 1.0) == "k"
    gray = ax.imshow(np.array([[0.0, 1.0]]), cmap="gray", vmin=0, vmax=1)
    assert cell_text_color(gray, 0.0) == "w" and cell_text_color(gray, 1.0) == "k"
    plt.close(fig)
    rng = np.random.default_rng(7)
    S = _summary(80 + rng.normal(0, 0.5, (4, 3)))
    fig = plot_grids(S)
    labels = [(a.images[0], t) for a in fig.axes if a.images for t in a.texts]
    assert len(labels) == 12  # a 4 × 3 grid
    for image, t in labels:
        x, y = t.get_position()
        assert t.get_color() == cell_text_color(image, image.get_array()[int(round(y)), int(round(x))])


def test_runs_cluster_by_backbone_dataset_and_seed_not_by_head():
    """The fixed- and learnable-head runs of one seed share its data order and initial backbone:
    one cluster; the same seed number on another backbone is another cluster, and the rescaled
    copy of a run stays in its run's cluster."""
    flat = lambda e: 0.01 * e  # noqa: E731
    runs = [_tpt_run(flat, lambda e: 1.0, head=h, seed=s) for s in (0, 1) for h in ("etf", "learnable")]
    other = _tpt_run(flat, lambda e: 1.0, seed=0)
    other[0]["backbone"] = "small_cnn"
    rows = tpt_margins.margin_growth(runs + [other])
    keys = tpt_margins.seed_clusters(rows)
    assert keys[0] == keys[1] != keys[2] == keys[3] and keys[4] not in keys[:4]
    assert tpt_margins.seed_clusters(tpt_margins.rescaled_control(rows)) == keys
    # 5 runs, 3 clusters: the verdict's interval is over the 3 (seed 0 of the mlp counts once)
    assert "over 3 seeds (5 runs)" in tpt_margins.decide_fig3(rows).sureness


def test_fig3_control_reading_names_a_failed_control():
    # by construction the copies' p̂ is constant, so "holds" on them can only come from a broken rule
    text = tpt_margins._control_reading("holds", (0.1, 0.05, 0.2))
    assert "the scales grew" in text and "the rule is suspect" in text
    flat = tpt_margins._control_reading("not distinguishable from seed noise", (0.0, -0.1, 0.1))
    assert "did not move p_min distinguishably" in flat and "the control passes" in flat


def test_growth_figure_draws_the_interval_at_the_level_it_is_given():
    # chapter 10 reads Figure 3's intervals at α/k in a family of k: the figure's top row must show
    # that interval, labelled with its level, not a 95% one
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nclib.report_plots import plot_growth
    from nclib.stats import clustered_t_interval

    rows = tpt_margins.margin_growth(_runs(lambda e, j: 0.01 * e * j, lambda e: 1.0, jitter=0.3))
    for alpha, name in ((0.05, "95%"), (0.025, "97.5%")):
        fig = plot_growth(rows, alpha=alpha)
        ax = fig.axes[0]
        assert ax.get_yticklabels()[-1].get_text() == f"mean over runs ({name} interval)"
        _, lo, hi = clustered_t_interval([r.change("p_min") for r in rows], tpt_margins.seed_clusters(rows),
                                         1 - alpha)
        bars = [seg for c in ax.collections for seg in c.get_segments()]
        assert any(np.allclose([seg[0][0], seg[1][0]], [lo, hi]) for seg in bars)
        plt.close(fig)
