"""nclib.stats: the two-way ANOVA against a hand-worked table, scipy's one-way ANOVA and least
squares; the permutation test; the spread comparison; the intervals and detectable effects
against scipy, closed forms and published values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy import stats

from nclib import stats as S
from nclib.stats import permutation_test_rows, spread_comparison, two_way_anova

# Worked by hand: rows 1 3 / 2 6 / 6 8. Grand mean 13/3; row means 2, 4, 7; column means 3, 17/3.
# SS_rows = 2·(49 + 1 + 64)/9 = 228/9, SS_cols = 3·(16 + 16)/9 = 96/9, SS_total = 150 − 6·169/9
# = 336/9, SS_error = 12/9 on (3−1)(2−1) = 2 df. F_rows = (228/18)/(12/18) = 19, F_cols = 16.
# F(2, 2) has survival function 1/(1 + x), so p_rows = 1/20; F(1, 2) = t²₂ and
# P(|t₂| ≥ 4) = 1 − 4/√18.
HAND = [[1, 3], [2, 6], [6, 8]]


def test_two_way_anova_hand_worked():
    a = two_way_anova(HAND)
    assert a.ss["rows"] == pytest.approx(228 / 9)
    assert a.ss["columns"] == pytest.approx(96 / 9)
    assert a.ss["error"] == pytest.approx(12 / 9)
    assert a.ss["total"] == pytest.approx(336 / 9)
    assert a.df == {"rows": 2, "columns": 1, "total": 5, "error": 2, "interaction": None}
    assert a.F["rows"] == pytest.approx(19.0)
    assert a.F["columns"] == pytest.approx(16.0)
    assert a.p["rows"] == pytest.approx(0.05)
    assert a.p["columns"] == pytest.approx(1 - 4 / np.sqrt(18))
    assert [r[0] for r in a.rows()] == ["rows", "columns", "error", "total"]


def test_two_way_anova_agrees_with_f_oneway_and_least_squares():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(5, 4)) + np.arange(5)[:, None] * 0.3 + np.arange(4)[None, :] * 0.5
    a = two_way_anova(y)
    # Removing the column means leaves the row means and turns SS_error into the within-group sum of
    # squares of a one-way ANOVA over rows, whose df is a(b−1) instead of (a−1)(b−1).
    centred = y - y.mean(axis=0, keepdims=True) + y.mean()
    F1 = stats.f_oneway(*centred).statistic
    assert a.F["rows"] == pytest.approx(F1 * (5 - 1) / 5)
    # The residual of the additive least-squares fit y_ij = μ + α_i + β_j is SS_error.
    X = np.column_stack([np.ones(20)] + [np.repeat(np.eye(5), 4, axis=0)[:, i] for i in range(1, 5)]
                        + [np.tile(np.eye(4), (5, 1))[:, j] for j in range(1, 4)])
    _, resid, *_ = np.linalg.lstsq(X, y.ravel(), rcond=None)
    assert a.ss["error"] == pytest.approx(resid[0])


def test_two_way_anova_with_replicates():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(3, 4, 5))
    a = two_way_anova(y)
    cells = y.reshape(12, 5)
    ow = stats.f_oneway(*cells)  # one-way ANOVA over the 12 cells: same within-cell error
    between = a.ss["rows"] + a.ss["columns"] + a.ss["interaction"]
    assert ow.statistic == pytest.approx((between / 11) / (a.ss["error"] / 48))
    assert a.df["interaction"] == 6 and a.df["error"] == 48
    assert a.ss["total"] == pytest.approx(between + a.ss["error"])


def test_two_way_anova_rejects_bad_tables():
    for bad in ([1, 2, 3], [[1, 2]], [[1, np.nan], [2, 3]], np.zeros((2, 2, 2, 2))):
        with pytest.raises(ValueError):
            two_way_anova(bad)


def test_permutation_test_rows():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(5, 5))
    F, p = permutation_test_rows(noise + 4 * np.arange(5)[:, None], n_resamples=999)
    assert F == pytest.approx(two_way_anova(noise + 4 * np.arange(5)[:, None]).F["rows"])
    assert p == pytest.approx(1 / 1000)  # no shuffle reaches the observed ordering effect
    F0, p0 = permutation_test_rows(noise, n_resamples=4999)
    # Gaussian data with no row effect: the permutation p-value tracks the F-test's.
    assert abs(p0 - two_way_anova(noise).p["rows"]) < 0.05
    assert p0 == permutation_test_rows(noise, n_resamples=4999)[1]  # seeded: reproducible
    with pytest.raises(ValueError):
        permutation_test_rows(noise, n_resamples=0)
    # no variation within columns: the test is undefined and says so (it was (NaN, p = 1.0))
    with pytest.raises(S.UndefinedTestError, match="0/0 is undefined"):
        permutation_test_rows(np.ones((3, 3)), n_resamples=99)
    with pytest.raises(S.UndefinedTestError):
        permutation_test_rows(np.ones((3, 1)) * np.arange(3)[None, :], n_resamples=99)  # columns differ only


def test_spread_comparison_matches_brown_forsythe():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 10), rng.normal(0, 3, 10)
    s = spread_comparison(a, b)
    ref = stats.levene(a, b, center="median")
    assert s.p_value == pytest.approx(ref.pvalue) and s.statistic == pytest.approx(ref.statistic)
    assert s.ratio == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1))
    with pytest.raises(ValueError):
        spread_comparison([1.0], [1.0, 2.0])
    with pytest.raises(S.UndefinedTestError, match="both samples are constant"):
        spread_comparison([2.0, 2.0, 2.0], [5.0, 5.0])
    assert np.isfinite(spread_comparison([2.0, 2.0, 2.0], [5.0, 6.0, 8.0]).p_value)  # one constant sample is fine


# ----------------------------------------------------------------------------------------------
# Power, the smallest detectable effect and the effect interval (the random-row-effect model
# y_ij = τ α_i + β_j + σ ε_ij, under which F / (1 + b τ²/σ²) ~ F(a − 1, (a − 1)(b − 1)))
# ----------------------------------------------------------------------------------------------

from nclib.stats import (_row_F, detectable_effect, effect_ratio_interval, f_test_power,
                         permutation_power)


def test_row_F_of_a_stack_matches_the_anova():
    rng = np.random.default_rng(7)
    tables = rng.normal(size=(4, 5, 3))
    np.testing.assert_allclose(_row_F(tables), [two_way_anova(t).F["rows"] for t in tables])


def test_permutation_power_is_calibrated_and_tracks_the_exact_f_test_power():
    sim = permutation_power(5, 5, [0.0, 0.5, 1.0], n_sim=1000, n_resamples=199)
    exact = f_test_power(5, 5, [0.0, 0.5, 1.0])
    assert exact[0] == pytest.approx(0.05)
    assert 0.03 < sim[0] < 0.07  # the control: no effect, rejected at about the level α
    np.testing.assert_allclose(sim, exact, atol=0.05)
    # the grid of chapter 8 before this check was sized (5 × 5): power 0.73 against τ = σ; 7 × 5: 0.86
    assert f_test_power(5, 5, 1.0) == pytest.approx(0.735, abs=0.005)
    assert f_test_power(7, 5, 1.0) == pytest.approx(0.86, abs=0.005)
    assert permutation_power(5, 5, [2.5], n_sim=200, n_resamples=99)[0] > 0.95


def test_detectable_effect_reads_the_power_curve():
    det = detectable_effect(7, 5, 0.8, n_sim=600, n_resamples=99)
    assert det.power_at(det.ratio) == pytest.approx(0.8, abs=0.02)
    from scipy.optimize import brentq

    exact_ratio = brentq(lambda r: f_test_power(7, 5, r) - 0.8, 0.1, 3.0)
    assert abs(det.ratio - exact_ratio) < 0.2
    assert list(det.powers) == sorted(det.powers) and 0.02 < det.size < 0.09
    weak = detectable_effect(2, 2, 0.99, max_ratio=1.0, steps=3, n_sim=100, n_resamples=19)
    assert weak.ratio == float("inf")  # a 2 × 2 grid never reaches that power on the searched range
    with pytest.raises(ValueError):
        detectable_effect(5, 5, 1.5)
    with pytest.raises(ValueError):
        permutation_power(1, 5, [1.0])
    with pytest.raises(ValueError):
        permutation_power(5, 5, [-1.0])


def test_effect_ratio_interval_covers_the_true_ratio():
    rng = np.random.default_rng(8)
    a, b, ratio = 5, 5, 1.0
    hits = upper_hits = 0
    n = 1000
    for _ in range(n):
        y = ratio * rng.standard_normal((a, 1)) + rng.standard_normal((a, b)) + rng.standard_normal((1, b))
        F = two_way_anova(y).F["rows"]
        lo, hi = effect_ratio_interval(F, a, b, 0.9)
        hits += lo <= ratio <= hi
        upper_hits += ratio <= effect_ratio_interval(F, a, b, 0.9, one_sided=True)[1]
    assert 0.87 < hits / n < 0.93 and 0.87 < upper_hits / n < 0.93
    lo, hi = effect_ratio_interval(0.1, 5, 5)
    assert lo == 0.0 and hi >= 0.0  # an F below 1 gives no lower bound above 0
    with pytest.raises(ValueError):
        effect_ratio_interval(float("nan"), 5, 5)


# --- intervals and detectable effects for a handful of runs ------------------------------------------------------------

def test_clustered_t_interval_is_the_t_interval_of_cluster_means():
    from scipy import stats

    values = [1.0, 3.0, 10.0, 2.0, 4.0, 6.0]
    clusters = ["a", "a", "b", "c", "c", "b"]  # means 2, 8, 3 (a cluster need not be contiguous)
    i = S.clustered_t_interval(values, clusters, 0.9)
    lo, hi = stats.t.interval(0.9, 2, loc=13 / 3, scale=stats.sem([2.0, 8.0, 3.0]))
    assert (i.n, i.estimate) == (3, pytest.approx(13 / 3))
    assert i.low == pytest.approx(lo) and i.high == pytest.approx(hi)
    assert S.clustered_t_interval([1.0, 2.0], [0, 0]).high == math.inf  # one cluster: nothing to say
    with pytest.raises(ValueError, match="one cluster per value"):
        S.clustered_t_interval([1.0, 2.0], [0])


@given(hst.lists(hst.tuples(hst.floats(-100, 100), hst.integers(0, 3)), min_size=2, max_size=12),
       hst.randoms(use_true_random=False), hst.floats(-50, 50))
def test_clustered_t_interval_ignores_order_and_shifts_with_the_data(pairs, rnd, shift):
    values, clusters = map(list, zip(*pairs))
    base = S.clustered_t_interval(values, clusters)
    shuffled = pairs[:]
    rnd.shuffle(shuffled)
    v2, c2 = map(list, zip(*shuffled))
    again = S.clustered_t_interval(v2, c2)
    moved = S.clustered_t_interval([v + shift for v in values], clusters)
    assert again.n == base.n == len(set(clusters))
    assert again.estimate == pytest.approx(base.estimate, abs=1e-9)
    assert moved.estimate == pytest.approx(base.estimate + shift, abs=1e-9)
    if base.n > 1:
        assert again.high - again.low == pytest.approx(base.high - base.low, abs=1e-7)
        assert moved.high - moved.low == pytest.approx(base.high - base.low, abs=1e-7)


def test_t_interval_against_scipy_and_small_samples():
    from scipy import stats

    v = np.array([1.0, 2.0, 4.0, 7.0])
    i = S.t_interval(v, 0.9)
    lo, hi = stats.t.interval(0.9, 3, loc=v.mean(), scale=stats.sem(v))
    assert (i.estimate, i.n) == (3.5, 4)
    assert i.low == pytest.approx(lo) and i.high == pytest.approx(hi)
    one = S.t_interval([2.0])
    assert one.low == -math.inf and one.high == math.inf
    g = S.log_t_interval([1e-3, 1e-2, 1e-1])
    assert g.estimate == pytest.approx(1e-2) and g.low < 1e-2 < g.high
    assert S.log_t_interval([5.0]).high == math.inf
    assert "[" in i.text(".2f") and i.text(".1f", 10).startswith("35.0")
    with pytest.raises(ValueError, match="positive"):
        S.log_t_interval([1.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        S.t_interval([1.0, float("nan")])


def test_clopper_pearson_edges_and_known_values():
    zero = S.clopper_pearson(0, 100, 0.95)
    assert zero.low == 0.0 and zero.high == pytest.approx(1 - 0.025 ** (1 / 100))
    full = S.clopper_pearson(10, 10)
    assert full.high == 1.0 and full.low == pytest.approx(0.025 ** (1 / 10))
    mid = S.clopper_pearson(5, 10)
    assert mid.low < 0.5 < mid.high
    with pytest.raises(ValueError, match="integers"):
        S.clopper_pearson(11, 10)


def test_detectable_shift_against_the_noncentral_t_power():
    from scipy import stats

    sd, n = 0.5, 6
    shift = S.detectable_shift(sd, n, level=0.95, power=0.8, sims=20000)
    q = stats.t.ppf(0.975, n - 1)
    power = 1 - stats.nct.cdf(q, n - 1, shift / (sd / math.sqrt(n)))
    assert power == pytest.approx(0.8, abs=0.02)
    assert S.detectable_shift(2 * sd, n, sims=20000) == pytest.approx(2 * shift, rel=1e-9)
    assert S.detectable_shift(0.0, 3) == 0.0
    with pytest.raises(ValueError, match="n ≥ 2"):
        S.detectable_shift(1.0, 1)


def test_t_interval_power_against_simulation_and_its_inverse():
    rng = np.random.default_rng(1)
    for n, shift in [(4, 1.0), (10, 1.0), (6, 0.5)]:
        e = rng.standard_normal((40000, n)) + shift
        q = stats.t.ppf(0.975, n - 1)
        hit = np.mean(e.mean(1) - q * e.std(1, ddof=1) / math.sqrt(n) > 0)  # brute force
        assert S.t_interval_power(shift, n) == pytest.approx(hit, abs=0.01)
    # the design's power at one seed sd: 4 seeds are far short of 0.8, ten reach it
    assert S.t_interval_power(1.0, 4) < 0.3 < 0.8 < S.t_interval_power(1.0, 10)
    assert S.runs_for_power(1.0) == 10 and S.t_interval_power(1.0, 9) < 0.8
    # the simulated inverse at the same n: its shift has power 0.8 here
    assert S.t_interval_power(S.detectable_shift(1.0, 6, sims=20000), 6) == pytest.approx(0.8, abs=0.02)
    with pytest.raises(ValueError, match="n must be an integer ≥ 2"):
        S.t_interval_power(1.0, 1)
    with pytest.raises(ValueError, match="shift_in_sd"):
        S.t_interval_power(float("nan"), 5)


@given(hst.floats(0.0, 3.0), hst.integers(2, 40))
@settings(max_examples=40, deadline=None)
def test_t_interval_power_grows_with_the_shift_and_the_runs(shift, n):
    p = S.t_interval_power(shift, n)
    assert 0.0 <= p <= 1.0
    assert S.t_interval_power(shift + 0.1, n) >= p - 1e-12
    assert S.t_interval_power(shift, n + 1) >= p - 1e-9


def test_clopper_pearson_matches_known_values_and_edges():
    estimate, lo, hi = S.clopper_pearson(5, 10)  # published values (e.g. R's binom.test)
    assert estimate == 0.5
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)
    assert S.clopper_pearson(0, 20).low == 0.0 and S.clopper_pearson(20, 20).high == 1.0


def test_t_interval_unpacks_as_estimate_low_high():
    m, lo, hi = S.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)
    assert m == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert S.t_interval([5.0]).low == -math.inf


def test_detectable_sd_ratio_falls_with_sample_size():
    small, large = S.detectable_sd_ratio(6, 6, sims=400), S.detectable_sd_ratio(30, 30, sims=400)
    assert 1 < large < small


def test_mantel_detects_a_planted_association_and_not_a_random_one():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(8, 2))
    A = np.linalg.norm(P[:, None] - P[None], axis=2)
    rho, p, _ = S.mantel_test(A, A + 0.01 * rng.random(A.shape) * (A > 0), n_perm=999)
    assert rho > 0.9 and p < 0.01
    Q = rng.normal(size=(8, 2))
    B = np.linalg.norm(Q[:, None] - Q[None], axis=2)
    assert S.mantel_test(A, B, n_perm=999)[1] > 0.01


def test_holm_against_the_hand_worked_step_down():
    from nclib.stats import holm

    # sorted 0.01, 0.02, 0.04 over m = 3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5]) == [0.5] and holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        holm([0.1, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        holm([])


@given(hst.lists(hst.floats(0, 1), min_size=1, max_size=8))
def test_holm_is_monotone_bounded_and_order_free(ps):
    """Adjusted p ≥ raw p, ≤ 1, ordered like the raw p (ties aside), invariant to the order of the family,
    and its rejections at α are those of the step-down procedure run by hand."""
    from nclib.stats import holm

    adj = holm(ps)
    assert all(a >= p - 1e-15 and a <= 1 for a, p in zip(adj, ps))
    assert holm(ps[::-1]) == pytest.approx(adj[::-1])
    m, alpha = len(ps), 0.05
    order = sorted(range(m), key=lambda i: ps[i])
    rejected = set()
    for k, i in enumerate(order):  # the procedure: reject while p_(k) ≤ α / (m − k)
        if ps[i] > alpha / (m - k):
            break
        rejected.add(i)
    assert {i for i in range(m) if adj[i] <= alpha} == rejected
