"""Simplex ETFs and the transformations that make two of them equivalent.

References: Definition 3.1 (simplex ETF, after Papyan et al. 2020) and Definition 4.7 (permutation-
and rotation-equivalent ETFs) of Gao et al. (arXiv 2310.08358). All matrices are float64 torch
tensors; ``M`` is d×C with the class vectors as columns. Every random draw takes ``generator`` (a
``torch.Generator``, an integer seed, or None for seed 0: nclib's one policy, the same in every
nclib function).
"""

from __future__ import annotations

import math

import torch

from nclib._checks import as_float64, as_generator, check_int, check_matrix, check_orthogonal, check_real

__all__ = [
    "simplex_etf",
    "etf_gram",
    "random_orthonormal",
    "random_rotation",
    "random_permutation",
    "permute",
    "rotate",
    "ufm_structure",
    "describe_structure",
]


def _classes(C) -> int:
    C = check_int(C, "C (number of classes)")
    if C < 2:
        raise ValueError(f"a simplex ETF needs at least two classes, got C = {C}")
    return C


def etf_gram(C: int, scale: float = 1.0) -> torch.Tensor:
    """Gram matrix MᵀM of a simplex ETF (Definition 3.1) in closed form.

    MᵀM = α² · C/(C−1) · (I − 11ᵀ/C): norms α (``scale`` > 0), pairwise cosines −1/(C−1).
    """
    C = _classes(C)
    scale = check_real(scale, "scale (the norm α of the class vectors)", positive=True)
    eye = torch.eye(C, dtype=torch.float64)
    return scale**2 * C / (C - 1) * (eye - torch.ones(C, C, dtype=torch.float64) / C)


def random_orthonormal(d: int, k: int, generator=None) -> torch.Tensor:
    """A Haar-distributed d×k matrix with orthonormal columns (k ≤ d).

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q, which makes the law of Q
    exactly Haar (Mezzadri 2007); without the sign correction QR is biased.
    """
    d = check_int(d, "d (dimension)", minimum=1)
    k = check_int(k, "k (number of columns)", minimum=1)
    if k > d:
        raise ValueError(f"cannot fit {k} orthonormal columns in dimension d = {d}")
    g = as_generator(generator)
    A = torch.randn(d, k, generator=g, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    signs = torch.sign(torch.diagonal(R))
    signs[signs == 0] = 1.0
    return Q * signs


def random_rotation(d: int, generator=None) -> torch.Tensor:
    """A Haar-random d×d orthogonal matrix R (Definition 4.7, rotation equivalence)."""
    d = check_int(d, "d (dimension)", minimum=1)
    return random_orthonormal(d, d, generator)


def simplex_etf(C: int, d: int, *, scale: float = 1.0, generator=None) -> torch.Tensor:
    """A d×C simplex ETF (Definition 3.1): M* = α R √(C/(C−1)) (I − 11ᵀ/C).

    The paper draws R ∈ R^{d×C} with orthonormal columns (d ≥ C). Since I − 11ᵀ/C = U Uᵀ with U a
    C×(C−1) orthonormal basis of 1^⊥, M* = α √(C/(C−1)) (R U) Uᵀ and only the d×(C−1) orthonormal
    factor R U matters. Drawing that factor Haar-randomly gives the same law as the paper's R when
    d ≥ C, and extends the construction to d = C − 1, the smallest dimension that holds C
    equiangular vectors. Columns have norm ``scale`` (> 0) and pairwise cosine −1/(C−1).
    """
    C = _classes(C)
    d = check_int(d, "d (feature dimension)", minimum=1)
    scale = check_real(scale, "scale (the norm α of the class vectors)", positive=True)
    if d < C - 1:
        raise ValueError(
            f"a simplex ETF of C = {C} classes needs feature dimension d ≥ C − 1 = {C - 1}, got "
            f"d = {d}; for C > d + 1 use nclib.etf.ufm_structure(C, d), the structure obtained by "
            "minimizing cross-entropy on the unconstrained feature model (Section 5.2, C > d case)"
        )
    centering = torch.eye(C, dtype=torch.float64) - torch.ones(C, C, dtype=torch.float64) / C
    # An orthonormal basis U of 1^⊥: the eigenvectors of the centering matrix with eigenvalue 1.
    _, vecs = torch.linalg.eigh(centering)
    U = vecs[:, 1:]  # eigenvalue 0 (the all-ones direction) comes first
    RU = random_orthonormal(d, C - 1, generator)
    return scale * math.sqrt(C / (C - 1)) * RU @ U.T


def random_permutation(C: int, generator=None) -> torch.Tensor:
    """A uniformly random C×C permutation matrix P (Definition 4.7, permutation equivalence).

    ``M @ P`` reorders the columns: column j of M P is column π(j) of M, where P[π(j), j] = 1.
    """
    C = check_int(C, "C (number of classes)", minimum=1)
    g = as_generator(generator)
    perm = torch.randperm(C, generator=g)
    P = torch.zeros(C, C, dtype=torch.float64)
    P[perm, torch.arange(C)] = 1.0
    return P


def permute(M, P) -> torch.Tensor:
    """Permutation-equivalent classifier M P (Definition 4.7) for a C×C permutation matrix P."""
    M = check_matrix(M, "classifier M (d×C)")
    P = as_float64(P, "permutation matrix P")
    if tuple(P.shape) == (M.shape[1], M.shape[1]) and not torch.all((P == 0) | (P == 1)):
        raise ValueError("permutation matrix P must contain only 0s and 1s (one 1 per row and "
                         "column); draw one with nclib.etf.random_permutation")
    P = check_orthogonal(P, M.shape[1], "permutation matrix P")
    return M @ P.to(M.device)


def rotate(M, R) -> torch.Tensor:
    """Rotation-equivalent classifier R M (Definition 4.7) for an orthogonal d×d matrix R (QᵀQ = I
    to 1e-8; NaN or infinite entries are refused, not silently passed)."""
    M = check_matrix(M, "classifier M (d×C)")
    R = check_orthogonal(R, M.shape[0], "rotation R")
    return R.to(M.device) @ M


def ufm_structure(
    C: int,
    d: int,
    *,
    logit_scale: float = 3.0,
    steps: int = 3000,
    lr: float = 1.0,
    restarts: int = 3,
    generator=None,
) -> torch.Tensor:
    """The classifier structure for C > d (Section 5.2): minimize cross-entropy (equation (1)) on the
    unconstrained feature model with unit-norm class vectors and features.

    At a minimum of equation (1) under norm constraints the features of a class coincide (NC1), so
    the problem reduces to one feature h_y per class: minimize Σ_y CE(s · Hᵀ M, y) over unit-norm
    columns M_y, h_y ∈ S^{d−1} with a fixed logit scale s (the constraint keeps the minimum
    finite). Projected gradient descent: a gradient step, then each column back onto the sphere.
    A moderate s matters: with s ≈ 10 the loss saturates near zero long before the geometry
    settles. For C ≤ d + 1 the minimizer is a simplex ETF with h_y = M_y, which the tests check;
    for C > d it is the structure the paper uses where no ETF exists. Returns the best of
    ``restarts`` runs as a d×C matrix with unit-norm columns. Raises ``FloatingPointError`` if every
    run diverges (a learning rate far too large).
    """
    C = check_int(C, "C (number of classes)", minimum=2)
    d = check_int(d, "d (feature dimension)", minimum=1)
    logit_scale = check_real(logit_scale, "logit_scale", positive=True)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_real(lr, "lr", positive=True)
    restarts = check_int(restarts, "restarts", minimum=1)
    g = as_generator(generator)
    target = torch.arange(C)
    best, best_loss = None, math.inf
    for _ in range(restarts):
        M = torch.randn(d, C, generator=g, dtype=torch.float64)
        H = torch.randn(d, C, generator=g, dtype=torch.float64)
        M, H = M / M.norm(dim=0), H / H.norm(dim=0)
        for _ in range(steps):
            M.requires_grad_(True)
            H.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(logit_scale * H.T @ M, target)
            gM, gH = torch.autograd.grad(loss, [M, H])
            with torch.no_grad():
                M, H = M - lr * gM, H - lr * gH
                M, H = M / M.norm(dim=0), H / H.norm(dim=0)
        with torch.no_grad():
            final = torch.nn.functional.cross_entropy(logit_scale * H.T @ M, target).item()
        if final < best_loss and torch.isfinite(M).all():
            best, best_loss = M.clone(), final
    if best is None:
        raise FloatingPointError(f"ufm_structure diverged in all {restarts} restart(s) (loss NaN or "
                                 f"infinite with lr = {lr}): lower lr or logit_scale")
    return best


def describe_structure(M, tol: float = 0.01) -> str:
    """The shape of a d×C classifier in words, from the cosines of its columns: the number of
    antipodal class pairs (cosine −1) and whether every other pair is orthogonal (a
    cross-polytope) or the range of their cosines."""
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
