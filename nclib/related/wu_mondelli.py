"""Wu & Mondelli (2025), "Neural Collapse Beyond the Unconstrained Features Model" (chapter 9,
third section).

A three-layer network (two mean-field layers, then a linear layer) trained on the mean squared
error; points with small loss and small gradient norm are close to NC1. Here: the network
(:class:`MeanFieldThreeLayer`), the gradient norm in the mean-field geometry, its training one model
at a time (:func:`train_mean_field`) and batched (:func:`train_mean_fields`, tested against the
one-model loop), the Gaussian-mixture data, the chapter's runs (:func:`mean_field_runs`), and two
descriptive summaries of them (:func:`geometric_mean`, :func:`loglog_slope`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nclib._checks import as_generator, check_features_labels, check_real
from nclib.metrics import nc1
from nclib.related.batched import stack_parameters

__all__ = [
    "MeanFieldThreeLayer",
    "mean_field_gradient_norm",
    "train_mean_field",
    "train_mean_fields",
    "gaussian_mixture",
    "mean_field_runs",
    "geometric_mean",
    "loglog_slope",
]


# ================================================================================================
# The network, its gradient norm, its training and the data
# ================================================================================================


class MeanFieldThreeLayer(nn.Module):
    """The three-layer network of Wu & Mondelli (2025) as we read it: a two-layer network in the
    mean-field parametrization produces the features

        h(x) = (1/m) Σ_{j=1}^m a_j σ(⟨w_j, x⟩)  ∈ R^D,

    (m neurons, O(1) weights w_j ∈ R^{d_in}, a_j ∈ R^D, output scaled by 1/m), followed by a linear
    layer f(x) = W h(x) ∈ R^C. NC1 is measured on h."""

    def __init__(self, d_in: int, m: int, D: int, C: int, *, activation=torch.tanh, generator=None):
        super().__init__()
        if min(d_in, m, D, C) < 1:
            raise ValueError("d_in, m, D and C must be positive")
        g = as_generator(generator)
        self.w = nn.Parameter(torch.randn(m, d_in, generator=g) / math.sqrt(d_in))
        self.a = nn.Parameter(torch.randn(D, m, generator=g))
        self.W = nn.Parameter(torch.randn(C, D, generator=g) / math.sqrt(D))
        self.activation = activation
        self.m = m

    def features(self, x):
        """The features h(x) = (1/m) Σ_j a_j σ(⟨w_j, x⟩) on which NC1 is measured."""
        return self.activation(x @ self.w.T) @ self.a.T / self.m

    def forward(self, x):
        """The network f(x) = W h(x)."""
        return self.features(x) @ self.W.T


def mean_field_gradient_norm(model: MeanFieldThreeLayer) -> float:
    """Gradient norm in the mean-field geometry (Wu & Mondelli 2025): each neuron θ_j = (w_j, a_j)
    is a particle of an empirical measure, whose velocity under gradient flow is m ∇_{θ_j}R; the
    norm is ((1/m) Σ_j ‖m ∇_{θ_j}R‖² + ‖∇_W R‖²)^{1/2} = (m Σ_j ‖∇_{θ_j}R‖² + ‖∇_W R‖²)^{1/2}.
    Call after ``backward()``."""
    grads = [model.w.grad, model.a.grad, model.W.grad]
    if any(g is None for g in grads):
        raise ValueError("no gradients: call loss.backward() first")
    particle = model.w.grad.pow(2).sum() + model.a.grad.pow(2).sum()
    return math.sqrt(model.m * particle.item() + model.W.grad.pow(2).sum().item())


def train_mean_field(model: MeanFieldThreeLayer, x, y, x_test, y_test, *, lr: float, steps: int,
                     weight_decay: float = 0.0, log_every: int = 10, log_at=None) -> dict[str, np.ndarray]:
    """Full-batch gradient descent approximating the gradient flow of Wu & Mondelli (2025) on the
    regularized square loss R = ½·mean_i ‖f(x_i) − e_{y_i}‖² + λ/2 ((1/m) Σ_j ‖θ_j‖² + ‖W‖²_F).

    Mean-field time: the particles θ_j = (w_j, a_j) move with step lr·m (so each moves O(1) per
    unit time whatever m), the linear layer with step lr. Every ``log_every`` steps, or at the steps
    listed in ``log_at``, and at the end, records: step, time (step × lr), train MSE, objective R,
    the mean-field gradient norm of R, NC1 of the features h on the training set, and train/test
    error and test MSE.
    """
    lr = check_real(lr, "lr", positive=True)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0)
    if steps < 1 or log_every < 1:
        raise ValueError(f"need steps ≥ 1 and log_every ≥ 1, got {steps}, {log_every}")
    marks = {int(k) for k in log_at} if log_at is not None else set(range(0, steps + 1, log_every))
    x, x_test = torch.as_tensor(x), torch.as_tensor(x_test)
    y, y_test = torch.as_tensor(y, dtype=torch.int64), torch.as_tensor(y_test, dtype=torch.int64)
    check_features_labels(x, y)
    C = model.W.shape[0]
    Y = F.one_hot(y, C).to(x.dtype)
    Y_test = F.one_hot(y_test, C).to(x.dtype)
    m = model.m
    keys = ("step", "time", "mse", "objective", "grad_norm", "nc1", "train_error", "test_error", "test_mse")
    log = {k: [] for k in keys}
    for k in range(steps + 1):
        model.zero_grad(set_to_none=True)
        h = model.features(x)
        out = h @ model.W.T
        mse = 0.5 * (out - Y).pow(2).sum(1).mean()
        reg = 0.5 * weight_decay * ((model.w.pow(2).sum() + model.a.pow(2).sum()) / m + model.W.pow(2).sum())
        objective = mse + reg
        if not math.isfinite(objective.item()):
            raise FloatingPointError(f"training diverged at step {k}: lower lr")
        objective.backward()
        if k in marks or k == steps:
            with torch.no_grad():
                out_test = model(x_test)
                log["step"].append(k)
                log["time"].append(k * lr)
                log["mse"].append(mse.item())
                log["objective"].append(objective.item())
                log["grad_norm"].append(mean_field_gradient_norm(model))
                log["nc1"].append(nc1(h.detach().double(), y, C))
                log["train_error"].append((out.argmax(1) != y).double().mean().item())
                log["test_error"].append((out_test.argmax(1) != y_test).double().mean().item())
                log["test_mse"].append(0.5 * (out_test - Y_test).pow(2).sum(1).mean().item())
        if k == steps:
            break
        with torch.no_grad():
            model.w -= lr * m * model.w.grad
            model.a -= lr * m * model.a.grad
            model.W -= lr * model.W.grad
    return {k: np.asarray(v) for k, v in log.items()}


def gaussian_mixture(C: int, per_class: int, dim: int, separation: float, *, noise: float = 1.0,
                     generator=None, centres=None):
    """A balanced Gaussian mixture for the well-separated data of Wu & Mondelli (2025): C class
    means along orthonormal directions, isotropic noise of standard deviation ``noise`` per
    coordinate, and every pair of class means at distance ``separation``·noise·√dim, i.e.
    ``separation`` times the typical norm of a noise vector. Returns (x float32 N×dim, y, centres);
    pass ``centres`` back to draw a test set from the same distribution."""
    if C < 2 or per_class < 1 or dim < C:
        raise ValueError(f"need C ≥ 2, per_class ≥ 1 and dim ≥ C, got C = {C}, per_class = {per_class}, dim = {dim}")
    check_real(separation, "separation", minimum=0)
    check_real(noise, "noise", positive=True)
    g = as_generator(generator)
    if centres is None:
        Q, _ = torch.linalg.qr(torch.randn(dim, C, generator=g, dtype=torch.float64))
        centres = (separation * noise * math.sqrt(dim) / math.sqrt(2)) * Q.T
    centres = torch.as_tensor(centres, dtype=torch.float64)
    y = torch.arange(C).repeat_interleave(per_class)
    x = centres[y] + noise * torch.randn(C * per_class, dim, generator=g, dtype=torch.float64)
    perm = torch.randperm(len(y), generator=g)
    return x[perm].float(), y[perm], centres


# ================================================================================================
# Batched training (see nclib.related.batched)
# ================================================================================================


def train_mean_fields(models, xs, ys, xts, yts, *, lr: float, steps: int, weight_decay: float = 0.0,
                      log_every: int = 10, log_at=None) -> list[dict[str, np.ndarray]]:
    """:func:`train_mean_field` for R :class:`MeanFieldThreeLayer` of one architecture at once,
    each on its own data (``xs``: R×N×d_in or a list of R N×d_in sets, ``ys`` the labels; likewise
    the test sets). Same mean-field-time gradient descent on the regularized square loss of Wu &
    Mondelli (2025), same records (one dict of arrays per model); trained weights are written back."""
    models = list(models)
    if not models or len({(m.w.shape, m.a.shape, m.W.shape) for m in models}) != 1:
        raise ValueError("models must be a non-empty list of MeanFieldThreeLayer of one architecture")
    lr = check_real(lr, "lr", positive=True)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0)
    if steps < 1 or log_every < 1:
        raise ValueError(f"need steps ≥ 1 and log_every ≥ 1, got {steps}, {log_every}")
    R, m, C = len(models), models[0].m, models[0].W.shape[0]
    xs, xts = torch.stack([torch.as_tensor(v) for v in xs]), torch.stack([torch.as_tensor(v) for v in xts])
    ys = torch.stack([torch.as_tensor(v, dtype=torch.int64) for v in ys])
    yts = torch.stack([torch.as_tensor(v, dtype=torch.int64) for v in yts])
    if xs.shape[0] != R or xts.shape[0] != R:
        raise ValueError(f"need one training and one test set per model ({R}), got {xs.shape[0]} and {xts.shape[0]}")
    for r in range(R):
        check_features_labels(xs[r], ys[r])
    marks = {int(k) for k in log_at} if log_at is not None else set(range(0, steps + 1, log_every))
    act = models[0].activation
    w, a, W = (stack_parameters([getattr(mod, name) for mod in models]) for name in ("w", "a", "W"))
    Y, Y_test = F.one_hot(ys, C).to(xs.dtype), F.one_hot(yts, C).to(xs.dtype)
    keys = ("step", "time", "mse", "objective", "grad_norm", "nc1", "train_error", "test_error", "test_mse")
    logs = [{k: [] for k in keys} for _ in models]

    def forward(inputs):
        h = act(inputs @ w.transpose(-2, -1)) @ a.transpose(-2, -1) / m
        return h, h @ W.transpose(-2, -1)

    for k in range(steps + 1):
        h, out = forward(xs)
        mse = 0.5 * (out - Y).pow(2).sum(-1).mean(-1)
        reg = 0.5 * weight_decay * ((w.pow(2).sum((1, 2)) + a.pow(2).sum((1, 2))) / m + W.pow(2).sum((1, 2)))
        objective = mse + reg
        total = objective.sum()
        if not math.isfinite(total.item()):
            raise FloatingPointError(f"training diverged at step {k}: lower lr")
        total.backward()
        if k in marks or k == steps:
            with torch.no_grad():
                _, out_test = forward(xts)
                gn = (m * (w.grad.pow(2).sum((1, 2)) + a.grad.pow(2).sum((1, 2)))
                      + W.grad.pow(2).sum((1, 2))).sqrt()
                err = (out.argmax(-1) != ys).double().mean(-1)
                test_err = (out_test.argmax(-1) != yts).double().mean(-1)
                test_mse = 0.5 * (out_test - Y_test).pow(2).sum(-1).mean(-1)
                for r, log in enumerate(logs):
                    for key, value in (("step", k), ("time", k * lr), ("mse", mse[r].item()),
                                       ("objective", objective[r].item()), ("grad_norm", gn[r].item()),
                                       ("nc1", nc1(h[r].detach().double(), ys[r], C)),
                                       ("train_error", err[r].item()), ("test_error", test_err[r].item()),
                                       ("test_mse", test_mse[r].item())):
                        log[key].append(value)
        if k == steps:
            break
        with torch.no_grad():
            w -= lr * m * w.grad
            a -= lr * m * a.grad
            W -= lr * W.grad
            w.grad = a.grad = W.grad = None
    with torch.no_grad():
        for r, mod in enumerate(models):
            mod.w.copy_(w[r])
            mod.a.copy_(a[r])
            mod.W.copy_(W[r])
    return [{k: np.asarray(v) for k, v in log.items()} for log in logs]


# ================================================================================================
# The chapter's experiment and its summaries
# ================================================================================================


def mean_field_runs(C: int, dim: int, per_class_train: int, per_class_test: int, separations, seeds, *,
                    neurons: int, feature_dim: int, lr: float, steps: int, weight_decay: float,
                    log_points: int = 60) -> dict:
    """Wu & Mondelli (2025) on Gaussian mixtures: for every (separation, seed), a training and a
    test set from :func:`gaussian_mixture` (data drawn from the seed) and a
    :class:`MeanFieldThreeLayer` initialized from it, all trained at once by
    :func:`train_mean_fields` with records at ``log_points`` log-spaced steps.
    Returns {(separation, seed): record}."""
    keys, models, data = [], [], []
    for sep in separations:
        for s in seeds:
            x, y, centres = gaussian_mixture(C, per_class_train, dim, sep, generator=2 * int(s))
            xt, yt, _ = gaussian_mixture(C, per_class_test, dim, sep, generator=2 * int(s) + 1, centres=centres)
            keys.append((float(sep), int(s)))
            models.append(MeanFieldThreeLayer(dim, neurons, feature_dim, C, generator=int(s)))
            data.append((x, y, xt, yt))
    xs, ys, xts, yts = zip(*data)
    log_at = np.unique(np.r_[0, np.geomspace(1, steps, log_points).astype(int)])
    runs = train_mean_fields(models, xs, ys, xts, yts, lr=lr, steps=steps, weight_decay=weight_decay, log_at=log_at)
    return dict(zip(keys, runs))


def geometric_mean(values) -> float:
    """exp(mean(log v)) of positive values: the centre of quantities that vary by factors."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not (v > 0).all():
        raise ValueError(f"need positive values, got {v.tolist()}")
    return float(np.exp(np.log(v).mean()))


def loglog_slope(x, y, above: float = 10.0) -> float:
    """Least-squares slope of log y against log x over the points with x > ``above`` × min x: for
    NC1 against the training loss, the descent before the weight-decay floor (Wu & Mondelli
    2025 bound NC1 by the loss; the summary gives no exponent, so this is descriptive)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = x > above * x.min()
    if keep.sum() < 2:
        raise ValueError("fewer than two points above the floor")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])
