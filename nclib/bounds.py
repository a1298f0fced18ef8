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

import torch
from torch import nn

from nclib.metrics import _prepare, margins

__all__ = [
    "BoundResult",
    "linear_rademacher",
    "rademacher_monte_carlo",
    "margin_bound",
    "corollary_45",
    "greedy_cover",
    "covering_numbers",
    "lipschitz_lower",
    "lipschitz_upper",
    "covering_bound",
    "hoeffding_H",
    "hoeffding_bound",
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


# --- Theorem 4.4 ------------------------------------------------------------------------------

def linear_rademacher(Z, weight_norm: float) -> float:
    """Upper bound on the empirical Rademacher complexity of {z ↦ wᵀz : ‖w‖ ≤ B} on the n rows of
    Z: B·(Σ_i ‖z_i‖²)^{1/2}/n (Kakade, Sridharan & Tewari 2008, by Jensen's inequality)."""
    Z = torch.as_tensor(Z, dtype=torch.float64)
    return weight_norm * Z.pow(2).sum().sqrt().item() / Z.shape[0]


def rademacher_monte_carlo(Z, weight_norm: float, draws: int = 2000, generator=None) -> float:
    """Monte Carlo estimate of the same empirical Rademacher complexity:
    E_σ sup_{‖w‖≤B} (1/n) Σ σ_i wᵀz_i = (B/n) E_σ ‖Σ_i σ_i z_i‖."""
    Z = torch.as_tensor(Z, dtype=torch.float64)
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator or 0)
    sigma = torch.randint(0, 2, (draws, Z.shape[0]), generator=g, dtype=torch.float64) * 2 - 1
    return weight_norm * (sigma @ Z).norm(dim=1).mean().item() / Z.shape[0]


def margin_bound(Z, y, M, gamma=None, K: float | None = None, class_probs=None) -> BoundResult:
    """Theorem 4.4 (multiclass margin bound), probability terms and constants omitted as in "≲":

        error ≲ (A) + (B) + L01,
        (A) = Σ_y p(y) Σ_{y'≠y} R_{N_y}(F)/γ_{y,y'},
        (B) = Σ_y p(y) Σ_{y'≠y} √(log(log₂(4K/γ_{y,y'}))/N_y),
        L01 = Σ_y p(y) Σ_{y'≠y} (1/N_y) Σ_{x∈S_y} 1[(M_y − M_{y'})ᵀf(x) ≤ γ_{y,y'}].

    The Rademacher complexity of the margin class F is not computable for a deep network; the
    estimate used is that of the *linear* class on the learned features,
    R_{N_y}(F) ≈ B·(Σ_{i∈S_y}‖z_i‖²)^{1/2}/N_y with B = max_{y≠y'} ‖M_y − M_{y'}‖
    (:func:`linear_rademacher`). It ignores the feature extractor's own complexity, so (A) is
    optimistic. K, the sup of |(M_y − M_{y'})ᵀf(x)|, is estimated by its maximum over the given
    samples unless passed. ``gamma`` defaults to the pairwise margins of Definition 4.3, which
    requires linearly separable features. (A), (B) and L01 are all invariant to rescaling M or Z.
    ``p(y)`` defaults to the class proportions in ``y``.
    """
    Z, y, M, C = _prepare(Z, y, M)
    m = margins(Z, y, M)
    eye = torch.eye(C, dtype=torch.bool)
    if gamma is None:
        if not m.separable:
            return _not_applicable(
                "error", f"features not linearly separable by M (p_min = {m.p_min:.4g} ≤ 0), so "
                "Definition 4.3's margins do not exist", p_min=m.p_min)
        gamma = m.pairwise
    gamma = torch.as_tensor(gamma, dtype=torch.float64)
    if gamma.shape != (C, C) or not (gamma[~eye] > 0).all():
        return _not_applicable("error", "every margin γ_{y,y'} (y ≠ y') must be positive")
    logits = Z @ M
    gaps = logits.gather(1, y[:, None]) - logits  # ⟨M_{y_i} − M_{y'}, z_i⟩, N×C
    if K is None:
        K = gaps.abs().max().item()
    counts = torch.bincount(y, minlength=C).double()
    p = counts / counts.sum() if class_probs is None else torch.as_tensor(class_probs, dtype=torch.float64)
    diffs = (M[:, :, None] - M[:, None, :]).norm(dim=0)
    B = diffs[~eye].max().item()
    rad = torch.tensor([linear_rademacher(Z[y == c], B) for c in range(C)], dtype=torch.float64)
    inner = torch.log2(4.0 * K / gamma.masked_fill(eye, 1.0))
    if (inner[~eye] <= 1.0).any():
        return _not_applicable("error", "log(log₂(4K/γ)) needs 4K/γ > 2; K is below γ/2 for some pair")
    A = (p * (rad[:, None] / gamma.masked_fill(eye, math.inf)).sum(dim=1)).sum().item()
    Bterm = (p * (torch.log(inner).masked_fill(eye, 0.0).sqrt() / counts.sqrt()[:, None]).sum(dim=1)).sum().item()
    below = torch.zeros(C, C, dtype=torch.float64)
    below.index_add_(0, y, (gaps <= gamma[y]).double())  # row y: counts over S_y per y'
    L01 = (p * (below.masked_fill(eye, 0.0) / counts[:, None]).sum(dim=1)).sum().item()
    terms = {"A": A, "B": Bterm, "L01": L01, "K": K, "rademacher": rad.tolist(), "weight_norm": B}
    return BoundResult("error", A + Bterm + L01, True, "", terms)


def corollary_45(rademacher: float, gamma, K: float, N: int) -> dict:
    """Corollary 4.5 (balanced classes, p(y) = 1/C, N_y = N/C):
    (A) = R_{N/C}(F)/C · Σ_y Σ_{y'≠y} 1/γ_{y,y'},  (B) = (NC)^{−1/2} Σ_y Σ_{y'≠y} √(log(log₂(4K/γ_{y,y'})))."""
    gamma = torch.as_tensor(gamma, dtype=torch.float64)
    C = gamma.shape[0]
    off = gamma[~torch.eye(C, dtype=torch.bool)]
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
    N(ε) ≤ |net| ≤ N(ε/2) for the covering number N of the sampled set."""
    X = torch.as_tensor(points, dtype=torch.float64)
    if eps <= 0:
        raise ValueError(f"the radius ε must be positive, got {eps}")
    uncovered = torch.ones(X.shape[0], dtype=torch.bool)
    centres = []
    while uncovered.any():
        i = int(uncovered.nonzero()[0])
        centres.append(i)
        uncovered &= (X - X[i]).norm(dim=1) > eps
    return torch.tensor(centres, dtype=torch.long)


def covering_numbers(supports, radii) -> torch.Tensor:
    """C×C matrix of greedy covering numbers N(radii[y, y'], M_y) of each class support (a dense
    sample ``supports[y]`` of M_y); the diagonal is 0."""
    C = len(supports)
    radii = torch.as_tensor(radii, dtype=torch.float64)
    out = torch.zeros(C, C, dtype=torch.long)
    for a in range(C):
        for b in range(C):
            if a != b:
                out[a, b] = len(greedy_cover(supports[a], radii[a, b].item()))
    return out


def lipschitz_lower(f, X, pairs: int = 20000, generator=None, scale: float = 1e-2) -> float:
    """Empirical lower estimate of the Lipschitz constant of f: the largest ‖f(a) − f(b)‖/‖a − b‖
    over random pairs of rows of X and over small random perturbations b = a + δ (‖δ‖ ≈ scale)."""
    X = torch.as_tensor(X)
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator or 0)
    i = torch.randint(0, X.shape[0], (pairs,), generator=g)
    j = torch.randint(0, X.shape[0], (pairs,), generator=g)
    a = X[i]
    b = torch.cat([X[j[: pairs // 2]], a[pairs // 2 :] + scale * torch.randn(a[pairs // 2 :].shape, generator=g, dtype=X.dtype)])
    with torch.no_grad():
        num = (f(a) - f(b)).double().norm(dim=1)
    den = (a - b).double().flatten(1).norm(dim=1)
    keep = den > 0
    return (num[keep] / den[keep]).max().item()


def lipschitz_upper(network: nn.Sequential) -> float:
    """Upper bound on the Lipschitz constant of a feed-forward network: the product of the
    spectral norms of its linear layers (ReLU, LeakyReLU, Tanh and Identity are 1-Lipschitz)."""
    bound = 1.0
    for layer in network.modules():
        if isinstance(layer, nn.Linear):
            bound *= torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2).item()
        elif isinstance(layer, (nn.Sequential,)) or layer is network:
            continue
        elif not isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity, nn.Flatten)):
            raise ValueError(f"no Lipschitz bound implemented for layer {type(layer).__name__}")
    return bound


def covering_bound(Z, y, M, supports, lipschitz: float) -> BoundResult:
    """Theorem 4.8: with γ̂_{y,y'} = γ_{y,y'}/(L‖M_y − M_{y'}‖),

        accuracy > 1 − (1/(2N)) Σ_y max_{y'≠y} N(γ̂_{y,y'}, M_y),

    valid when the features are linearly separable (Definition 4.3) and N_y ≥ max_{y'} N(γ̂_{y,y'},
    M_y) for every class (the "S large enough" assumption). ``supports[y]`` is a dense sample of
    the support M_y of class y in input space; covering numbers come from :func:`greedy_cover`.
    When the size assumption fails the bound is returned as not applicable, with the numbers."""
    Z, y, M, C = _prepare(Z, y, M)
    if lipschitz <= 0:
        raise ValueError(f"the Lipschitz constant must be positive, got {lipschitz}")
    m = margins(Z, y, M)
    if not m.separable:
        return _not_applicable("accuracy", f"features not linearly separable (p_min = {m.p_min:.4g} ≤ 0)", p_min=m.p_min)
    radii = m.pairwise_normalized / lipschitz
    cover = covering_numbers(supports, radii.nan_to_num(1.0))
    worst = cover.max(dim=1).values
    counts = torch.bincount(y, minlength=C)
    value = 1.0 - worst.sum().item() / (2.0 * len(y))
    terms = {"radii": radii, "covering": cover, "worst_covering": worst.tolist(), "class_sizes": counts.tolist()}
    short = (counts < worst).nonzero().flatten().tolist()
    if short:
        return _not_applicable(
            "accuracy", f"assumption N_y ≥ max_y' N(γ̂, M_y) fails for classes {short} "
            f"(N_y = {counts.tolist()}, covering numbers {worst.tolist()})", value_if_applied=value, **terms)
    return BoundResult("accuracy", value, True, "", terms)


# --- Theorem 4.10 -----------------------------------------------------------------------------

def hoeffding_H(alpha, d: int, rho, n) -> torch.Tensor:
    """H(α, d, ρ, n) = exp(−nα²/(8d²ρ²)) of Theorem 4.10."""
    alpha, rho, n = (torch.as_tensor(v, dtype=torch.float64) for v in (alpha, rho, n))
    if (rho <= 0).any() or d < 1 or (n <= 0).any():
        raise ValueError("H needs ρ > 0, d ≥ 1 and n > 0")
    return torch.exp(-n * alpha.pow(2) / (8.0 * d**2 * rho.pow(2)))


def hoeffding_bound(gamma_hat_min, rho, d: int, N: int, C: int) -> BoundResult:
    """Theorem 4.10 exactly as printed (balanced data, N/C samples per class):

        Acc ≥ 1 − (2d/C) Σ_y [H(1, d, ρ_y, N/C) + H(min_{y'≠y} γ_{y,y'}/‖M_y − M_{y'}‖ − √(N/C), d, ρ_y, N/C)],

    with ``gamma_hat_min[y]`` = min_{y'≠y} γ_{y,y'}/‖M_y − M_{y'}‖ and ``rho[y]`` the largest feature
    norm of class y. Because H depends on α², the second term cannot tell a positive margin from
    a negative one; the value is returned as printed, with that noted in the terms."""
    g = torch.as_tensor(gamma_hat_min, dtype=torch.float64)
    r = torch.as_tensor(rho, dtype=torch.float64)
    if g.shape != (C,) or r.shape != (C,):
        raise ValueError(f"gamma_hat_min and rho need one entry per class (C = {C})")
    if not torch.isfinite(g).all() or not torch.isfinite(r).all():
        raise ValueError("gamma_hat_min and rho must be finite")
    n = N / C
    h1 = hoeffding_H(1.0, d, r, n)
    h2 = hoeffding_H(g - math.sqrt(n), d, r, n)
    value = 1.0 - 2.0 * d / C * (h1 + h2).sum().item()
    terms = {"H1": h1.tolist(), "H2": h2.tolist(), "alpha2": (g - math.sqrt(n)).tolist(),
             "separable": bool((g > 0).all())}
    return BoundResult("accuracy", value, True, "", terms)
