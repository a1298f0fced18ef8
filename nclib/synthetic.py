"""Synthetic data with known geometry, for the theorems whose quantities need it (covering
numbers of class supports in Theorem 4.8, feature norms in Theorem 4.10)."""

from __future__ import annotations

import math

import torch

from nclib._checks import as_float64, as_generator, check_int, check_matrix, check_real
from nclib.data import TensorDataset
from nclib.etf import simplex_etf

__all__ = ["spiral_arm", "spiral_dataset", "gaussian_mixture", "ball_mixture"]


def spiral_arm(c: int, C: int, t: torch.Tensor) -> torch.Tensor:
    """Points of arm c of a C-armed spiral at parameters t ∈ [0, 1]: radius 0.2 + t, angle
    2πc/C + 1.5πt. Each class support M_c is this one-dimensional curve in R²."""
    C = check_int(C, "C (number of arms)", minimum=1)
    c = check_int(c, "c (arm index)", minimum=0)
    if c >= C:
        raise ValueError(f"arm index c must be in [0, C) = [0, {C}), got {c}")
    t = as_float64(t, "t")
    if t.ndim != 1 or not torch.isfinite(t).all() or (t.numel() and (t.min() < 0 or t.max() > 1)):
        raise ValueError(f"t must be a 1-D tensor of finite parameters in [0, 1], got shape "
                         f"{tuple(t.shape)}" + (f", range [{t.min().item():.3g}, {t.max().item():.3g}]"
                                                 if t.ndim == 1 and t.numel() else ""))
    angle = 2 * math.pi * c / C + 1.5 * math.pi * t
    r = 0.2 + t
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1).double()


def spiral_dataset(C: int, per_class: int, generator=None) -> TensorDataset:
    """``per_class`` points drawn uniformly in t on each arm (the data distribution whose supports
    are the arms), in random order, labels = arm index. ``generator``: a generator or seed (default 0)."""
    C = check_int(C, "C (number of classes)", minimum=2)
    per_class = check_int(per_class, "per_class", minimum=1)
    g = as_generator(generator)
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
    simplex ETF (Definition 3.1; needs d ≥ C − 1) and standard deviation ``noise``."""

    C = check_int(C, "C (number of classes)", minimum=2)
    d = check_int(d, "d (dimension)", minimum=1)
    per_class = check_int(per_class, "per_class", minimum=1)
    separation = check_real(separation, "separation", minimum=0.0)
    noise = check_real(noise, "noise", minimum=0.0)
    g = as_generator(generator)
    means = separation * simplex_etf(C, d, generator=g).T
    y = torch.arange(C).repeat_interleave(per_class)
    x = means[y] + noise * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    order = torch.randperm(len(y), generator=g)
    return TensorDataset(x[order].float(), y[order], [f"class {c}" for c in range(C)])


def ball_mixture(centres, per_class: int, radius: float = 0.5, generator=None) -> TensorDataset:
    """Class y uniform in the ball of radius ``radius`` around column y of ``centres`` (d×C, e.g. a
    scaled simplex ETF). The support is bounded, so for the identity feature map the largest
    feature norm of Theorem 4.10 is known exactly: ρ_y = ‖centres[:, y]‖ + radius."""
    centres = as_float64(centres, "centres")
    if centres.ndim != 2 or 0 in centres.shape:
        raise ValueError(f"centres must be a non-empty d×C matrix (one column per class), got shape "
                         f"{tuple(centres.shape)}")
    check_matrix(centres, "centres (d×C)")
    per_class = check_int(per_class, "per_class", minimum=1)
    radius = check_real(radius, "radius", minimum=0.0)
    g = as_generator(generator)
    d, C = centres.shape
    y = torch.arange(C).repeat_interleave(per_class)
    direction = torch.randn(len(y), d, generator=g, dtype=torch.float64)
    direction /= direction.norm(dim=1, keepdim=True)
    # radius · U^(1/d) makes the point uniform in the ball, not crowded at the centre
    r = radius * torch.rand(len(y), 1, generator=g, dtype=torch.float64).pow(1.0 / d)
    x = centres.T[y] + r * direction
    order = torch.randperm(len(y), generator=g)
    return TensorDataset(x[order], y[order], [f"class {c}" for c in range(C)])
