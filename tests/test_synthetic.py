"""nclib.synthetic: the supports and norms the chapters rely on are the ones the generators draw."""

import math

import pytest
import torch

from nclib.etf import simplex_etf
from nclib.synthetic import ball_mixture, gaussian_mixture, spiral_arm, spiral_dataset


def test_spiral_points_lie_on_their_arm():
    data = spiral_dataset(4, 50, generator=0)
    assert torch.bincount(data.y).tolist() == [50] * 4
    dense = [spiral_arm(c, 4, torch.linspace(0, 1, 20001, dtype=torch.float64)) for c in range(4)]
    for x, c in zip(data.x.double(), data.y.tolist()):
        distances = [(arm - x).norm(dim=1).min().item() for arm in dense]
        # on its own arm (up to float32 storage and the grid), and off every other arm
        assert distances[c] < 1e-3 and min(d for k, d in enumerate(distances) if k != c) > 0.05


def test_spiral_arm_endpoints_by_hand():
    p = spiral_arm(1, 4, torch.tensor([0.0, 1.0], dtype=torch.float64))
    # t = 0: radius 0.2 at angle π/2; t = 1: radius 1.2 at angle π/2 + 1.5π = 2π.
    assert torch.allclose(p, torch.tensor([[0.0, 0.2], [1.2, 0.0]], dtype=torch.float64), atol=1e-12)


def test_ball_mixture_support_and_exact_norm_bound():
    centres = 2.0 * simplex_etf(5, 6, generator=1)
    data = ball_mixture(centres, 4000, radius=0.7, generator=2)
    assert torch.bincount(data.y).tolist() == [4000] * 5
    offsets = data.x - centres.T[data.y]
    assert offsets.norm(dim=1).max().item() <= 0.7 + 1e-12
    # ρ_y = ‖centre‖ + radius is attained in the limit: the largest norm gets close to it
    norms = data.x.norm(dim=1)
    assert norms.max().item() <= 2.0 + 0.7 + 1e-12 and norms.max().item() > 2.0 + 0.6
    # uniform in the ball: P(‖offset‖ ≤ r/2) = 2^−d
    inner = (offsets.norm(dim=1) <= 0.35).double().mean().item()
    assert inner == pytest.approx(2.0**-6, abs=0.01)
    for c in range(5):
        assert torch.allclose(data.x[data.y == c].mean(0), centres[:, c], atol=0.05)


def test_ball_mixture_rejects_bad_input():
    with pytest.raises(ValueError, match="radius"):
        ball_mixture(torch.eye(3), 10, radius=-1.0)
    with pytest.raises(ValueError, match="d×C"):
        ball_mixture(torch.ones(3), 10)


def test_gaussian_mixture_means_and_spread():
    data = gaussian_mixture(3, 4, 5000, separation=3.0, noise=0.5, generator=0)
    means = torch.stack([data.x[data.y == c].double().mean(0) for c in range(3)])
    # class means sit on a scaled simplex ETF: equal norms 3, pairwise cosine −1/2
    assert torch.allclose(means.norm(dim=1), torch.full((3,), 3.0, dtype=torch.float64), atol=0.05)
    cos = (means @ means.T) / 9.0
    assert cos[0, 1].item() == pytest.approx(-0.5, abs=0.02)
    assert data.x[data.y == 0].double().std(0).mean().item() == pytest.approx(0.5, abs=0.02)
    assert math.isclose(len(data), 15000)
