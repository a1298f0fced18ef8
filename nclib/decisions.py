"""The decision functions of chapters 2–6: one per claim, each naming the result it decides.

Every function here turns measured numbers into a :class:`nclib.verdicts.Verdict` by a rule the
chapter states before the numbers: what is computed, what threshold or test decides, and what
each outcome means. Each verdict carries a control (the same computation where the claim should
fail or the effect is absent by construction) and a measure of how sure it is (an interval, or
the smallest effect the experiment could have detected with probability 0.8). The functions are
tested in ``tests/test_decisions.py`` on constructed inputs where each outcome must come out.

Claims decided here (Gao et al., arXiv 2310.08358, and Papyan et al. 2020 for NC):

- :func:`decide_nc`: NC1 falls during the terminal phase (Section 3, after Papyan et al.);
- :func:`decide_thm41`: Theorem 4.1, gradient flow with CE → 0 drives p_min → ∞;
- :func:`decide_rem42`: Remark 4.2, the normalized solution approaches the multiclass SVM;
- :func:`decide_thm44`: Theorem 4.4, the multiclass margin bound is an upper bound on test error;
- :func:`decide_rem46`: Remark 4.6, the bound falls with the test error in the terminal phase;
- :func:`decide_margin_similarity`: Remark 4.9's premise (Appendix A.2), unequal margins that
  follow class similarity;
- :func:`decide_thm48`: Theorem 4.8, the covering-number lower bound on accuracy;
- :func:`decide_rem49`: Remark 4.9, permuting the ETF changes the bound and the accuracy;
- :func:`decide_thm410`: Theorem 4.10, the Hoeffding-type lower bound on accuracy;
- :func:`decide_rem411`: Remark 4.11, the magnitude ρ_y of the features affects generalization.

Statistics come from :mod:`nclib.stats`: Clopper–Pearson intervals for accuracies on a test set,
Student-t intervals for means over a handful of seeds, a simulated power analysis for nulls and
a Mantel permutation test for matrix correlations; the percentile bootstrap of NC1 over resampled
training samples is :func:`~nclib.evidence.nc1_drop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from nclib.evidence import LEVEL
from nclib._checks import check_int
from nclib.stats import (clopper_pearson, detectable_sd_ratio, detectable_shift, mantel_test, runs_for_power,
                         t_interval, t_interval_power)
from nclib.verdicts import Verdict, interval, span

__all__ = [
    "LEVEL",
    "decide_nc",
    "decide_thm41",
    "decide_rem42",
    "decide_thm44",
    "decide_rem46",
    "decide_margin_similarity",
    "AccuracyCase",
    "decide_thm48",
    "decide_rem49",
    "decide_thm410",
    "decide_rem411",
]



# --- NC1 in the terminal phase (chapter 2) ------------------------------------------------------


def decide_nc(drop: dict, control: dict, start_epoch, last_epoch) -> Verdict:
    """Neural collapse, NC1 (Gao et al. Section 3, after Papyan et al. 2020): NC1 keeps falling in
    the terminal phase. Rule: the factor NC1(first epoch at 100% training accuracy) / NC1(last
    epoch) with its 95% paired bootstrap interval over training samples; "holds" if the interval
    lies above 1, "violated" if below 1 (NC1 rose), "not distinguishable from seed noise" if it
    contains 1, "untestable at this size" without a terminal phase (never fitted, or fitted only
    at the last epoch). ``drop`` and ``control`` come from :func:`~nclib.evidence.nc1_drop`, the control
    on the features of :func:`~nclib.evidence.swap_epochs` (the two epochs exchanged at random per
    sample: no change by construction, so its interval must contain 1)."""
    rule = ("NC1 at the first epoch with 100% training accuracy over NC1 at the last epoch: holds "
            "if the 95% bootstrap interval of this factor lies above 1, violated if below 1")
    control_txt = (f"the two epochs' features exchanged at random per sample (no change by construction): "
                   f"factor {control['factor']:.2f} {interval(control['lo'], control['hi'], '.2f')}")
    if start_epoch is None or last_epoch is None or last_epoch <= start_epoch:
        return Verdict("untestable at this size", rule, control_txt, "no terminal phase to measure",
                       "training never reached 100% accuracy before its last epoch",
                       "the run has no terminal phase, so NC1 cannot be followed through it")
    sure = (f"95% paired bootstrap over training samples (within classes, {len(drop['boot'])} "
            f"resamples): {interval(drop['lo'], drop['hi'], '.2f')}")
    key = (f"NC1 {drop['nc1_start']:.3g} → {drop['nc1_end']:.3g} (epochs {start_epoch}→{last_epoch}), "
           f"factor {drop['factor']:.2f}")
    if drop["lo"] > 1.0:
        label = "holds"
        detail = "NC1 fell through the terminal phase by more than its sampling noise"
    elif drop["hi"] < 1.0:
        label = "violated"
        detail = "NC1 rose through the terminal phase"
    else:
        label = "not distinguishable from seed noise"
        detail = "the change in NC1 over the terminal phase is within its sampling noise"
    if control["lo"] > 1.0 or control["hi"] < 1.0:
        detail += ("; the epoch-swap control, unchanged by construction, moved too: the interval is narrower "
                   "than the noise and the label is not to be trusted")
    return Verdict(label, rule, control_txt, sure, key, detail)


# --- Theorem 4.1 and Remark 4.2 (chapter 3) -----------------------------------------------------


def _ce_to_zero(s: dict, fall: float = 1e-3, slope: float = -0.5) -> bool:
    """The premise of Theorem 4.1 at a finite horizon: CE never rose, fell by a factor ≥ 1/fall,
    and still falls at least like t^slope over the late part."""
    return s["monotone_ce"] and s["ce_end"] <= fall * s["ce_start"] and s["ce_slope"] <= slope


def decide_thm41(runs: list[dict], controls: list[dict]) -> Verdict:
    """Theorem 4.1 (Gao et al.): if gradient flow drives CE → 0 then p_min → ∞. Rule, on paths
    from several random initializations (each summarized by :func:`~nclib.evidence.flow_summary`): the premise
    holds at this horizon if CE never rose, fell by a factor ≥ 1000 and still falls at least like
    t^(−1/2) over the last decade of flow time; then p_min grows without bound if its slope
    against log t over that decade is positive, with a 95% t-interval over the initializations
    above 0, it rose at every late snapshot and kept at least half its slope from the decade before
    (growth like log t keeps all of it). "violated": premise met and either the slope interval ≤ 0,
    or every path lost more than half its slope in a decade (p_min approaching a finite limit, which
    contradicts p_min → ∞ however it rises); "untestable at this size": premise not met in some
    path; otherwise not distinguishable.
    ``controls``: the same flow with weight decay, where CE cannot reach 0 and p_min stays
    bounded."""
    rule = ("paths from several initializations: CE never rises and falls ≥1000× (still ∝ t^−½ or "
            "faster); p_min must then rise at every late snapshot with slope vs log t > 0 "
            "(95% interval over initializations), keeping ≥ ½ of its slope from the decade before "
            "(a bounded p_min loses it)")
    slopes = [r["pmin_slope"] for r in runs]
    m, lo, hi = t_interval(slopes)
    if controls:
        cm, clo, chi = t_interval([c["pmin_slope"] for c in controls])
        cpremise = all(_ce_to_zero(c) for c in controls)
        control_txt = (f"weight decay: the loss stops at {min(c['ce_end'] for c in controls):.2g} "
                       f"(premise {'met' if cpremise else 'not met'}), p_min slope {cm:.2g} "
                       f"{interval(clo, chi, '.2g')}")
    else:
        control_txt = "none run"
    sure = f"p_min slope {m:.3f} per unit log t, 95% t-interval over {len(runs)} initializations {interval(lo, hi)}"
    key = (f"CE {max(r['ce_end'] for r in runs):.1e} at the end; p_min {np.mean([r['pmin_end'] for r in runs]):.1f}"
           f" ≈ {m:.2f}·log t")
    if not all(_ce_to_zero(r) for r in runs):
        return Verdict("untestable at this size", rule, control_txt, sure, key,
                       "CE does not approach 0 within the flow in every path, so the theorem's "
                       "premise is not reached and it makes no prediction")
    persist = [r.get("pmin_persistence", math.nan) for r in runs]
    fading = [p < 0.5 for p in persist if np.isfinite(p)]
    if fading:
        sure += f"; slope kept from the decade before: {min(persist):.2f}–{max(persist):.2f}"
    if hi <= 0:
        return Verdict("violated", rule, control_txt, sure, key,
                       "CE approaches 0 while p_min does not grow")
    if fading and all(fading) and len(fading) == len(runs):
        return Verdict("violated", rule, control_txt, sure, key,
                       "CE approaches 0 while p_min's growth dies out decade by decade: it approaches a "
                       "finite limit instead of ∞")
    if lo > 0 and all(r["pmin_rising"] for r in runs) and not any(fading):
        return Verdict("holds", rule, control_txt, sure, key,
                       "CE → 0 and p_min grows like log t in every path")
    return Verdict("not distinguishable from seed noise", rule, control_txt, sure, key,
                   "p_min's growth is not separated from zero across initializations")


def decide_rem42(cos_final, cos_slope, control_cos, sf_ratio, ratio_threshold: float = 0.9) -> Verdict:
    """Remark 4.2 (Gao et al.): under CE the classifier acts as a multiclass max-margin SVM. Two
    parts, per random draw (seed): (a) features fixed, the cosine between M(t) and the hard-margin
    SVM solved as a quadratic program, ``cos_final`` at the end of the flow and ``cos_slope`` the
    slope of log(1 − cos) against log t over the last snapshots (:func:`~nclib.evidence.late_slope`); (b) features
    free, the ratio of the scale-free margin to the simplex ETF's (``sf_ratio``). ``control_cos``:
    the cosine with the SVM of the class-mean classifier (M = centred class means), a separating
    classifier that is not the max-margin one. The remark is asymptotic, so the rule reads the
    approach, not a cosine threshold (any threshold below 1 is arbitrary; one of 0.99 and one of
    0.995 gave different labels): "holds" if 1 − cos shrinks at the end (the 95% interval of
    ``cos_slope`` below 0), the final cosine's interval lies above every control cosine, and the
    lower end of the margin ratio's interval is ≥ ``ratio_threshold`` (a stated tolerance: within
    10% of the ETF's margin, which the UFM's CE minimizer attains in the limit); "violated" if M(t)
    moves away from the SVM at the end (slope interval above 0) or ends no closer to it than the
    control; else "untestable at this size" (no approach visible within the flow, or the margin
    not yet within the tolerance)."""
    cos_final, cos_slope = np.asarray(cos_final, float), np.asarray(cos_slope, float)
    control_cos, sf_ratio = np.asarray(control_cos, float), np.asarray(sf_ratio, float)
    rule = ("(a) fixed features: 1 − cos(M(t), SVM) shrinking at the end (slope against log t < 0) and the "
            "final cosine above the control's (95% intervals over draws); (b) free features: scale-free "
            f"margin ≥ {ratio_threshold:.0%} of the simplex ETF's")
    cm, clo, chi = t_interval(cos_final)
    sm, slo, shi = t_interval(cos_slope)
    rm, rlo, rhi = t_interval(sf_ratio)
    control_txt = (f"class-mean classifier (separates, not max-margin): cos with the SVM "
                   f"{control_cos.min():.4f}–{control_cos.max():.4f}")
    sure = (f"cos {cm:.4f} {interval(clo, min(chi, 1.0), '.4f')}, slope of log(1 − cos) {sm:.2f} "
            f"{interval(slo, shi, '.2f')}, margin ratio {rm:.3f} "
            f"{interval(rlo, rhi, '.3f')}: 95% t-intervals over {len(cos_final)} draws")
    key = f"cos(M, SVM) = {cm:.4f}; scale-free margin at {100 * rm:.1f}% of the ETF's"
    if slo > 0 or cm <= control_cos.max():
        return Verdict("violated", rule, control_txt, sure, key,
                       "the direction of M(t) is not approaching the SVM's")
    if shi < 0 and clo > control_cos.max() and rlo >= ratio_threshold:
        return Verdict("holds", rule, control_txt, sure, key,
                       "M(t) aligns with the SVM solution, closer than the control, and the "
                       "joint solution approaches the ETF's margin")
    return Verdict("untestable at this size", rule, control_txt, sure, key,
                   "no approach to the SVM's direction is visible within the flow, or the joint "
                   "solution's margin is not yet within the tolerance of the ETF's")


# --- Theorem 4.4 and Remark 4.6 (chapter 4) -----------------------------------------------------

def decide_thm44(bound, test_errors, n_test: int, control_bound=None, control_name: str = "") -> Verdict:
    """Theorem 4.4 (Gao et al.): (A) + (B) + L01 bounds the test error (up to the omitted
    constants). Rule: at every epoch where the bound applies (training set separated), compare it
    with the measured test error and its Clopper–Pearson interval on ``n_test`` points, at a level
    corrected for the number of epochs compared (Bonferroni, 95% overall). "violated" if at some
    epoch the interval lies entirely above the bound; "holds but vacuous" if not violated and the
    bound is ≥ 1 wherever it applies; "holds" if not violated and < 1 somewhere; "untestable at
    this size" if it never applies. ``control_bound``: the same comparison for a quantity that is
    not a bound (e.g. L01 alone, the training term without the capacity terms), which must come
    out violated if the rule has teeth."""
    bound = np.asarray(bound, dtype=float)
    err = np.asarray(test_errors, dtype=float)
    ok = np.isfinite(bound)
    rule = ("at every epoch where it applies, the bound against the measured test error: violated "
            "if the error's Clopper–Pearson interval (Bonferroni over epochs, 95% overall) lies "
            "above it; holds but vacuous if ≥ 1 wherever it applies")

    def violations(b):
        m = np.isfinite(b)
        if not m.any():
            return 0, None
        level = 1 - (1 - LEVEL) / m.sum()
        lows = np.array([clopper_pearson(round(e * n_test), n_test, level).low for e in err[m]])
        return int(np.sum(lows > b[m])), float(np.max(lows - b[m]))

    if control_bound is not None:
        cb = np.asarray(control_bound, dtype=float)
        cv, _ = violations(cb)
        control_txt = (f"{control_name or 'control'} in place of the bound: error above it at {cv} of "
                       f"{int(np.isfinite(cb).sum())} epochs ({'violated' if cv else 'not violated'})")
    else:
        control_txt = "none"
    if not ok.any():
        return Verdict("untestable at this size", rule, control_txt, "no epoch to compare",
                       "the training features are never separated", "the bound never applies")
    nv, worst = violations(bound)
    i = int(np.nanargmin(np.where(ok, bound, np.nan)))
    _, lo, hi = clopper_pearson(round(err[i] * n_test), n_test)
    sure = (f"test error {err[i]:.3f}, 95% interval {interval(lo, hi)} on {n_test} test points, at the "
            f"epoch of the smallest bound")
    key = f"bound {span(np.nanmin(bound), np.nanmax(bound), '.2f')} vs test error {span(err[ok].min(), err[ok].max(), '.3f')}"
    if nv:
        return Verdict("violated", rule, control_txt, sure, key,
                       f"the test error exceeds the bound at {nv} epochs")
    if np.nanmin(bound) >= 1.0:
        return Verdict("holds but vacuous", rule, control_txt, sure, key,
                       "the bound is never below 1, so it cannot be contradicted by any error rate")
    return Verdict("holds", rule, control_txt, sure, key, "the bound is informative and above the test error")


def decide_rem46(changes: list[dict | None], n_test: int, seed: int = 0) -> Verdict:
    """Remark 4.6 (Gao et al.): in the terminal phase L01 cannot fall further, the margins keep
    growing, so the bound falls "leading to a better generalization performance". Rule, over
    independent seeds (each summarized by :func:`~nclib.evidence.tpt_changes`): the bound's
    log-change and the test error's change between the first and the last epochs of the terminal
    phase, each with a 95% t-interval over seeds.

    First the design: its power against a mean change as large as the seed noise (one residual
    sd; chapter 8's standard) is :func:`~nclib.stats.t_interval_power` of the number of seeds alone,
    known before any number. Below 0.8 the verdict is "untestable at this size" whatever the
    intervals say: an interval that happens to clear 0 with so few seeds does not recur at other
    seeds or on another CPU. With power, "holds" if the bound's interval lies below 0 and the
    error's upper end lies below 0 by more than one test image (``100 / n_test`` points, the
    smallest change a test error can make, so that rounding cannot carry it across); "violated"
    if the bound falls and the error's lower end lies above 0 by that margin; otherwise "not
    distinguishable from seed noise", with the smallest mean change detectable with probability
    0.8. "untestable at this size" also if fewer than two runs have a terminal phase, or if the
    bound did not fall (the remark's mechanism is absent). Control: a clock, 1/epoch, which falls
    by construction in every run: the bound's fall alone is no evidence of anything; the verdict
    rests on the error."""
    n_test = check_int(n_test, "n_test", minimum=1, hint="the number of test points behind each test error")
    rule = ("over seeds, first vs last epochs of the terminal phase, with power ≥ 0.8 against a change "
            "of one seed sd: holds if the bound's 95% interval lies below 0 and the test error's lies "
            "below 0 by more than one test image; violated if the bound falls and the error rises")
    good = [c for c in changes if c is not None]
    if len(good) < 2:
        return Verdict("untestable at this size", rule, "clock 1/epoch (not run)",
                       "fewer than two runs with a terminal phase", "no terminal phase to compare",
                       "the runs do not have a terminal phase long enough to compare its start and end")
    n = len(good)
    db = [c["d_log_bound"] for c in good]
    de = [c["d_error"] for c in good]
    dc = [c["d_log_clock"] for c in good]
    bm, blo, bhi = t_interval(db)
    em, elo, ehi = t_interval(de)
    cm, clo, chi = t_interval(dc)
    control_txt = (f"clock 1/epoch (falls by construction): Δlog {cm:.2f} {interval(clo, chi, '.2f')}, "
                   "below 0 like the bound's")
    margin = 100.0 / n_test  # one test image, in points
    power = t_interval_power(1.0, n)
    needed = runs_for_power(1.0)
    sd = float(np.std(de, ddof=1))
    detect = detectable_shift(sd, n, seed=seed)
    distance = -ehi if em < 0 else elo  # how far the error's interval clears 0 (negative: it does not)
    sure = (f"95% t-intervals over {n} seeds: Δlog bound {bm:.3f} {interval(blo, bhi)}, Δ test error "
            f"{em:+.2f} {interval(elo, ehi, '+.2f')} points, its nearer end {distance:+.2f} points from 0 "
            f"(margin: one test image, {margin:.2f}); power against a change of one seed sd "
            f"{power:.2f} at {n} seeds (0.8 needs {needed})")
    key = f"bound ×{math.exp(bm):.2f}, test error {em:+.2f} points over the terminal phase ({n} seeds)"
    if bhi >= 0:
        return Verdict("untestable at this size", rule, control_txt, sure, key,
                       "the bound did not fall through the terminal phase, so the remark's mechanism is absent")
    if power < 0.8:
        seen = ("this build's interval clears 0, " if distance > margin else "")
        return Verdict("untestable at this size", rule, control_txt, sure, key,
                       f"{n} seeds detect a change as large as the seed noise with probability only "
                       f"{power:.2f}; {seen}but at this power the outcome turns with the seeds "
                       f"(0.8 needs {needed} seeds)")
    if ehi < -margin:
        return Verdict("holds", rule, control_txt, sure, key,
                       "the bound and the test error fell together (co-movement: a clock falls too)")
    if elo > margin:
        return Verdict("violated", rule, control_txt, sure, key,
                       "the bound fell through the terminal phase while the test error rose")
    return Verdict("not distinguishable from seed noise", rule, control_txt, sure, key,
                   f"the test error's change is within seed noise (a mean change of ±{detect:.2f} "
                   "points would have been detected with probability 0.8)")


def decide_margin_similarity(margins, distances, n_perm: int = 9999, seed: int = 0) -> Verdict:
    """Remark 4.9's premise (Gao et al. Appendix A.2, and their Section 4.3 on semantic
    similarity): margins of different class pairs differ, and similar classes get smaller margins.
    Rule: Spearman's ρ between the C(C−1)/2 normalized pairwise margins and the distances between
    the classes' mean inputs (:func:`~nclib.evidence.input_similarity`); Mantel permutation test (classes
    relabelled, :func:`~nclib.stats.mantel_test`). "holds" if ρ > 0 with one-sided p < 0.05, "violated" if ρ < 0
    with the mirrored p < 0.05, else "not distinguishable from seed noise". The control is the
    relabelling distribution itself: ρ under random class labels."""
    rho, p, null = mantel_test(margins, distances, n_perm=n_perm, seed=seed)
    p_neg = (1 + np.sum(null <= rho + 1e-12)) / (1 + len(null))
    q = np.quantile(null, [0.025, 0.975])
    rule = ("Spearman ρ between pairwise margins and distances of the classes' mean images: holds if "
            "ρ > 0 with Mantel p < 0.05 (classes relabelled at random)")
    control_txt = f"random relabelling of the classes: ρ in {interval(q[0], q[1], '.2f')} (95% of {len(null)})"
    sure = f"Mantel one-sided p = {p:.2g}"
    key = f"ρ = {rho:.2f} over {math.comb(np.asarray(margins).shape[0], 2)} pairs"
    if rho > 0 and p < 0.05:
        return Verdict("holds", rule, control_txt, sure, key,
                       "classes whose images are closer on average get smaller margins")
    if rho < 0 and p_neg < 0.05:
        return Verdict("violated", rule, control_txt, sure + f" (lower tail p = {p_neg:.2g})", key,
                       "closer classes get larger margins")
    return Verdict("not distinguishable from seed noise", rule, control_txt, sure, key,
                   "the margins are not associated with the input-space similarity of the classes "
                   "beyond what a random labelling gives")


# --- accuracy lower bounds: Theorems 4.8 and 4.10 (chapters 5, 6) ------------------------------

@dataclass(frozen=True)
class AccuracyCase:
    """One classifier's accuracy lower bound against its measured test accuracy: ``bound`` (None
    where the theorem does not apply), ``correct`` of ``n`` test points classified right."""

    name: str
    bound: float | None
    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


def _bound_check(cases: list[AccuracyCase]):
    """Applicable cases, and those whose accuracy's Clopper–Pearson upper end (Bonferroni over the
    applicable cases, 95% overall) is below the bound (a violation)."""
    app = [c for c in cases if c.bound is not None and np.isfinite(c.bound)]
    level = 1 - (1 - LEVEL) / max(1, len(app))
    bad = [c for c in app if clopper_pearson(c.correct, c.n, level).high < c.bound]
    return app, bad, level


def _accuracy_verdict(cases, controls, rule, what, control_name, detail_untestable):
    app, bad, level = _bound_check(cases)
    if controls:
        capp, cbad, _ = _bound_check(controls)
        control_txt = (f"{control_name}: accuracy below the bound in {len(cbad)} of {len(capp)} cases "
                       f"({'violated' if cbad else 'not violated'})")
    else:
        control_txt = "none"
    if not app:
        return Verdict("untestable at this size", rule, control_txt, "no case where it applies",
                       f"{what} applies in none of {len(cases)} runs", detail_untestable)
    worst = min(app, key=lambda c: c.accuracy - c.bound)
    _, lo, hi = clopper_pearson(worst.correct, worst.n, level)
    sure = (f"{worst.name}: accuracy {worst.accuracy:.4f}, interval {interval(lo, hi, '.4f')} "
            f"(Clopper–Pearson, {100 * level:.2f}% each, {worst.n} test points)")
    bounds = [c.bound for c in app]
    key = (f"bound {span(min(bounds), max(bounds), '.3g')} vs accuracy "
           f"{min(c.accuracy for c in app):.3f}–{max(c.accuracy for c in app):.3f} ({len(app)} of {len(cases)} apply)")
    if bad:
        return Verdict("violated", rule, control_txt, sure, key,
                       f"the measured accuracy is below the bound in {len(bad)} of {len(app)} cases")
    if all(c.bound <= 0 for c in app):
        return Verdict("holds but vacuous", rule, control_txt, sure, key,
                       "the bound is ≤ 0 wherever it applies: it cannot be contradicted")
    if all(c.correct == c.n for c in app if c.bound > 0):
        return Verdict("untestable at this size", rule, control_txt, sure, key,
                       "wherever the bound applies and is above 0 every test point is classified "
                       "correctly, so a bound below 1 could not have been contradicted")
    return Verdict("holds", rule, control_txt, sure, key,
                   "the bound is informative and below the measured accuracy wherever it applies")


def decide_thm48(cases: list[AccuracyCase], controls: list[AccuracyCase] | None = None) -> Verdict:
    """Theorem 4.8 (Gao et al.): where its size assumption holds, accuracy > 1 − (1/2N) Σ_y max_y'
    N(γ̂, M_y). Rule: over the runs where the assumption holds, "violated" if some run's accuracy
    interval (Clopper–Pearson, Bonferroni over runs) lies below the bound; "holds but vacuous" if
    the bound is ≤ 0 wherever it applies; "untestable at this size" if it applies nowhere, or if
    every run where it applies classifies every test point correctly (accuracy 1 cannot be below a
    bound that is < 1 by construction); "holds" otherwise. ``controls``: the same bounds against
    accuracies where the claim must fail (e.g. test labels shuffled)."""
    rule = ("where the size assumption holds: violated if the test accuracy's interval lies below "
            "the bound; untestable if those runs are all at accuracy 1 (a bound < 1 cannot fail there)")
    return _accuracy_verdict(cases, controls, rule, "the size assumption", "shuffled test labels",
                             "the size assumption N_y ≥ max N(γ̂, M_y) fails in every run")


def decide_thm410(cases: list[AccuracyCase], controls: list[AccuracyCase] | None = None,
                  control_name: str = "control") -> Verdict:
    """Theorem 4.10 (Gao et al.): for a balanced sample separated with margins, accuracy ≥
    1 − (2d/C) Σ_y [H(1, d, ρ_y, N/C) + H(γ̂_y − √(N/C), d, ρ_y, N/C)]. Rule: "violated" if some
    case's accuracy interval (Clopper–Pearson, Bonferroni over cases) lies below the bound;
    "holds but vacuous" if the bound is ≤ 0 in every case; "untestable at this size" if no case
    could contradict it (every informative case at accuracy 1); "holds" otherwise."""
    rule = ("each classifier's bound against its test accuracy: violated if the accuracy's "
            "Clopper–Pearson interval (Bonferroni over cases) lies below the bound")
    return _accuracy_verdict(cases, controls, rule, "Theorem 4.10", control_name,
                             "no classifier separates its training sample")


def decide_rem49(perm_acc, seed_acc, perm_rhs, n_test: int, seed: int = 0) -> Verdict:
    """Remark 4.9 (Gao et al.): permuting the ETF changes the margins each class is paired with,
    hence the covering numbers and the bound of Theorem 4.8, "and affects" generalization. Rule:
    (1) does test accuracy vary across permutations (seed fixed) more than across seeds (ETF
    fixed)? Brown–Forsythe test of equal spread, one-sided at 0.05, with the SD ratio and the
    smallest ratio detectable with probability 0.8 at these sample sizes; (2) does the bound's
    right-hand side order the permutations as their accuracy (Spearman ρ > 0, one-sided p < 0.05)?
    "holds" if (1) and (2); "violated" if (1) but ρ < 0 with p < 0.05 (the bound ranks them the
    wrong way); if (1) fails, "not distinguishable from seed noise" only when the test had power
    0.8 against an effect as large as the seed noise (chapter 8's standard: permutation effects of
    sd equal to the seed sd make the SD ratio √2, so the ratio detected with probability 0.8 must
    be at most √2), else "untestable at this size"; "untestable at this size" too if no run differs
    in accuracy."""
    pa, sa, pr = (np.asarray(v, dtype=float) for v in (perm_acc, seed_acc, perm_rhs))
    rule = ("accuracy spread across permutations (seed fixed) vs across seeds (ETF fixed), "
            "Brown–Forsythe at 0.05; and the bound's right-hand side must rank the permutations by "
            "accuracy (Spearman ρ > 0, p < 0.05)")
    sd_p, sd_s = float(pa.std(ddof=1)), float(sa.std(ddof=1))
    ratio = sd_p / sd_s if sd_s > 0 else math.inf
    control_txt = (f"seed-only spread ({len(sa)} seeds, ETF fixed): SD {100 * sd_s:.2f} points "
                   f"against {100 * sd_p:.2f} across {len(pa)} permutations")
    detect = detectable_sd_ratio(len(pa), len(sa), seed=seed)
    if np.ptp(np.concatenate([pa, sa])) == 0:
        return Verdict("untestable at this size", rule, control_txt, "no variation at all",
                       f"every run has test accuracy {pa[0]:.4f}",
                       "every run reaches the same test accuracy: there is nothing to rank")
    if np.ptp(pa) > 0 and np.ptp(sa) > 0:
        stat, p_two = _st.levene(pa, sa, center="median")
        p_spread = p_two / 2 if sd_p > sd_s else 1 - p_two / 2
    else:
        p_spread = 0.0 if np.ptp(pa) > 0 else 1.0
    ok = np.isfinite(pr)
    if ok.sum() >= 3 and np.ptp(pr[ok]) > 0 and np.ptp(pa[ok]) > 0:
        rho, p_rho2 = _st.spearmanr(pr[ok], pa[ok])
        p_pos = p_rho2 / 2 if rho > 0 else 1 - p_rho2 / 2
        p_neg = p_rho2 / 2 if rho < 0 else 1 - p_rho2 / 2
    else:
        rho, p_pos, p_neg = math.nan, 1.0, 1.0
    sure = (f"SD ratio {ratio:.2f} (one-sided p = {p_spread:.2g}); a ratio ≥ {detect:.1f} would be "
            f"detected with probability 0.8; Spearman ρ = {rho:.2f} (p = {p_pos:.2g})")
    key = (f"accuracy SD {100 * sd_p:.2f} points across permutations vs {100 * sd_s:.2f} across seeds; "
           f"ρ(bound, accuracy) = {rho:.2f}")
    if p_spread >= 0.05 and detect > math.sqrt(2):
        return Verdict("untestable at this size", rule, control_txt, sure,
                       f"{key}; only an SD ratio ≥ {detect:.1f} would have been detected with probability "
                       f"0.8 (an effect as large as the seed noise makes it √2 ≈ 1.41)",
                       "with these numbers of runs the spread test could not have detected permutation "
                       "effects as large as the seed noise, so a null says nothing")
    if p_spread >= 0.05:
        return Verdict("not distinguishable from seed noise", rule, control_txt, sure, key,
                       f"accuracy varies no more across permutations than across seeds (an SD ratio "
                       f"of {detect:.1f} would have been detected with probability 0.8)")
    if p_pos < 0.05:
        return Verdict("holds", rule, control_txt, sure, key,
                       "permutations change accuracy beyond seed noise and the bound ranks them")
    if p_neg < 0.05:
        return Verdict("violated", rule, control_txt, sure, key,
                       "permutations change accuracy, but the bound ranks them the wrong way")
    return Verdict("not distinguishable from seed noise", rule, control_txt, sure, key,
                   "permutations change accuracy beyond seed noise, but the bound's ordering of them "
                   "is not distinguishable from a random one")


def decide_rem411(bound_by_scale, correct: int, n: int, control_bound_by_scale=None) -> Verdict:
    """Remark 4.11 (Gao et al.): "an excessive magnitude [ρ_y] can impair the classifier's
    generalization capacity". Rule: one classifier, its features multiplied by a over a range
    (ρ_y × a; every prediction, hence the accuracy, unchanged); if the bound moves across a range
    wider than the accuracy's 95% Clopper–Pearson interval, its dependence on ρ_y is a property of
    the formula, not of generalization (violated); if it moves less, the remark's reading is not
    contradicted at this size (holds). ``control_bound_by_scale``: the same sweep where the effect
    should be absent (a sample so large that the bound stays near 1 at every a)."""
    b = np.asarray(bound_by_scale, dtype=float)
    _, lo, hi = clopper_pearson(correct, n)
    width = hi - lo
    moved = float(np.clip(b, 0, 1).max() - np.clip(b, 0, 1).min())
    rule = ("the same classifier with its features × a (predictions unchanged): violated if the bound "
            "(clipped to [0, 1]) moves more than the width of the accuracy's 95% interval")
    if control_bound_by_scale is not None:
        cb = np.asarray(control_bound_by_scale, dtype=float)
        cm = float(np.clip(cb, 0, 1).max() - np.clip(cb, 0, 1).min())
        control_txt = f"a much larger sample: the bound moves by {cm:.2g} over the same a ({'more' if cm > width else 'less'} than the interval)"
    else:
        control_txt = "none"
    sure = f"accuracy {correct / n:.4f}, 95% interval {interval(lo, hi, '.4f')} ({n} test points), width {width:.2g}"
    key = f"bound {b.min():.2g} … {b.max():.2f} over the feature scales, accuracy fixed at {correct / n:.3f}"
    if moved > width:
        return Verdict("violated", rule, control_txt, sure, key,
                       "the bound moves with the feature scale while the classifier, and so its "
                       "accuracy, is the same: the magnitude effect is an artifact of the formula")
    return Verdict("holds", rule, control_txt, sure, key,
                   "the bound barely moves with the feature scale at this size")
