"""Per-class statistics and the CDNV (Galanti et al. 2022) against a plain numpy computation, and
their invariances under a common offset, a rotation and a common scale (hypothesis)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nclib.etf import random_rotation
from nclib.metrics import UndefinedMetricError, class_statistics


def _data(seed, C=4, d=5, n=12, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n)
    Z = (3 * torch.randn(C, d, generator=g, dtype=torch.float64))[y] + spread * torch.randn(C * n, d, generator=g,
                                                                                            dtype=torch.float64)
    return Z, y


def _numpy_reference(Z, y, C):
    Z, y = Z.numpy(), y.numpy()
    mu = np.stack([Z[y == c].mean(0) for c in range(C)])
    var = np.array([((Z[y == c] - mu[c]) ** 2).sum(1).mean() for c in range(C)])
    cdnv = np.full((C, C), np.nan)
    for a in range(C):
        for b in range(C):
            if a != b:
                cdnv[a, b] = (var[a] + var[b]) / (2 * ((mu[a] - mu[b]) ** 2).sum())
    return var, np.linalg.norm(mu - mu.mean(0), axis=1), cdnv


def test_against_numpy():
    Z, y = _data(0)
    s = class_statistics(Z, y)
    var, norms, cdnv = _numpy_reference(Z, y, 4)
    np.testing.assert_allclose(s.within_variance.numpy(), var, rtol=1e-12)
    np.testing.assert_allclose(s.mean_norm.numpy(), norms, rtol=1e-12)
    np.testing.assert_allclose(s.cdnv.numpy(), cdnv, rtol=1e-12)
    assert s.counts.tolist() == [12.0] * 4
    assert s.mean_cdnv() == pytest.approx(np.nanmean(cdnv))


def test_hand_worked_two_classes():
    """Class 0 at ±1 around 0, class 1 at ±1 around 4 (1-D): Var = 1 each, distance² 16 → 2/32."""
    Z = torch.tensor([[-1.0], [1.0], [3.0], [5.0]])
    s = class_statistics(Z, torch.tensor([0, 0, 1, 1]))
    assert s.cdnv[0, 1].item() == pytest.approx(2 / 32) and s.within_variance.tolist() == [1.0, 1.0]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), offset=st.floats(-1e4, 1e4), scale=st.floats(1e-3, 1e3))
def test_cdnv_is_invariant_to_offset_rotation_and_scale(seed, offset, scale):
    Z, y = _data(seed)
    R = random_rotation(5, generator=seed)
    base = class_statistics(Z, y)
    moved = class_statistics(scale * (Z @ R.T) + offset, y)
    np.testing.assert_allclose(moved.cdnv.numpy(), base.cdnv.numpy(), rtol=1e-6)
    np.testing.assert_allclose(moved.within_variance.numpy(), scale**2 * base.within_variance.numpy(), rtol=1e-6)


def test_coinciding_means_are_named():
    Z = torch.tensor([[1.0], [-1.0], [2.0], [-2.0]])
    with pytest.raises(UndefinedMetricError, match="classes 0 and 1"):
        class_statistics(Z, torch.tensor([0, 0, 1, 1]))
