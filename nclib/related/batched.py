"""Batched training for chapter 9: many small runs as one (seeds × weight decays), with the same
arithmetic per run.

The runs of chapter 9 are tiny full-batch problems where a step costs more in Python and autograd
bookkeeping than in arithmetic. Stacking R runs along a leading axis turns R small matrix products
into one batched product per layer; the tests check each run against its one-model version. The
two batched trainers (:func:`nclib.related.jacot.train_linear_tails` for Jacot et al. 2024,
:func:`nclib.related.wu_mondelli.train_mean_fields` for Wu & Mondelli 2025) share the pieces here.
"""

from __future__ import annotations

import torch

__all__ = ["stack_parameters", "heavy_ball_step"]


def stack_parameters(tensors) -> torch.Tensor:
    """The same parameter of R models stacked along a new leading axis: a detached copy (the
    models are not touched until the trainer writes the result back) that requires grad."""
    return torch.stack([t.detach() for t in tensors]).clone().requires_grad_(True)


def heavy_ball_step(params, bufs, lr, weight_decay, momentum):
    """One step of ``torch.optim.SGD(lr, momentum, weight_decay)`` on stacked parameters, with a
    weight decay per run (``weight_decay``: R values): g ← ∇ + λ_r θ, b ← β b + g (b = g at the
    first step), θ ← θ − η b."""
    with torch.no_grad():
        for i, p in enumerate(params):
            lam = weight_decay.reshape(-1, *([1] * (p.ndim - 1))).to(p.dtype)
            g = p.grad + lam * p
            if momentum:
                bufs[i] = g.clone() if bufs[i] is None else bufs[i].mul_(momentum).add_(g)
                g = bufs[i]
            p -= lr * g
            p.grad = None
