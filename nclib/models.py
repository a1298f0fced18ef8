"""Networks as ``backbone → features (d) → head → logits``, with the head's d×C matrix M exposed.

The paper's classifier is logit = Mᵀ f(x; w) with no bias (Section 4, Notations), so both heads
are bias-free. A fixed head holds a simplex ETF (Section 5.2, following Yang et al. 2022) as a
buffer: it is saved with the model but never receives a gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LinearHead", "FixedHead", "NCModel", "mlp", "small_cnn"]


class LinearHead(nn.Module):
    """A learnable d×C classifier M (logits = z @ M), initialised like ``nn.Linear``."""

    def __init__(self, d: int, C: int):
        super().__init__()
        bound = 1.0 / math.sqrt(d)
        self.M = nn.Parameter(torch.empty(d, C).uniform_(-bound, bound))

    def forward(self, z):
        return z @ self.M

    def matrix(self) -> torch.Tensor:
        return self.M.detach()


class FixedHead(nn.Module):
    """A fixed classifier: logits = s · z @ M with M a non-trainable buffer (e.g. a simplex ETF,
    a permuted one M P or a rotated one R M, Definition 4.7) and an explicit logit scale s."""

    def __init__(self, M: torch.Tensor, logit_scale: float = 1.0):
        super().__init__()
        self.register_buffer("M", torch.as_tensor(M, dtype=torch.float32).clone())
        self.logit_scale = float(logit_scale)

    def forward(self, z):
        return self.logit_scale * (z @ self.M.to(z.dtype))

    def matrix(self) -> torch.Tensor:
        """The effective classifier s·M, so that margins are measured on the logits actually used."""
        return self.logit_scale * self.M


class NCModel(nn.Module):
    """``backbone`` maps inputs to d features; ``head`` maps features to C logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.backbone(x))

    def classifier_matrix(self) -> torch.Tensor:
        """The d×C matrix M with logits = features @ M."""
        return self.head.matrix()


def mlp(in_shape, d: int, width: int = 256, depth: int = 2) -> nn.Module:
    """A ReLU MLP whose last layer is linear, so features can take either sign (needed to align
    with a fixed ETF head, whose vectors have negative entries)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(in_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.BatchNorm1d(width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, d))
    return nn.Sequential(*layers)


def small_cnn(in_channels: int, d: int, width: int = 32) -> nn.Module:
    """A small CNN for CPU-scale runs: two conv–BN–ReLU–pool stages, global average pooling and a
    linear projection to d features (no ReLU after it, as in :func:`mlp`)."""
    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *stage(in_channels, width),
        *stage(width, 2 * width),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, d),
    )
