"""The analysis of experiment runs (Section 5 of Gao et al.), for live runs and recorded ones alike.

Every function takes runs as a list of ``(params, History)`` pairs, the form that a chapter's live
runs have and that :meth:`nclib.experiments.RecordedResults.runs` returns for recorded ones, and
returns data, tables or verdicts; nothing reads a chapter's globals. Chapters 7 and 8 call it on
their CPU-scale runs, chapter 10 on the records in ``results/``. Figures are in
:mod:`nclib.report_plots`.

Section 5.1 (Figure 3, chapter 7)
    :func:`margin_growth` reads each run's terminal phase: the changes of p_min and of the
    scale-free margin p̂ over its second half, and the split of the growth of log p_min into the
    scales (RMS feature norm ρ̄, classifier norm) and p̂; :func:`rescaled_control` is the control
    (copies that only rescale); :func:`decide_fig3` is the verdict.

Section 5.2 (Figures 4–5, chapter 8)
    :func:`design` says which classifiers to train at which seed; :func:`settings` groups
    runs by (backbone, dataset, d); :func:`box_groups` gives the paper's
    boxes (permutations, rotations at one seed) and the seed box; :func:`grid` the classifiers ×
    seeds table; :func:`analyse_grid` its two-way ANOVA, permutation test, smallest detectable
    effect and effect interval (:mod:`nclib.stats`); :func:`summarise` all of it per setting;
    :func:`decide_nc_gen` the verdict. :func:`batched_check` / :func:`decide_batched` and
    :func:`identity_check` / :func:`decide_identity` run and decide the two checks of the
    machinery (batched against sequential training; a rotated head against a rotated last layer),
    both in float64, where a fault survives and amplified rounding does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nclib.stats import (AnovaTable, Detectable, SpreadComparison, UndefinedTestError, bootstrap_mean_ci,
                         detectable_effect, effect_ratio_interval, permutation_test_rows, spread_comparison,
                         two_way_anova)
from nclib.verdicts import Verdict

__all__ = [
    "ALPHA", "POWER", "final", "run_label",
    # Section 5.1
    "MarginGrowth", "margin_growth", "rescaled_control", "growth_table", "decide_fig3",
    "chapter7_numbers",
    # Section 5.2
    "BOX_NAMES", "design", "run_name", "missing_in_setting", "settings", "setting_title", "main_seed_of",
    "box_groups", "Grid", "grid",
    "GridAnalysis", "analyse_grid", "anova_table", "SettingSummary", "summarise_setting", "summarise",
    "decide_nc_gen", "summary_table", "describe_structure", "chapter8_numbers",
    # the machinery's checks
    "GAP_KEYS", "history_gap", "logit_gap", "batched_check", "identity_check", "decide_batched",
    "decide_identity",
]

ALPHA = 0.05   #: level of every test in the verdicts
POWER = 0.8    #: power at which the smallest detectable effect is read


def final(h, key: str) -> float:
    """The value of ``key`` at the last measured epoch of history ``h``."""
    if not h.records:
        raise ValueError("the history has no measured epoch")
    return float(h.records[-1][key])


def run_label(p: dict, with_seed: bool = False) -> str:
    """A short name of a chapter-7 run: backbone · dataset · head (· seed)."""
    head = {"etf": "fixed ETF", "learnable": "learnable"}.get(p.get("head"), str(p.get("head", "?")))
    out = f"{p.get('backbone', '?')} · {p.get('dataset', '?')} · {head} head"
    return out + (f" · seed {p.get('seed')}" if with_seed else "")


def _fmt_ci(mean, lo, hi, fmt=".3f") -> str:
    return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


# ==============================================================================================
# Section 5.1: does the margin keep growing in the terminal phase, beyond rescaling?
# ==============================================================================================


_SERIES = {"p_min": "train_p_min", "scale_free": "train_scale_free_margin", "rho": "train_feature_rms",
           "norm": "train_classifier_norm", "loss": "train_loss"}


@dataclass(frozen=True)
class MarginGrowth:
    """One run's terminal phase: its first epoch at 100% training accuracy ``t0``, the first
    measured epoch ``tm`` of its second half (at or after (t0 + t1)/2) and its last epoch ``t1``;
    ``values``: p_min, the scale-free margin p̂, the RMS feature norm ρ̄ and the mean classifier
    column norm at (t0, tm, t1); ``window``: the measured epochs of the second half and ``series``
    the four quantities on them; test accuracy at t0 and t1. ``reached`` is False when the run
    never fitted its training set or measured fewer than three epochs in the second half."""

    label: str
    head: str
    seed: int | None
    reached: bool
    t: tuple = (None, None, None)
    C: int = 10
    values: dict = field(default_factory=dict)
    window: tuple = ()
    series: dict = field(default_factory=dict)
    test_accuracy: tuple = (math.nan, math.nan)

    @property
    def p_min(self) -> tuple:
        return self.values.get("p_min", (math.nan,) * 3)

    @property
    def scale_free(self) -> tuple:
        return self.values.get("scale_free", (math.nan,) * 3)

    @property
    def left_terminal_phase(self) -> bool:
        """Whether p_min was ≤ 0 (a training point misclassified) somewhere in the second half."""
        return self.reached and bool(np.any(np.asarray(self.series["p_min"]) <= 0))

    def log_growth(self, quantity: str, late: bool = True) -> float:
        """The growth of log ``quantity`` (p_min, scale_free, rho, norm or loss). ``late``: over the second
        half of the terminal phase, read from the least-squares line of log x against the epoch
        over every measured epoch of that half, times t1 − tm (single epochs of a minimum over
        samples are noisy; the fit uses them all). Otherwise log(x(t1)/x(t0)). NaN where x ≤ 0."""
        if not self.reached:
            return math.nan
        if not late:
            a, b = self.values[quantity][0], self.values[quantity][2]
            return math.log(b / a) if a > 0 and b > 0 else math.nan
        x = np.asarray(self.series[quantity], dtype=np.float64)
        if np.any(x <= 0):
            return math.nan
        e = np.asarray(self.window, dtype=np.float64)
        slope = np.polyfit(e, np.log(x), 1)[0]
        return float(slope * (e[-1] - e[0]))

    def change(self, quantity: str) -> float:
        """The change over the second half of the terminal phase, read from the least-squares line
        over its measured epochs (times t1 − tm), in units of p̂: of the scale-free margin p̂
        (``"scale_free"``) or of p_min measured in units of the run's scale at tm, i.e. p_min(t) /
        (ρ̄(tm) δ(tm)) with δ = ‖M_y‖·√(2C/(C−1)) the distance between two columns of a simplex ETF
        (``"p_min"``; exact for a fixed ETF head, where p_min/(ρ̄ δ) = p̂, approximate for a
        learnable one). Unlike a log growth, both are defined when p_min dips below 0 (a run
        that misclassifies a training point again) and comparable across runs of any scale."""
        if not self.reached:
            return math.nan
        x = np.asarray(self.series[quantity], dtype=np.float64)
        if quantity == "p_min":
            delta = self.series["norm"][0] * math.sqrt(2 * self.C / (self.C - 1))
            x = x / (self.series["rho"][0] * delta)
        elif quantity != "scale_free":
            raise ValueError(f"quantity must be 'p_min' or 'scale_free', got {quantity!r}")
        e = np.asarray(self.window, dtype=np.float64)
        return float(np.polyfit(e, x, 1)[0] * (e[-1] - e[0]))

    def scale_part(self, late: bool = True) -> float:
        """The growth of the scales, log ρ̄ + log ‖M_y‖: what a pure rescaling gives log p_min."""
        return self.log_growth("rho", late) + self.log_growth("norm", late)

    def share(self, late: bool = True) -> float:
        """The share of the growth of log p_min that the scales account for (NaN when p_min did not
        change or is not positive). Exact for a fixed ETF head, approximate for a learnable one."""
        g = self.log_growth("p_min", late)
        return self.scale_part(late) / g if np.isfinite(g) and g != 0 else math.nan


def margin_growth(runs) -> list[MarginGrowth]:
    """Per run (``(params, History)``), its :class:`MarginGrowth` over the terminal phase."""
    out = []
    for p, h in runs:
        label, head, seed = run_label(p), str(p.get("head", "?")), p.get("seed")
        t0 = h.terminal_epoch
        if t0 is None or not h.records or t0 >= h.records[-1]["epoch"]:
            out.append(MarginGrowth(label, head, seed, False))
            continue
        t1 = h.records[-1]["epoch"]
        window = [r for r in h.records if r["epoch"] >= (t0 + t1) / 2]
        if len(window) < 3:
            out.append(MarginGrowth(label, head, seed, False))
            continue
        a, m, b = h.at(t0), window[0], window[-1]
        values = {q: tuple(float(r[k]) for r in (a, m, b)) for q, k in _SERIES.items()}
        series = {q: tuple(float(r[k]) for r in window) for q, k in _SERIES.items()}
        out.append(MarginGrowth(label, head, seed, True, (int(t0), int(m["epoch"]), int(t1)), int(p.get("C") or 10),
                                values,
                                tuple(int(r["epoch"]) for r in window), series,
                                (float(a["test_accuracy"]), float(b["test_accuracy"]))))
    return out


def rescaled_control(rows: list[MarginGrowth]) -> list[MarginGrowth]:
    """The control of the rescaling objection: per run, copies of its features and classifier at
    tm multiplied, at every later epoch of the second half, by the run's own scale factors
    ρ̄(t)/ρ̄(tm) and ‖M(t)‖/‖M(tm)‖. p_min is bilinear, so the copies' p_min grows exactly by the
    scale part while their p̂ stays constant by construction: on them the claim "the margin grows
    beyond rescaling" must fail."""
    out = []
    for r in rows:
        if not r.reached:
            continue
        rho, norm = np.asarray(r.series["rho"]), np.asarray(r.series["norm"])
        f = (rho / rho[0]) * (norm / norm[0])
        p = tuple(r.series["p_min"][0] * f)
        sf = (r.series["scale_free"][0],) * len(f)
        values = dict(r.values, p_min=(r.p_min[1], r.p_min[1], p[-1]), scale_free=(sf[0],) * 3)
        out.append(MarginGrowth(r.label + " (rescaled copy)", r.head, r.seed, True, r.t, r.C, values, r.window,
                                dict(r.series, p_min=p, scale_free=sf), r.test_accuracy))
    return out


def _pct(x) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f}%".replace("-0%", "0%")


def growth_table(rows: list[MarginGrowth], caption: str):
    """The decomposition as a :class:`nclib.experiments.Table`: per run, t0 / tm / t1, p_min and p̂
    at the three epochs, the scale factor over the second half, the share of the scales in the
    growth of log p_min (whole terminal phase / second half), and test accuracy t0 → t1."""
    from nclib.experiments import Table

    header = ["run", "t₀ / t_m / t₁", "p_min", "p̂", "× scales (2nd half)", "share of scales: all / 2nd half",
              "test acc."]
    body = []
    for r in rows:
        if not r.reached:
            body.append([r.label + (f" · seed {r.seed}" if r.seed is not None else ""), "never reached"]
                        + [""] * 5)
            continue
        body.append([r.label + (f" · seed {r.seed}" if r.seed is not None else ""), " / ".join(map(str, r.t)),
                     " → ".join(f"{v:.3g}" for v in r.p_min), " → ".join(f"{v:.3f}" for v in r.scale_free),
                     f"{math.exp(r.scale_part()):.3f}", f"{_pct(r.share(False))} / {_pct(r.share())}",
                     f"{100 * r.test_accuracy[0]:.1f}% → {100 * r.test_accuracy[1]:.1f}%"])
    return Table(header, body, caption)


#: A change within this of 0 counts as none (a least-squares fit of a constant is ±1e-16, not 0).
GROWTH_TOL = 1e-6


def _growth_decision(rows, n_boot, seed, alpha, scales_grew: bool = False):
    """(label, stats) of the Section 5.1 rule on ``rows`` (see :func:`decide_fig3`);
    ``scales_grew``: whether the rescaled copies' p_min grew (then a p_min growth without a p̂
    growth is rescaling)."""
    done = [r for r in rows if r.reached]
    stats = dict(n_runs=len(rows), n_used=len(done), n_left=sum(r.left_terminal_phase for r in done))
    if len(done) < 3:
        return "untestable at this size", stats
    gp = np.array([r.change("p_min") for r in done])
    gs = np.array([r.change("scale_free") for r in done])
    stats["p"] = bootstrap_mean_ci(gp, 1 - alpha, n_boot, seed)
    stats["s"] = bootstrap_mean_ci(gs, 1 - alpha, n_boot, seed)
    stats["n_p_up"] = int((gp > GROWTH_TOL).sum())
    stats["n_s_up"] = int((gs > GROWTH_TOL).sum())
    (_, p_lo, p_hi), (_, s_lo, _) = stats["p"], stats["s"]
    if p_hi < -GROWTH_TOL:
        label = "violated"
    elif p_lo > GROWTH_TOL and s_lo > GROWTH_TOL:
        label = "holds"
    elif p_lo > GROWTH_TOL and scales_grew:
        label = "holds but vacuous"
    else:
        label = "not distinguishable from seed noise"
    return label, stats


def decide_fig3(rows: list[MarginGrowth], *, n_boot: int = 10000, seed: int = 0, alpha: float = ALPHA) -> Verdict:
    """The verdict on Section 5.1 ("the margin p_min keeps increasing as the CE loss approaches
    zero", Figure 3), decided on the second half [tm, t1] of each run's terminal phase (over the
    whole phase the margin grows by selection: at t0 the last training point has just crossed, so
    p_min starts near 0).

    Per run, Δp and Δs: the changes of p_min (in units of the run's scale at tm) and of the
    scale-free margin p̂ over that half (:meth:`MarginGrowth.change`); over runs, their means with
    95% percentile bootstrap intervals. Fewer than 3 runs with a measured second half (as for the
    paper's CIFAR-100 panel, whose p_min stays below 0, so that it never entered the terminal
    phase) → untestable at this size; the interval of Δp below 0 → violated; above 0 → holds when
    the interval of Δs is above 0 too, holds but vacuous when it is not and the scales grew (the
    rescaled copies' Δp above 0: p_min grew by rescaling); otherwise (Δp's interval containing 0,
    or p_min growing with neither p̂ nor the scales clearly growing) not distinguishable from seed
    noise. The control is :func:`rescaled_control` decided by the same rule: its Δs is 0 by
    construction, so it can at most come out "holds but vacuous"."""
    ctrl_label, ctrl = _growth_decision(rescaled_control(rows), n_boot, seed, alpha, scales_grew=True)
    scales_grew = "p" in ctrl and ctrl["p"][1] > GROWTH_TOL
    label, st = _growth_decision(rows, n_boot, seed, alpha, scales_grew)
    rule = ("per run, the change of p_min (in units of the run's scale) and of the scale-free margin p̂ over the "
            "second half of the terminal phase, fitted over its measured epochs; 95% bootstrap intervals of the "
            "means over runs: p_min's above 0 and p̂'s above 0 → holds; p_min's above 0, p̂'s not, the scales' "
            "above 0 → holds but vacuous (rescaling); p_min's below 0 → violated; otherwise not "
            "distinguishable from seed noise; fewer than 3 runs in the terminal phase → untestable")
    if "s" in ctrl:
        control = (f"rescaled copies (features and classifier at t_m times each run's own scale factors): "
                   f"{ctrl_label}, change of p_min {_fmt_ci(*ctrl['p'])}, of p̂ {ctrl['s'][0]:.3f}")
    else:
        control = "rescaled copies: fewer than 3 runs in the terminal phase, nothing to rescale"
    if label == "untestable at this size":
        why = (f"{st['n_used']} of {st['n_runs']} runs reached 100% training accuracy with three measured epochs "
               "in the second half of the terminal phase")
        return Verdict(label, rule, control, "no interval: " + why, why,
                       "The rule needs at least three runs whose training set is fitted.")
    (pm, plo, phi), (sm, slo, shi) = st["p"], st["s"]
    sure = (f"95% bootstrap intervals over {st['n_used']} runs: change of p_min {_fmt_ci(pm, plo, phi)}, "
            f"of p̂ {_fmt_ci(sm, slo, shi)}")
    if label == "not distinguishable from seed noise":
        level = _median([r.scale_free[1] for r in rows if r.reached])
        sure += (f"; a mean growth of p̂ above {shi:.3f} ({100 * shi / level:.0f}% of its median value at t_m) is "
                 "excluded" if np.isfinite(level) and level > 0 else "")
    key = (f"over the second half of the terminal phase p_min changed by {pm:+.3f} and p̂ by {sm:+.3f} "
           f"(in units of the scale; mean of {st['n_used']} runs, p̂ grew in {st['n_s_up']})")
    detail = (f"p_min grew in {st['n_p_up']} and the scale-free margin in {st['n_s_up']} of {st['n_used']} runs "
              "over the second half of the terminal phase.")
    if st["n_left"]:
        detail += (f" In {st['n_left']} of them p_min fell below 0 again at some measured epoch of that half "
                   "(a training point misclassified).")
    return Verdict(label, rule, control, sure, key, detail)


def _median(xs) -> float:
    xs = [x for x in xs if np.isfinite(x)]
    return float(np.median(xs)) if xs else math.nan


def chapter7_numbers(rows: list[MarginGrowth]) -> dict:
    """The values chapter 7 glues, as strings: runs in the terminal phase, the median share of the
    scales in the growth of log p_min for the fixed-ETF runs (second half and whole terminal
    phase), the median change of test accuracy from t0 to t1 and the median final p̂."""
    done = [r for r in rows if r.reached]
    etf = [r for r in done if r.head == "etf"]
    change = _median([r.test_accuracy[1] - r.test_accuracy[0] for r in done])
    share = _median([r.share(False) for r in etf])
    if not np.isfinite(share):
        reading = "No fixed-ETF run has a positive p_min at both ends of its terminal phase, so no split is made."
    elif share < 0.5:
        reading = ("The feature norm stays nearly constant (weight decay holds it), and the growth of p_min from t₀ "
                   "to t₁ is growth of the scale-free margin.")
    else:
        reading = ("Most of the growth of p_min from t₀ to t₁ is the features getting longer: cross-entropy rewards "
                   "longer features directly, and weight decay only slows that down.")
    return {
        "split_reading": reading,
        "n_tpt": f"{len(done)} of {len(rows)}",
        "etf_share_late": _pct(_median([r.share() for r in etf])),
        "etf_share": _pct(_median([r.share(False) for r in etf])),
        "test_change": "n/a" if not np.isfinite(change) else f"{100 * change:+.1f} points",
        "sf_end": f"{_median([r.scale_free[2] for r in done]):.3f}",
        "ce_late": f"{math.exp(_median([r.log_growth('loss') for r in done])):.2f}",
    }


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
    """The two-way ANOVA of a grid, with the permutation test, as a :class:`nclib.experiments.Table`."""
    from nclib.experiments import Table

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


def summarise(runs, **kw) -> dict:
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
    the grid's rows: :attr:`GridAnalysis.seed_sd`) with probability ≥ ``power``,
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
    detect = (f"a {kind} effect with sd above {ga.tau80:.2f} points would have been detected with probability "
              f"{power:g} (simulation from the residual sd {ga.sigma:.2f}); power {pw:.2f} against an effect "
              f"equal to the seed sd {seed_sd:.2f}")
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
    from nclib.experiments import Table

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

GAP_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "train_p_min")


def history_gap(ha, hb, keys=GAP_KEYS) -> float:
    """The largest |difference| between two histories in any of ``keys`` (losses in nats,
    accuracies as fractions, p_min) over the epochs both measured."""
    eb = {r["epoch"]: r for r in hb.records}
    common = [(r, eb[r["epoch"]]) for r in ha.records if r["epoch"] in eb]
    if not common:
        raise ValueError("the two histories share no measured epoch")
    return max(abs(float(x[k]) - float(y[k])) for x, y in common for k in keys)


def logit_gap(model_a, model_b, x) -> float:
    """max |logits_a(x) − logits_b(x)| / max |logits_a(x)| of two trained models on inputs ``x``,
    in the models' own precision: how far apart two trainings ended, free of the rounding of the
    history's float32 losses."""
    import torch

    with torch.no_grad():
        model_a.eval(), model_b.eval()
        la, lb = model_a(x).double(), model_b(x).double()
    scale = la.abs().max().item()
    return (la - lb).abs().max().item() / scale if scale > 0 else (la - lb).abs().max().item()


def _as_dtype(data, dtype, noise: float = 0.0, seed: int = 0):
    import torch

    from nclib.data import TensorDataset

    x = data.x.to(dtype)
    if noise:
        g = torch.Generator(device="cpu").manual_seed(seed)
        x = x + noise * torch.randn(x.shape, generator=g, dtype=dtype).to(x.device)
    return TensorDataset(x, data.y, data.classes)


def batched_check(backbone_fn, heads, seed: int, train_data, test_data, config, *, logit_scale: float = 1.0,
                  noise: float = 1e-7, max_models: int | None = None) -> dict:
    """Train the models of one sweep (:func:`nclib.sweep.sweep_models`: ``heads`` on the backbone
    ``backbone_fn()`` built at ``seed``) for ``config`` batched (vmapped) and sequentially, in
    float32 and in float64, and sequentially once more in float32 on training inputs perturbed by
    ``noise`` (the rounding-level control). Returns per-model relative logit gaps on the test
    inputs (:func:`logit_gap`) ``batched32``, ``noise32``, ``batched64``; per-model gaps in final
    test accuracy (points) ``acc32`` (batched vs sequential) and ``acc_noise32``; and the float32
    wall times ``seconds`` = {"batched": …, "sequential": …}."""
    import time

    import torch

    from nclib.sweep import sweep_models, train_sweep

    out = {"seconds": {}}
    trained = {}
    for name, dtype, batched, noisy in (("b32", torch.float32, True, False), ("s32", torch.float32, False, False),
                                        ("n32", torch.float32, False, True), ("b64", torch.float64, True, False),
                                        ("s64", torch.float64, False, False)):
        tr = _as_dtype(train_data, dtype, noise if noisy else 0.0, seed)
        te = _as_dtype(test_data, dtype)
        models = [m.to(dtype) for m in sweep_models(backbone_fn, heads, seed, logit_scale)]
        t0 = time.perf_counter()
        hists = train_sweep(models, tr, te, config, batched=batched, max_models=max_models)
        if dtype == torch.float32 and not noisy:
            out["seconds"]["batched" if batched else "sequential"] = time.perf_counter() - t0
        trained[name] = (models, hists, te.x)
    gaps = lambda a, b: [logit_gap(ma, mb, trained[a][2]) for ma, mb in zip(trained[a][0], trained[b][0])]
    acc = lambda a, b: [100 * abs(final(ha, "test_accuracy") - final(hb, "test_accuracy"))
                        for ha, hb in zip(trained[a][1], trained[b][1])]
    out.update(batched32=gaps("b32", "s32"), noise32=gaps("n32", "s32"), batched64=gaps("b64", "s64"),
               acc32=acc("b32", "s32"), acc_noise32=acc("n32", "s32"))
    return out


def identity_check(backbone_fn, M, R, seed: int, train_data, test_data, config) -> dict:
    """Train three float64 models for ``config`` from one backbone initialisation (built by
    ``backbone_fn()`` at ``seed``; its last layer must be ``nn.Linear``): head R M from (W, b),
    head M from the rotated last layer (RᵀW, Rᵀb) (:func:`nclib.sweep.absorb_rotation`), and head
    M from (W, b) (the control). Returns the relative logit gaps (:func:`logit_gap`) on the test
    inputs: ``identity`` (first two) and ``control`` (first and third)."""
    import copy

    import torch

    from nclib.models import FixedHead, NCModel
    from nclib.sweep import absorb_rotation
    from nclib.train import train

    M = torch.as_tensor(M, dtype=torch.float64)
    R = torch.as_tensor(R, dtype=torch.float64)
    torch.manual_seed(int(seed))
    net = backbone_fn().double()

    def model(backbone, head):
        m = NCModel(backbone, FixedHead(head)).double()
        m.head.M = head.clone()  # the exact float64 matrix, not its float32 rounding
        return m

    rotated_head = model(copy.deepcopy(net), R @ M)
    rotated_init = model(absorb_rotation(copy.deepcopy(net), R), M)
    plain = model(copy.deepcopy(net), M)
    tr, te = _as_dtype(train_data, torch.float64), _as_dtype(test_data, torch.float64)
    for m in (rotated_head, rotated_init, plain):
        train(m, tr, te, config, progress=False)
    return {"identity": logit_gap(rotated_head, rotated_init, te.x), "control": logit_gap(rotated_head, plain, te.x)}


def decide_batched(batched32, noise32, batched64, *, tol64: float = 1e-6, big: float = 1e-3) -> Verdict:
    """Are the batched (vmapped) and the sequential training paths the same computation?

    Per model, the relative logit gaps of :func:`batched_check`: ``batched32`` between batched
    and sequential training in float32; ``noise32`` between two sequential float32 runs whose
    training inputs differ by rounding-level noise (the control: what chaotic training alone makes
    of a rounding difference); ``batched64`` batched against sequential in float64. A fault in the
    batched path does not depend on the precision; a rounding difference amplified by chaos
    shrinks with it. Rule: the largest float64 gap ≤ ``tol64`` → holds (the float32 gaps are
    chaos); above → violated (a fault)."""
    b32, n32, b64 = (np.asarray(x, dtype=np.float64) for x in (batched32, noise32, batched64))
    rule = (f"the same models trained batched and sequentially in float64: largest relative gap of their "
            f"test logits ≤ {tol64:g} → the paths agree and float32 gaps are rounding amplified by chaotic "
            "training; above → a fault in the batched path")
    if b64.size == 0 or b32.size == 0 or n32.size == 0:
        return Verdict("untestable at this size", rule, "not run", "not run", "no models compared")
    control = (f"two sequential float32 runs whose inputs differ by rounding-level noise: largest gap "
               f"{n32.max():.1e}, {int((n32 > big).sum())} of {n32.size} models above {big:g}; batched vs "
               f"sequential in float32: largest {b32.max():.1e}, {int((b32 > big).sum())} of {b32.size} above {big:g}")
    sure = (f"float64 largest gap {b64.max():.1e} over {b64.size} models, against float32's {b32.max():.1e} "
            f"and a tolerance of {tol64:g}")
    key = f"float64 gap {b64.max():.0e}, float32 gap {b32.max():.0e} (rounding-noise control {n32.max():.0e})"
    label = "holds" if b64.max() <= tol64 else "violated"
    return Verdict(label, rule, control, sure, key)


def decide_identity(gap_identity: float, gap_control: float, *, tol: float = 1e-6) -> Verdict:
    """Does training with head R M* from initialisation (W, b) equal training with head M* from
    the rotated last layer (RᵀW, Rᵀb)? The relative logit gaps of :func:`identity_check`:
    ``gap_identity`` between those two float64 trainings, ``gap_control`` between head R M* and
    head M* from the *same* initialisation (no rotation absorbed), which must differ. Rule:
    identity gap ≤ ``tol`` → holds; above → violated; a control gap ≤ ``tol`` too → untestable at
    this size (the comparison could not tell different trainings apart)."""
    rule = (f"float64 training: head R M* from the last layer (W, b) against head M* from (RᵀW, Rᵀb); "
            f"largest relative gap of their test logits ≤ {tol:g} → holds, above → violated")
    control = f"head R M* against head M* from the same initialisation: gap {gap_control:.2g}"
    sure = f"largest gap {gap_identity:.1e}, against the tolerance {tol:g} and the control's {gap_control:.2g}"
    if not (np.isfinite(gap_identity) and np.isfinite(gap_control)):
        return Verdict("untestable at this size", rule, control, "not run", "not run")
    if gap_control <= tol:
        return Verdict("untestable at this size", rule, control, sure,
                       f"control gap {gap_control:.1e}: the check cannot tell trainings apart")
    label = "holds" if gap_identity <= tol else "violated"
    return Verdict(label, rule, control, sure, f"gap {gap_identity:.0e} vs control {gap_control:.2g}")


# ==============================================================================================
# Chapter 8's numbers in words
# ==============================================================================================


def describe_structure(M, tol: float = 0.01) -> str:
    """The shape of a d×C classifier in words, from the cosines of its columns: the number of
    antipodal class pairs (cosine −1) and whether every other pair is orthogonal (a
    cross-polytope) or the range of their cosines."""
    import torch

    M = torch.as_tensor(M, dtype=torch.float64)
    d, C = M.shape
    U = M / M.norm(dim=0, keepdim=True)
    cos = (U.T @ U)[~torch.eye(C, dtype=torch.bool)]
    n_anti = int((cos < -1 + tol).sum().item()) // 2
    others = cos[cos >= -1 + tol]
    shape = f"{n_anti} antipodal class pairs (cosine −1)"
    if others.numel() and others.abs().max() < tol:
        shape += " and every other pair orthogonal (a cross-polytope)"
    elif others.numel():
        shape += f" and the other pairs at cosines from {others.min():.2f} to {others.max():.2f}"
    return shape + f", for C = {C} classes in d = {d} dimensions"


_READING = {
    "holds": ("Here some classifiers do better than others consistently across seeds, beyond what a change of "
              "optimization path alone produces, which supports the paper's reading; the size of the effect is "
              "its sd τ̂ above, to be weighed against the seed sd."),
    "not distinguishable from seed noise": (
        "At this scale the spread that the paper reads as non-conservative generalization is the spread any "
        "change of optimization path produces, as the two facts above predict for networks ending in a linear "
        "layer; an effect large enough to matter (the detectable size above) would have shown. The paper's "
        "boxes come from a single seed and cannot separate the two; its claim needs the grid at paper scale "
        "(below) before it can stand."),
    "untestable at this size": (
        "At this scale the grid cannot decide: the experiment could not have detected an effect as large as "
        "the seed noise, so its null result is absence of evidence, not evidence of absence."),
}


def chapter8_numbers(summary: SettingSummary | None, verdict: Verdict | None = None, prefix: str = "") -> dict:
    """The values chapter 8 glues for one setting, as strings ({name: text}, names prefixed by
    ``prefix``): models and how many at 100% training accuracy, the largest final training CE,
    the epochs trained, the sds and range of final test accuracy, the Brown–Forsythe comparison
    and, from ``verdict`` (default: :func:`decide_nc_gen` on the permutations), the reading."""
    na = "n/a"
    if summary is None:
        names = ("n_models", "n_tpt", "max_train_ce", "epochs_trained", "sd_perm", "sd_rot", "sd_seed",
                 "range_perm", "bf_p", "bf_sentence")
        out = {prefix + n: na for n in names}
        out[prefix + "interpretation"] = "No runs: no dataset could be loaded or the case was skipped."
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
        "interpretation": _READING.get(v.label, v.detail or v.label),
    }.items()}
