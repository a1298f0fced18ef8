"""The analysis of experiment runs (Section 5 of Gao et al.), for live runs and recorded ones alike.

Every function takes runs as a list of ``(params, History)`` pairs, the form that a chapter's live
runs have and that :meth:`nclib.experiments.RecordedResults.runs` returns for recorded ones, and
returns data, tables or verdicts; nothing reads a chapter's globals. Chapters 7 and 8 call it on
their CPU-scale runs, chapter 10 on the records in ``results/``. Figures are in
:mod:`nclib.report_plots`.

Section 5.1 (Figure 3, chapter 7) is :mod:`nclib.tpt_margins`.

Section 5.2 (Figures 4–5, chapter 8)
    :func:`design` says which classifiers to train at which seed; :func:`settings` groups
    runs by (backbone, dataset, d); :func:`box_groups` gives the paper's
    boxes (permutations, rotations at one seed) and the seed box; :func:`grid` the classifiers ×
    seeds table; :func:`analyse_grid` its two-way ANOVA, permutation test, smallest detectable
    effect and effect interval (:mod:`nclib.stats`); :func:`summarise_settings` all of it per setting;
    :func:`decide_nc_gen` the verdict. The two checks of the training machinery that chapter 8
    runs first are in :mod:`nclib.training_checks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nclib.history import final
from nclib.tables import Table
from nclib.verdicts import Verdict
from nclib.stats import (AnovaTable, Detectable, SpreadComparison, UndefinedTestError,
                         detectable_effect, effect_ratio_interval, permutation_test_rows, spread_comparison,
                         two_way_anova)

__all__ = [
    "ALPHA", "POWER",
    # Section 5.2
    "BOX_NAMES", "design", "run_name", "missing_in_setting", "settings", "setting_title", "main_seed_of",
    "box_groups", "Grid", "grid",
    "GridAnalysis", "analyse_grid", "anova_table", "SettingSummary", "summarise_setting", "summarise_settings",
    "decide_nc_gen", "summary_table", "chapter8_numbers",
]

ALPHA = 0.05   #: level of every test in the verdicts
POWER = 0.8    #: power at which the smallest detectable effect is read


# ==============================================================================================
# Section 5.2: do equivalent classifiers generalize differently, beyond seed noise?
# ==============================================================================================

BOX_NAMES = ("permutations", "rotations", "seeds (M* fixed)")


def design(heads, main_seed: int, control_seeds=(), grid_seeds=(), grid_permutations: int = 0,
           grid_rotations: int = 0) -> dict:
    """Which classifiers to train at which seed, {seed: [HeadSpec, ...]} (each once per seed):
    every head at ``main_seed`` (the paper's boxes, Figures 4–5); M* at each of ``control_seeds``
    (the seed box); and the grids, M* with the first ``grid_permutations`` permutations and M*
    with the first ``grid_rotations`` rotations, at each of ``grid_seeds``. ``heads``: from
    :func:`nclib.sweep.equivalent_classifiers` (heads[0] is M*). :func:`grid` reads the grids back
    from the runs."""
    heads = list(heads)
    by = {(h.kind, h.index): h for h in heads}
    base = by[("base", 0)]
    rows = [base] + [by[("permutation", i)] for i in range(1, grid_permutations + 1) if ("permutation", i) in by]
    rows += [by[("rotation", i)] for i in range(1, grid_rotations + 1) if ("rotation", i) in by]
    wanted = {int(main_seed): heads}
    for s in control_seeds:
        wanted.setdefault(int(s), []).append(base)
    for s in grid_seeds:
        wanted.setdefault(int(s), []).extend(rows)
    out = {}
    for s, hs in wanted.items():
        seen, keep = set(), []
        for h in hs:
            if (h.kind, h.index) not in seen:
                seen.add((h.kind, h.index))
                keep.append(h)
        out[s] = keep
    return out


def _setting_prefix(setting) -> str:
    backbone, dataset, d = setting
    return f"{backbone}-{dataset}-d{int(d)}-"


def run_name(setting, label: str, seed: int) -> str:
    """The name of a Section 5.2 run: ``<backbone>-<dataset>-d<d>-<classifier>-seed<seed>`` for the
    setting ``(backbone, dataset, d)`` (its run id adds a dash and a hash of every parameter)."""
    return f"{_setting_prefix(setting)}{label}-seed{int(seed)}"


def missing_in_setting(missing, setting) -> list[str]:
    """The run ids among ``missing`` (planned, not recorded) that belong to ``setting``: a verdict
    on one setting waits for that setting's runs only, not for another setting's."""
    return [i for i in missing if i.startswith(_setting_prefix(setting))]


def settings(runs) -> dict:
    """Group Section 5.2 runs by setting: {(backbone, dataset, d): {(kind, index, seed): (params,
    History)}} (a later run with the same key replaces an earlier one)."""
    out: dict = {}
    for p, h in runs:
        out.setdefault((p["backbone"], p["dataset"], p["d"]), {})[(p["kind"], int(p["index"]), int(p["seed"]))] = (p, h)
    return out


def _structure(cells) -> str:
    return str(next(iter(cells.values()))[0].get("structure", "simplex_etf"))


def setting_title(setting, cells) -> str:
    """backbone · dataset · d = … (simplex ETF or the C > d structure)."""
    backbone, dataset, d = setting
    kind = "simplex ETF" if _structure(cells) == "simplex_etf" else "C > d structure"
    return f"{backbone} · {dataset} · d = {d} ({kind})"


def main_seed_of(cells) -> int:
    """The seed at which the paper's boxes were trained: the one with the most permuted and rotated
    classifiers (the smallest on a tie)."""
    counts: dict = {}
    for (k, _, s) in cells:
        if k != "base":
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return min(s for (_, _, s) in cells)
    return min(counts, key=lambda s: (-counts[s], s))


def box_groups(cells, main_seed: int) -> dict:
    """The three samples of Figures 4–5 with their control: {"permutations": runs with M* P_i at
    the main seed, "rotations": R_i M* at the main seed, "seeds (M* fixed)": M* at every seed}
    (groups with fewer than two runs are left out)."""
    groups = {
        "permutations": [v for (k, _, s), v in sorted(cells.items()) if k == "permutation" and s == main_seed],
        "rotations": [v for (k, _, s), v in sorted(cells.items()) if k == "rotation" and s == main_seed],
        "seeds (M* fixed)": [v for (k, _, s), v in sorted(cells.items()) if k == "base"],
    }
    return {g: v for g, v in groups.items() if len(v) >= 2}


@dataclass(frozen=True)
class Grid:
    """A classifiers × seeds table of one quantity: rows (kind, index) with ("base", 0) = M*
    first, columns the seeds; ``values`` in percentage points for accuracies."""

    kind: str
    key: str
    rows: tuple
    seeds: tuple
    values: np.ndarray

    @property
    def shape(self) -> tuple:
        return self.values.shape

    def row_labels(self) -> list[str]:
        """M*, M* P1, … or M*, R1 M*, … in row order."""
        return ["M*" if k == "base" else (f"M* P{i}" if k == "permutation" else f"R{i} M*") for k, i in self.rows]


def grid(cells, kind: str = "permutation", key: str = "test_accuracy") -> Grid | None:
    """The largest complete grid of M* and the ``kind`` classifiers ("permutation" or "rotation")
    × the seeds at which M* was trained: rows present at two or more of those seeds, then the
    seeds where every such row is present. None when fewer than 2 × 2 cells remain."""
    if kind not in ("permutation", "rotation"):
        raise ValueError(f"kind must be 'permutation' or 'rotation', got {kind!r}")
    base_seeds = sorted({s for (k, _, s) in cells if k == "base"})
    rows = [("base", 0)] + [(kind, i) for i in sorted({i for (k, i, _) in cells if k == kind})]
    rows = [r for r in rows if sum((r[0], r[1], s) in cells for s in base_seeds) >= 2]
    cols = [s for s in base_seeds if all((r[0], r[1], s) in cells for r in rows)]
    if len(rows) < 2 or len(cols) < 2 or rows[0] != ("base", 0):
        return None
    mult = 100.0 if key.endswith("accuracy") else 1.0
    table = np.array([[mult * final(cells[(r[0], r[1], s)][1], key) for s in cols] for r in rows])
    return Grid(kind, key, tuple(rows), tuple(cols), table)


@dataclass(frozen=True)
class GridAnalysis:
    """What a grid says about the classifier factor: the two-way ANOVA (``anova``), the
    permutation test's F and p (``n_resamples`` shuffles within seeds), the residual sd σ
    (√MS_error, the path noise), the estimated classifier-effect sd τ̂ with its two-sided
    interval and one-sided upper bound at 1 − α (``effect_interval``, ``effect_upper``, from
    :func:`nclib.stats.effect_ratio_interval` times σ), the smallest detectable effect
    (``detectable``, as τ/σ; :attr:`tau80` in the data's units), and ``seed_sd``: the sd of a
    fixed classifier's value across seeds, pooled over the grid's rows (a(b − 1) degrees of
    freedom: the yardstick "an effect as large as seed noise")."""

    grid: Grid
    anova: AnovaTable
    F: float
    p: float
    n_resamples: int
    sigma: float
    effect: float
    effect_interval: tuple
    effect_upper: float
    detectable: Detectable
    seed_sd: float = math.nan
    alpha: float = ALPHA

    @property
    def tau80(self) -> float:
        """The classifier-effect sd detected with probability ``detectable.power``."""
        return self.detectable.ratio * self.sigma

    def power_at(self, effect_sd: float) -> float:
        """Power of the permutation test against a classifier effect with sd ``effect_sd``."""
        if self.sigma == 0:
            return 1.0 if effect_sd > 0 else self.detectable.size
        return self.detectable.power_at(effect_sd / self.sigma)


def analyse_grid(g: Grid, *, n_resamples: int = 9999, alpha: float = ALPHA, power: float = POWER,
                 seed: int = 0, power_sims: int = 1000) -> GridAnalysis:
    """Two-way ANOVA, permutation test, effect interval and smallest detectable effect of a
    grid (see :class:`GridAnalysis`)."""
    a, b = g.shape
    anova = two_way_anova(g.values)
    F, p = permutation_test_rows(g.values, n_resamples=n_resamples, seed=seed)
    sigma = math.sqrt(anova.ms["error"])
    if np.isfinite(F):
        lo, hi = effect_ratio_interval(F, a, b, 1 - alpha)
        upper = effect_ratio_interval(F, a, b, 1 - alpha, one_sided=True)[1]
        effect = math.sqrt(max(0.0, (F - 1) / b))
    else:
        lo = hi = upper = effect = math.nan
    det = detectable_effect(a, b, power, n_sim=power_sims, alpha=alpha, seed=seed)
    v = g.values
    seed_sd = math.sqrt(((v - v.mean(axis=1, keepdims=True)) ** 2).sum() / (a * (b - 1)))
    return GridAnalysis(g, anova, F, p, n_resamples, sigma, effect * sigma, (lo * sigma, hi * sigma),
                        upper * sigma, det, seed_sd, alpha)


def anova_table(ga: GridAnalysis, title: str):
    """The two-way ANOVA of a grid, with the permutation test, as a :class:`nclib.tables.Table`."""

    names = {"rows": f"classifier (M* and {ga.grid.kind}s)", "columns": "seed", "error": "residual"}
    fmt = lambda v, f: "" if v is None else format(v, f)
    body = [[names.get(src, src), f"{ss:.3g}", df, fmt(ms, ".3g"), fmt(F, ".3g"), fmt(p, ".3g")]
            for src, ss, df, ms, F, p in ga.anova.rows()]
    body[0][-1] += f" (permutation test: {ga.p:.3g})"
    a, b = ga.grid.shape
    return Table(["source", "SS", "df", "MS", "F", "p"], body,
                 f"two-way ANOVA of test accuracy (points), {a} classifiers × {b} seeds: {title}")


@dataclass
class SettingSummary:
    """Everything chapter 8 reads off one setting: the boxes, the spreads (sd and range of final
    test accuracy, points), the spread comparison of permutations against seeds, the grids and
    their analyses, and the terminal-phase check (models at 100% training accuracy, the largest
    final training CE, the range of epochs trained)."""

    setting: tuple
    title: str
    structure: str
    main_seed: int
    n_models: int
    n_tpt: int
    max_train_ce: float
    epochs: tuple
    groups: dict
    sd: dict
    range: dict
    spread: SpreadComparison | None
    grids: dict = field(default_factory=dict)
    undefined: dict = field(default_factory=dict)  # test → why it could not be computed

    @property
    def seed_sd(self) -> float:
        """The sd of final test accuracy of M* across seeds (points): the seed control."""
        return self.sd.get("seeds (M* fixed)", math.nan)


def summarise_setting(setting, cells, *, main_seed: int | None = None, n_resamples: int = 9999,
                      alpha: float = ALPHA, power: float = POWER, seed: int = 0,
                      power_sims: int = 1000) -> SettingSummary:
    """The :class:`SettingSummary` of one setting's cells (see :func:`settings`); ``power_sims``:
    simulated grids per point of the power curve."""
    main = main_seed_of(cells) if main_seed is None else main_seed
    groups = box_groups(cells, main)
    hs = [h for _, h in cells.values()]
    acc = {g: [100 * final(h, "test_accuracy") for _, h in v] for g, v in groups.items()}
    spread = None
    undefined = {}
    if "permutations" in acc and "seeds (M* fixed)" in acc:
        try:
            spread = spread_comparison(acc["permutations"], acc["seeds (M* fixed)"])
        except UndefinedTestError as exc:
            undefined["spread"] = str(exc)
    grids = {}
    for kind in ("permutation", "rotation"):
        g = grid(cells, kind)
        if g is not None:
            try:
                grids[kind] = analyse_grid(g, n_resamples=n_resamples, alpha=alpha, power=power, seed=seed,
                                           power_sims=power_sims)
            except UndefinedTestError as exc:  # every run of the grid alike: nothing to test
                undefined[kind] = str(exc)
    return SettingSummary(
        setting, setting_title(setting, cells), _structure(cells), main, len(hs),
        sum(final(h, "train_accuracy") == 1.0 for h in hs), max(final(h, "train_loss") for h in hs),
        (min(h.epochs_trained for h in hs), max(h.epochs_trained for h in hs)), groups,
        {g: float(np.std(v, ddof=1)) for g, v in acc.items()}, {g: float(np.ptp(v)) for g, v in acc.items()},
        spread, grids, undefined)


def summarise_settings(runs, **kw) -> dict:
    """{setting: :class:`SettingSummary`} for every setting among ``runs`` (keywords as
    :func:`summarise_setting`; a ``main_seed`` applies to every setting)."""
    return {s: summarise_setting(s, cells, **kw) for s, cells in settings(runs).items()}


def decide_nc_gen(summary: SettingSummary | None, kind: str = "permutation", *, alpha: float = ALPHA,
                  power: float = POWER, p_adjusted: float | None = None) -> Verdict:
    """The verdict on Section 5.2 for one setting and one kind of equivalence ("permutation" or
    "rotation"): do the classifiers M* and M* P_i (or R_i M*) differ in test accuracy
    *consistently across seeds*, beyond the noise of the optimization path?

    Rule: the permutation test of the classifier factor on the grid (shuffling classifiers within
    each seed): p ≤ α → holds. p > α → not distinguishable from seed noise if the grid detects a
    classifier effect with sd equal to the seed sd (a fixed classifier across seeds, pooled over
    the grid's rows: ``GridAnalysis.seed_sd``) with probability ≥ ``power``,
    else untestable at this size (a null the grid could not have turned into a detection). No grid
    → untestable at this size. The sureness is the effect's interval (holds) or the smallest
    detectable effect, with an equivalence statement only when the one-sided upper bound on the
    effect sd lies below the seed sd.

    ``p_adjusted``: the test's p after a correction across a family of verdicts (Holm,
    :func:`nclib.stats.holm`), decided on in place of the raw p, which the key still shows."""
    noun = {"permutation": "permutations M* P_i", "rotation": "rotations R_i M*"}[kind]
    which = "Holm-adjusted p" if p_adjusted is not None else "p"
    rule = (f"permutation test (classifiers shuffled within each seed) of the classifier factor on the grid "
            f"of M* and {noun} × seeds: {which} ≤ {alpha:g} → holds; otherwise not distinguishable from seed "
            f"noise if the grid detects an effect as large as the seed sd with probability ≥ {power:g}, "
            "else untestable at this size")
    ga = summary.grids.get(kind) if summary is not None else None
    box_sd = summary.seed_sd if summary is not None else math.nan
    box = {"permutation": "permutations", "rotation": "rotations"}[kind]
    if ga is None:
        control = (f"seed control: M* under several seeds spreads by sd {box_sd:.2f} points"
                   if np.isfinite(box_sd) else "seed control: not run")
        why = (summary.undefined[kind] if summary is not None and kind in summary.undefined else
               f"no grid of M* and {kind}s × seeds (at least 2 × 2 runs) among the runs")
        return Verdict("untestable at this size", rule, control, "nothing to test: " + why, why)
    seed_sd = ga.seed_sd
    a, b = ga.grid.shape
    sd_kind = summary.sd.get(box, math.nan)
    n_box = len(summary.groups.get("seeds (M* fixed)", []))
    control = (f"seed control: a change of seed moves a fixed classifier by sd {seed_sd:.2f} points "
               f"(pooled over the grid; M* alone over {n_box} seeds: {box_sd:.2f}), against "
               f"{sd_kind:.2f} across {kind}s at one seed; the test on simulated grids with no "
               f"classifier effect rejects in {100 * ga.detectable.size:.1f}% of draws (level {100 * alpha:g}%)")
    pw = ga.power_at(seed_sd)
    p = ga.p if p_adjusted is None else float(p_adjusted)
    base_key = f"permutation test p = {ga.p:.2g} on the {a} × {b} grid"
    if p_adjusted is not None:
        base_key = f"permutation test p = {ga.p:.2g}, Holm-adjusted {p:.2g}, on the {a} × {b} grid"
    caveat = ""
    if summary.n_tpt < summary.n_models:
        caveat = f" Only {summary.n_tpt} of {summary.n_models} models ended at 100% training accuracy."
    if p <= alpha:
        lo, hi = ga.effect_interval
        sure = (f"classifier effect sd {ga.effect:.2f} points, {100 * (1 - alpha):g}% interval [{lo:.2f}, {hi:.2f}] "
                f"(residual sd {ga.sigma:.2f})")
        return Verdict("holds", rule, control, sure, f"{base_key}; effect sd {ga.effect:.2f} points",
                       f"Some classifiers do better than others in every seed.{caveat}")
    if math.isfinite(ga.tau80):
        reach = f"a {kind} effect with sd above {ga.tau80:.2f} points would have been detected"
    else:  # the grid never reaches the power over the simulated range: say where the range ends
        top = ga.detectable.ratios[-1]
        reach = (f"no {kind} effect with sd up to {top * ga.sigma:.2f} points ({top:g} × the residual sd, the "
                 "largest simulated) would have been detected")
    detect = (f"{reach} with probability {power:g} (simulation from the residual sd {ga.sigma:.2f}); power "
              f"{pw:.2f} against an effect equal to the seed sd {seed_sd:.2f}")
    if pw < power:
        return Verdict("untestable at this size", rule, control, detect,
                       f"{base_key}, but power {pw:.2f} < {power:g} against an effect as large as the seed sd",
                       f"The grid is too small to turn an effect as large as the seed noise into a detection.{caveat}")
    if ga.effect_upper < seed_sd:
        detect += (f"; {100 * (1 - alpha):g}% upper bound on the effect sd {ga.effect_upper:.2f} points, below the "
                   "seed sd: any effect is smaller than seed noise")
    return Verdict("not distinguishable from seed noise", rule, control, detect,
                   f"{base_key}; an effect sd above {ga.tau80:.2f} points would have shown",
                   f"No consistent effect of the {kind} beyond the path noise.{caveat}")


def summary_table(summaries: dict, verdicts: dict, caption: str):
    """One row per setting: models at 100% training accuracy, sd of test accuracy across
    permutations / rotations / seeds, and the verdicts (``verdicts``: {setting: {kind: Verdict}})."""

    body = []
    for s, S in summaries.items():
        sd = S.sd
        v = verdicts.get(s, {})
        body.append([S.title, f"{S.n_tpt} / {S.n_models}",
                     " / ".join(f"{sd.get(g, math.nan):.2f}" for g in BOX_NAMES),
                     "; ".join(f"{k}s: {vv.label} ({vv.key})" for k, vv in v.items()) or "no grid"])
    return Table(["setting", "at 100% train acc.", "sd perm. / rot. / seeds (points)", "verdicts"], body, caption)


# ==============================================================================================
# The machinery's checks: batched against sequential training, a rotated head against a rotated
# last layer. Both decided in float64, where rounding cannot be amplified into a visible gap.
# ==============================================================================================


# ==============================================================================================
# Chapter 8's numbers in words
# ==============================================================================================


def chapter8_numbers(summary: SettingSummary | None, verdict: Verdict | None = None, prefix: str = "") -> dict:
    """The values chapter 8 glues for one setting, as strings ({name: text}, names prefixed by
    ``prefix``): models and how many at 100% training accuracy, the largest final training CE,
    the epochs trained, the sds and range of final test accuracy, the Brown–Forsythe comparison
    and the label of ``verdict`` (default: :func:`decide_nc_gen` on the permutations), from which
    the chapter chooses its reading."""
    na = "n/a"
    if summary is None:
        names = ("n_models", "n_tpt", "max_train_ce", "epochs_trained", "sd_perm", "sd_rot", "sd_seed",
                 "range_perm", "bf_p", "bf_sentence")
        out = {prefix + n: na for n in names}
        out[prefix + "label"] = "no runs"
        return out
    S = summary
    sp = S.spread
    if sp is None or not np.isfinite(sp.p_value):
        bf = "cannot be compared here"
    elif sp.p_value < ALPHA:
        bf = "differ, the permutations spreading " + ("more" if sp.ratio > 1 else "less") + " than the seeds"
    else:
        bf = "are not distinguishable"
    v = verdict or decide_nc_gen(S, "permutation")
    lo, hi = S.epochs
    return {prefix + k: val for k, val in {
        "n_models": str(S.n_models), "n_tpt": str(S.n_tpt), "max_train_ce": f"{S.max_train_ce:.2g}",
        "epochs_trained": f"{lo}" if lo == hi else f"{lo} to {hi}",
        "sd_perm": f"{S.sd.get('permutations', math.nan):.2f}", "sd_rot": f"{S.sd.get('rotations', math.nan):.2f}",
        "sd_seed": f"{S.seed_sd:.2f}", "range_perm": f"{S.range.get('permutations', math.nan):.1f}",
        "bf_p": f"{sp.p_value:.2g}" if sp is not None else na, "bf_sentence": bf,
        "label": v.label,
    }.items()}
