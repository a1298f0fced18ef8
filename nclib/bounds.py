"""The generalization bounds of Section 4 of Gao et al. (arXiv 2310.08358), computed.

- Theorem 4.4 (multiclass margin bound) and Corollary 4.5: terms (A), (B) and L_{0,1};
- Theorem 4.8: covering numbers of the class supports (greedy ε-nets) and Lipschitz estimates;
- Theorem 4.10: the Hoeffding-type bound with H(α, d, ρ, n) = exp(−nα²/(8d²ρ²)).

A bound that does not apply (features not linearly separable, an assumption violated, the log of
a non-positive number) comes back as a :class:`BoundResult` with ``applicable=False`` and the
reason; a bound that applies but says nothing (an accuracy lower bound ≤ 0, an error bound ≥ 1)
is flagged ``vacuous``. No NaN is returned silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from nclib._checks import (
    as_generator,
    check_bias,
    check_distribution,
    check_features,
    check_int,
    check_matrix,
    check_real,
    pow2_scale,
)
from nclib.metrics import float64_inputs, margins

__all__ = [
    "BoundResult",
    "affine_inputs",
    "linear_rademacher",
    "rademacher_monte_carlo",
    "margin_bound",
    "corollary_45",
    "greedy_cover",
    "covering_numbers",
    "lipschitz_lower",
    "lipschitz_upper",
    "covering_bound",
    "covering_bound_of_model",
    "hoeffding_H",
    "hoeffding_bound",
    "hoeffding_bound_of_features",
    "hoeffding_margin_curve",
]


@dataclass
class BoundResult:
    """A computed bound. ``kind`` is "error" (an upper bound on the test error) or "accuracy" (a
    lower bound on the test accuracy). ``value`` is None when the bound does not apply."""

    kind: str
    value: float | None
    applicable: bool
    reason: str = ""
    terms: dict = field(default_factory=dict)

    @property
    def vacuous(self) -> bool:
        """True when the bound applies but cannot say anything: error ≥ 1 or accuracy ≤ 0."""
        if not self.applicable:
            return False
        return self.value >= 1.0 if self.kind == "error" else self.value <= 0.0

    def describe(self) -> str:
        if not self.applicable:
            return f"not applicable: {self.reason}"
        return f"{self.kind} bound {self.value:.4g}" + (" (vacuous)" if self.vacuous else "")


def _not_applicable(kind, reason, **terms) -> BoundResult:
    return BoundResult(kind, None, False, reason, terms)


def affine_inputs(Z, y, M, bias=None):
    """``(Z, y, M, C)`` checked and in float64 (as :func:`nclib.metrics.float64_inputs`); with a
    classifier ``bias`` b (C,), the affine classifier z ↦ Mᵀz + b as a linear one on augmented
    features: (z, 1) and the (d+1)×C matrix (M; bᵀ). Decisions and the margins γ_{y,y'} are those of
    the model; the bounds' norm terms (‖z‖, ‖M_y − M_{y'}‖, ρ) are then those of the augmented
    problem, a valid linear model of the same classifier (the usual reduction of affine to linear)."""
    Z, y, M, C = float64_inputs(Z, y, M)
    if bias is None:
        return Z, y, M, C
    b = check_bias(bias, C).to(device=M.device, dtype=M.dtype)
    ones = torch.ones(Z.shape[0], 1, dtype=Z.dtype, device=Z.device)
    return torch.cat([Z, ones], dim=1), y, torch.cat([M, b[None, :]], dim=0), C


# --- Theorem 4.4 ------------------------------------------------------------------------------

def linear_rademacher(Z, weight_norm: float) -> float:
    """Upper bound on the empirical Rademacher complexity of {z ↦ wᵀz : ‖w‖ ≤ B} on the n rows of
    Z: B·(Σ_i ‖z_i‖²)^{1/2}/n (Kakade, Sridharan & Tewari 2008, by Jensen's inequality).
    The norm is taken of Z divided by a power of two, so features ×1e155 do not overflow."""
    Z, amax = check_features(Z)
    weight_norm = check_real(weight_norm, "weight_norm", minimum=0.0)
    s = pow2_scale(amax)
    return weight_norm * s * (Z.to(torch.float64) / s).pow(2).sum().sqrt().item() / Z.shape[0]


def rademacher_monte_carlo(Z, weight_norm: float, draws: int = 2000, generator=None) -> float:
    """Monte Carlo estimate of the same empirical Rademacher complexity:
    E_σ sup_{‖w‖≤B} (1/n) Σ σ_i wᵀz_i = (B/n) E_σ ‖Σ_i σ_i z_i‖ (``generator``: seed, default 0)."""
    Z, amax = check_features(Z)
    weight_norm = check_real(weight_norm, "weight_norm", minimum=0.0)
    draws = check_int(draws, "draws", minimum=1)
    g = as_generator(generator)
    s = pow2_scale(amax)
    sigma = torch.randint(0, 2, (draws, Z.shape[0]), generator=g, dtype=torch.float64) * 2 - 1
    return weight_norm * s * (sigma @ (Z.to(torch.float64).cpu() / s)).norm(dim=1).mean().item() / Z.shape[0]


def margin_bound(Z, y, M, gamma=None, K: float | None = None, class_probs=None, bias=None) -> BoundResult:
    """Theorem 4.4 (multiclass margin bound), probability terms and constants omitted as in "≲":

        error ≲ (A) + (B) + L01,
        (A) = Σ_y p(y) Σ_{y'≠y} R_{N_y}(F)/γ_{y,y'},
        (B) = Σ_y p(y) Σ_{y'≠y} √(log(log₂(4K/γ_{y,y'}))/N_y),
        L01 = Σ_y p(y) Σ_{y'≠y} (1/N_y) Σ_{x∈S_y} 1[(M_y − M_{y'})ᵀf(x) ≤ γ_{y,y'}].

    L01 is computed as printed: it counts gaps ≤ γ_{y,y'}, and with γ the largest margin of
    Definition 4.3 the samples that attain it always count, so L01 never reaches 0 on separable
    data (on balanced data with one closest sample per pair it is C(C−1)/(2N)). Pass a smaller
    ``gamma`` to count only gaps strictly inside a margin.

    The Rademacher complexity of the margin class F is not computable for a deep network; the
    estimate used is that of the *linear* class on the learned features,
    R_{N_y}(F) ≈ B·(Σ_{i∈S_y}‖z_i‖²)^{1/2}/N_y with B = max_{y≠y'} ‖M_y − M_{y'}‖
    (:func:`linear_rademacher`). It ignores the feature extractor's own complexity, so (A) is
    optimistic. K, the sup of abs((M_y − M_{y'})ᵀf(x)), is estimated by its maximum over the given
    samples unless passed. ``gamma`` defaults to the pairwise margins of Definition 4.3, which
    requires linearly separable features. (A), (B) and L01 are all invariant to rescaling M or Z.
    ``p(y)`` defaults to the class proportions in ``y``; ``class_probs`` must be a distribution.
    ``bias``: a classifier bias (C,), handled as :func:`affine_inputs` says.
    """
    Z, y, M, C = affine_inputs(Z, y, M, bias)
    m = margins(Z, y, M)
    eye = torch.eye(C, dtype=torch.bool, device=Z.device)
    if K is not None:
        K = check_real(K, "K (the sup of |(M_y − M_y')ᵀf(x)|)", positive=True)
    p = None if class_probs is None else check_distribution(class_probs, C).to(Z.device)
    if gamma is not None:
        gamma = check_matrix(gamma, "gamma", shape=(C, C), finite=False).to(Z.device)
        if not torch.isfinite(gamma[~eye]).all():
            raise ValueError("gamma must be finite off the diagonal (the diagonal is ignored)")
    if gamma is None:
        if not m.separable:
            return _not_applicable(
                "error", f"features not linearly separable by M (p_min = {m.p_min:.4g} ≤ 0), so "
                "Definition 4.3's margins do not exist", p_min=m.p_min)
        gamma = m.pairwise
    if not (gamma[~eye] > 0).all():
        return _not_applicable("error", "every margin γ_{y,y'} (y ≠ y') must be positive")
    logits = Z @ M
    gaps = logits.gather(1, y[:, None]) - logits  # ⟨M_{y_i} − M_{y'}, z_i⟩, N×C
    if not torch.isfinite(gaps).all():
        raise ValueError("the logits Z @ M overflow float64: rescale Z or M ((A), (B) and L01 do not "
                         "depend on the scale)")
    largest = gaps.abs().max().item()
    if K is None:
        K = largest
    elif K < largest:
        return _not_applicable("error", f"K = {K:.4g} is below the largest observed |gap| "
                               f"{largest:.4g}, but K must bound |(M_y − M_y')ᵀf(x)| on the support")
    counts = torch.bincount(y, minlength=C).double()
    if p is None:
        p = counts / counts.sum()
    diffs = (M[:, :, None] - M[:, None, :]).norm(dim=0)
    B = diffs[~eye].max().item()
    rad = torch.tensor([linear_rademacher(Z[y == c], B) for c in range(C)], dtype=torch.float64,
                       device=Z.device)
    inner = torch.log2(4.0 * K / gamma.masked_fill(eye, 1.0))
    if (inner[~eye] <= 1.0).any():
        return _not_applicable("error", "log(log₂(4K/γ)) needs 4K/γ > 2; K is below γ/2 for some pair")
    A = (p * (rad[:, None] / gamma.masked_fill(eye, math.inf)).sum(dim=1)).sum().item()
    Bterm = (p * (torch.log(inner).masked_fill(eye, 0.0).sqrt() / counts.sqrt()[:, None]).sum(dim=1)).sum().item()
    below = torch.zeros(C, C, dtype=torch.float64, device=Z.device)
    below.index_add_(0, y, (gaps <= gamma[y]).double())  # row y: counts over S_y per y'
    L01 = (p * (below.masked_fill(eye, 0.0) / counts[:, None]).sum(dim=1)).sum().item()
    terms = {"A": A, "B": Bterm, "L01": L01, "K": K, "rademacher": rad.tolist(), "weight_norm": B}
    return BoundResult("error", A + Bterm + L01, True, "", terms)


def corollary_45(rademacher: float, gamma, K: float, N: int) -> dict:
    """Corollary 4.5 (balanced classes, p(y) = 1/C, N_y = N/C):
    (A) = R_{N/C}(F)/C · Σ_y Σ_{y'≠y} 1/γ_{y,y'},  (B) = (NC)^{−1/2} Σ_y Σ_{y'≠y} √(log(log₂(4K/γ_{y,y'})))."""
    rademacher = check_real(rademacher, "rademacher", minimum=0.0)
    K = check_real(K, "K", positive=True)
    N = check_int(N, "N", minimum=1)
    gamma = check_matrix(gamma, "gamma", finite=False)
    C = gamma.shape[0]
    if gamma.shape != (C, C) or C < 2:
        raise ValueError(f"gamma must be a C×C margin matrix with C ≥ 2, got shape {tuple(gamma.shape)}")
    off = gamma[~torch.eye(C, dtype=torch.bool, device=gamma.device)]
    if not torch.isfinite(off).all():
        raise ValueError("gamma must be finite off the diagonal (the diagonal is ignored)")
    if not (off > 0).all():
        raise ValueError("every margin γ_{y,y'} (y ≠ y') must be positive")
    inner = torch.log2(4.0 * K / off)
    if (inner <= 1.0).any():
        raise ValueError("log(log₂(4K/γ)) needs 4K/γ > 2 for every pair")
    return {"A": rademacher / C * (1.0 / off).sum().item(),
            "B": torch.log(inner).sqrt().sum().item() / math.sqrt(N * C)}


# --- Theorem 4.8 ------------------------------------------------------------------------------

def greedy_cover(points, eps: float) -> torch.Tensor:
    """Indices of a greedy ε-net of ``points`` (n×D): repeatedly take the first uncovered point
    as a centre and cover everything within ε. The centres are pairwise more than ε apart, so
    N(ε) ≤ (size of the net) ≤ N(ε/2) for the covering number N of the sampled set."""
    X = check_matrix(points, "points (n×D)")
    if X.shape[0] == 0:
        raise ValueError("points is empty: a support sample needs at least one point")
    try:
        eps = check_real(eps, "the radius ε", positive=True)
    except ValueError:
        raise ValueError(f"the radius ε must be positive and finite, got {eps!r}") from None
    uncovered = torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
    centres = []
    while uncovered.any():
        i = int(uncovered.nonzero()[0])
        centres.append(i)
        uncovered &= (X - X[i]).norm(dim=1) > eps
    return torch.tensor(centres, dtype=torch.long)


def _check_supports(supports, C: int | None = None) -> int:
    if not isinstance(supports, (list, tuple)) or len(supports) < 2:
        raise ValueError("supports must be a list with one n_y×D sample of each class support "
                         f"(at least two classes), got {type(supports).__name__}")
    if C is not None and len(supports) != C:
        raise ValueError(f"supports has {len(supports)} entries but there are C = {C} classes")
    for c, s in enumerate(supports):
        if check_matrix(s, f"supports[{c}]").shape[0] == 0:
            raise ValueError(f"supports[{c}] is empty")
    return len(supports)


def covering_numbers(supports, radii) -> torch.Tensor:
    """C×C matrix of greedy covering numbers N(radii[y, y'], M_y) of each class support (a dense
    sample ``supports[y]`` of M_y); the diagonal is 0."""
    C = _check_supports(supports)
    radii = check_matrix(radii, "radii", shape=(C, C), finite=False)
    off = radii[~torch.eye(C, dtype=torch.bool, device=radii.device)]
    if not (torch.isfinite(off).all() and (off > 0).all()):
        raise ValueError("radii must be positive and finite off the diagonal")
    out = torch.zeros(C, C, dtype=torch.long)
    for a in range(C):
        for b in range(C):
            if a != b:
                out[a, b] = len(greedy_cover(supports[a], radii[a, b].item()))
    return out


def lipschitz_lower(f, X, pairs: int = 20000, generator=None, scale: float = 1e-2) -> float:
    """Empirical lower estimate of the Lipschitz constant of f: the largest ‖f(a) − f(b)‖/‖a − b‖
    over random pairs of rows of X and over small random perturbations b = a + δ (‖δ‖ ≈ scale).
    ``generator``: a torch.Generator or seed (default 0)."""
    if not callable(f):
        raise ValueError(f"f must be callable (a network or function), got {type(f).__name__}")
    X = torch.as_tensor(X)
    if X.ndim < 2 or X.shape[0] == 0 or not X.is_floating_point():
        raise ValueError(f"X must be a non-empty float batch (n×...), got shape {tuple(X.shape)} "
                         f"and dtype {X.dtype}")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    pairs = check_int(pairs, "pairs", minimum=2)
    scale = check_real(scale, "scale", positive=True)
    g = as_generator(generator)
    i = torch.randint(0, X.shape[0], (pairs,), generator=g)
    j = torch.randint(0, X.shape[0], (pairs,), generator=g)
    a = X[i]
    b = torch.cat([X[j[: pairs // 2]], a[pairs // 2 :] + scale * torch.randn(a[pairs // 2 :].shape, generator=g, dtype=X.dtype)])
    with torch.no_grad():
        num = (f(a) - f(b)).double().norm(dim=1)
    den = (a - b).double().flatten(1).norm(dim=1)
    if not torch.isfinite(num).all():
        raise ValueError("f returned NaN or infinite values on X")
    keep = den > 0
    if not keep.any():
        raise ValueError("every sampled pair coincides (X has one distinct row and scale underflows)")
    return (num[keep] / den[keep]).max().item()


def lipschitz_upper(network: nn.Sequential) -> float:
    """Upper bound on the Lipschitz constant of a feed-forward network: the product of the
    spectral norms of its linear layers (ReLU, LeakyReLU, Tanh and Identity are 1-Lipschitz)."""
    if not isinstance(network, nn.Module):
        raise ValueError(f"network must be a torch.nn.Module, got {type(network).__name__}")
    bound = 1.0
    for layer in network.modules():
        if isinstance(layer, nn.Linear):
            W = layer.weight.detach().double()
            if not torch.isfinite(W).all():
                raise ValueError(f"layer {layer} has NaN or infinite weights")
            bound *= torch.linalg.matrix_norm(W, ord=2).item()
        elif isinstance(layer, (nn.Sequential,)) or layer is network:
            continue
        elif not isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity, nn.Flatten)):
            raise ValueError(f"no Lipschitz bound implemented for layer {type(layer).__name__}")
    return bound


def covering_bound(Z, y, M, supports, lipschitz: float, bias=None) -> BoundResult:
    """Theorem 4.8: with γ̂_{y,y'} = γ_{y,y'}/(L‖M_y − M_{y'}‖),

        accuracy > 1 − (1/(2N)) Σ_y max_{y'≠y} N(γ̂_{y,y'}, M_y),

    valid when the features are linearly separable (Definition 4.3) and N_y ≥ max_{y'} N(γ̂_{y,y'},
    M_y) for every class (the "S large enough" assumption). ``supports[y]`` is a dense sample of
    the support M_y of class y in input space; covering numbers come from :func:`greedy_cover`.
    When the size assumption fails the bound is returned as not applicable, with the numbers; so is
    a *saturated* covering, where every sampled support point is its own ball (the training images
    taken as the support, say): its count is the sample's size and bounds nothing. ``bias``: a
    classifier bias (C,), handled as :func:`affine_inputs` says (the appended constant adds
    nothing to the Lipschitz constant)."""
    Z, y, M, C = affine_inputs(Z, y, M, bias)
    lipschitz = check_real(lipschitz, "the Lipschitz constant lipschitz", positive=True)
    _check_supports(supports, C)
    m = margins(Z, y, M)
    if not m.separable:
        return _not_applicable("accuracy", f"features not linearly separable (p_min = {m.p_min:.4g} ≤ 0)", p_min=m.p_min)
    radii = m.pairwise_normalized.cpu() / lipschitz
    cover = covering_numbers(supports, radii.nan_to_num(1.0))
    worst = cover.max(dim=1).values
    counts = torch.bincount(y, minlength=C).cpu()
    value = 1.0 - worst.sum().item() / (2.0 * len(y))
    terms = {"radii": radii, "covering": cover, "worst_covering": worst.tolist(), "class_sizes": counts.tolist()}
    sizes = torch.tensor([len(supports[c]) for c in range(C)])
    saturated = (worst >= sizes).nonzero().flatten().tolist()
    if saturated:  # every sampled point its own ball: the count is the sample's size, not a covering
        return _not_applicable(
            "accuracy", f"the covering is saturated for classes {saturated}: at these radii every sampled point of "
            f"the support is its own ball (covering numbers {worst.tolist()} for samples of {sizes.tolist()} points), "
            "so the count measures the sample, not the support; sample the supports densely enough that balls "
            "hold several points (or the bound says nothing)", value_if_applied=value, **terms)
    short = (counts < worst).nonzero().flatten().tolist()
    if short:
        return _not_applicable(
            "accuracy", f"assumption N_y ≥ max_y' N(γ̂, M_y) fails for classes {short} "
            f"(N_y = {counts.tolist()}, covering numbers {worst.tolist()})", value_if_applied=value, **terms)
    return BoundResult("accuracy", value, True, "", terms)



def covering_bound_of_model(model, data, supports, lipschitz_points, *, upper: bool = True,
                            generator=None) -> dict:
    """Theorem 4.8 for a trained network: its features on ``data`` (the training sample S), its
    classifier matrix, and the Lipschitz constant of its backbone estimated from below
    (:func:`lipschitz_lower` on ``lipschitz_points``, the support's sample) and, with ``upper``, from
    above (:func:`lipschitz_upper`). ``model``: an :class:`nclib.models.NCModel` (``features``,
    ``classifier_matrix`` and a ``backbone``). Returns ``{"L_lower", "bound_lower"}`` and, with
    ``upper``, ``{"L_upper", "bound_upper"}`` (each bound a :class:`BoundResult` of
    :func:`covering_bound`). The lower estimate gives the larger, optimistic bound; only the upper
    one makes the theorem's guarantee."""
    for attr in ("features", "classifier_matrix", "backbone"):
        if not hasattr(model, attr):
            raise TypeError(f"covering_bound_of_model(model, ...): model needs .{attr} (an nclib.models.NCModel "
                            f"has features(x), classifier_matrix() and backbone); got {type(model).__name__}")
    with torch.no_grad():
        Z = model.features(data.x)
    M = model.classifier_matrix()
    out = {"L_lower": lipschitz_lower(model.backbone, lipschitz_points, generator=generator)}
    if upper:
        out["L_upper"] = lipschitz_upper(model.backbone)
    for tag in ("lower", "upper")[: 2 if upper else 1]:
        out[f"bound_{tag}"] = covering_bound(Z, data.y, M, supports, out[f"L_{tag}"])
    return out


# --- Theorem 4.10 -----------------------------------------------------------------------------

def hoeffding_H(alpha, d: int, rho, n) -> torch.Tensor:
    """H(α, d, ρ, n) = exp(−nα²/(8d²ρ²)) of Theorem 4.10 (α, ρ, n broadcast as tensors)."""
    d = check_int(d, "d", minimum=1)
    alpha, rho, n = (check_matrix(v, name, ndim=None)
                     for v, name in ((alpha, "alpha"), (rho, "rho"), (n, "n")))
    if not ((rho > 0).all() and (n > 0).all()):
        raise ValueError("H needs ρ > 0, d ≥ 1 and n > 0 (finite)")
    return torch.exp(-n * alpha.pow(2) / (8.0 * d**2 * rho.pow(2)))


def hoeffding_bound(gamma_hat_min, rho, d: int, N: int, C: int) -> BoundResult:
    """Theorem 4.10 exactly as printed (balanced data, N/C samples per class):

        Acc ≥ 1 − (2d/C) Σ_y [H(1, d, ρ_y, N/C) + H(min_{y'≠y} γ_{y,y'}/‖M_y − M_{y'}‖ − √(N/C), d, ρ_y, N/C)],

    with ``gamma_hat_min[y]`` = min_{y'≠y} γ_{y,y'}/‖M_y − M_{y'}‖ and ``rho[y]`` the largest feature
    norm of class y. Because H depends on α², the second term cannot tell a positive margin from
    a negative one; the value is returned as printed, with that noted in the terms."""
    C = check_int(C, "C", minimum=2)
    N = check_int(N, "N", minimum=C)
    d = check_int(d, "d", minimum=1)
    g = check_matrix(gamma_hat_min, "gamma_hat_min", ndim=None, finite=False)
    r = check_matrix(rho, "rho", ndim=None, finite=False)
    if g.shape != (C,) or r.shape != (C,):
        raise ValueError(f"gamma_hat_min and rho need one entry per class (C = {C})")
    if not torch.isfinite(g).all() or not torch.isfinite(r).all():
        raise ValueError("gamma_hat_min and rho must be finite")
    if not (r > 0).all():
        raise ValueError("rho (the largest feature norm of each class) must be > 0")
    n = N / C
    h1 = hoeffding_H(1.0, d, r, n)
    h2 = hoeffding_H(g - math.sqrt(n), d, r, n)
    value = 1.0 - 2.0 * d / C * (h1 + h2).sum().item()
    terms = {"H1": h1.tolist(), "H2": h2.tolist(), "alpha2": (g - math.sqrt(n)).tolist(),
             "separable": bool((g > 0).all())}
    return BoundResult("accuracy", value, True, "", terms)


def hoeffding_margin_curve(gamma_hat, rho: float, d: int, n_per_class: int, C: int) -> np.ndarray:
    """Theorem 4.10's bound as printed for C classes that all share the margin ``gamma_hat`` (an
    array) and the norm ρ: the value 1 − 2d·[H(1) + H(γ̂ − √n)] computed by
    :func:`hoeffding_bound`. Because H depends on (γ̂ − √n)², the bound *falls* as γ̂
    grows towards √(N/C)."""
    out = []
    for g in np.atleast_1d(np.asarray(gamma_hat, dtype=float)):
        gh = torch.full((C,), float(g), dtype=torch.float64)
        r = torch.full((C,), float(rho), dtype=torch.float64)
        out.append(hoeffding_bound(gh, r, d, C * n_per_class, C).value)
    return np.asarray(out)


def hoeffding_bound_of_features(Z, y, M, rho, bias=None) -> tuple[BoundResult, torch.Tensor]:
    """Theorem 4.10 for features ``Z`` with labels ``y`` (N of them, C classes of N/C each) under
    the classifier ``M`` (d×C), ``rho[y]`` the largest feature norm of class y: the per-class
    normalized margins γ̂_y = min_{y'≠y} γ_{y,y'}/‖M_y − M_{y'}‖ from :func:`nclib.metrics.margins`,
    then :func:`hoeffding_bound`. Returns the bound and γ̂ (C,). The theorem assumes the features
    separate the sample (Definition 4.3); where they do not, the bound is returned as not
    applicable, with p_min. ``bias``: a classifier bias (C,), handled as :func:`affine_inputs` says
    (``rho`` then bounds the norms of the augmented features (z, 1))."""
    Z, y, M, C = affine_inputs(Z, y, M, bias)
    m = margins(Z, y, M)
    gamma_hat_min = torch.nan_to_num(m.pairwise_normalized, nan=math.inf).min(dim=1).values
    if not m.separable:
        return (_not_applicable("accuracy", f"the features do not separate the sample (p_min = {m.p_min:.3g}); "
                                "Theorem 4.10 assumes they do", p_min=m.p_min), gamma_hat_min)
    return hoeffding_bound(gamma_hat_min, rho, Z.shape[1], len(y), C), gamma_hat_min
