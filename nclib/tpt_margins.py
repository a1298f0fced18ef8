"""Section 5.1 of Gao et al. (Figure 3, chapter 7): how the margins grow during the terminal phase,
for live runs and recorded ones alike (runs as ``(params, History)`` pairs).

:func:`margin_growth` reads each run's terminal phase: the changes of p_min and of the scale-free
margin p̂ over its second half, and the split of the growth of log p_min into the scales (RMS
feature norm ρ̄, classifier norm) and p̂; :func:`rescaled_control` is the control (copies that only
rescale); :func:`decide_fig3` is the verdict. Section 5.2 is :mod:`nclib.report`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nclib.report import ALPHA
from nclib.stats import clustered_t_interval
from nclib.tables import Table
from nclib.verdicts import Verdict, confidence

__all__ = ["run_label", "MarginGrowth", "margin_growth", "rescaled_control", "growth_table", "GROWTH_TOL", "decide_fig3", "seed_clusters",
           "chapter7_numbers"]


def run_label(p: dict, with_seed: bool = False) -> str:
    """A short name of a chapter-7 run: backbone · dataset · head (· seed)."""
    head = {"etf": "fixed ETF", "learnable": "learnable"}.get(p.get("head"), str(p.get("head", "?")))
    out = f"{p.get('backbone', '?')} · {p.get('dataset', '?')} · {head} head"
    return out + (f" · seed {p.get('seed')}" if with_seed else "")


def _fmt_ci(mean, lo, hi, fmt=".3f") -> str:
    return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


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
    """The decomposition as a :class:`nclib.tables.Table`: per run, t0 / tm / t1, p_min and p̂
    at the three epochs, the scale factor over the second half, the share of the scales in the
    growth of log p_min (whole terminal phase / second half), and test accuracy t0 → t1."""

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


def seed_clusters(rows) -> list:
    """The cluster of each run for :func:`nclib.stats.clustered_t_interval`: its backbone and
    dataset (its label without the head) and its seed. The fixed- and learnable-head runs of one
    seed share the data order and the initial backbone, so they are not independent; a run
    without a seed is its own cluster."""
    return [(r.label.rsplit(" · ", 1)[0], r.seed) if r.seed is not None else ("run", i)
            for i, r in enumerate(rows)]


def _growth_decision(rows, alpha, scales_grew: bool = False):
    """(label, stats) of the Section 5.1 rule on ``rows`` (see :func:`decide_fig3`);
    ``scales_grew``: whether the rescaled copies' p_min grew (then a p_min growth without a p̂
    growth is rescaling)."""
    done = [r for r in rows if r.reached]
    clusters = seed_clusters(done)
    stats = dict(n_runs=len(rows), n_used=len(done), n_left=sum(r.left_terminal_phase for r in done),
                 n_seeds=len(set(clusters)))
    if len(done) < 3 or stats["n_seeds"] < 2:
        return "untestable at this size", stats
    gp = np.array([r.change("p_min") for r in done])
    gs = np.array([r.change("scale_free") for r in done])
    stats["p"] = tuple(clustered_t_interval(gp, clusters, 1 - alpha))
    stats["s"] = tuple(clustered_t_interval(gs, clusters, 1 - alpha))
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


def decide_fig3(rows: list[MarginGrowth], *, alpha: float = ALPHA) -> Verdict:
    """The verdict on Section 5.1 ("the margin p_min keeps increasing as the CE loss approaches
    zero", Figure 3), decided on the second half [tm, t1] of each run's terminal phase (over the
    whole phase the margin grows by selection: at t0 the last training point has just crossed, so
    p_min starts near 0).

    Per run, Δp and Δs: the changes of p_min (in units of the run's scale at tm) and of the
    scale-free margin p̂ over that half (:meth:`MarginGrowth.change`); over runs, their means with
    95% t intervals over seeds (:func:`nclib.stats.clustered_t_interval`: the runs of one seed
    share its data order and initial backbone, so each seed is one observation; a percentile
    bootstrap over 6 runs covers about 85%, not 95%). Fewer than 3 runs, or fewer than 2 seeds,
    with a measured second half (as for the
    paper's CIFAR-100 panel, whose p_min stays below 0, so that it never entered the terminal
    phase) → untestable at this size; the interval of Δp below 0 → violated; above 0 → holds when
    the interval of Δs is above 0 too, holds but vacuous when it is not and the scales grew (the
    rescaled copies' Δp above 0: p_min grew by rescaling); otherwise (Δp's interval containing 0,
    or p_min growing with neither p̂ nor the scales clearly growing) not distinguishable from seed
    noise. The control is :func:`rescaled_control` decided by the same rule: its Δs is 0 by
    construction, so the rule must not say "holds" on it; it says "holds but vacuous" when the
    scales grew over the half, "violated" when they shrank (weight decay can shrink them), and its
    text says which, beside whether the control passed."""
    ctrl_label, ctrl = _growth_decision(rescaled_control(rows), alpha, scales_grew=True)
    scales_grew = "p" in ctrl and ctrl["p"][1] > GROWTH_TOL
    label, st = _growth_decision(rows, alpha, scales_grew)
    rule = ("per run, the change of p_min (in units of the run's scale) and of the scale-free margin p̂ over the "
            f"second half of the terminal phase, fitted over its measured epochs; {confidence(alpha)} t intervals of the "
            "means over seeds (each seed's runs averaged): p_min's above 0 and p̂'s above 0 → holds; p_min's above 0, p̂'s not, the scales' "
            "above 0 → holds but vacuous (rescaling); p_min's below 0 → violated; otherwise not "
            "distinguishable from seed noise; fewer than 3 runs in the terminal phase → untestable")
    if "s" in ctrl:
        control = (f"rescaled copies (features and classifier at t_m times each run's own scale factors): "
                   f"{ctrl_label}, change of p_min {_fmt_ci(*ctrl['p'])}, of p̂ {ctrl['s'][0]:.3f}; "
                   + _control_reading(ctrl_label, ctrl["p"]))
    else:
        control = "rescaled copies: fewer than 3 runs in the terminal phase, nothing to rescale"
    if label == "untestable at this size":
        why = (f"{st['n_used']} of {st['n_runs']} runs (of {st.get('n_seeds', 0)} seeds) reached 100% training "
               "accuracy with three measured epochs in the second half of the terminal phase")
        return Verdict(label, rule, control, "no interval: " + why, why,
                       "The rule needs at least three runs, of two seeds or more, whose training set is fitted.")
    (pm, plo, phi), (sm, slo, shi) = st["p"], st["s"]
    sure = (f"{confidence(alpha)} t intervals over {st['n_seeds']} seeds ({st['n_used']} runs): change of p_min {_fmt_ci(pm, plo, phi)}, "
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


def _control_reading(label: str, p_change) -> str:
    """What the rescaled copies' outcome says: which way the scales alone moved p_min, and whether
    the control passed (the rule must not say "holds" on copies whose p̂ is constant)."""
    _, lo, hi = p_change
    moved = ("the scales grew, so rescaling alone raised p_min" if lo > GROWTH_TOL else
             "the scales shrank, so rescaling alone lowered p_min" if hi < -GROWTH_TOL else
             "rescaling alone did not move p_min distinguishably")
    if label == "holds":
        return f"{moved}, yet the rule says 'holds' on copies whose p̂ is constant: the rule is suspect"
    return f"{moved}; the rule does not say 'holds' on them, as it must not (the control passes)"


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
    return {
        "etf_share_value": share,  # a float (NaN: no fixed-ETF run to split), for the chapter's reading
        "n_tpt": f"{len(done)} of {len(rows)}",
        "etf_share_late": _pct(_median([r.share() for r in etf])),
        "etf_share": _pct(_median([r.share(False) for r in etf])),
        "test_change": "n/a" if not np.isfinite(change) else f"{100 * change:+.1f} points",
        "sf_end": f"{_median([r.scale_free[2] for r in done]):.3f}",
        "ce_late": f"{math.exp(_median([r.log_growth('loss') for r in done])):.2f}",
    }
