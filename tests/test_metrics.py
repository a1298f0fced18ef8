"""nclib.metrics against brute-force loops, closed forms and invariances."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nclib.etf import random_rotation, simplex_etf
from nclib.metrics import margins, nc1, nc_metrics, ncc_mismatch, scale_free_margin_of_etf


def random_problem(seed, N_per=6, C=4, d=5, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(N_per)
    centres = 3.0 * torch.randn(C, d, generator=g, dtype=torch.float64)
    Z = centres[y] + spread * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    return Z, y, M


# --- brute force ------------------------------------------------------------------------------

def nc1_brute_force(Z, y, C):
    Z, y = Z.numpy(), y.numpy()
    N, d = Z.shape
    means = [Z[y == c].mean(axis=0) for c in range(C)]
    mu_g = sum(means) / C
    sw = np.zeros((d, d))
    for i in range(N):
        v = Z[i] - means[y[i]]
        sw += np.outer(v, v)
    sw /= N
    sb = sum(np.outer(m - mu_g, m - mu_g) for m in means) / C
    return np.trace(sw @ np.linalg.pinv(sb)) / C


def margins_brute_force(Z, y, M):
    Z, y, M = Z.numpy(), y.numpy(), M.numpy()
    C = M.shape[1]
    p_min = min(
        (M[:, y[i]] - M[:, c]) @ Z[i] for i in range(len(y)) for c in range(C) if c != y[i]
    )
    gamma = np.full((C, C), np.nan)
    for a, b in itertools.permutations(range(C), 2):
        w = M[:, a] - M[:, b]
        # Definition 4.3: the largest γ with wᵀz ≥ γ on class a and wᵀz ≤ −γ on class b.
        gamma[a, b] = min(min(w @ Z[i] for i in range(len(y)) if y[i] == a),
                          min(-(w @ Z[i]) for i in range(len(y)) if y[i] == b))
    return p_min, gamma


@pytest.mark.parametrize("seed", range(5))
def test_nc1_matches_brute_force(seed):
    Z, y, M = random_problem(seed)
    assert nc1(Z, y) == pytest.approx(nc1_brute_force(Z, y, 4), rel=1e-9)
    assert nc_metrics(Z, y, M)["nc1"] == pytest.approx(nc1_brute_force(Z, y, 4), rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_margins_match_brute_force(seed):
    Z, y, M = random_problem(seed, spread=0.3)
    m = margins(Z, y, M)
    p_min, gamma = margins_brute_force(Z, y, M)
    assert m.p_min == pytest.approx(p_min, rel=1e-12)
    assert np.allclose(m.pairwise.numpy(), gamma, equal_nan=True, rtol=1e-12)
    diffs = np.linalg.norm(M.numpy()[:, :, None] - M.numpy()[:, None, :], axis=0)
    np.fill_diagonal(diffs, 1.0)
    assert np.allclose(m.pairwise_normalized.numpy(), gamma / diffs, equal_nan=True, rtol=1e-12)
    # Remark 4.6: every γ_{y,y'} ≥ p_min, with equality for the closest pair.
    assert np.nanmin(gamma) == pytest.approx(p_min, rel=1e-12)
    rho = math.sqrt((Z.numpy() ** 2).sum(axis=1).mean())
    assert m.scale_free == pytest.approx(np.nanmin(gamma / diffs) / rho, rel=1e-12)


def test_collapsed_features_on_an_etf():
    # Perfect collapse on a simplex ETF: NC1 = NC3 = NC4 = 0, NC2 = 0 for means and classifier,
    # and the margins take their closed-form values.
    C, d, alpha, beta = 5, 7, 2.0, 3.0
    M = simplex_etf(C, d, scale=alpha, generator=0)
    y = torch.arange(C).repeat(4)
    Z = beta * M.T[y]
    metrics = nc_metrics(Z, y, M)
    assert metrics["nc1"] == pytest.approx(0.0, abs=1e-20)
    for key, value in metrics.items():
        if key != "nc1":
            assert value == pytest.approx(0.0, abs=1e-9), key
    m = margins(Z, y, M)
    assert m.p_min == pytest.approx(beta * alpha**2 * C / (C - 1))
    assert m.scale_free == pytest.approx(scale_free_margin_of_etf(C))
    assert m.separable


def test_ncc_mismatch_counts_disagreements():
    # Two classes on a line, classifier that puts everything in class 0: the nearest-centre rule
    # gets all right, the classifier is wrong on class 1, so NC4 = 1/2.
    Z = torch.tensor([[-1.0], [-1.2], [1.0], [1.1]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    M = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    M[0, 0] = 1e-3  # logits: class 0 wins for positive z, loses for negative: all decisions flip
    # ncc_mismatch, not nc_metrics: M's zero column has no direction, so NC2 of M is undefined.
    assert ncc_mismatch(Z, y, M) == pytest.approx(1.0)
    assert ncc_mismatch(Z, y, -M) == pytest.approx(0.0)
    M[0, 1] = -1e-3  # both columns non-zero: nc_metrics agrees
    assert nc_metrics(Z, y, -M)["nc4_ncc_mismatch"] == pytest.approx(0.0)
    assert nc_metrics(Z, y, M)["nc4_ncc_mismatch"] == pytest.approx(1.0)


# --- invariances (hypothesis) -----------------------------------------------------------------

seeds = st.integers(0, 10**6)


@given(seed=seeds)
def test_rotation_invariance(seed):
    Z, y, M = random_problem(seed, spread=0.5)
    Q = random_rotation(Z.shape[1], generator=seed + 1)
    # Rotate features (z → Q z) and classifier (M → Q M) together: logits are unchanged.
    a, b = nc_metrics(Z, y, M), nc_metrics(Z @ Q.T, y, Q @ M)
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
    ma, mb = margins(Z, y, M), margins(Z @ Q.T, y, Q @ M)
    assert mb.p_min == pytest.approx(ma.p_min, rel=1e-9, abs=1e-12)
    assert torch.allclose(mb.pairwise, ma.pairwise, equal_nan=True, rtol=1e-9, atol=1e-12)
    assert mb.scale_free == pytest.approx(ma.scale_free, rel=1e-9, abs=1e-12)


@given(seed=seeds, perm_seed=seeds)
def test_pairwise_margins_are_permutation_equivariant(seed, perm_seed):
    Z, y, M = random_problem(seed, spread=0.5)
    C = M.shape[1]
    pi = torch.randperm(C, generator=torch.Generator().manual_seed(perm_seed))
    # Relabel class c as π(c) and move its classifier column along: γ'[π(a), π(b)] = γ[a, b].
    M_perm = torch.empty_like(M)
    M_perm[:, pi] = M
    a, b = margins(Z, y, M), margins(Z, pi[y], M_perm)
    assert torch.allclose(b.pairwise[pi][:, pi], a.pairwise, equal_nan=True, rtol=1e-12)
    assert b.p_min == pytest.approx(a.p_min, rel=1e-12)
    assert nc_metrics(Z, pi[y], M_perm)["nc1"] == pytest.approx(nc_metrics(Z, y, M)["nc1"], rel=1e-9)


@given(seed=seeds, a=st.floats(0.01, 100.0), b=st.floats(0.01, 100.0))
def test_scaling_laws(seed, a, b):
    """Documented in nclib.metrics: NC metrics scale-invariant; p_min, γ bilinear (a·b);
    γ/‖ΔM‖ linear in b; scale-free margin invariant."""
    Z, y, M = random_problem(seed, spread=0.5)
    base, scaled = nc_metrics(Z, y, M), nc_metrics(b * Z, y, a * M)
    for key in base:
        assert scaled[key] == pytest.approx(base[key], rel=1e-6, abs=1e-9), key
    m0, m1 = margins(Z, y, M), margins(b * Z, y, a * M)
    assert m1.p_min == pytest.approx(a * b * m0.p_min, rel=1e-9)
    assert torch.allclose(m1.pairwise, a * b * m0.pairwise, equal_nan=True, rtol=1e-9)
    assert torch.allclose(m1.pairwise_normalized, b * m0.pairwise_normalized, equal_nan=True, rtol=1e-9)
    assert m1.scale_free == pytest.approx(m0.scale_free, rel=1e-9)


@given(seed=seeds, C=st.integers(2, 6), d=st.integers(1, 8), n_per=st.integers(1, 5))
def test_nc_metrics_match_brute_force_for_any_shape(seed, C, d, n_per):
    """NC1 through the SVD of the centred means (never forming Σ_W) equals tr(Σ_W Σ_B⁺)/C with
    numpy's pinv, also when d < C − 1 (Σ_B of full rank d) and with one sample per class; NC4
    equals the nearest-centre rule with explicit distances."""
    Z, y, M = random_problem(seed, N_per=n_per + 1, C=C, d=d)
    got = nc_metrics(Z, y, M)
    assert got["nc1"] == pytest.approx(nc1_brute_force(Z, y, C), rel=1e-8, abs=1e-14)
    means = torch.stack([Z[y == c].mean(0) for c in range(C)])
    ncc = torch.cdist(Z, means).argmin(1)
    assert got["nc4_ncc_mismatch"] == pytest.approx((ncc != (Z @ M).argmax(1)).double().mean().item())


# --- bad input --------------------------------------------------------------------------------

def test_bad_input_errors():
    Z, y, M = random_problem(0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        Z2 = Z.clone(); Z2[3, 1] = float("nan"); nc_metrics(Z2, y, M)
    with pytest.raises(ValueError, match="NaN or infinite"):
        Z2 = Z.clone(); Z2[0, 0] = float("inf"); margins(Z2, y, M)
    with pytest.raises(ValueError, match="no samples"):
        nc_metrics(Z[y != 2], y[y != 2], M)
    with pytest.raises(ValueError, match="out of range"):
        y2 = y.clone(); y2[0] = 7; margins(Z, y2, M)
    with pytest.raises(ValueError, match="out of range"):
        y2 = y.clone(); y2[0] = -1; margins(Z, y2, M)
    with pytest.raises(ValueError, match="mismatched shapes"):
        nc_metrics(Z[:-1], y, M)
    with pytest.raises(ValueError, match="d×C"):
        nc_metrics(Z, y, M.T)
    with pytest.raises(ValueError, match="at least two classes"):
        nc1(Z[y == 0], y[y == 0])
