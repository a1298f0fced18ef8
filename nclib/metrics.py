"""Neural-collapse metrics (NC1–NC4) and margins, in float64.

NC1–NC4 follow Papyan, Han & Donoho (2020), the source of Section 3 of Gao et al.; the margins are
p_min of Theorem 4.1 and the pairwise margins γ_{y,y'} of Definition 4.3 of Gao et al. (arXiv
2310.08358). Conventions: ``Z`` is N×d, ``y`` int64 in [0, C), ``M`` is d×C, logits = Z @ M.

Numbering: nclib uses Papyan et al.'s, NC2 = the ETF structure of the class means and NC3 =
self-duality of classifier and means. Gao et al. swap the two (their NC2 is self-duality, their
NC3 the ETF), so "NC2" in the paper is ``nc3_self_duality`` here.

Scaling (tested in tests/test_metrics.py): with Z → bZ and M → aM (a, b > 0)

  - NC1, every NC2 quantity, NC3 and NC4 are unchanged;
  - p_min and γ_{y,y'} scale by a·b;
  - γ_{y,y'}/‖M_y − M_{y'}‖ scales by b only;
  - the scale-free margin is unchanged.

All of them are unchanged when Z and M rotate together (z → Q z, M → Q M).

How it is computed (one path for the in-memory functions and the streaming accumulator):
features are validated once and never copied whole; row blocks are cast to float64, divided by a
power of two when the values are extreme (exact, so nothing overflows and scale-invariant metrics
are unchanged), and visited twice: once for the class means, once for the centred block
D = Z − μ_y, which meets every metric in one product D·[V | Āᵀ]. NC1 never forms the d×d Σ_W:
with Ā = U S Vᵀ the centred class means, Σ_B⁺ = C·V S⁻² Vᵀ, so
tr(Σ_W Σ_B⁺)/C = Σ_k ‖D v_k‖²/(N s_k²), which costs N·d·C instead of N·d². Centring each block
before any product is also what keeps the metrics exact when the class means sit far from the
origin relative to the within-class spread. Undefined metrics raise
:class:`~nclib._checks.UndefinedMetricError` (the threshold is explained in nclib._checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclib._checks import (
    DEGENERATE_RTOL,
    UndefinedMetricError,
    as_float64,
    check_bias,
    check_classifier,
    check_features,
    check_int,
    check_labels,
    check_matrix,
    check_real,
    pow2_scale,
)

__all__ = [
    "class_means",
    "nc1",
    "ClassStatistics",
    "class_statistics",
    "nc_from_statistics",
    "ncc_mismatch",
    "nc_metrics",
    "Margins",
    "margins_from_min_gaps",
    "margins",
    "classifier_of",
    "scale_free_margin_of_etf",
    "UndefinedMetricError",
    # building blocks of the streaming accumulator (nclib.accumulate) and the bounds (nclib.bounds)
    "float64_inputs",
    "scaled_classifier",
    "metrics_over_parts",
    "nc_from_scaled_moments",
    "margins_from_scaled_gaps",
]

_F64 = torch.float64
_EPS = torch.finfo(_F64).eps


# --- validation and row blocks ------------------------------------------------------------------

def _inputs(Z, y, M, require_all: bool = True, bias=None):
    """Validate (Z, y, M) together: shapes first (M fixes C), then values. Returns
    ``(Z as given, max|Z|, y int64, M float64, C)``; Z is not cast (see :func:`_blocks`). ``bias``
    is checked against C too (a C-vector or None)."""
    Z, amax = check_features(Z)
    M = as_float64(M, "classifier M")
    if M.ndim != 2 or M.shape[0] != Z.shape[1] or M.shape[1] < 2:
        raise ValueError(
            f"classifier M must be d×C with d = the feature dimension of Z and C ≥ 2 classes (Z is "
            f"{tuple(Z.shape)}, M is {tuple(M.shape)}); if you hold the nn.Linear weight (C×d), "
            "pass weight.T")
    y, C = check_labels(y, Z.shape[0], M.shape[1], require_all=require_all)
    M = check_classifier(M, Z.shape[1], C).to(Z.device)
    check_bias(bias, C)
    return Z, amax, y.to(Z.device), M, C


def _scaled_bias(bias, C: int, s: float, sm: float, device):
    """The bias in the units of the scaled logits (Z/s)·(M/sm), or None."""
    b = check_bias(bias, C)
    return None if b is None else b.to(device) / (s * sm)


def float64_inputs(Z, y, M):
    """``(Z, y, M, C)`` validated together as :func:`nc_metrics` validates them, with Z and M as
    float64 copies: the entry of the bounds (:mod:`nclib.bounds`), which work on the whole matrix."""
    Z, _, y, M, C = _inputs(Z, y, M)
    return Z.to(_F64), y, M, C


def _rows(d: int, device: torch.device) -> int:
    """Rows per block: about 2 MB of float64 on a CPU, so a block stays in cache between the cast,
    the centring and the products; the whole matrix on an accelerator (no cache to fit)."""
    return max(1, (1 << 18) // d) if device.type == "cpu" else 1 << 62


def _blocks(parts, inv_s: float):
    """Yield ``(float64 block scaled by inv_s, labels)`` over a list of (Z, y) parts."""
    for Z, y in parts:
        step = _rows(Z.shape[1], Z.device)
        for i in range(0, Z.shape[0], step):
            c = Z[i : i + step].to(_F64)
            yield (c * inv_s if inv_s != 1.0 else c), y[i : i + step]


def _class_sums(parts, C: int, d: int, inv_s: float, device):
    """Per-class counts and sums and the total Σ‖z‖² of the scaled features (first pass)."""
    sums = torch.zeros(C, d, dtype=_F64, device=device)
    counts = torch.zeros(C, dtype=_F64, device=device)
    sumsq = torch.zeros((), dtype=_F64, device=device)
    for c, yc in _blocks(parts, inv_s):
        sums.index_add_(0, yc, c)
        counts += torch.bincount(yc, minlength=C)
        flat = c.reshape(-1)
        sumsq += torch.dot(flat, flat)
    return counts, sums, sumsq


def _scan(parts, inv_s, *, Ms=None, bs=None, means=None, V=None, centred=None, gaps=False, sumsq=False):
    """Second pass. With ``Ms`` (and a scaled bias ``bs``): logits, decisions (``correct``) and,
    with ``gaps``, the C×C min logit gaps per class. With ``means``: the centred block D = z − μ_y meets [V | Āᵀ] in one
    product, giving ``proj`` = Σ_i (D_i·v_k)² for NC1 and, with ``centred`` (Ā), the NC4 mismatch:
    ‖z − μ_c‖² − ‖D‖² = ‖μ_y − μ_c‖² + 2⟨D, μ_y − μ_c⟩, a form without the ‖z‖² − 2⟨z, μ⟩ + ‖μ‖²
    cancellation that loses every digit when the means are far from the origin."""
    device = (Ms if Ms is not None else means).device
    C = Ms.shape[1] if Ms is not None else means.shape[0]
    f64 = dict(dtype=_F64, device=device)
    out = {"correct": torch.zeros((), **f64), "mismatch": torch.zeros((), **f64),
           "sumsq": torch.zeros((), **f64)}
    if gaps:
        out["min_gaps"] = torch.full((C, C), float("inf"), **f64)
    W = None
    if means is not None:
        W = torch.cat([m for m in (V, None if centred is None else centred.T) if m is not None], 1)
        r = 0 if V is None else V.shape[1]
        out["proj"] = torch.zeros(r, **f64)
        if centred is not None:
            sq_dist = (centred[:, None, :] - centred[None, :, :]).pow(2).sum(-1)
    for c, yc in _blocks(parts, inv_s):
        if sumsq:
            flat = c.reshape(-1)
            out["sumsq"] += torch.dot(flat, flat)
        if Ms is not None:
            logits = c @ Ms if bs is None else torch.addmm(bs, c, Ms)
            decision = logits.argmax(dim=1)
            out["correct"] += (decision == yc).sum()
            if gaps:  # row i: ⟨M_{y_i} − M_{y'}, z_i⟩ for every y'
                g = logits.gather(1, yc[:, None]) - logits
                out["min_gaps"].scatter_reduce_(0, yc[:, None].expand(-1, C), g, reduce="amin")
        if W is not None:
            P = (c - means.index_select(0, yc)) @ W
            out["proj"] += P[:, :r].pow(2).sum(dim=0)
            if centred is not None:
                P = P[:, r:]
                ncc = (sq_dist.index_select(0, yc) + 2.0 * (P.gather(1, yc[:, None]) - P)).argmin(1)
                out["mismatch"] += (ncc != decision).sum()
    return out


# --- NC1–NC3 from class means ---------------------------------------------------------------------

def _between(means: torch.Tensor, rho: float):
    """Centred class means Ā (C×d, rows μ_c − μ_G with μ_G the mean of the class means, so Σ_B is not
    weighted towards large classes) and the part of their SVD that NC1 uses: singular values s_k
    and right vectors V (d×r). Keeps s_k² > ε·d·s_max², the cut-off torch.linalg.pinv applies to
    the eigenvalues s_k²/C of Σ_B = ĀᵀĀ/C; the SVD of Ā itself avoids squaring its condition."""
    centred = means - means.mean(dim=0, keepdim=True)
    C, d = centred.shape
    spread = centred.norm().item() / C**0.5  # (tr Σ_B)^{1/2}
    if not spread > DEGENERATE_RTOL * rho:
        raise UndefinedMetricError(
            f"NC1–NC3 are undefined: the between-class scatter is zero to working precision (class "
            f"means within {spread / rho if rho > 0 else 0.0:.1e} of the RMS feature norm ρ̄ of each "
            f"other, threshold √ε = {DEGENERATE_RTOL:.1e}), so Σ_B⁺ would only amplify rounding. "
            "Usual causes: identical or all-zero features (a dead or constant network), or class "
            "means buried under a huge common offset. Check the features, or centre them first")
    _, s, Vh = torch.linalg.svd(centred, full_matrices=False)
    keep = s.pow(2) > _EPS * max(d, C) * s[0].pow(2)
    return centred, s[keep], Vh[keep].T


def _geometry(vectors: torch.Tensor, floor: float, what: str) -> dict[str, float]:
    """NC2 quantities of C vectors given as the columns of a d×C matrix.

    equinorm: std/mean of the norms; equiangular: std of the pairwise cosines; max_angle: mean of
    |cos + 1/(C−1)| (zero for a simplex ETF); etf_error: ‖G/‖G‖_F − (I − 11ᵀ/C)/√(C−1)‖_F with G
    the Gram matrix (Zhu et al. 2021). A vector of norm ≤ ``floor`` has no direction: raises.
    """
    C = vectors.shape[1]
    norms = vectors.norm(dim=0)
    if not (norms > floor).all():
        zero = (~(norms > floor)).nonzero().flatten().tolist()
        raise UndefinedMetricError(
            f"NC2 cosines are undefined: {what} {zero} are zero vectors (norm ≤ √ε × the scale of "
            "the others), so their angles do not exist")
    unit = vectors / norms
    cos = unit.T @ unit
    off = cos[~torch.eye(C, dtype=torch.bool, device=cos.device)]
    gram = vectors.T @ vectors
    ideal = (torch.eye(C, dtype=gram.dtype, device=gram.device) - 1.0 / C) / (C - 1) ** 0.5
    return {
        "equinorm": (norms.std(unbiased=False) / norms.mean()).item(),
        "equiangular": off.std(unbiased=False).item(),
        "max_angle": (off + 1.0 / (C - 1)).abs().mean().item(),
        "etf_error": (gram / gram.norm() - ideal).norm().item(),
    }


def _nc2_nc3(centred: torch.Tensor, Ms: torch.Tensor, rho: float) -> dict[str, float]:
    """NC2 of the centred means and of M, and NC3 (``Ms`` is M over a power of two: all of these are
    scale invariant)."""
    out = {f"nc2_{k}_means": v for k, v in
           _geometry(centred.T, DEGENERATE_RTOL * rho, "centred class mean(s) of class(es)").items()}
    col = Ms.norm(dim=0).max().item()
    out.update({f"nc2_{k}_classifier": v for k, v in
                _geometry(Ms, DEGENERATE_RTOL * col, "classifier column(s)").items()})
    # NC3 self-duality (Papyan et al. 2020, Figure 5; Gao et al. call it NC2): ‖M/‖M‖_F − M̄/‖M̄‖_F‖²_F,
    # M̄ the d×C matrix of centred class means. Zero when classifier and means align up to scale.
    out["nc3_self_duality"] = (Ms / Ms.norm() - centred.T / centred.norm()).pow(2).sum().item()
    return out


def scaled_classifier(M: torch.Tensor):
    """``(M / s, s)`` with s the power of two nearest max|M| (1 when M is already in range): the
    scaled classifier that the metrics compute with, exactly (a power of two changes no digit)."""
    s = pow2_scale(M.abs().max().item())
    return (M / s if s != 1.0 else M), s


def metrics_over_parts(parts, C: int, d: int, M: torch.Tensor, amax: float, with_margins: bool, bias=None) -> dict:
    """Every metric of :func:`nc_metrics` (and, ``with_margins``, of :func:`margins` plus accuracy)
    over (Z, y) parts: the shared core of the in-memory functions and the accumulator
    (:class:`nclib.accumulate.NCAccumulator`). ``parts``: an iterable of (Z block, y block);
    ``amax``: max|Z| over all parts (fixes the power-of-two scale)."""
    s = pow2_scale(amax)
    Ms, sm = scaled_classifier(M)
    bs = _scaled_bias(bias, C, s, sm, M.device)
    counts, sums, sumsq = _class_sums(parts, C, d, 1.0 / s, M.device)
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"class(es) {empty} have no samples; every class needs at least one")
    N = counts.sum().item()
    means = sums / counts[:, None]
    rho = (sumsq / N).sqrt().item()
    centred, sv, V = _between(means, rho)
    scan = _scan(parts, 1.0 / s, Ms=Ms, bs=bs, means=means, V=V, centred=centred, gaps=with_margins)
    out = {"nc1": (scan["proj"] / sv.pow(2)).sum().item() / N}
    out.update(_nc2_nc3(centred, Ms, rho))
    out["nc4_ncc_mismatch"] = scan["mismatch"].item() / N
    if with_margins:
        m = margins_from_scaled_gaps(scan["min_gaps"], Ms, s, sm, rho)
        out.update(accuracy=scan["correct"].item() / N, p_min=m.p_min, scale_free_margin=m.scale_free,
                   margins=m)
    return out


def class_means(Z, y, num_classes: int | None = None) -> torch.Tensor:
    """Class means μ_c (rows of a C×d matrix), the z̄_y of NC1 in Section 3 (Papyan et al. 2020)."""
    Z, amax = check_features(Z)
    y, C = check_labels(y, Z.shape[0], num_classes)
    s = pow2_scale(amax)
    counts, sums, _ = _class_sums([(Z, y.to(Z.device))], C, Z.shape[1], 1.0 / s, Z.device)
    return sums / counts[:, None] * s


@dataclass(frozen=True)
class ClassStatistics:
    """Per-class statistics of features (each a length-C tensor, float64, or C×C for ``cdnv``):
    ``counts`` N_c; ``within_variance`` Var_c = Ave_{i∈c} ‖z_i − μ_c‖² (the trace of the class's
    covariance); ``mean_norm`` ‖μ_c − μ_G‖, the class mean's distance to the global mean;
    ``cdnv`` the class-distance normalized variance of each pair (Galanti et al. 2022),
    (Var_c + Var_c')/(2‖μ_c − μ_c'‖²), NaN on the diagonal."""

    counts: torch.Tensor
    within_variance: torch.Tensor
    mean_norm: torch.Tensor
    cdnv: torch.Tensor

    def mean_cdnv(self) -> float:
        """The average of the off-diagonal CDNV: Galanti et al.'s variability-collapse number."""
        C = self.cdnv.shape[0]
        return self.cdnv[~torch.eye(C, dtype=torch.bool, device=self.cdnv.device)].mean().item()


def class_statistics(Z, y, num_classes: int | None = None) -> ClassStatistics:
    """Per-class counts, within-class variances, centred mean norms and the pairwise CDNV
    (class-distance normalized variance, Galanti, György & Hutter 2022, "On the role of neural
    collapse in transfer learning", Definition 1) of features Z (N×d) with labels y. Computed
    around each class's mean in float64 (no ‖z‖² − ‖μ‖² cancellation); invariant to a common
    offset, a rotation and a common scale of Z (CDNV) or equivariant to them (the others).
    Raises :class:`UndefinedMetricError` when two class means coincide (CDNV divides by their
    distance)."""
    Z, amax = check_features(Z)
    y, C = check_labels(y, Z.shape[0], num_classes)
    s = pow2_scale(amax)
    y = y.to(Z.device)
    counts, sums, _ = _class_sums([(Z, y)], C, Z.shape[1], 1.0 / s, Z.device)
    means = sums / counts[:, None]
    var = torch.zeros(C, dtype=_F64, device=Z.device)
    for c, yc in _blocks([(Z, y)], 1.0 / s):
        var.index_add_(0, yc, (c - means.index_select(0, yc)).pow(2).sum(dim=1))
    var = var / counts
    centred = means - means.mean(dim=0, keepdim=True)
    dist2 = (means[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    eye = torch.eye(C, dtype=torch.bool, device=Z.device)
    rho = means.norm(dim=1).max().item() + var.max().sqrt().item()
    if (dist2[~eye] <= (DEGENERATE_RTOL * max(rho, 1e-300)) ** 2).any():
        a, b = ((dist2 <= (DEGENERATE_RTOL * rho) ** 2) & ~eye).nonzero()[0].tolist()
        raise UndefinedMetricError(f"the CDNV is undefined: the means of classes {a} and {b} coincide")
    cdnv = ((var[:, None] + var[None, :]) / (2 * dist2)).masked_fill(eye, float("nan"))
    return ClassStatistics(counts, var * s * s, centred.norm(dim=1) * s, cdnv)


def nc1(Z, y, num_classes: int | None = None) -> float:
    """NC1 variability collapse: tr(Σ_W Σ_B⁺)/C with Σ_W = Ave_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ
    and Σ_B the covariance of the class means (Papyan et al. 2020, Figure 6). Zero at perfect
    collapse; raises :class:`UndefinedMetricError` when Σ_B is zero (all class means equal)."""
    Z, amax = check_features(Z)
    y, C = check_labels(y, Z.shape[0], num_classes)
    parts, s = [(Z, y.to(Z.device))], pow2_scale(amax)
    counts, sums, sumsq = _class_sums(parts, C, Z.shape[1], 1.0 / s, Z.device)
    N = Z.shape[0]
    means = sums / counts[:, None]
    _, sv, V = _between(means, (sumsq / N).sqrt().item())
    proj = _scan(parts, 1.0 / s, means=means, V=V)["proj"]
    return (proj / sv.pow(2)).sum().item() / N


def nc_from_statistics(counts, sums, second_moment, M, *, shifts=None) -> dict[str, float]:
    """NC1–NC3 (Papyan et al. 2020) from sufficient statistics, so that one pass over the data is
    enough: per-class counts N_c (C,), per-class sums S_c (C×d) and a second moment Q (d×d).

    Without ``shifts``, S_c = Σ_{i∈c} z_i and Q = Σ_i z_i z_iᵀ (the raw moments, which cancel
    catastrophically when the class means are far from the origin relative to the spread). With
    ``shifts`` K (C×d, any per-class reference point such as a first batch's class mean),
    S_c = Σ_{i∈c} (z_i − k_c) and Q = Σ_i (z_i − k_{y_i})(z_i − k_{y_i})ᵀ: then
    N Σ_W = Q − Σ_c S_c S_cᵀ/N_c loses only what ‖μ_c − k_c‖ costs, nothing when k_c is near μ_c.
    Keys as in :func:`nc_metrics` (without NC4).
    """
    counts = check_matrix(counts, "counts", ndim=1)
    C = counts.shape[0]
    if C < 2 or not torch.equal(counts, counts.round()) or (counts < 0).any():
        raise ValueError(f"counts must be C ≥ 2 non-negative integers, got {counts.tolist()}")
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"class(es) {empty} have no samples; every class needs at least one")
    sums = check_matrix(sums, "sums", shape=(C, None))
    d = sums.shape[1]
    Q = check_matrix(second_moment, "second_moment", shape=(d, d)).to(sums.device)
    K = torch.zeros_like(sums) if shifts is None else check_matrix(shifts, "shifts", shape=(C, d)).to(sums.device)
    M = check_classifier(M, d, C).to(sums.device)
    counts = counts.to(sums.device)
    # Q scales as s², S and K as s: one power of two for all keeps Q and its products finite.
    s = pow2_scale(max(Q.diagonal().abs().max().item() ** 0.5, sums.abs().max().item(), K.abs().max().item()))
    Q, sums, K = Q / s**2, sums / s, K / s
    return nc_from_scaled_moments(counts, sums, Q, K, M)


def nc_from_scaled_moments(counts, S, Q, K, M, *, exact_float64: bool = False) -> dict[str, float]:
    """NC1–NC3 (Papyan et al. 2020) from shifted moments that are already scaled by a power of two
    (the checked entry is :func:`nc_from_statistics`; the accumulator keeps its moments scaled).

    ``exact_float64``: the moments were accumulated from float64 features about shifts near their
    class means, so z − k_c is exact (Sterbenz) and a common offset costs no precision; the
    degeneracy test then measures the class means' spread against the features' RMS distance
    from their mean (not from the origin), with a floor of √ε·ρ̄ against the origin (ε·ρ̄ is the
    features' own resolution). Otherwise (float32 features: their class means carry about √ε₆₄·ρ̄
    of rounding, see the module doc) against the RMS norm ρ̄ itself."""
    N = counts.sum().item()
    means = K + S / counts[:, None]
    # Σ‖z − m‖² = tr Q + 2 Σ_c (k_c − m)·S_c + Σ_c N_c ‖k_c − m‖² for any point m: with m = 0 the
    # RMS norm ρ̄; with m the mean of the features, their RMS spread (no cancellation when k_c ≈ μ_c)
    def rms_about(m):
        Km = K - m
        total = Q.trace() + 2.0 * (Km * S).sum() + (counts * Km.pow(2).sum(1)).sum()
        return (total.clamp_min(0) / N).sqrt().item()

    rho = rms_about(torch.zeros_like(K[0]))
    if exact_float64:
        centre = (counts[:, None] * means).sum(0) / N
        rho = max(rms_about(centre), DEGENERATE_RTOL * rho)
    centred, sv, V = _between(means, rho)
    # v_kᵀ (N Σ_W) v_k = v_kᵀ Q v_k − Σ_c (S_c·v_k)²/N_c; rounding can push an exact 0 below zero.
    proj = ((V * (Q @ V)).sum(0) - ((S @ V).pow(2) / counts[:, None]).sum(0)).clamp_min(0.0)
    out = {"nc1": (proj / sv.pow(2)).sum().item() / N}
    out.update(_nc2_nc3(centred, scaled_classifier(M)[0], rho))
    return out


def ncc_mismatch(Z, y, M, means: torch.Tensor | None = None, bias=None) -> float:
    """NC4 (Papyan et al. 2020): fraction of samples whose classifier decision argmax_c ⟨M_c, z⟩ + b_c
    differs from the nearest-class-centre decision argmin_c ‖z − μ_c‖ (class means of the same Z
    unless given as a C×d matrix; ``bias`` b: the classifier's, None for a bias-free one)."""
    Z, amax, y, M, C = _inputs(Z, y, M, require_all=means is None, bias=bias)
    s = pow2_scale(amax)
    parts = [(Z, y)]
    if means is None:
        counts, sums, _ = _class_sums(parts, C, Z.shape[1], 1.0 / s, Z.device)
        means = sums / counts[:, None]
    else:
        means = check_matrix(means, "means", shape=(C, Z.shape[1])).to(Z.device) / s
    centred = means - means.mean(dim=0, keepdim=True)
    Ms, sm = scaled_classifier(M)
    scan = _scan(parts, 1.0 / s, Ms=Ms, bs=_scaled_bias(bias, C, s, sm, Z.device), means=means, centred=centred)
    return scan["mismatch"].item() / Z.shape[0]


def nc_metrics(Z, y, M, bias=None) -> dict[str, float]:
    """All neural-collapse metrics of Section 3 (Papyan et al. 2020) for features Z, labels y and
    classifier M (d×C):

    - ``nc1``: tr(Σ_W Σ_B⁺)/C of the features;
    - ``nc2_{equinorm,equiangular,max_angle,etf_error}_means``: NC2 of the class means centred at
      their mean; ``..._classifier``: the same of the columns of M (not centred);
    - ``nc3_self_duality``: ‖M/‖M‖_F − M̄/‖M̄‖_F‖²_F between M and the centred class means (Gao et
      al. number it NC2, and their NC3 is the ETF structure that is NC2 here);
    - ``nc4_ncc_mismatch``: disagreement of the classifier with the nearest-class-centre rule.

    Shapes: Z is N×d (any real dtype; computed in float64), y N integers in [0, C), M d×C.
    ``bias``: the classifier's bias b (C numbers, e.g. ``nn.Linear(d, C).bias``), for a head whose
    logits are z·M + b: it moves the decisions, so NC4 uses them; NC1–NC3 are properties of the
    features and of the vectors M_y and do not involve it. A bias left out describes another
    classifier than the model's (:func:`classifier_of` reads M and b off a head module).

    Raises :class:`UndefinedMetricError` when a metric is undefined (equal class means, a zero
    classifier column), never returns NaN.
    """
    Z, amax, y, M, C = _inputs(Z, y, M, bias=bias)
    return metrics_over_parts([(Z, y)], C, Z.shape[1], M, amax, with_margins=False, bias=bias)


# --- margins ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Margins:
    """Margins of a classifier on a labelled feature set.

    p_min: min_i min_{y'≠y_i} ⟨M_{y_i} − M_{y'}, z_i⟩ (Theorem 4.1); negative when a sample is
        misclassified.
    pairwise: C×C symmetric matrix of γ_{y,y'} (Definition 4.3): the largest γ with
        (M_y − M_{y'})ᵀz ≥ γ on class y and ≤ −γ on class y'. Diagonal NaN (undefined).
    pairwise_normalized: γ_{y,y'}/‖M_y − M_{y'}‖, the distance of the closer of the two classes to
        the bisecting hyperplane; invariant to scaling M (γ̂ of Remark 4.9 with L = 1).
    scale_free: min_{y≠y'} γ_{y,y'}/(‖M_y − M_{y'}‖ ρ̄) with ρ̄ = (Ave_i ‖z_i‖²)^{1/2}; invariant to
        scaling M and Z, so it cannot grow by rescaling alone (the objection to p_min).
    """

    p_min: float
    pairwise: torch.Tensor
    pairwise_normalized: torch.Tensor
    scale_free: float

    def offdiagonal(self, normalized: bool = False) -> torch.Tensor:
        """The C(C−1) off-diagonal entries (each unordered pair twice)."""
        A = self.pairwise_normalized if normalized else self.pairwise
        return A[~torch.eye(A.shape[0], dtype=torch.bool, device=A.device)]

    @property
    def separable(self) -> bool:
        """Definition 4.3 holds: every γ_{y,y'} > 0 (100% training accuracy with a margin)."""
        return self.p_min > 0


def margins_from_scaled_gaps(min_gaps_s, Ms, sz: float, sm: float, rho_s: float) -> Margins:
    """Margins (Theorem 4.1, Definition 4.3) from the min gaps of the scaled problem (Z/sz, M/sm),
    as :func:`margins_from_min_gaps` (the checked entry) computes them: γ = sz·sm·γ_s, γ/‖ΔM‖ =
    sz·γ_s/‖ΔM_s‖ and the scale-free margin (γ_s/‖ΔM_s‖)/ρ̄_s, with no overflow in between."""
    C = min_gaps_s.shape[0]
    eye = torch.eye(C, dtype=torch.bool, device=min_gaps_s.device)
    if not torch.isfinite(min_gaps_s[~eye]).all():
        raise ValueError("min_gaps must be finite off the diagonal (an entry +inf means a class "
                         "with no samples)")
    diffs = (Ms[:, :, None] - Ms[:, None, :]).norm(dim=0)  # ‖M_y − M_{y'}‖
    same = (diffs <= DEGENERATE_RTOL * Ms.norm(dim=0).max()) & ~eye
    if same.any():
        a, b = same.nonzero()[0].tolist()
        raise UndefinedMetricError(
            f"normalized margins are undefined: classifier columns M_{a} and M_{b} coincide (or M is "
            "zero), so ‖M_y − M_y'‖ = 0 and the hyperplane between them does not exist")
    if not rho_s > 0:
        raise UndefinedMetricError("the scale-free margin is undefined: every feature is zero (ρ̄ = 0)")
    gamma_s = torch.minimum(min_gaps_s, min_gaps_s.T).masked_fill(eye, float("nan"))
    normalized_s = gamma_s / diffs.masked_fill(eye, 1.0)
    gamma, normalized = gamma_s * (sz * sm), normalized_s * sz
    p_min = gamma[~eye].min().item()
    if not torch.isfinite(gamma[~eye]).all():
        raise ValueError(f"the margins overflow float64 (features × classifier scale ≈ {sz * sm:.1e});"
                         " rescale Z or M (the scale-free margin does not depend on it)")
    scale_free = (normalized_s[~eye].min() / rho_s).item()
    return Margins(p_min, gamma, normalized, scale_free)


def margins_from_min_gaps(min_gaps: torch.Tensor, M, rms_feature_norm: float) -> Margins:
    """Margins (Theorem 4.1, Definition 4.3) from D[y, y'] = min_{i ∈ S_y} ⟨M_y − M_{y'}, z_i⟩ (C×C;
    the diagonal is ignored), which a single pass over the data can accumulate.
    γ_{y,y'} = min(D[y,y'], D[y',y]); ``rms_feature_norm`` is ρ̄ of the scale-free margin."""
    D = check_matrix(min_gaps, "min_gaps", finite=False)
    C = D.shape[0]
    if D.shape != (C, C) or C < 2:
        raise ValueError(f"min_gaps must be a C×C matrix with C ≥ 2, got shape {tuple(D.shape)}")
    if torch.isnan(D).any():
        raise ValueError("min_gaps contains NaN")
    M = as_float64(M, "classifier M")
    M = check_classifier(M, M.shape[0] if M.ndim == 2 else -1, C).to(D.device)
    rho = check_real(rms_feature_norm, "rms_feature_norm", minimum=0.0)
    Ms, sm = scaled_classifier(M)
    return margins_from_scaled_gaps(D / sm, Ms, 1.0, sm, rho)


def margins(Z, y, M, bias=None) -> Margins:
    """p_min (Theorem 4.1), pairwise margins γ_{y,y'} (Definition 4.3), their M-normalized version
    and the scale-free margin; see :class:`Margins`. Note min_{y≠y'} γ_{y,y'} = p_min.
    ρ̄ is computed on Z divided by a power of two, so it cannot overflow (‖z‖² of features
    ×1e155 would).

    ``bias``: a classifier bias b (C numbers). The paper's classifier has none; with one the margin
    of a pair is the logit gap ⟨M_y − M_{y'}, z⟩ + b_y − b_{y'}, its normalized version the
    distance to that pair's (shifted) hyperplane, and p_min the model's smallest logit gap."""
    Z, amax, y, M, C = _inputs(Z, y, M, bias=bias)
    s = pow2_scale(amax)
    Ms, sm = scaled_classifier(M)
    scan = _scan([(Z, y)], 1.0 / s, Ms=Ms, bs=_scaled_bias(bias, C, s, sm, Z.device), gaps=True, sumsq=True)
    return margins_from_scaled_gaps(scan["min_gaps"], Ms, s, sm, (scan["sumsq"] / Z.shape[0]).sqrt().item())


def classifier_of(head) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(M, bias)`` of a linear head, for the functions of this module: from ``nn.Linear(d, C)``
    M = weightᵀ (d×C) and its bias (None when built with ``bias=False``); from nclib's heads
    (``LinearHead``, ``FixedHead``) their matrix and no bias. Detached float64 copies."""
    from torch import nn

    if isinstance(head, nn.Linear):
        b = None if head.bias is None else head.bias.detach().to(_F64).clone()
        return head.weight.detach().to(_F64).T.clone(), b
    if hasattr(head, "matrix") and callable(head.matrix):
        return head.matrix().detach().to(_F64).clone(), None
    raise ValueError(f"classifier_of(head): expected an nn.Linear or an nclib head (LinearHead, FixedHead), got "
                     f"{type(head).__name__}; for another head pass M (d×C) and bias (C) yourself")


def scale_free_margin_of_etf(C: int) -> float:
    """Scale-free margin of collapsed features on a simplex ETF (Definition 3.1, z = β M_y):
    √(C/(2(C−1))). ⟨M_y − M_{y'}, βM_y⟩ = βα²C/(C−1), ‖M_y − M_{y'}‖ = α√(2C/(C−1)), ρ̄ = βα."""
    C = check_int(C, "C", minimum=2)
    return (C / (2.0 * (C - 1))) ** 0.5
