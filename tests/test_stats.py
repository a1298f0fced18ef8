"""nclib.stats: the two-way ANOVA against a hand-worked table, scipy's one-way ANOVA and least
squares; the permutation test; the spread comparison."""

import numpy as np
import pytest
from scipy import stats

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
    F_const, p_const = permutation_test_rows(np.ones((3, 3)), n_resamples=99)
    assert np.isnan(F_const) and p_const == 1.0


def test_spread_comparison_matches_brown_forsythe():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 10), rng.normal(0, 3, 10)
    s = spread_comparison(a, b)
    ref = stats.levene(a, b, center="median")
    assert s.p_value == pytest.approx(ref.pvalue) and s.statistic == pytest.approx(ref.statistic)
    assert s.ratio == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1))
    with pytest.raises(ValueError):
        spread_comparison([1.0], [1.0, 2.0])
