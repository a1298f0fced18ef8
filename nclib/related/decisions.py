"""The decision functions of chapter 9: one :class:`nclib.verdicts.Verdict` per claim, from the
numbers its rule names.

One function per claim (:func:`decide_ufm_landscape`, :func:`decide_origin_saddle`,
:func:`decide_fixed_etf` and their combination :func:`decide_zhu` for Zhu et al. 2021;
:func:`decide_jacot` for Jacot et al. 2024; :func:`decide_wu` for Wu & Mondelli 2025), each
returning a verdict from a rule that could come out either way, beside its control. The intervals
come from :mod:`nclib.stats`, the share of random starts a basin must draw from
:func:`nclib.related.zhu.basin_share`.
"""

from __future__ import annotations

import math

import numpy as np

from nclib.related.zhu import basin_share
from nclib.stats import clopper_pearson, detectable_shift, log_t_interval, t_interval
from nclib.verdicts import Verdict

__all__ = [
    "PRECEDENCE",
    "decide_ufm_landscape",
    "decide_origin_saddle",
    "decide_fixed_etf",
    "decide_zhu",
    "decide_jacot",
    "decide_wu",
]


#: Which part decides a combined verdict: the first label of this list that any part has.
PRECEDENCE = ("violated", "untestable at this size", "not distinguishable from seed noise",
              "holds but vacuous", "holds")


def decide_ufm_landscape(gaps, grad_norms, etf_errors, nc1s, control_gaps, control_grad_norms,
                         control_etf_errors, control_final, *, control_dim: int, tol: float = 1e-9,
                         rest_tol: float = 1e-3, etf_tol: float = 1e-6, nc1_tol: float = 1e-8):
    """Zhu et al. (2021), Theorems 3.1–3.2 on the UFM with weight decay, from gradient-descent runs.

    Each run (f − f* ``gaps``, final gradient norms, ETF errors of M and of the class means, NC1)
    is *global* if abs(f − f*) ≤ ``tol`` with ETF error ≤ ``etf_tol`` and NC1 ≤ ``nc1_tol``; *at rest
    elsewhere* if its gradient norm is ≤ ``rest_tol`` but it is not global; *moving* otherwise.
    Violated if any run rests elsewhere or reaches f* without an ETF; untestable if any run is
    still moving, or if the control (the same descent with d = ``control_dim`` < C − 1, where no
    simplex ETF fits and f* cannot be reached) comes within ``tol`` of f* (then the test could not
    tell the cases apart); holds otherwise. Sureness: the smallest share of starts a spurious basin
    must draw to be met with probability 0.8, and the 95% upper bound on the share of any basin
    that no start met (:func:`nclib.related.zhu.basin_share`)."""
    gaps, grads = np.abs(np.asarray(gaps, float)), np.asarray(grad_norms, float)
    etf, ncs = np.asarray(etf_errors, float), np.asarray(nc1s, float)
    if not (gaps.shape == grads.shape == etf.shape == ncs.shape) or gaps.size == 0:
        raise ValueError("gaps, grad_norms, etf_errors and nc1s must be non-empty and of one length")
    cg, cgr = np.abs(np.asarray(control_gaps, float)), np.asarray(control_grad_norms, float)
    cetf = np.asarray(control_etf_errors, float)
    at_f = gaps <= tol
    is_etf = (etf <= etf_tol) & (ncs <= nc1_tol)
    glob = at_f & is_etf
    resting = ~glob & (grads <= rest_tol)
    moving = ~glob & ~resting
    R = gaps.size
    c_rest = int(((cg > tol) & (cgr <= rest_tol)).sum())
    c_values = len(np.unique(np.round(np.asarray(control_final, float), 5)))
    rule = (f"every start ends within {tol:.0e} of the closed-form f* at a simplex ETF "
            f"(ETF error ≤ {etf_tol:.0e}, NC1 ≤ {nc1_tol:.0e}); a start resting elsewhere "
            f"(‖∇f‖ ≤ {rest_tol:.0e}) violates it, a start still moving leaves it untestable")
    control = (f"d = {control_dim} < C − 1 (no ETF fits): {c_rest}/{cg.size} starts rest ≥ {cg.min():.2f} "
               f"above f*, ETF error ≥ {cetf.min():.2f}, at {c_values} different values")
    p80, p95 = basin_share(R, 0.8), basin_share(R, 0.95)
    sureness = (f"{R} random starts: a spurious basin drawing ≥ {100 * p80:.1f}% of starts would have "
                f"been met with probability 0.8; 95% upper bound on the share of an unmet one "
                f"{100 * p95:.1f}%")
    key = f"{int(glob.sum())}/{R} starts reach the ETF minimum"
    if resting.any() or (at_f & ~is_etf).any():
        label = "violated"
        detail = (f"{int(resting.sum())} start(s) rest at a critical point other than the global "
                  f"minimum; {int((at_f & ~is_etf).sum())} reach f* without an ETF")
    elif moving.any():
        label = "untestable at this size"
        detail = f"{int(moving.sum())} start(s) still moving: run more steps"
    elif (cg <= tol).any():
        label = "untestable at this size"
        detail = "the control reached f* too: the tolerance cannot separate the cases"
    else:
        label = "holds"
        detail = f"no spurious minimum met in {R} starts (max |f − f*| = {gaps.max():.0e}); evidence, not proof"
    return Verdict(label, rule, control, sureness, key, detail)


def decide_origin_saddle(hessian_min: float, closed_min: float, spectrum_err: float,
                         escape_gap: float, minimizer_min: float, *, curvature_tol: float = 1e-6,
                         tol: float = 1e-9):
    """Zhu et al. (2021), Theorem 3.2 at the critical point M = Z = 0, b = 0 of a small instance
    with C σ < 1 (where the origin is not the minimum): a strict saddle if the smallest Hessian
    eigenvalue is below −``curvature_tol``, and gradient descent started a small step along its
    eigenvector then reaches f* within ``tol``. Violated if the curvature is not negative or the
    escape run stops above f*. Control: the Hessian at the global minimizer that run found, where
    no negative curvature may appear (smallest eigenvalue ≥ −``curvature_tol``); if it does, the
    computation cannot tell minima from saddles: untestable. The closed-form spectrum
    (:func:`nclib.related.zhu.ufm_wd_origin_spectrum`) is the check on the arithmetic, reported in
    the sureness."""
    rule = (f"smallest Hessian eigenvalue at the origin < −{curvature_tol:.0e}, and descent from a "
            f"step along its eigenvector reaches f* within {tol:.0e}")
    control = f"at the minimum found: λ_min = {minimizer_min:.1e} (must be ≥ −{curvature_tol:.0e})"
    sureness = (f"exact computation: the autograd spectrum agrees with the closed form "
                f"({closed_min:.4f}) to {spectrum_err:.0e}; |λ_min| exceeds the tolerance "
                f"{abs(hessian_min) / curvature_tol:.0e}-fold")
    key = f"λ_min = {hessian_min:.3f} at the origin"
    if minimizer_min < -curvature_tol:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "negative curvature at the minimizer too: the run did not converge")
    if hessian_min >= -curvature_tol or not abs(escape_gap) <= tol:
        return Verdict("violated", rule, control, sureness, key,
                       "no negative curvature at the origin" if hessian_min >= -curvature_tol
                       else f"the escape run stopped {escape_gap:.1e} above f*")
    return Verdict("holds", rule, control, sureness, key, "the origin is a strict saddle, and descent leaves it")


def _points(fraction: float) -> str:
    pts = 100 * fraction
    return f"{pts:g} point" + ("" if pts == 1 else "s")


def decide_fixed_etf(acc_fixed, acc_learnable, acc_fixed_control, memory_fixed: int,
                     memory_learnable: int, *, margin: float = 0.01, level: float = 0.95,
                     power: float = 0.8, n_test: int | None = None):
    """Zhu et al. (2021), the practical claim: a fixed simplex-ETF classifier with d = C saves
    memory "without sacrificing the generalization performance".

    Accuracies are per seed (the same seeds, in the same order, for both arms: paired).
    Violated if the fixed-ETF network's training state is not smaller, or if the t interval of the
    paired accuracy difference (fixed − learnable) lies entirely below −``margin``; holds if it lies
    entirely above −``margin`` (no loss larger than the margin, the interval supports it);
    otherwise not distinguishable from seed noise. Control: the same difference between the fixed
    ETF and itself under other seeds (``acc_fixed_control``), zero by construction; if its interval
    does not fit inside ±``margin`` the runs are too noisy to certify the margin at all, and the
    verdict is "not distinguishable from seed noise". Fewer than 2 seeds: untestable.
    The sureness states the distance to the threshold: the largest loss the interval excludes
    (its lower end) against ``margin``; with ``n_test`` (test images per accuracy), also the
    margin in units of the binomial standard error of one accuracy on that test set, the
    resolution below which one network's two accuracies cannot be told apart."""
    a, b, c = (np.asarray(v, float).reshape(-1) for v in (acc_fixed, acc_learnable, acc_fixed_control))
    if not (a.size == b.size == c.size):
        raise ValueError("need one accuracy per seed in every arm")
    saving = 1 - memory_fixed / memory_learnable
    rule = (f"t interval ({100 * level:.0f}%) of the paired test-accuracy difference fixed − learnable "
            f"above −{_points(margin)}: holds; below: violated; across: undecided; and "
            f"the fixed-ETF training state must be smaller")
    if a.size < 2:
        return Verdict("untestable at this size", rule, "needs ≥ 2 seeds", "needs ≥ 2 seeds",
                       f"{100 * saving:.0f}% less memory, one seed", "one seed gives no interval")
    diff, ctrl = t_interval(a - b, level), t_interval(a - c, level)
    control = f"fixed ETF against itself (other seeds): {ctrl.text('+.2f', 100)} points"
    shift = detectable_shift(float(np.std(a - b, ddof=1)), a.size, level, power)
    sureness = (f"{diff.n} seeds: difference {diff.text('+.2f', 100)} points, so no loss beyond "
                f"{max(0.0, -100 * diff.low):.2f} points (the margin: {_points(margin)}); a true loss of "
                f"{100 * shift:.2f} points would be caught with probability {power:g}")
    if n_test:
        p = float(np.mean(np.concatenate([a, b])))
        se = math.sqrt(p * (1 - p) / n_test)
        sureness += (f"; the margin is {margin / se:.1f} standard errors of one accuracy on "
                     f"{n_test:,} test images ({100 * se:.2f} points)")
    key = f"−{100 * saving:.0f}% memory, accuracy {diff.text('+.1f', 100)} pts"
    if saving <= 0:
        return Verdict("violated", rule, control, sureness, key, "the fixed ETF saved no memory")
    if not (-margin < ctrl.low and ctrl.high < margin):
        return Verdict("not distinguishable from seed noise", rule, control, sureness, key,
                       f"even identical models differ by up to ±{_points(margin)} at this size")
    if diff.low > -margin:
        return Verdict("holds", rule, control, sureness, key, f"no loss beyond {_points(margin)}")
    if diff.high < -margin:
        return Verdict("violated", rule, control, sureness, key, f"the fixed ETF loses more than {_points(margin)}")
    return Verdict("not distinguishable from seed noise", rule, control, sureness, key,
                   f"the interval crosses −{_points(margin)}")


def decide_zhu(landscape, saddle, fixed):
    """The row of Zhu et al. (2021): the worst of its three parts (:data:`PRECEDENCE`)."""
    parts = {"landscape": landscape, "saddle": saddle, "fixed ETF": fixed}
    label = next(lab for lab in PRECEDENCE if any(v.label == lab for v in parts.values()))
    return Verdict(
        label,
        "the worst of three parts decides: every random start reaches the closed-form ETF minimum; "
        "the origin has negative curvature; a fixed ETF with d = C saves memory and loses "
        "no accuracy beyond the margin",
        "; ".join(f"{name}: {v.control}" for name, v in parts.items()),
        "; ".join(f"{name}: {v.sureness}" for name, v in parts.items()),
        f"{landscape.key}; {saddle.key}; fixed ETF: {fixed.key}",
        "; ".join(f"{name} {v.label} ({v.detail})" for name, v in parts.items()),
    )


def decide_jacot(train_accuracy, unbalancedness, nc1_values, rate_ratio, control_unbalancedness,
                 control_retained, control_nc1, *, weight_decay: float, bal_tol: float = 0.05,
                 nc1_tol: float = 0.05, rate_tol: float = 0.25, level: float = 0.95):
    """Jacot et al. (2024), claims (i) and (iii) for one wide network trained with weight decay λ,
    over seeds: the training accuracies, the final relative unbalancedness of the worse linear
    pair, the penultimate NC1, and the measured decay rate of ‖W_{l+1}ᵀW_{l+1} − W_lW_lᵀ‖ divided
    by the gradient-flow rate 2λ·η/(1 − β) (:func:`nclib.related.jacot.decay_rate_ratio`).

    Untestable if some seed does not fit its training set (the premise of (i) is not produced).
    Violated if the rate interval lies outside 1 ± ``rate_tol`` (the imbalance does not decay as
    predicted), or if the network is balanced (unbalancedness interval below ``bal_tol``) yet not
    collapsed (NC1 interval above ``nc1_tol``); holds if all three lie inside. A network still
    unbalanced (interval above ``bal_tol``) whose imbalance decays at the predicted rate is
    *untestable at this size*: the budget was too short to reach the balance the theorem speaks of,
    which is no evidence against it. Otherwise not distinguishable from seed noise. Control: the same network without weight decay,
    where the imbalance is conserved by construction; it must stay unbalanced (interval above
    ``bal_tol``), else balance is not attributable to weight decay and the verdict is untestable.
    Its NC1 is reported: where it is small too, the run shows (i)'s conclusion but cannot show that
    balancedness is needed for it."""
    acc = np.asarray(train_accuracy, float).reshape(-1)
    bal, ncs = log_t_interval(unbalancedness, level), log_t_interval(nc1_values, level)
    rate = t_interval(rate_ratio, level)
    cbal, cnc1 = log_t_interval(control_unbalancedness, level), log_t_interval(control_nc1, level)
    cret = float(np.min(control_retained))
    rule = (f"with λ = {weight_decay:g} and every training label fitted: unbalancedness < {bal_tol:g}, "
            f"decay rate of the imbalance within {100 * rate_tol:.0f}% of 2λη/(1−β), NC1 < {nc1_tol:g} "
            f"({100 * level:.0f}% intervals over seeds decide; still unbalanced at the predicted rate: "
            "too short a run)")
    control = (f"λ = 0: unbalancedness {cbal.text('.2f')} (imbalance kept ≥ {100 * cret:.0f}%), "
               f"NC1 {cnc1.text('.1e')}")
    sureness = (f"{bal.n} seeds: unbalancedness {bal.text('.3f')}, rate/prediction {rate.text('.3f')}, "
                f"NC1 {ncs.text('.1e')}")
    key = f"unbalancedness {bal.estimate:.3f} (λ = 0: {cbal.estimate:.2f}), NC1 {ncs.estimate:.0e}"
    nc1_note = (f"without weight decay NC1 is {cnc1.estimate:.0e} too: at this size the run shows "
                f"(i)'s conclusion, not that balancedness is needed for it"
                if cnc1.estimate < nc1_tol else f"without weight decay NC1 stays at {cnc1.estimate:.0e}")
    if (acc < 1.0).any() or acc.size == 0:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "some seed does not fit its training set: the premise of (i) is not produced")
    if not cbal.low > bal_tol:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "the control is balanced without weight decay: balance cannot be attributed to it")
    if rate.high < 1 - rate_tol or rate.low > 1 + rate_tol:
        return Verdict("violated", rule, control, sureness, key,
                       "the imbalance does not decay at the rate weight decay predicts; " + nc1_note)
    rate_ok = 1 - rate_tol < rate.low and rate.high < 1 + rate_tol
    if bal.low > bal_tol and rate_ok:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "the imbalance decays at the predicted rate but has not reached the tolerance within "
                       "this budget: too short a run to test balance, not a violation")
    if bal.high < bal_tol and ncs.low > nc1_tol:
        return Verdict("violated", rule, control, sureness, key, "balanced but not collapsed; " + nc1_note)
    if bal.high < bal_tol and rate_ok and ncs.high < nc1_tol:
        return Verdict("holds", rule, control, sureness, key, nc1_note)
    return Verdict("not distinguishable from seed noise", rule, control, sureness, key, nc1_note)


def decide_wu(mse, grad_norm, nc1_values, nc1_initial, test_error_rates, n_test_per_seed: int, *,
              loss_tol: float = 1e-2, grad_tol: float = 1e-2, nc1_tol: float = 1e-2,
              error_tol: float = 0.01, level: float = 0.95, overlap_nc1=None, overlap_error=None):
    """Wu & Mondelli (2025) on well-separated data, over seeds: final training MSE and gradient
    norm, final NC1 of the features h, NC1 at initialization (the control: the same network where
    loss and gradient are not small), and the test error rates, each on ``n_test_per_seed`` test
    points, pooled over seeds for an exact binomial interval.

    Untestable if training did not reach MSE ≤ ``loss_tol`` and gradient norm ≤ ``grad_tol`` (the
    premise). Violated if the NC1 interval lies above ``nc1_tol`` or the Clopper–Pearson interval of
    the test error above ``error_tol``; holds if both lie below, but holds only vacuously if NC1
    was already below ``nc1_tol`` at initialization; otherwise not distinguishable from seed
    noise. ``overlap_nc1`` / ``overlap_error``: the same network on overlapping data (where (iii)
    promises nothing), reported with the control."""
    mse, grad = np.asarray(mse, float), np.asarray(grad_norm, float)
    ncs, init = log_t_interval(nc1_values, level), log_t_interval(nc1_initial, level)
    rates = np.asarray(test_error_rates, float).reshape(-1)
    test_errors = int(np.round(rates * n_test_per_seed).sum())
    n_test = int(n_test_per_seed) * rates.size
    err = clopper_pearson(test_errors, n_test, level)
    rule = (f"where training MSE ≤ {loss_tol:g} and gradient norm ≤ {grad_tol:g}: NC1 < {nc1_tol:g} and "
            f"test error < {100 * error_tol:g}% on separated data ({100 * level:.0f}% intervals decide)")
    control = f"before training (loss and gradient not small): NC1 {init.text('.2f')}"
    if overlap_nc1 is not None and overlap_error is not None:
        control += (f"; overlapping data: NC1 {np.exp(np.mean(np.log(overlap_nc1))):.0e} with test error "
                    f"{100 * float(np.mean(overlap_error)):.0f}%")
    sureness = (f"{ncs.n} seeds: NC1 {ncs.text('.1e')}; test error {err.text('.2f', 100)}% "
                f"({test_errors} of {n_test})")
    key = f"NC1 {ncs.estimate:.0e} (before training {init.estimate:.2f}), test error {100 * err.estimate:.1f}%"
    if mse.max() > loss_tol or grad.max() > grad_tol:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       f"training ended at MSE {mse.max():.1e}, gradient {grad.max():.1e}: the premise is not reached")
    if ncs.low > nc1_tol or err.low > error_tol:
        return Verdict("violated", rule, control, sureness, key,
                       "small loss and gradient without NC1" if ncs.low > nc1_tol else "NC1 without small test error")
    if ncs.high < nc1_tol and err.high < error_tol:
        if init.high < nc1_tol:
            return Verdict("holds but vacuous", rule, control, sureness, key,
                           "NC1 was below the threshold before training")
        return Verdict("holds", rule, control, sureness, key, "small loss and gradient came with NC1 and a small test error")
    return Verdict("not distinguishable from seed noise", rule, control, sureness, key,
                   "an interval crosses its threshold")
