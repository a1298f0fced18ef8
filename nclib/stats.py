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

How sure a grid's answer is (the model: classifier effects α_i drawn with sd τ, path noise with
sd σ, see the section below):

- :func:`f_test_power` (exact) and :func:`permutation_power` (simulated) give the power against
  τ/σ; :func:`detectable_effect` the smallest τ/σ detected with probability 0.8, which, times the
  measured residual sd, is the sureness of a null result ("an effect with sd above X would have
  been detected with probability 0.8");
- :func:`effect_ratio_interval`: a confidence interval (or one-sided upper bound) for τ/σ from
  the grid's F, the sureness of a detection and the only basis for an equivalence statement;

Intervals and detectable effects used by every chapter's verdicts (one place for them):
:class:`Interval` with :func:`t_interval` (Student t over seeds), :func:`clustered_t_interval`
(the same over clusters of runs that share a seed), :func:`log_t_interval` (the same
on logarithms, for quantities that vary by factors), :func:`clopper_pearson` (exact binomial, for
accuracies on a test set), :func:`detectable_shift` (the smallest mean shift a t interval of n
runs detects with probability 0.8), :func:`detectable_sd_ratio` (the same for a larger spread,
Brown–Forsythe) and :func:`mantel_test` (association of two class × class matrices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as _st

__all__ = ["holm", "UndefinedTestError", "AnovaTable", "two_way_anova", "permutation_test_rows", "SpreadComparison", "spread_comparison",
           "f_test_power", "permutation_power", "Detectable", "detectable_effect", "effect_ratio_interval",
           "Interval", "t_interval", "clustered_t_interval", "log_t_interval", "clopper_pearson",
           "detectable_shift", "t_interval_power", "runs_for_power", "detectable_sd_ratio", "mantel_test"]


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


class UndefinedTestError(ValueError):
    """A test whose statistic is 0/0 on these data (no variation at all): nothing can be tested."""


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

    With ȳ the grand mean, ``ȳ_i·``, ``ȳ_·j`` the row and column means and ``ȳ_ij`` the cell means:
    ``SS_A = bn Σ_i (ȳ_i· − ȳ)²``, ``SS_B = an Σ_j (ȳ_·j − ȳ)²``,
    ``SS_AB = n Σ_ij (ȳ_ij − ȳ_i· − ȳ_·j + ȳ)²``, ``SS_E = Σ_ijk (y_ijk − ȳ_ij)²``. For n = 1 the error is SS_AB with (a−1)(b−1) degrees of freedom
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
    table without variation within its columns raises :class:`UndefinedTestError`."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"need an a×b table (rows × seeds), got shape {y.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    observed = two_way_anova(y).F["rows"]
    if np.isnan(observed):  # rows and residual both without variation: F = 0/0
        raise UndefinedTestError("permutation_test_rows: the table has no variation within its columns (every "
                                 "row equal in every column), so the F ratio 0/0 is undefined: no test is possible")
    a, b = y.shape
    rng = np.random.default_rng(seed)
    count = 0
    done = 0
    while done < n_resamples:
        m = min(2000, n_resamples - done)
        idx = np.argsort(rng.random((m, a, b)), axis=1)  # an independent shuffle per column
        shuffled = np.take_along_axis(np.broadcast_to(y, (m, a, b)), idx, axis=1)
        count += int(np.sum(_row_F(shuffled) >= observed * (1 - 1e-12)))
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
    if np.all(a == np.median(a)) and np.all(b == np.median(b)):
        raise UndefinedTestError("spread_comparison: both samples are constant (no deviation from their "
                                 "medians), so the Brown–Forsythe statistic 0/0 is undefined")
    stat, p = _st.levene(a, b, center="median")
    if not np.isfinite(stat):
        raise UndefinedTestError("spread_comparison: no deviation from the medians in either sample: the "
                                 "Brown–Forsythe statistic is undefined")
    return SpreadComparison(sd_a, sd_b, sd_a / sd_b if sd_b > 0 else np.inf, float(stat), float(p))


# ----------------------------------------------------------------------------------------------
# How sure a grid is: power, the smallest detectable effect, an interval for the effect
# ----------------------------------------------------------------------------------------------
#
# The model behind all three (a two-way mixed model, e.g. Searle, Casella & McCulloch 1992, §4.4):
# y_ij = μ + α_i + β_j + ε_ij with classifier (row) effects α_i ~ N(0, τ²) drawn at random, as
# the permutations are, seed (column) effects β_j, and path noise ε_ij ~ N(0, σ²). The row F of
# the additive two-way ANOVA then satisfies F / (1 + b τ²/σ²) ~ F(a − 1, (a − 1)(b − 1)) exactly,
# and, being a ratio of sums of squares, depends on τ and σ only through the ratio r = τ/σ.


def _row_F(tables: np.ndarray) -> np.ndarray:
    """The two-way row F of a stack of a×b tables (…×a×b), vectorized; NaN for a table whose
    residual is zero."""
    a, b = tables.shape[-2:]
    grand = tables.mean(axis=(-2, -1), keepdims=True)
    r = tables.mean(axis=-1, keepdims=True)
    c = tables.mean(axis=-2, keepdims=True)
    ss_r = b * ((r - grand) ** 2).sum(axis=(-2, -1))
    ss_e = ((tables - r - c + grand) ** 2).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ss_r / (a - 1)) / (ss_e / ((a - 1) * (b - 1)))


def _check_grid(a, b) -> tuple[int, int]:
    if int(a) != a or int(b) != b or a < 2 or b < 2:
        raise ValueError(f"a grid needs at least 2 rows and 2 columns, got {a}×{b}")
    return int(a), int(b)


def f_test_power(a: int, b: int, ratio, alpha: float = 0.05):
    """Exact power of the row F-test of an a×b grid at level ``alpha`` when the row effects have
    sd τ = ``ratio`` · σ (the model above): P(F(a−1, (a−1)(b−1)) ≥ F_crit / (1 + b·ratio²))."""
    a, b = _check_grid(a, b)
    df1, df2 = a - 1, (a - 1) * (b - 1)
    crit = _st.f.isf(alpha, df1, df2)
    return _st.f.sf(crit / (1 + b * np.asarray(ratio, dtype=np.float64) ** 2), df1, df2)


@lru_cache(maxsize=32)
def _power_curve(a, b, ratios, n_sim, n_resamples, alpha, seed) -> tuple:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_sim, a, b))
    effect = rng.standard_normal((n_sim, a, 1))
    reject = np.zeros(len(ratios))
    chunk = max(1, 400_000 // (n_resamples * a * b))
    # A shuffle within columns leaves the column means and the total sum of squares unchanged, so
    # the row F is an increasing function of the sum of squared row sums: compare that instead.
    stat = lambda t: (t.sum(axis=-1) ** 2).sum(axis=-1)
    for s in range(0, n_sim, chunk):
        m = min(chunk, n_sim - s)
        # one independent shuffle of the rows per column, per resample (common to every ratio)
        idx = np.argsort(rng.random((m, n_resamples, a, b)), axis=2)
        for k, r in enumerate(ratios):
            y = r * effect[s : s + m] + noise[s : s + m]
            observed = stat(y)
            shuffled = np.take_along_axis(np.broadcast_to(y[:, None], idx.shape), idx, axis=2)
            count = (stat(shuffled) >= observed[:, None] - 1e-9 * np.abs(observed[:, None])).sum(axis=1)
            reject[k] += np.sum((1 + count) / (1 + n_resamples) <= alpha)
    return tuple(reject / n_sim)


def permutation_power(a: int, b: int, ratios, *, n_sim: int = 1000, n_resamples: int = 199,
                      alpha: float = 0.05, seed: int = 0) -> np.ndarray:
    """Power of :func:`permutation_test_rows` (rejecting at p ≤ ``alpha``) on an a×b grid, by
    simulation: ``n_sim`` grids y = τ·α_i + σ·ε_ij with α, ε standard normal, for each τ/σ in
    ``ratios`` (common random numbers across ratios, so the curve is smooth in the ratio). The
    test's F is scale-free, so the power depends only on τ/σ: multiply by the measured residual sd
    σ to read it in the data's units. ``ratios`` = 0 gives the test's size (its false-positive
    rate). Results are cached per arguments."""
    a, b = _check_grid(a, b)
    if n_sim < 1 or n_resamples < 1:
        raise ValueError(f"n_sim and n_resamples must be ≥ 1, got {n_sim}, {n_resamples}")
    r = tuple(float(x) for x in np.atleast_1d(np.asarray(ratios, dtype=np.float64)))
    if any(not np.isfinite(x) or x < 0 for x in r):
        raise ValueError(f"ratios τ/σ must be finite and ≥ 0, got {r}")
    return np.array(_power_curve(a, b, r, int(n_sim), int(n_resamples), float(alpha), int(seed)))


@dataclass(frozen=True)
class Detectable:
    """The smallest effect a grid detects with probability ``power``: ``ratio`` = τ/σ (inf when
    no ratio on the searched curve reaches it), the curve (``ratios``, ``powers``) it was read
    from, and ``size``: the simulated rejection rate with no effect (the control: ≈ α)."""

    ratio: float
    power: float
    ratios: tuple
    powers: tuple
    size: float

    def power_at(self, ratio: float) -> float:
        """The power at τ/σ = ``ratio``, interpolated on the curve (the last value past its end)."""
        return float(np.interp(ratio, self.ratios, self.powers))


def detectable_effect(a: int, b: int, power: float = 0.8, *, max_ratio: float = 2.4, steps: int = 13,
                      n_sim: int = 1000, n_resamples: int = 199, alpha: float = 0.05,
                      seed: int = 0) -> Detectable:
    """The ratio τ/σ that :func:`permutation_test_rows` detects with probability ``power`` on an
    a×b grid, read by linear interpolation from :func:`permutation_power` on ``steps`` ratios
    between 0 and ``max_ratio``. Multiplied by the measured residual sd it says "a classifier
    effect with sd above X would have been detected with probability ``power``"."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    ratios = np.linspace(0.0, max_ratio, steps)
    powers = np.maximum.accumulate(permutation_power(a, b, ratios, n_sim=n_sim, n_resamples=n_resamples,
                                                     alpha=alpha, seed=seed))
    above = np.nonzero(powers >= power)[0]
    if above.size == 0:
        ratio = float("inf")
    elif above[0] == 0:
        ratio = 0.0
    else:
        k = above[0]
        ratio = float(np.interp(power, powers[k - 1 : k + 1], ratios[k - 1 : k + 1]))
    return Detectable(ratio, float(power), tuple(ratios), tuple(powers), float(powers[0]))


def effect_ratio_interval(F: float, a: int, b: int, level: float = 0.95, one_sided: bool = False):
    """Confidence interval for τ/σ from the row F of an a×b grid (the model above): since
    F / (1 + bθ) ~ F(a−1, (a−1)(b−1)) with θ = τ²/σ², inverting its quantiles gives
    θ ∈ [(F/q_hi − 1)/b, (F/q_lo − 1)/b], clipped at 0 (Searle, Casella & McCulloch 1992,
    §3.5). ``one_sided``: the interval [0, upper] at ``level``. Returns (lower, upper) for τ/σ."""
    a, b = _check_grid(a, b)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not np.isfinite(F) or F < 0:
        raise ValueError(f"F must be finite and ≥ 0, got {F}")
    df1, df2 = a - 1, (a - 1) * (b - 1)
    tail = 1 - level if one_sided else (1 - level) / 2
    q_lo, q_hi = _st.f.ppf(tail, df1, df2), _st.f.isf(tail, df1, df2)
    upper = np.sqrt(max(0.0, (F / q_lo - 1) / b))
    lower = 0.0 if one_sided else np.sqrt(max(0.0, (F / q_hi - 1) / b))
    return float(lower), float(upper)


# --- intervals and detectable effects for a handful of runs ------------------------------------

@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval [low, high] at ``level`` from ``n``
    observations (low = −inf, high = +inf when n is too small to say anything)."""

    estimate: float
    low: float
    high: float
    level: float
    n: int

    def text(self, fmt: str = ".3g", scale: float = 1.0) -> str:
        """'estimate [low, high]' with the given format, values multiplied by ``scale``."""
        e, lo, hi = (v * scale for v in (self.estimate, self.low, self.high))
        return f"{e:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    def __iter__(self):
        """Unpacks as ``estimate, low, high``."""
        return iter((self.estimate, self.low, self.high))


def t_interval(values, level: float = 0.95) -> Interval:
    """Mean of ``values`` with its Student-t interval (independent runs, e.g. one per seed)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"need finite values, got {v.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, -math.inf, math.inf, level, 1)
    half = _st.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return Interval(mean, mean - half, mean + half, level, int(v.size))


def clustered_t_interval(values, clusters, level: float = 0.95) -> Interval:
    """Mean of ``values`` with a Student-t interval over clusters: the values of each cluster
    (for example the runs that share a seed, hence its data order and initial backbone) are
    averaged first, and :func:`t_interval` is taken over the G cluster means (G − 1 degrees of
    freedom; Cameron & Miller 2015, §VI.C, for few clusters). Runs in one cluster are not
    independent, so a t or bootstrap interval over the runs themselves is too narrow; ``n`` of the
    result is G. The estimate is the mean of the cluster means (the plain mean when the clusters
    are of equal size)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    keys = list(clusters)
    if len(keys) != v.size:
        raise ValueError(f"clusters must name one cluster per value: {len(keys)} names for {v.size} values")
    means = [float(v[[i for i, k in enumerate(keys) if k == g]].mean()) for g in dict.fromkeys(keys)]
    return t_interval(means, level)


def log_t_interval(values, level: float = 0.95) -> Interval:
    """Geometric mean of positive ``values`` with the t interval of their logarithms, mapped back:
    the natural interval for quantities that vary by factors (NC1, unbalancedness)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0 or not (np.isfinite(v).all() and (v > 0).all()):
        raise ValueError(f"need finite positive values, got {v.tolist()}")
    i = t_interval(np.log(v), level)
    return Interval(math.exp(i.estimate), math.exp(i.low) if i.n > 1 else 0.0,
                    math.exp(i.high) if i.n > 1 else math.inf, level, i.n)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> Interval:
    """Exact (Clopper–Pearson) interval for a rate of k events in n trials, e.g. test errors."""
    if int(k) != k or int(n) != n or n < 1 or not 0 <= k <= n:
        raise ValueError(f"need integers 0 ≤ k ≤ n, n ≥ 1, got k = {k}, n = {n}")
    a = 1 - level
    low = 0.0 if k == 0 else float(_st.beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(_st.beta.ppf(1 - a / 2, k + 1, n - k))
    return Interval(k / n, low, high, level, int(n))


def detectable_shift(sd: float, n: int, level: float = 0.95, power: float = 0.8,
                     sims: int = 4000, seed: int = 0) -> float:
    """The smallest true mean shift Δ > 0 that the t interval of n runs with residual standard
    deviation ``sd`` puts entirely on one side of zero with probability ``power``, by simulation
    (normal residuals, common random numbers so the answer is deterministic). For a null result
    this is the effect the experiment could have detected."""
    if not (math.isfinite(sd) and sd >= 0) or n < 2:
        raise ValueError(f"need sd ≥ 0 and n ≥ 2 runs, got sd = {sd}, n = {n}")
    if sd == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((sims, n))
    q = _st.t.ppf(0.5 + level / 2, n - 1)
    centred = e.mean(1), e.std(1, ddof=1) / math.sqrt(n)

    def hit_rate(delta):  # in units of sd
        return np.mean(centred[0] + delta - q * centred[1] > 0)

    lo, hi = 0.0, 1.0
    while hit_rate(hi) < power:
        hi *= 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if hit_rate(mid) < power else (lo, mid)
    return hi * sd


def t_interval_power(shift_in_sd: float, n: int, level: float = 0.95) -> float:
    """Probability that the two-sided ``level`` t interval of n runs lies entirely on the side of
    zero of a true mean shift of ``shift_in_sd`` residual standard deviations (normal residuals):
    1 − F(t_q; n − 1, δ√n) with F the noncentral t distribution (Student 1908; the exact power of
    the one-sample t test, counting only rejections in the right direction). It depends on n
    alone, so a design's power is known before any run: :func:`detectable_shift` is its inverse,
    by simulation."""
    if n < 2 or int(n) != n:
        raise ValueError(f"n must be an integer ≥ 2 runs, got {n}")
    if not (math.isfinite(shift_in_sd) and shift_in_sd >= 0):
        raise ValueError(f"shift_in_sd must be a finite number ≥ 0, got {shift_in_sd}")
    q = _st.t.ppf(0.5 + level / 2, n - 1)
    return float(_st.nct.sf(q, n - 1, shift_in_sd * math.sqrt(n)))


def runs_for_power(shift_in_sd: float = 1.0, power: float = 0.8, level: float = 0.95, max_runs: int = 10_000) -> int:
    """The fewest runs whose ``level`` t interval detects a mean shift of ``shift_in_sd`` residual
    standard deviations with probability ``power`` (:func:`t_interval_power`)."""
    if not (shift_in_sd > 0 and 0 < power < 1):
        raise ValueError(f"need shift_in_sd > 0 and 0 < power < 1, got {shift_in_sd}, {power}")
    for n in range(2, max_runs + 1):
        if t_interval_power(shift_in_sd, n, level) >= power:
            return n
    raise ValueError(f"more than {max_runs} runs would be needed for a shift of {shift_in_sd} sd")


def detectable_sd_ratio(n_a: int, n_b: int, power: float = 0.8, alpha: float = 0.05,
                        sims: int = 1000, seed: int = 0) -> float:
    """Smallest ratio k = sd_a/sd_b at which the Brown–Forsythe test (Levene about medians) on
    samples of sizes n_a and n_b detects the larger spread of sample a at level ``alpha`` with
    probability ≥ ``power`` (simulated with normal samples; ratios on a grid from 1 to 20)."""
    if n_a < 2 or n_b < 2:
        return math.inf
    rng = np.random.default_rng(seed)
    a0 = rng.standard_normal((sims, n_a))
    b0 = rng.standard_normal((sims, n_b))

    def bf_p(a, b):  # vectorized Brown–Forsythe: one-way ANOVA on |x − median|, two groups
        da = np.abs(a - np.median(a, axis=1, keepdims=True))
        db = np.abs(b - np.median(b, axis=1, keepdims=True))
        ma, mb = da.mean(1), db.mean(1)
        grand = (da.sum(1) + db.sum(1)) / (n_a + n_b)
        between = n_a * (ma - grand) ** 2 + n_b * (mb - grand) ** 2
        within = ((da - ma[:, None]) ** 2).sum(1) + ((db - mb[:, None]) ** 2).sum(1)
        F = between / np.maximum(within / (n_a + n_b - 2), 1e-300)
        return _st.f.sf(F, 1, n_a + n_b - 2), ma > mb

    for k in np.concatenate([np.arange(1.1, 5.0, 0.1), np.arange(5.0, 20.5, 0.5)]):
        p, larger = bf_p(k * a0, b0)
        if np.mean((p < alpha) & larger) >= power:
            return float(k)
    return math.inf


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of a family of p-values: sorted increasingly,
    p_(i) becomes max_{j ≤ i} min(1, (m − j + 1) p_(j)); returned in the input order. Rejecting
    where the adjusted p ≤ α keeps the family-wise error rate at α under any dependence."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"holm: pvalues must be a non-empty list of numbers, got shape {p.shape}")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"holm: every p-value must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def _offdiag_upper(A) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    return A[np.triu_indices(A.shape[0], k=1)]


def mantel_test(A, B, n_perm: int = 9999, seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Mantel test (Mantel 1967) of the association of two symmetric C×C matrices: Spearman's ρ
    of their upper triangles, and the p-value of ρ ≥ observed under a random relabelling of the
    classes of B (rows and columns permuted together, which keeps B's internal dependence; a
    plain correlation test over the C(C−1)/2 pairs would treat them as independent, which they
    are not). Returns (ρ, one-sided p, the permutation distribution of ρ)."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    C = A.shape[0]
    if A.shape != (C, C) or B.shape != (C, C) or C < 3:
        raise ValueError(f"need two C×C matrices with C ≥ 3, got {A.shape} and {B.shape}")
    a = _st.rankdata(_offdiag_upper(A))
    iu = np.triu_indices(C, k=1)
    rng = np.random.default_rng(seed)

    def rho(Bp):
        b = _st.rankdata(Bp[iu])
        return float(np.corrcoef(a, b)[0, 1])

    observed = rho(B)
    null = np.empty(n_perm)
    for k in range(n_perm):
        p = rng.permutation(C)
        null[k] = rho(B[np.ix_(p, p)])
    pval = (1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm)
    return observed, float(pval), null
