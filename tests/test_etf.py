"""nclib.etf against closed forms (Definition 3.1, Definition 4.7)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nclib.etf import (
    etf_gram,
    permute,
    random_orthonormal,
    random_permutation,
    random_rotation,
    rotate,
    simplex_etf,
    ufm_structure,
)


@given(C=st.integers(2, 12), extra=st.integers(-1, 6), scale=st.floats(0.1, 10.0), seed=st.integers(0, 10**6))
def test_simplex_etf_gram_matches_closed_form(C, extra, scale, seed):
    d = C + extra
    M = simplex_etf(C, d, scale=scale, generator=seed)
    assert M.shape == (d, C)
    # Gram matrix of Definition 3.1 written out by hand: α² on the diagonal, −α²/(C−1) elsewhere.
    expected = torch.full((C, C), -scale**2 / (C - 1), dtype=torch.float64)
    expected.fill_diagonal_(scale**2)
    assert torch.allclose(M.T @ M, expected, atol=1e-10 * scale**2)
    assert torch.allclose(etf_gram(C, scale), expected, atol=1e-12 * scale**2)


def test_simplex_etf_unit_norms_and_cosines():
    M = simplex_etf(10, 16, generator=0)
    norms = M.norm(dim=0)
    assert torch.allclose(norms, torch.ones(10, dtype=torch.float64), atol=1e-12)
    cos = (M.T @ M)[~torch.eye(10, dtype=torch.bool)]
    assert torch.allclose(cos, torch.full_like(cos, -1 / 9), atol=1e-12)
    # Columns sum to zero: the ETF is centred (I − 11ᵀ/C annihilates 1).
    assert torch.allclose(M.sum(dim=1), torch.zeros(16, dtype=torch.float64), atol=1e-12)


def test_simplex_etf_is_random_but_seeded():
    assert torch.equal(simplex_etf(5, 8, generator=3), simplex_etf(5, 8, generator=3))
    assert not torch.allclose(simplex_etf(5, 8, generator=3), simplex_etf(5, 8, generator=4))


def test_simplex_etf_rejects_small_d_and_points_to_ufm_structure():
    with pytest.raises(ValueError, match="ufm_structure"):
        simplex_etf(10, 5)
    with pytest.raises(ValueError, match="at least two classes"):
        simplex_etf(1, 5)


@given(d=st.integers(1, 12), seed=st.integers(0, 10**6))
def test_random_rotation_is_orthogonal(d, seed):
    R = random_rotation(d, generator=seed)
    assert torch.allclose(R.T @ R, torch.eye(d, dtype=torch.float64), atol=1e-10)


def test_random_rotation_is_haar_distributed():
    # Under Haar measure on O(d), E[R] = 0 and E[R_ij²] = 1/d. QR without the sign correction has a
    # biased diagonal (E[R_ii] > 0), which this test catches.
    g = torch.Generator().manual_seed(0)
    d, n = 3, 4000
    Rs = torch.stack([random_rotation(d, g) for _ in range(n)])
    # Each entry has standard deviation 1/√d, so its mean over n draws has 1/√(dn): allow 5 of them.
    assert Rs.mean(dim=0).abs().max() < 5 / math.sqrt(d * n)
    assert torch.allclose(Rs.pow(2).mean(dim=0), torch.full((d, d), 1 / d, dtype=torch.float64), atol=0.03)


def test_random_orthonormal_rejects_too_many_columns():
    with pytest.raises(ValueError, match="cannot fit"):
        random_orthonormal(3, 4)


@given(C=st.integers(2, 10), seed=st.integers(0, 10**6))
def test_permutation_matrix_and_permute(C, seed):
    P = random_permutation(C, generator=seed)
    assert torch.equal(P.sum(dim=0), torch.ones(C, dtype=torch.float64))
    assert torch.equal(P.sum(dim=1), torch.ones(C, dtype=torch.float64))
    M = simplex_etf(C, C + 1, generator=seed)
    MP = permute(M, P)
    # Column j of M P is column π(j) of M, with π read off P.
    pi = P.argmax(dim=0)
    assert torch.equal(MP, M[:, pi])
    # A permutation-equivalent ETF is still an ETF (Definition 4.7): same Gram matrix.
    assert torch.allclose(MP.T @ MP, etf_gram(C), atol=1e-10)


def test_rotate_keeps_gram_matrix():
    M = simplex_etf(6, 9, generator=1)
    R = random_rotation(9, generator=2)
    RM = rotate(M, R)
    assert torch.allclose(RM, R @ M)
    assert torch.allclose(RM.T @ RM, M.T @ M, atol=1e-12)


def test_permute_and_rotate_reject_non_orthogonal():
    M = simplex_etf(4, 5, generator=0)
    with pytest.raises(ValueError, match="orthogonal"):
        rotate(M, torch.ones(5, 5))
    with pytest.raises(ValueError, match="must be 4×4"):
        permute(M, torch.eye(3))


def test_ufm_structure_recovers_the_simplex_etf_when_it_exists():
    # For C ≤ d + 1 the minimizer of normalized CE on the UFM is a simplex ETF.
    for C, d in [(4, 8), (6, 5)]:
        S = ufm_structure(C, d, generator=0, steps=2000, restarts=1)
        assert S.shape == (d, C)
        assert torch.allclose(S.T @ S, etf_gram(C), atol=1e-6)


def test_ufm_structure_for_c_greater_than_d():
    C, d = 10, 3
    S = ufm_structure(C, d, generator=0, steps=1500, restarts=2)
    assert S.shape == (d, C)
    assert torch.allclose(S.norm(dim=0), torch.ones(C, dtype=torch.float64), atol=1e-12)
    cos = (S.T @ S)[~torch.eye(C, dtype=torch.bool)]
    # C > d + 1: no ETF; but the vectors still spread out (mean cosine −1/(C−1) since they sum
    # to roughly zero, and no two coincide).
    assert cos.max() < 0.95
    assert abs(cos.mean().item() + 1 / (C - 1)) < 0.05
