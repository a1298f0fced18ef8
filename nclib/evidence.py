"""What the rules of chapters 2–6 read: statistics of a training run, a gradient-flow path or a
set of features, computed before any verdict is drawn (the rules are in :mod:`nclib.decisions`).

- :func:`nc1_drop`: the factor by which NC1 fell during the terminal phase, with a paired,
  class-stratified bootstrap (chapter 2, after Papyan et al. 2020), and :func:`swap_epochs`, its
  control (the two epochs' features exchanged at random per sample: no change by construction);
- :func:`flow_summary` and :func:`late_slope`: the late behaviour of CE, p_min and the direction of
  M(t) along a gradient-flow path (chapter 3: Theorem 4.1, Remark 4.2);
- :func:`tpt_changes`: how the margin bound and the test error moved over the terminal phase
  (chapter 4: Remark 4.6);
- :func:`input_similarity`: distances between the classes' mean inputs (chapter 4: the premise of
  Remark 4.9).
"""

from __future__ import annotations

import math

import numpy as np

from nclib.metrics import nc1

__all__ = ["LEVEL", "nc1_drop", "swap_epochs", "flow_summary", "late_slope", "tpt_changes", "input_similarity"]

LEVEL = 0.95  #: the level of every interval computed here


def nc1_drop(Z_start, Z_end, y, n_boot: int = 500, seed: int = 0) -> dict:
    """The factor NC1(start)/NC1(end) between two sets of features of the same training samples
    (NC1 of Papyan et al. 2020, :func:`nclib.metrics.nc1`), with a paired, class-stratified
    percentile bootstrap: the same resampled indices (with replacement, within each class) are
    used at both epochs. Returns ``{"factor", "boot", "lo", "hi", "nc1_start", "nc1_end"}``."""
    y = np.asarray(y)
    C = int(y.max()) + 1
    # the point estimates through nclib.metrics.nc1 (which checks the features), the resamples
    # through its unchecked NumPy twin below
    f0, f1 = nc1(Z_start, y, C), nc1(Z_end, y, C)
    rng = np.random.default_rng(seed)
    # samples sorted by class: a resample draws, for each position, a uniform member of its class
    order = np.argsort(y, kind="stable")
    labels = y[order]
    sizes = np.bincount(y, minlength=C)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])[labels]
    boot = np.empty(n_boot)
    Zs, Ze = np.asarray(Z_start, dtype=float), np.asarray(Z_end, dtype=float)
    for b in range(n_boot):
        idx = order[first + rng.integers(0, sizes[labels])]
        boot[b] = _nc1_unchecked(Zs[idx], labels, C) / _nc1_unchecked(Ze[idx], labels, C)
    lo, hi = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"factor": f0 / f1, "boot": boot, "lo": float(lo), "hi": float(hi), "nc1_start": f0, "nc1_end": f1}


def swap_epochs(Z_start, Z_end, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The negative control of :func:`nc1_drop`: two sets of features of the same samples in which
    each sample's features at the two epochs are exchanged with probability ½ (independently per
    sample). The two sets are then exchangeable, so the factor NC1(first)/NC1(second) is 1 in
    distribution (its logarithm is symmetric about 0) whatever the network did between the epochs,
    and a calibrated interval contains 1 in 95% of draws; the class structure is kept, so NC1
    stays as well-conditioned as in the real comparison (shuffling the labels instead leaves the
    class means at noise level, where NC1's bootstrap is biased)."""
    Zs, Ze = np.asarray(Z_start, dtype=float), np.asarray(Z_end, dtype=float)
    if Zs.shape != Ze.shape:
        raise ValueError(f"swap_epochs: Z_start and Z_end must hold the same samples, got shapes {Zs.shape} and {Ze.shape}")
    swap = np.random.default_rng(seed).random(len(Zs)) < 0.5
    return np.where(swap[:, None], Ze, Zs), np.where(swap[:, None], Zs, Ze)


def flow_summary(t, loss, p_min, late_from: float = 0.1) -> dict:
    """What Theorem 4.1 is decided on, for one gradient-flow path: whether CE never rose between
    snapshots (relative tolerance 1e-9), the factor by which it fell, the slope of log CE and of
    p_min against log t over the late part (t ≥ ``late_from``·t_end, the last decade), the ratio of
    that slope to the decade before's (``pmin_persistence``: 1 for growth like log t, about 0.1 for
    a p_min that approaches a finite limit like 1/t; NaN without three snapshots there), and
    whether p_min rose at every late snapshot."""
    t, loss, p_min = (np.asarray(v, dtype=float) for v in (t, loss, p_min))
    keep = t > 0
    t, loss, p_min = t[keep], loss[keep], p_min[keep]
    late = t >= late_from * t[-1]
    if late.sum() < 3:
        raise ValueError("need at least three snapshots in the late part of the path")
    lt = np.log(t[late])
    slope = float(np.polyfit(lt, p_min[late], 1)[0])
    # the decade before: growth like log t keeps its slope from decade to decade, a bounded
    # increase (p_min → a finite limit) loses it (for 2 − 1/t, by a factor 10 per decade)
    before = (t >= late_from**2 * t[-1]) & ~late
    persistence = math.nan
    if before.sum() >= 3:
        prev = float(np.polyfit(np.log(t[before]), p_min[before], 1)[0])
        persistence = slope / prev if prev > 0 else math.nan
    return {
        "monotone_ce": bool(np.all(np.diff(loss) <= 1e-9 * loss[:-1])),
        "ce_start": float(loss[0]), "ce_end": float(loss[-1]),
        "ce_slope": float(np.polyfit(lt, np.log(loss[late]), 1)[0]),
        "pmin_slope": slope,
        "pmin_persistence": persistence,
        "pmin_rising": bool(np.all(np.diff(p_min[late]) > 0)),
        "pmin_end": float(p_min[-1]),
    }


def late_slope(t, values, points: int = 10) -> float:
    """Slope of log(values) against log(t) over the last ``points`` snapshots of a path (for
    1 − cos(M(t), M_SVM) in Remark 4.2: negative while M(t) approaches the SVM's direction). On a
    clock-normalized path t grows exponentially, so a window in snapshots, not in decades of t."""
    t, v = np.asarray(t, dtype=float)[-points:], np.asarray(values, dtype=float)[-points:]
    if len(t) < 3 or np.any(t <= 0) or np.any(v <= 0):
        raise ValueError("need at least three late snapshots with t > 0 and values > 0")
    return float(np.polyfit(np.log(t), np.log(v), 1)[0])


def tpt_changes(epochs, bound, test_errors, terminal_epoch, window: int = 5) -> dict | None:
    """Changes over the terminal phase of one run, for Remark 4.6: the mean of the first
    ``window`` measured epochs of the terminal phase (where the bound applies) against the mean of
    the last ``window``: Δlog bound, Δ test error (points of error rate, ×100) and the change of
    a clock that falls by construction, Δlog(1/epoch). None when the terminal phase holds fewer
    than 2·window measured epochs."""
    ep, b, e = (np.asarray(v, dtype=float) for v in (epochs, bound, test_errors))
    if terminal_epoch is None:
        return None
    idx = np.flatnonzero((ep >= terminal_epoch) & np.isfinite(b))
    if idx.size < 2 * window:
        return None
    early, late = idx[:window], idx[-window:]
    return {
        "d_log_bound": float(np.log(b[late].mean()) - np.log(b[early].mean())),
        "d_error": float(100 * (e[late].mean() - e[early].mean())),
        "d_log_clock": float(np.log(ep[early].mean()) - np.log(ep[late].mean())),
        "tpt_epochs": int(idx.size),
    }


def input_similarity(x, y, C: int | None = None) -> np.ndarray:
    """C×C distances between the class means of the *inputs* (flattened), a similarity of the
    classes that owes nothing to the trained network."""
    X = np.asarray(x, dtype=float).reshape(len(y), -1)
    y = np.asarray(y)
    C = int(y.max()) + 1 if C is None else C
    means = np.stack([X[y == c].mean(0) for c in range(C)])
    return np.linalg.norm(means[:, None, :] - means[None, :, :], axis=2)


def _nc1_unchecked(Z: np.ndarray, y: np.ndarray, C: int) -> float:
    """NC1 = tr(Σ_W Σ_B⁺)/C as :func:`nclib.metrics.nc1` computes it (equal to 1e-8 relative,
    tests/test_decisions.py), without its input checks and power-of-two scaling: the bootstrap
    calls it a thousand times on features already checked. Computed in the classes' span: with
    M the C×d centred class means, Σ_B = MᵀM/C, so Σ_B⁺ = C·M⁺M⁺ᵀ and NC1 = ‖(Z − μ_y)M⁺‖²_F/N,
    an N×d×C product instead of a d×d pseudo-inverse and a d×N×d product."""
    counts = np.bincount(y, minlength=C)
    # class sums as one product with the one-hot labels (np.add.at is unbuffered: 20× slower here)
    means = (np.eye(C)[y].T @ Z) / counts[:, None]
    Mc = means - means.mean(0)
    # the cut-off of pinv(Σ_B, rcond=1e-10) on the eigenvalues σ² is 1e-5 on the singular values σ
    proj = np.linalg.pinv(Mc, rcond=1e-5)  # d × C
    W = Z @ proj - (means @ proj)[y]
    return float(np.einsum("ij,ij->", W, W) / len(y))
