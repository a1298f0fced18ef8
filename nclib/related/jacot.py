"""Jacot, Súkeník, Wang & Mondelli (2024), "Wide Neural Networks Trained with Weight Decay Provably
Exhibit Neural Collapse" (chapter 9, second section).

Networks ending in at least two linear layers; NC1 follows from low training error plus *balanced*
linear layers (W_{l+1}ᵀW_{l+1} ≈ W_l W_lᵀ), NC2/NC3 additionally from bounded conditioning of the
features entering the linear part. Here: the measurements (:func:`balancedness`,
:func:`feature_condition_number`, :func:`orthogonal_frame_error`, :func:`linear_tail_metrics`), the
architecture (:class:`LinearTailMLP`), its training one model at a time (:func:`train_linear_tail`)
and batched (:func:`train_linear_tails`, tested against the one-model loop), the chapter's sweep
and the summaries that feed :func:`nclib.related.decisions.decide_jacot`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nclib._checks import check_features_labels, check_real
from nclib.metrics import class_means, nc1, nc_metrics
from nclib.related.batched import heavy_ball_step, stack_parameters

__all__ = [
    "balancedness",
    "feature_condition_number",
    "orthogonal_frame_error",
    "LinearTailMLP",
    "linear_tail_metrics",
    "train_linear_tail",
    "train_linear_tails",
    "linear_tail_sweep",
    "decay_rate_ratio",
    "unbalance_retained",
    "linear_tail_summary",
]


# ================================================================================================
# Measurements, the network and its training
# ================================================================================================


def balancedness(W_lower, W_upper, relative: bool = True) -> float:
    """Relative unbalancedness of two consecutive linear layers (Jacot et al. 2024):

        ‖W_{l+1}ᵀW_{l+1} − W_l W_lᵀ‖_F / (‖W_{l+1}ᵀW_{l+1}‖_F + ‖W_l W_lᵀ‖_F),

    for z_{l+1} = W_l z_l and z_{l+2} = W_{l+1} z_{l+1} (``nn.Linear.weight`` convention: W_l is
    out×in). It lies in [0, 1] and is 0 for a balanced pair. ``relative=False`` returns the
    numerator ‖D‖_F alone, D = W_{l+1}ᵀW_{l+1} − W_l W_lᵀ. Under gradient flow on any loss plus
    weight decay λ/2 Σ‖W‖², dD/dt = −2λ D (the loss terms cancel because z_{l+1} = W_l z_l is
    linear): weight decay balances the linear layers at rate 2λ. Two zero matrices count as
    balanced (0).
    """
    A = torch.as_tensor(W_lower, dtype=torch.float64)
    B = torch.as_tensor(W_upper, dtype=torch.float64)
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"weights must be matrices, got shapes {tuple(A.shape)} and {tuple(B.shape)}")
    if B.shape[1] != A.shape[0]:
        raise ValueError(
            f"layers do not compose: W_l is {tuple(A.shape)} (out×in) and W_(l+1) is "
            f"{tuple(B.shape)}; W_(l+1) needs {A.shape[0]} columns"
        )
    if not (torch.isfinite(A).all() and torch.isfinite(B).all()):
        raise ValueError("weights contain NaN or infinite values")
    upper, lower = B.T @ B, A @ A.T
    if not relative:
        return (upper - lower).norm().item()
    denom = upper.norm() + lower.norm()
    return 0.0 if denom == 0 else ((upper - lower).norm() / denom).item()


def feature_condition_number(X, rtol: float = 1e-6) -> tuple[float, int]:
    """Condition number of a feature matrix in the sense of Jacot et al. (2024): the ratio of its
    largest to its smallest *non-zero* singular value, for the features entering the linear part.

    X is N×w (one row per sample). "Non-zero" means above ``rtol`` times the largest singular value;
    the function returns (κ, numerical rank). A matrix of zeros raises ValueError.
    """
    X = torch.as_tensor(X, dtype=torch.float64)
    if X.ndim != 2 or X.numel() == 0:
        raise ValueError(f"features must be a non-empty N×w matrix, got shape {tuple(X.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError("features contain NaN or infinite values")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
    s = torch.linalg.svdvals(X)
    if s[0] == 0:
        raise ValueError("the feature matrix is zero: its condition number is undefined")
    kept = s[s > rtol * s[0]]
    return (kept[0] / kept[-1]).item(), int(kept.numel())


def orthogonal_frame_error(Z, y, num_classes: int | None = None) -> float:
    """Distance of the *uncentred* class means from an orthogonal frame, the NC2 geometry of
    bias-free networks trained with the square loss (Jacot et al. 2024; Tirer & Bruna 2022):
    ‖G/‖G‖_F − I/√C‖_F with G the C×C Gram matrix of the class means. Zero iff the means are
    orthogonal with equal norms. (Centred, an orthogonal frame is a simplex ETF.)"""
    means = class_means(Z, y, num_classes)
    G = means @ means.T
    if G.norm() == 0:
        raise ValueError("all class means are zero: the frame error is undefined")
    C = G.shape[0]
    return (G / G.norm() - torch.eye(C, dtype=G.dtype) / math.sqrt(C)).norm().item()


class LinearTailMLP(nn.Module):
    """An MLP whose last ``linear_depth`` ≥ 2 layers are linear and bias-free (the architecture of
    Jacot et al. 2024): ``depth`` ReLU layers of width ``width`` (the nonlinear part, "backbone"),
    then linear layers of width ``hidden`` and a linear classifier to C outputs."""

    def __init__(self, d_in: int, width: int, C: int, *, depth: int = 1, linear_depth: int = 3,
                 hidden: int = 64):
        super().__init__()
        if linear_depth < 2:
            raise ValueError(f"Jacot et al. need at least two linear layers at the end, got linear_depth = {linear_depth}")
        if min(d_in, width, C, depth, hidden) < 1:
            raise ValueError("d_in, width, C, depth and hidden must be positive")
        layers, fan_in = [], d_in
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        self.backbone = nn.Sequential(*layers)
        dims = [width] + [hidden] * (linear_depth - 1) + [C]
        self.linear = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))

    def layer_inputs(self, x) -> list[torch.Tensor]:
        """Inputs of every linear layer: [features entering the linear part, ..., penultimate]."""
        z = self.backbone(x)
        out = []
        for layer in self.linear:
            out.append(z)
            z = layer(z)
        return out

    def forward(self, x):
        """The logits: the backbone, then the linear layers."""
        z = self.backbone(x)
        for layer in self.linear:
            z = layer(z)
        return z

    def linear_weights(self) -> list[torch.Tensor]:
        """The weights W_l (out×in, detached) of the linear layers, whose balancedness
        Jacot et al. (2024) relate to NC1."""
        return [layer.weight.detach() for layer in self.linear]


@torch.no_grad()
def linear_tail_metrics(model: LinearTailMLP, x, y, rtol: float = 1e-6) -> dict:
    """Everything Jacot et al. (2024) relate for a network ending in linear layers: train MSE and
    accuracy, NC1 at the input of the linear part and at the penultimate layer, NC2 (ETF error of the
    centred means and orthogonal-frame error of the uncentred ones, penultimate), NC3 self-duality
    with the last layer, the unbalancedness of every consecutive linear pair, and the condition
    number and numerical rank of the features entering the linear part."""
    x = torch.as_tensor(x)
    y = torch.as_tensor(y, dtype=torch.int64)
    C = model.linear[-1].weight.shape[0]
    inputs = model.layer_inputs(x)
    out = model.linear[-1](inputs[-1])
    Y = F.one_hot(y, C).to(out.dtype)
    first, pen = inputs[0].double(), inputs[-1].double()
    ncm = nc_metrics(pen, y, model.linear[-1].weight.double().T)
    Ws = model.linear_weights()
    kappa, rank = feature_condition_number(first, rtol)
    return {
        "train_mse": 0.5 * (out - Y).pow(2).sum(1).mean().item(),
        "train_accuracy": (out.argmax(1) == y).double().mean().item(),
        "nc1_linear_input": nc1(first, y, C),
        "nc1_penultimate": ncm["nc1"],
        "nc2_etf_error": ncm["nc2_etf_error_means"],
        "nc2_orthogonal_error": orthogonal_frame_error(pen, y, C),
        "nc3_self_duality": ncm["nc3_self_duality"],
        "balancedness": [balancedness(Ws[i], Ws[i + 1]) for i in range(len(Ws) - 1)],
        "kappa": kappa,
        "rank": rank,
    }


def train_linear_tail(model: nn.Module, x, y, *, lr: float, weight_decay: float, steps: int,
                      momentum: float = 0.0, log_every: int = 0) -> list[dict]:
    """Full-batch gradient descent (heavy-ball ``momentum`` optional) on the square loss
    ½·mean‖f(x_i) − e_{y_i}‖² plus weight decay λ/2 ‖θ‖² on every parameter (the setting of
    Jacot et al. 2024's theory and experiments).

    Returns, every ``log_every`` steps (and at the end), the step, the relative unbalancedness of
    each consecutive linear pair and its absolute version ‖D‖_F (for :class:`LinearTailMLP`).
    """
    lr = check_real(lr, "lr", positive=True)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0)
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    x = torch.as_tensor(x)
    y = torch.as_tensor(y, dtype=torch.int64)
    C = model(x[:1]).shape[1]
    Y = F.one_hot(y, C).to(x.dtype)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum)
    log = []

    def record(k):
        if hasattr(model, "linear_weights"):
            Ws = model.linear_weights()
            pairs = range(len(Ws) - 1)
            log.append({"step": k, "balancedness": [balancedness(Ws[i], Ws[i + 1]) for i in pairs],
                        "unbalance_norm": [balancedness(Ws[i], Ws[i + 1], relative=False) for i in pairs]})

    for k in range(steps):
        if log_every and k % log_every == 0:
            record(k)
        loss = 0.5 * (model(x) - Y).pow(2).sum(1).mean()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training diverged at step {k}: lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    record(steps)
    return log


# ================================================================================================
# Batched training (see nclib.related.batched)
# ================================================================================================


def _batched_unbalance(Ws):
    """Per run, the relative and absolute unbalancedness of each consecutive pair of stacked
    linear weights (R×out×in), as :func:`balancedness` computes them one pair at a time."""
    rel, absolute = [], []
    for A, B in zip(Ws[:-1], Ws[1:]):
        A, B = A.detach().double(), B.detach().double()
        upper, lower = B.transpose(1, 2) @ B, A @ A.transpose(1, 2)
        num = (upper - lower).flatten(1).norm(dim=1)
        den = upper.flatten(1).norm(dim=1) + lower.flatten(1).norm(dim=1)
        rel.append(torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num)))
        absolute.append(num)
    return torch.stack(rel, 1).tolist(), torch.stack(absolute, 1).tolist()


def train_linear_tails(models, x, y, *, lr: float, weight_decays, steps: int, momentum: float = 0.0,
                       log_every: int = 0) -> list[list[dict]]:
    """:func:`train_linear_tail` for R :class:`LinearTailMLP` of one architecture at once, each
    with its own weight decay (``weight_decays``: one value, or one per model): full-batch gradient
    descent (heavy-ball momentum optional) on ½·mean‖f(x_i) − e_{y_i}‖² + λ_r/2 ‖θ‖². The trained
    weights are written back into the models. Returns one log per model, as
    :func:`train_linear_tail` does (Jacot et al. 2024: weight decay balances the linear layers)."""
    models = list(models)
    if not models or not all(isinstance(m, LinearTailMLP) for m in models):
        raise ValueError("models must be a non-empty list of LinearTailMLP")
    shapes = [tuple(p.shape for p in m.parameters()) for m in models]
    if len(set(shapes)) != 1:
        raise ValueError("all models must share one architecture (same widths and depths)")
    lr = check_real(lr, "lr", positive=True)
    lam = torch.as_tensor(weight_decays, dtype=torch.float64).reshape(-1)
    if lam.numel() == 1:
        lam = lam.expand(len(models))
    if lam.numel() != len(models) or not torch.isfinite(lam).all() or (lam < 0).any():
        raise ValueError(f"weight_decays must be one value ≥ 0 or one per model ({len(models)}), got {lam.tolist()}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    x = torch.as_tensor(x)
    y = torch.as_tensor(y, dtype=torch.int64)
    check_features_labels(x, y)
    lin_back = [layer for layer in models[0].backbone if isinstance(layer, nn.Linear)]
    n_back = len(lin_back)
    back_w = [stack_parameters([[l for l in m.backbone if isinstance(l, nn.Linear)][i].weight for m in models])
              for i in range(n_back)]
    back_b = [stack_parameters([[l for l in m.backbone if isinstance(l, nn.Linear)][i].bias for m in models])
              for i in range(n_back)]
    lin_w = [stack_parameters([m.linear[i].weight for m in models]) for i in range(len(models[0].linear))]
    params = back_w + back_b + lin_w
    C = lin_w[-1].shape[1]
    Y = F.one_hot(y, C).to(x.dtype)
    bufs = [None] * len(params)
    logs = [[] for _ in models]

    def record(k):
        rel, absolute = _batched_unbalance(lin_w)
        for r, log in enumerate(logs):
            log.append({"step": k, "balancedness": rel[r], "unbalance_norm": absolute[r]})

    for k in range(steps):
        if log_every and k % log_every == 0:
            record(k)
        z = x
        for W, b in zip(back_w, back_b):
            z = torch.relu(z @ W.transpose(-2, -1) + b.unsqueeze(-2))
        for W in lin_w:
            z = z @ W.transpose(-2, -1)
        losses = 0.5 * (z - Y).pow(2).sum(-1).mean(-1)
        total = losses.sum()
        if not math.isfinite(total.item()):
            raise FloatingPointError(f"training diverged at step {k}: lower lr")
        total.backward()
        heavy_ball_step(params, bufs, lr, lam, momentum)
    record(steps)
    with torch.no_grad():
        for r, m in enumerate(models):
            lins = [l for l in m.backbone if isinstance(l, nn.Linear)]
            for i, layer in enumerate(lins):
                layer.weight.copy_(back_w[i][r])
                layer.bias.copy_(back_b[i][r])
            for i, layer in enumerate(m.linear):
                layer.weight.copy_(lin_w[i][r])
    return logs


# ================================================================================================
# The chapter's experiment and its summaries
# ================================================================================================


def linear_tail_sweep(x, y, num_classes: int, configs, *, steps: int, lr: float, momentum: float,
                      hidden: int = 64, linear_depth: int = 3, log_every: int = 25) -> dict:
    """Train one :class:`LinearTailMLP` (one ReLU layer of width w, then ``linear_depth`` bias-free
    linear layers) per (w, λ, seed) in ``configs`` with :func:`train_linear_tails`, the runs of one
    width batched together; the seed initializes the model. Returns {(w, λ, seed): (metrics of
    :func:`linear_tail_metrics`, log)} (Jacot et al. 2024)."""
    configs = [(int(w), float(wd), int(s)) for w, wd, s in configs]
    out = {}
    for width in sorted({c[0] for c in configs}):
        group = [c for c in configs if c[0] == width]
        models = []
        for _, _, s in group:
            torch.manual_seed(s)
            models.append(LinearTailMLP(x.shape[1], width, num_classes, depth=1,
                                        linear_depth=linear_depth, hidden=hidden))
        logs = train_linear_tails(models, x, y, lr=lr, weight_decays=[c[1] for c in group], steps=steps,
                                  momentum=momentum, log_every=log_every)
        for c, model, log in zip(group, models, logs):
            out[c] = (linear_tail_metrics(model, x, y), log)
    return out


def decay_rate_ratio(log: list[dict], weight_decay: float, lr: float, momentum: float,
                     floor: float = 0.1) -> list[float]:
    """Per consecutive linear pair, the decay rate of ‖D_k‖ = ‖W_{l+1}ᵀW_{l+1} − W_lW_lᵀ‖_F per step,
    fitted by least squares to log ‖D_k‖ over the steps where the gradient-flow law
    e^{−2λt}, t = k·η/(1 − β), has not yet fallen below ``floor`` (beyond, the steps' discreteness
    sets a floor), divided by the law's rate 2λη/(1 − β) (Jacot et al. 2024). 1 means the law."""
    if not weight_decay > 0:
        raise ValueError(f"the law's rate is zero without weight decay (got {weight_decay}); "
                         "use unbalance_retained for λ = 0")
    steps = np.array([r["step"] for r in log], dtype=float)
    D = np.array([r["unbalance_norm"] for r in log], dtype=float)
    rate = 2 * weight_decay * lr / (1 - momentum)
    window = np.exp(-rate * steps) >= floor
    if window.sum() < 3:
        raise ValueError("fewer than 3 logged steps before the law falls below the floor: log more often")
    return [float(-np.polyfit(steps[window], np.log(D[window, p]), 1)[0] / rate) for p in range(D.shape[1])]


def unbalance_retained(log: list[dict]) -> float:
    """The smallest, over linear pairs, of ‖D_T‖/‖D_0‖ between the first and the last logged step:
    1 where the imbalance is conserved (gradient flow without weight decay)."""
    first, last = np.array(log[0]["unbalance_norm"]), np.array(log[-1]["unbalance_norm"])
    return float((last / first).min())


def linear_tail_summary(runs, weight_decay: float, lr: float, momentum: float) -> dict[str, list]:
    """Per run of :func:`linear_tail_sweep` (a list of (metrics, log)): training accuracy, the
    unbalancedness of the worse linear pair, penultimate NC1, and — with weight decay — the
    decay-rate ratio of the pair farthest from the law (:func:`decay_rate_ratio`), or without it
    the share of the imbalance retained (:func:`unbalance_retained`). The inputs of
    :func:`nclib.related.decisions.decide_jacot`."""
    out = {"train_accuracy": [], "unbalancedness": [], "nc1": [], "rate": [], "retained": []}
    for metrics, log in runs:
        out["train_accuracy"].append(metrics["train_accuracy"])
        out["unbalancedness"].append(max(metrics["balancedness"]))
        out["nc1"].append(metrics["nc1_penultimate"])
        out["retained"].append(unbalance_retained(log))
        if weight_decay > 0:
            ratios = decay_rate_ratio(log, weight_decay, lr, momentum)
            out["rate"].append(max(ratios, key=lambda r: abs(r - 1)))
    return out
