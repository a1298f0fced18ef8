"""Synthetic data with known geometry, for the theorems whose quantities need it (covering
numbers of class supports in Theorem 4.8, feature norms in Theorem 4.10)."""

from __future__ import annotations

import math

import torch

from nclib.data import TensorDataset

__all__ = ["spiral_arm", "spiral_dataset", "gaussian_mixture", "ball_mixture"]


def spiral_arm(c: int, C: int, t: torch.Tensor) -> torch.Tensor:
    """Points of arm c of a C-armed spiral at parameters t ∈ [0, 1]: radius 0.2 + t, angle
    2πc/C + 1.5πt. Each class support M_c is this one-dimensional curve in R²."""
    angle = 2 * math.pi * c / C + 1.5 * math.pi * t
    r = 0.2 + t
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1).double()


def spiral_dataset(C: int, per_class: int, generator=None) -> TensorDataset:
    """``per_class`` points drawn uniformly in t on each arm (the data distribution whose supports
    are the arms), in random order, labels = arm index."""
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator or 0)
    xs, ys = [], []
    for c in range(C):
        xs.append(spiral_arm(c, C, torch.rand(per_class, generator=g, dtype=torch.float64)))
        ys.append(torch.full((per_class,), c, dtype=torch.long))
    x, y = torch.cat(xs).float(), torch.cat(ys)
    order = torch.randperm(len(y), generator=g)
    return TensorDataset(x[order], y[order], [f"arm {c}" for c in range(C)])


def gaussian_mixture(C: int, d: int, per_class: int, separation: float = 3.0, noise: float = 1.0,
                     generator=None) -> TensorDataset:
    """Isotropic Gaussian classes in R^d with means at ``separation`` times the vertices of a unit
    simplex ETF (needs d ≥ C − 1) and standard deviation ``noise``."""
    from nclib.etf import simplex_etf

    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator or 0)
    means = separation * simplex_etf(C, d, generator=g).T
    y = torch.arange(C).repeat_interleave(per_class)
    x = means[y] + noise * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    order = torch.randperm(len(y), generator=g)
    return TensorDataset(x[order].float(), y[order], [f"class {c}" for c in range(C)])


def ball_mixture(centres, per_class: int, radius: float = 0.5, generator=None) -> TensorDataset:
    """Class y uniform in the ball of radius ``radius`` around column y of ``centres`` (d×C, e.g. a
    scaled simplex ETF). The support is bounded, so for the identity feature map the largest
    feature norm of Theorem 4.10 is known exactly: ρ_y = ‖centres[:, y]‖ + radius."""
    centres = torch.as_tensor(centres, dtype=torch.float64)
    if centres.ndim != 2 or per_class < 1 or radius < 0:
        raise ValueError(f"need d×C centres, per_class ≥ 1 and radius ≥ 0; got shape "
                         f"{tuple(centres.shape)}, per_class={per_class}, radius={radius}")
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator or 0)
    d, C = centres.shape
    y = torch.arange(C).repeat_interleave(per_class)
    direction = torch.randn(len(y), d, generator=g, dtype=torch.float64)
    direction /= direction.norm(dim=1, keepdim=True)
    # radius · U^(1/d) makes the point uniform in the ball, not crowded at the centre
    r = radius * torch.rand(len(y), 1, generator=g, dtype=torch.float64).pow(1.0 / d)
    x = centres.T[y] + r * direction
    order = torch.randperm(len(y), generator=g)
    return TensorDataset(x[order], y[order], [f"class {c}" for c in range(C)])
