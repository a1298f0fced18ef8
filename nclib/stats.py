"""Is the spread across equivalent classifiers more than seed noise? The control the paper lacks.

Section 5.2 of Gao et al. trains one network per permuted (or rotated) simplex ETF, all with the
same seed, and reads the spread of their test accuracies as "non-conservative generalization".
A change of classifier also changes the optimization path, just as a change of seed does, so the
question is whether a permutation has an effect *beyond* that. With a grid of a permutations ×
b seeds (one run per cell) the answer is the permutation main effect of a two-way analysis of
variance (Fisher 1925; e.g. Montgomery, *Design and Analysis of Experiments*, §5.3): a consistent
effect of a permutation shows up in every seed's column, while path noise is the residual.

- :func:`two_way_anova`: the additive two-way ANOVA, with the interaction as error when there is
  one observation per cell, or with interaction and within-cell error when there are replicates.
- :func:`permutation_test_rows`: the same question without the normality assumption: shuffle the
  rows within each column (seed), the exchangeability that "permutation has no effect" implies.
- :func:`spread_comparison`: the two boxes side by side (spread across classifiers at one seed vs
  across seeds at one classifier) with the Brown–Forsythe test for equal spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["AnovaTable", "two_way_anova", "permutation_test_rows", "SpreadComparison", "spread_comparison"]


@dataclass(frozen=True)
class AnovaTable:
    """Sums of squares, degrees of freedom, mean squares, F statistics and p-values of a two-way
    ANOVA with factor A (rows) and factor B (columns). ``interaction`` entries are None without
    replicates (the interaction is then the error term)."""

    ss: dict
    df: dict
    ms: dict
    F: dict
    p: dict

    def rows(self) -> list[tuple]:
        """(source, SS, df, MS, F, p) rows in the usual order, for printing."""
        out = []
        for src in ("rows", "columns", "interaction", "error", "total"):
            if self.df.get(src) is None:
                continue
            out.append((src, self.ss[src], self.df[src], self.ms.get(src), self.F.get(src), self.p.get(src)))
        return out


def _as_table(values) -> np.ndarray:
    y = np.asarray(values, dtype=np.float64)
    if y.ndim == 2:
        y = y[:, :, None]
    if y.ndim != 3:
        raise ValueError(f"need an a×b table (or a×b×n with n replicates), got shape {y.shape}")
    a, b, n = y.shape
    if a < 2 or b < 2 or n < 1:
        raise ValueError(f"a two-way ANOVA needs at least 2 rows and 2 columns, got {a}×{b}")
    if not np.all(np.isfinite(y)):
        raise ValueError("the table contains NaN or infinite values")
    return y


def two_way_anova(values) -> AnovaTable:
    """Two-way fixed-effects ANOVA on a balanced a×b table (or a×b×n, n replicates per cell).

    With ȳ the grand mean, ȳ_i·, ȳ_·j the row and column means and ȳ_ij the cell means:
    SS_A = bn Σ_i (ȳ_i· − ȳ)², SS_B = an Σ_j (ȳ_·j − ȳ)², SS_AB = n Σ_ij (ȳ_ij − ȳ_i· − ȳ_·j + ȳ)²,
    SS_E = Σ_ijk (y_ijk − ȳ_ij)². For n = 1 the error is SS_AB with (a−1)(b−1) degrees of freedom
    (Tukey's additive model); for n > 1 the error has ab(n−1) and the interaction is tested too.
    F = MS_effect / MS_error, p = P(F_{df_effect, df_error} ≥ F).
    """
    y = _as_table(values)
    a, b, n = y.shape
    grand = y.mean()
    cell = y.mean(axis=2)
    row = cell.mean(axis=1)
    col = cell.mean(axis=0)
    ss = {
        "rows": b * n * np.sum((row - grand) ** 2),
        "columns": a * n * np.sum((col - grand) ** 2),
        "total": np.sum((y - grand) ** 2),
    }
    resid = cell - row[:, None] - col[None, :] + grand
    df = {"rows": a - 1, "columns": b - 1, "total": a * b * n - 1}
    if n == 1:
        ss["error"], df["error"] = np.sum(resid**2), (a - 1) * (b - 1)
        ss["interaction"], df["interaction"] = None, None
        effects = ("rows", "columns")
    else:
        ss["interaction"], df["interaction"] = n * np.sum(resid**2), (a - 1) * (b - 1)
        ss["error"], df["error"] = np.sum((y - cell[:, :, None]) ** 2), a * b * (n - 1)
        effects = ("rows", "columns", "interaction")
    ms = {k: ss[k] / df[k] for k in (*effects, "error")}
    F, p = {}, {}
    for k in effects:
        if ms["error"] > 0:
            F[k] = ms[k] / ms["error"]
            p[k] = float(_st.f.sf(F[k], df[k], df["error"]))
        else:  # a perfect additive fit: any non-zero effect is infinitely significant
            F[k] = np.inf if ms[k] > 0 else np.nan
            p[k] = 0.0 if ms[k] > 0 else np.nan
    to_float = lambda d: {k: (None if v is None else float(v)) for k, v in d.items()}
    return AnovaTable(to_float(ss), df, to_float(ms), to_float(F), to_float(p))


def permutation_test_rows(values, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Permutation test of the row (permutation-of-ETF) main effect in an a×b table, blocked by
    column (seed): under "rows have no effect" the a values in each column are exchangeable, so
    shuffle them independently per column and recompute the two-way F of the rows. Returns
    (observed F, p) with p = (1 + #{F* ≥ F}) / (1 + n_resamples) (Phipson & Smyth 2010); a
    table without any variation gives (NaN, 1)."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"need an a×b table (rows × seeds), got shape {y.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    observed = two_way_anova(y).F["rows"]
    if not np.isfinite(observed) and np.isnan(observed):  # no variation at all: no evidence of an effect
        return float("nan"), 1.0
    a, b = y.shape
    rng = np.random.default_rng(seed)

    def row_F(tables):  # vectorized two-way F of rows for a stack of tables (m×a×b)
        grand = tables.mean(axis=(1, 2), keepdims=True)
        r = tables.mean(axis=2, keepdims=True)
        c = tables.mean(axis=1, keepdims=True)
        ss_r = b * ((r - grand) ** 2).sum(axis=(1, 2))
        ss_e = ((tables - r - c + grand) ** 2).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (ss_r / (a - 1)) / (ss_e / ((a - 1) * (b - 1)))

    count = 0
    done = 0
    while done < n_resamples:
        m = min(2000, n_resamples - done)
        idx = np.argsort(rng.random((m, a, b)), axis=1)  # an independent shuffle per column
        shuffled = np.take_along_axis(np.broadcast_to(y, (m, a, b)), idx, axis=1)
        count += int(np.sum(row_F(shuffled) >= observed * (1 - 1e-12)))
        done += m
    return float(observed), (1 + count) / (1 + n_resamples)


@dataclass(frozen=True)
class SpreadComparison:
    """Standard deviations of two samples (ddof = 1), their ratio, and the Brown–Forsythe test
    of equal spread (Levene's test about the medians) with its p-value."""

    sd_a: float
    sd_b: float
    ratio: float
    statistic: float
    p_value: float


def spread_comparison(a, b) -> SpreadComparison:
    """Compare the spread of sample ``a`` (e.g. test accuracy across permutations at one seed)
    with sample ``b`` (across seeds at one classifier): sd ratio and the Brown–Forsythe test
    (Brown & Forsythe 1974, ``scipy.stats.levene(center="median")``)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2 or b.size < 2:
        raise ValueError(f"need at least two values per sample, got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("samples contain NaN or infinite values")
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        stat, p = np.nan, np.nan
    else:
        stat, p = _st.levene(a, b, center="median")
    return SpreadComparison(sd_a, sd_b, sd_a / sd_b if sd_b > 0 else np.inf, float(stat), float(p))
