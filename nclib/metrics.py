"""Neural-collapse metrics (NC1–NC4) and margins, in float64.

NC1–NC4 follow Papyan, Han & Donoho (2020), the source of Section 3 of Gao et al.; the margins are
p_min of Theorem 4.1 and the pairwise margins γ_{y,y'} of Definition 4.3 of Gao et al. (arXiv
2310.08358). Conventions: ``Z`` is N×d, ``y`` int64 in [0, C), ``M`` is d×C, logits = Z @ M.

Scaling (tested in tests/test_metrics.py): with Z → bZ and M → aM (a, b > 0)
  - NC1, every NC2 quantity, NC3 and NC4 are unchanged;
  - p_min and γ_{y,y'} scale by a·b;
  - γ_{y,y'}/‖M_y − M_{y'}‖ scales by b only;
  - the scale-free margin is unchanged.
All of them are unchanged when Z and M rotate together (z → Q z, M → Q M).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclib._checks import check_classifier, check_features_labels

__all__ = [
    "class_means",
    "nc1",
    "nc_from_statistics",
    "ncc_mismatch",
    "nc_metrics",
    "Margins",
    "margins_from_min_gaps",
    "margins",
    "scale_free_margin_of_etf",
]


def _prepare(Z, y, M):
    """Validate (Z, y, M) together: M's shape first (it fixes C), then features and labels."""
    M_t = torch.as_tensor(M)
    Z_t = torch.as_tensor(Z)
    if M_t.ndim != 2 or Z_t.ndim != 2 or M_t.shape[0] != Z_t.shape[1]:
        raise ValueError(
            f"classifier M must be d×C with d = the feature dimension of Z (Z is "
            f"{tuple(Z_t.shape)}, M is {tuple(M_t.shape)}); if you hold the nn.Linear weight "
            "(C×d), pass weight.T"
        )
    Z, y, C = check_features_labels(Z, y, M_t.shape[1])
    return Z, y, check_classifier(M, Z.shape[1], C).to(Z.device), C


def class_means(Z, y, num_classes: int | None = None) -> torch.Tensor:
    """Class means μ_c (rows of a C×d matrix), the z̄_y of NC1 in Section 3."""
    Z, y, C = check_features_labels(Z, y, num_classes)
    counts = torch.bincount(y, minlength=C).to(Z.dtype)
    sums = torch.zeros(C, Z.shape[1], dtype=Z.dtype, device=Z.device).index_add_(0, y, Z)
    return sums / counts[:, None]


def _nc1_from_covariances(sigma_w: torch.Tensor, sigma_b: torch.Tensor, C: int) -> float:
    """NC1 = tr(Σ_W Σ_B⁺)/C (Papyan et al. 2020, Figure 6)."""
    return (torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / C).item()


def _between_class(means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean μ_G (mean of the class means) and Σ_B = Ave_c (μ_c − μ_G)(μ_c − μ_G)ᵀ.

    μ_G is the mean of the class means, which equals the mean of all samples on balanced data and
    keeps Σ_B from being weighted towards large classes otherwise.
    """
    centered = means - means.mean(dim=0, keepdim=True)
    return centered, centered.T @ centered / means.shape[0]


def nc1(Z, y, num_classes: int | None = None) -> float:
    """NC1 variability collapse: tr(Σ_W Σ_B⁺)/C with Σ_W = Ave_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ
    and Σ_B the covariance of the class means (Papyan et al. 2020). Zero at perfect collapse."""
    Z, y, C = check_features_labels(Z, y, num_classes)
    means = class_means(Z, y, C)
    within = Z - means[y]
    sigma_w = within.T @ within / Z.shape[0]
    _, sigma_b = _between_class(means)
    return _nc1_from_covariances(sigma_w, sigma_b, C)


def _geometry(vectors: torch.Tensor) -> dict[str, float]:
    """NC2 quantities of C vectors given as the columns of a d×C matrix.

    equinorm: std/mean of the norms; equiangular: std of the pairwise cosines; max_angle: mean of
    |cos + 1/(C−1)| (zero for a simplex ETF); etf_error: ‖G/‖G‖_F − (I − 11ᵀ/C)/√(C−1)‖_F with G
    the Gram matrix (Zhu et al. 2021).
    """
    C = vectors.shape[1]
    norms = vectors.norm(dim=0)
    unit = vectors / norms.clamp_min(torch.finfo(vectors.dtype).tiny)
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


def nc_from_statistics(
    counts: torch.Tensor, sums: torch.Tensor, second_moment: torch.Tensor, M
) -> dict[str, float]:
    """NC1–NC3 from sufficient statistics: per-class counts (C,), per-class sums (C×d) and the
    total second moment Σ_i z_i z_iᵀ (d×d), so that one pass over the data is enough.

    Σ_W = (Σ_i z_i z_iᵀ − Σ_c N_c μ_c μ_cᵀ)/N. Keys as in :func:`nc_metrics` (without NC4).
    """
    counts = counts.to(torch.float64)
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"class(es) {empty} have no samples; every class needs at least one")
    C, d = sums.shape
    M = check_classifier(M, d, C).to(sums.device)
    means = sums / counts[:, None]
    sigma_w = (second_moment - (means.T * counts) @ means) / counts.sum()
    centered, sigma_b = _between_class(means)
    out = {"nc1": _nc1_from_covariances(sigma_w, sigma_b, C)}
    out.update({f"nc2_{k}_means": v for k, v in _geometry(centered.T).items()})
    out.update({f"nc2_{k}_classifier": v for k, v in _geometry(M).items()})
    # NC3 self-duality (Papyan et al. 2020, Figure 5): ‖M/‖M‖_F − M̄/‖M̄‖_F‖²_F, M̄ the d×C matrix of
    # centred class means. Zero when the classifier and the class means align up to scale.
    out["nc3_self_duality"] = (M / M.norm() - centered.T / centered.norm()).pow(2).sum().item()
    return out


def ncc_mismatch(Z, y, M, means: torch.Tensor | None = None) -> float:
    """NC4: fraction of samples whose classifier decision argmax_c ⟨M_c, z⟩ differs from the
    nearest-class-centre decision argmin_c ‖z − μ_c‖ (class means of the same Z unless given)."""
    Z, y, M, C = _prepare(Z, y, M)
    if means is None:
        means = class_means(Z, y, C)
    # ‖z − μ_c‖² = ‖z‖² − 2⟨z, μ_c⟩ + ‖μ_c‖²; the ‖z‖² term does not change the argmin.
    ncc = (means.pow(2).sum(dim=1)[None, :] - 2.0 * Z @ means.T).argmin(dim=1)
    return (ncc != (Z @ M).argmax(dim=1)).double().mean().item()


def nc_metrics(Z, y, M) -> dict[str, float]:
    """All neural-collapse metrics of Section 3 (Papyan et al. 2020) for features Z, labels y and
    classifier M (d×C):

    - ``nc1``: tr(Σ_W Σ_B⁺)/C of the features;
    - ``nc2_{equinorm,equiangular,max_angle,etf_error}_means``: NC2 of the class means centred at
      their mean; ``..._classifier``: the same of the columns of M (not centred);
    - ``nc3_self_duality``: ‖M/‖M‖_F − M̄/‖M̄‖_F‖²_F between M and the centred class means;
    - ``nc4_ncc_mismatch``: disagreement of the classifier with the nearest-class-centre rule.
    """
    Z, y, M, C = _prepare(Z, y, M)
    counts = torch.bincount(y, minlength=C)
    sums = torch.zeros(C, Z.shape[1], dtype=Z.dtype, device=Z.device).index_add_(0, y, Z)
    out = nc_from_statistics(counts, sums, Z.T @ Z, M)
    # Σ_W from centred features directly: better conditioned than the moment formula.
    out["nc1"] = nc1(Z, y, C)
    out["nc4_ncc_mismatch"] = ncc_mismatch(Z, y, M, sums / counts[:, None].double())
    return out


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


def margins_from_min_gaps(min_gaps: torch.Tensor, M, rms_feature_norm: float) -> Margins:
    """Margins from D[y, y'] = min_{i ∈ S_y} ⟨M_y − M_{y'}, z_i⟩ (C×C; the diagonal is ignored),
    which a single pass over the data can accumulate. γ_{y,y'} = min(D[y,y'], D[y',y])."""
    C = min_gaps.shape[0]
    M = check_classifier(M, M.shape[0], C).to(min_gaps.device)
    eye = torch.eye(C, dtype=torch.bool, device=min_gaps.device)
    gamma = torch.minimum(min_gaps, min_gaps.T).masked_fill(eye, float("nan"))
    diffs = (M[:, :, None] - M[:, None, :]).norm(dim=0)  # ‖M_y − M_{y'}‖
    normalized = gamma / diffs.masked_fill(eye, 1.0)
    p_min = gamma[~eye].min().item()
    scale_free = (normalized[~eye].min() / rms_feature_norm).item() if rms_feature_norm > 0 else float("nan")
    return Margins(p_min, gamma, normalized, scale_free)


def _min_gaps(logits: torch.Tensor, y: torch.Tensor, C: int) -> torch.Tensor:
    """D[y, y'] = min over samples of class y of logit_y − logit_{y'} (C×C, float64)."""
    own = logits.gather(1, y[:, None])
    gaps = own - logits  # row i: ⟨M_{y_i} − M_{y'}, z_i⟩ for every y'
    D = torch.full((C, C), float("inf"), dtype=logits.dtype, device=logits.device)
    return D.scatter_reduce_(0, y[:, None].expand(-1, C), gaps, reduce="amin")


def margins(Z, y, M) -> Margins:
    """p_min (Theorem 4.1), pairwise margins γ_{y,y'} (Definition 4.3), their M-normalized version
    and the scale-free margin; see :class:`Margins`. Note min_{y≠y'} γ_{y,y'} = p_min."""
    Z, y, M, C = _prepare(Z, y, M)
    D = _min_gaps(Z @ M, y, C)
    return margins_from_min_gaps(D, M, Z.pow(2).sum(dim=1).mean().sqrt().item())


def scale_free_margin_of_etf(C: int) -> float:
    """Scale-free margin of collapsed features on a simplex ETF (z = β M_y): √(C/(2(C−1))).

    ⟨M_y − M_{y'}, βM_y⟩ = βα²C/(C−1), ‖M_y − M_{y'}‖ = α√(2C/(C−1)) and ρ̄ = βα.
    """
    return (C / (2.0 * (C - 1))) ** 0.5
