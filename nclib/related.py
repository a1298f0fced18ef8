"""The related results of chapter 9: Zhu et al. (2021), Jacot et al. (2024), Wu & Mondelli (2025).

Three groups of helpers, one per paper.

Zhu, Ding, Zhou, Li, You, Sulam & Qu (2021), "A Geometric Analysis of Neural Collapse with
Unconstrained Features": the unconstrained feature model (UFM) with weight decay,

    f(M, Z, b) = (1/N) Σ_i CE(Mᵀ z_i + b, y_i) + λ_M/2 ‖M‖²_F + λ_Z/2 ‖Z‖²_F + λ_b/2 ‖b‖²,

in this book's conventions (M is d×C with the class vectors as columns, Z is N×d, logits Z M + b;
their W is Mᵀ and their H is Zᵀ). Its global minimizers are simplex ETFs (their Theorem 3.1), every
other critical point is a strict saddle (their Theorem 3.2). Here: the loss, batched gradient
descent from many initializations, the closed-form global minimum (:func:`ufm_wd_optimum`), the
full Hessian and its closed-form spectrum at the origin, and an honest byte count of the training
state for the fixed-ETF-classifier experiment.

Jacot, Súkeník, Wang & Mondelli (2024), "Wide Neural Networks Trained with Weight Decay Provably
Exhibit Neural Collapse": networks ending in at least two linear layers; NC1 follows from low
training error plus *balanced* linear layers (W_{l+1}ᵀW_{l+1} ≈ W_l W_lᵀ), NC2/NC3 additionally from
bounded conditioning of the features entering the linear part.

Wu & Mondelli (2025), "Neural Collapse Beyond the Unconstrained Features Model": a three-layer
network (two mean-field layers, then a linear layer) trained on the mean squared error; points with
small loss and small gradient norm are close to NC1.

Beside the mathematics: batched trainers that run many small runs (seeds × weight decays) as one
(:func:`train_linear_tails`, :func:`train_mean_fields`, tested against the one-model loops), the
share of random starts a basin must draw to be met (:func:`basin_share`; the other intervals
come from :mod:`nclib.stats`), the chapter's analysis of its runs, its figures, and one decision function per claim
(:func:`decide_ufm_landscape`, :func:`decide_origin_saddle`, :func:`decide_fixed_etf`,
:func:`decide_zhu`, :func:`decide_jacot`, :func:`decide_wu`), each returning a
:class:`nclib.verdicts.Verdict` from a rule that could come out either way, beside its control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nclib._checks import check_features_labels
from nclib.metrics import class_means, nc1, nc_metrics
from nclib.stats import clopper_pearson, detectable_shift, log_t_interval, t_interval

__all__ = [
    # Zhu et al. 2021
    "ufm_wd_loss",
    "UFMOptimum",
    "ufm_wd_optimum",
    "UFMRuns",
    "ufm_wd_gradient_descent",
    "ufm_wd_hessian",
    "ufm_wd_origin_spectrum",
    "TrainingMemory",
    "training_memory",
    # Jacot et al. 2024
    "balancedness",
    "feature_condition_number",
    "orthogonal_frame_error",
    "LinearTailMLP",
    "linear_tail_metrics",
    "train_linear_tail",
    # Wu & Mondelli 2025
    "MeanFieldThreeLayer",
    "mean_field_gradient_norm",
    "train_mean_field",
    "gaussian_mixture",
    # batched runs
    "train_linear_tails",
    "train_mean_fields",
    "linear_tail_sweep",
    "mean_field_runs",
    # how sure
    "basin_share",
    # decisions
    "PRECEDENCE",
    "decide_ufm_landscape",
    "decide_origin_saddle",
    "decide_fixed_etf",
    "decide_zhu",
    "decide_jacot",
    "decide_wu",
    # analysis
    "ufm_run_summary",
    "SaddleCheck",
    "origin_saddle_check",
    "decay_rate_ratio",
    "unbalance_retained",
    "linear_tail_summary",
    "head_models",
    "head_accuracies",
    "head_memory",
    "geometric_mean",
    "loglog_slope",
    "text_table",
    # figures
    "plot_ufm_landscape",
    "plot_saddle",
    "plot_fixed_etf",
    "plot_jacot_grid",
    "plot_balance_law",
    "plot_wu",
]


def _positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def _generator(generator) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


# ================================================================================================
# Zhu et al. (2021): the UFM with weight decay
# ================================================================================================


def ufm_wd_loss(M, Z, b, y, lam_M: float, lam_Z: float, lam_b: float) -> torch.Tensor:
    """The regularized UFM objective of Zhu et al. (2021), their equation for f(W, H, b):

    mean_i CE(Mᵀ z_i + b, y_i) + λ_M/2 ‖M‖²_F + λ_Z/2 ‖Z‖²_F + λ_b/2 ‖b‖².

    Shapes: M d×C, Z N×d, b (C,), y (N,). A leading batch dimension R on M, Z and b (R×d×C, R×N×d,
    R×C) evaluates R independent problems at once and returns R values; otherwise a scalar.
    """
    if not (M.ndim == Z.ndim and M.ndim in (2, 3) and b.ndim == M.ndim - 1):
        raise ValueError(
            f"expected M d×C, Z N×d, b (C,) (or all with one leading batch dimension), got shapes "
            f"{tuple(M.shape)}, {tuple(Z.shape)}, {tuple(b.shape)}"
        )
    y = torch.as_tensor(y, dtype=torch.int64, device=M.device)
    if y.ndim != 1 or (y.numel() and (y.min() < 0 or y.max() >= M.shape[-1])):
        raise ValueError(f"labels y must be a 1-D vector of integers in [0, {M.shape[-1]}), got {y.tolist()[:10]}…")
    if Z.shape[-1] != M.shape[-2] or b.shape[-1] != M.shape[-1] or Z.shape[-2] != y.shape[0]:
        raise ValueError(
            f"inconsistent shapes: M {tuple(M.shape)} (d×C), Z {tuple(Z.shape)} (N×d), "
            f"b {tuple(b.shape)} (C), y {tuple(y.shape)} (N)"
        )
    logits = Z @ M + b.unsqueeze(-2)
    logp = torch.log_softmax(logits, dim=-1)
    ce = -logp.gather(-1, y.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)
    reg = (0.5 * lam_M * M.pow(2).sum((-2, -1)) + 0.5 * lam_Z * Z.pow(2).sum((-2, -1))
           + 0.5 * lam_b * b.pow(2).sum(-1))
    return ce + reg


@dataclass(frozen=True)
class UFMOptimum:
    """The global minimum of the UFM with weight decay in closed form (:func:`ufm_wd_optimum`).

    value: f*, the objective at every global minimizer; own_logit: t* = ⟨M_y, z_{y,i}⟩ (the other
    logits of that sample are −t*/(C−1), so every logit gap is C t*/(C−1)); class_norm: ‖M_y‖;
    feature_norm: ‖z_{y,i}‖; sigma: √(n λ_M λ_Z). ``collapsed_to_zero`` is True when C σ ≥ 1, where
    the origin is the global minimizer.
    """

    value: float
    own_logit: float
    class_norm: float
    feature_norm: float
    sigma: float
    collapsed_to_zero: bool


def ufm_wd_optimum(C: int, n: int, lam_M: float, lam_Z: float) -> UFMOptimum:
    """Closed-form global minimum of the UFM with weight decay (Zhu et al. 2021, Theorem 3.1, with
    the scale solved here), for C classes of n samples each and d ≥ C − 1.

    By their Theorem 3.1 a global minimizer has b = 0 (for λ_b > 0), class vectors M_y of a common
    norm a forming a simplex ETF, and features z_{y,i} = β M_y with β = √(λ_M/(n λ_Z)). Writing
    t = β a² for the own-class logit (the other logits are −t/(C−1)), the weight decay equals
    C σ t with σ = √(n λ_M λ_Z) once β is optimal (AM–GM), so f reduces to

        φ(t) = log(1 + (C−1) exp(−C t/(C−1))) + C σ t.

    φ'(t) = 0 gives exp(−C t*/(C−1)) = σ/(1 − (C−1)σ), i.e. t* = (C−1)/C · log((1 − (C−1)σ)/σ),
    positive iff C σ < 1; then f* = −log(1 − (C−1)σ) + (C−1) σ log((1 − (C−1)σ)/σ). If C σ ≥ 1 the
    minimizer is the origin with f* = log C. Norms: a² = t* √(n λ_Z/λ_M), ‖z‖² = t* √(λ_M/(n λ_Z)).
    """
    if int(C) != C or C < 2:
        raise ValueError(f"need an integer number of classes C ≥ 2, got {C}")
    if int(n) != n or n < 1:
        raise ValueError(f"need an integer number of samples per class n ≥ 1, got {n}")
    lam_M, lam_Z = _positive("lam_M", lam_M), _positive("lam_Z", lam_Z)
    sigma = math.sqrt(n * lam_M * lam_Z)
    if C * sigma >= 1:
        return UFMOptimum(math.log(C), 0.0, 0.0, 0.0, sigma, True)
    ratio = (1 - (C - 1) * sigma) / sigma
    t = (C - 1) / C * math.log(ratio)
    value = -math.log(1 - (C - 1) * sigma) + (C - 1) * sigma * math.log(ratio)
    a = math.sqrt(t * math.sqrt(n * lam_Z / lam_M))
    z = math.sqrt(t * math.sqrt(lam_M / (n * lam_Z)))
    return UFMOptimum(value, t, a, z, sigma, False)


@dataclass
class UFMRuns:
    """Final iterates of R independent gradient-descent runs on the UFM with weight decay: M (R×d×C),
    Z (R×N×d), b (R×C), the final objective values and gradient norms (R,), and the objective of
    every run at logarithmically spaced steps (``steps`` and ``loss_history``, S×R)."""

    M: torch.Tensor
    Z: torch.Tensor
    b: torch.Tensor
    y: torch.Tensor
    final_loss: torch.Tensor
    grad_norm: torch.Tensor
    steps: np.ndarray
    loss_history: np.ndarray


def ufm_wd_gradient_descent(
    y, d: int, lam_M: float, lam_Z: float, lam_b: float, *, runs: int = 20, steps: int = 5000,
    lr: float = 1.0, init_scale=1.0, generator=None, M0=None, Z0=None, b0=None, snapshots: int = 50,
) -> UFMRuns:
    """Plain gradient descent on the UFM objective of Zhu et al. (2021) from ``runs`` independent
    random initializations at once (float64). Their Theorem 3.2 (no spurious local minima, strict
    saddles) predicts that every run reaches the global value of :func:`ufm_wd_optimum`.

    Initialization: Gaussian entries of standard deviation ``init_scale`` (a number, or one value
    per run to spread the starting points over several scales); or explicit ``M0``, ``Z0``, ``b0``
    (R×d×C, R×N×d, R×C).
    """
    y = torch.as_tensor(y, dtype=torch.int64)
    if y.ndim != 1 or y.numel() == 0 or y.min() < 0:
        raise ValueError(f"labels y must be a non-empty 1-D vector of integers ≥ 0, got shape {tuple(y.shape)}")
    C, N = int(y.max()) + 1, y.numel()
    if int(d) != d or d < 1:
        raise ValueError(f"feature dimension d must be a positive integer, got {d}")
    if steps < 1 or runs < 1:
        raise ValueError(f"need steps ≥ 1 and runs ≥ 1, got steps = {steps}, runs = {runs}")
    lam_M, lam_Z = _positive("lam_M", lam_M), _positive("lam_Z", lam_Z)
    lam_b, lr = _positive("lam_b", lam_b, allow_zero=True), _positive("lr", lr)
    g = _generator(generator)
    f64 = dict(dtype=torch.float64)
    scale = torch.as_tensor(init_scale, **f64).reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(runs)
    if scale.numel() != runs:
        raise ValueError(f"init_scale must be one number or {runs} numbers, got {scale.numel()}")
    M = (torch.randn(runs, d, C, generator=g, **f64) * scale[:, None, None]) if M0 is None else torch.as_tensor(M0, **f64).clone()
    Z = (torch.randn(runs, N, d, generator=g, **f64) * scale[:, None, None]) if Z0 is None else torch.as_tensor(Z0, **f64).clone()
    b = (torch.randn(runs, C, generator=g, **f64) * scale[:, None]) if b0 is None else torch.as_tensor(b0, **f64).clone()
    if M.shape != (runs, d, C) or Z.shape != (runs, N, d) or b.shape != (runs, C):
        raise ValueError(
            f"initial values must be R×d×C, R×N×d, R×C = {runs}×{d}×{C}, {runs}×{N}×{d}, {runs}×{C}; got "
            f"{tuple(M.shape)}, {tuple(Z.shape)}, {tuple(b.shape)}"
        )
    marks = set(np.unique(np.geomspace(1, steps, snapshots).astype(int)).tolist()) | {0}
    logged_steps, history = [], []
    Y = F.one_hot(y, C).to(torch.float64)
    for k in range(steps + 1):
        losses, grads = _ufm_wd_value_and_grad(M, Z, b, Y, lam_M, lam_Z, lam_b)
        if k in marks:
            logged_steps.append(k)
            history.append(losses.numpy().copy())
        if k == steps:
            break
        M, Z, b = (p - lr * gp for p, gp in zip((M, Z, b), grads))
    if not torch.isfinite(losses).all():
        raise FloatingPointError("gradient descent diverged on the UFM: lower lr or init_scale")
    grad_norm = torch.sqrt(sum(gp.pow(2).flatten(1).sum(1) for gp in grads))
    return UFMRuns(M, Z, b, y, losses, grad_norm, np.asarray(logged_steps), np.asarray(history))


def _ufm_wd_value_and_grad(M, Z, b, Y, lam_M, lam_Z, lam_b):
    """Objective and its gradient in closed form (batched): with P = softmax(Z M + b) and
    G = (P − Y)/N, ∇_M = Zᵀ G + λ_M M, ∇_Z = G Mᵀ + λ_Z Z, ∇_b = Σ_i G_i + λ_b b. Autograd gives
    the same (tested) but spends most of its time on bookkeeping for matrices this small."""
    N = Y.shape[0]
    logp = torch.log_softmax(Z @ M + b.unsqueeze(-2), dim=-1)
    value = (-(logp * Y).sum((-2, -1)) / N + 0.5 * lam_M * M.pow(2).sum((-2, -1))
             + 0.5 * lam_Z * Z.pow(2).sum((-2, -1)) + 0.5 * lam_b * b.pow(2).sum(-1))
    G = (logp.exp() - Y) / N
    return value, (Z.transpose(-2, -1) @ G + lam_M * M, G @ M.transpose(-2, -1) + lam_Z * Z,
                   G.sum(-2) + lam_b * b)


def _ufm_unflatten(theta: torch.Tensor, d: int, C: int, N: int):
    M = theta[: d * C].reshape(d, C)
    Z = theta[d * C : d * C + N * d].reshape(N, d)
    b = theta[d * C + N * d :]
    return M, Z, b


def ufm_wd_hessian(M, Z, b, y, lam_M: float, lam_Z: float, lam_b: float) -> torch.Tensor:
    """The full Hessian of the UFM objective of Zhu et al. (2021) at (M, Z, b), computed with
    ``torch.autograd.functional.hessian`` in float64. Variables are ordered as
    θ = (vec M row-major, vec Z row-major, b), so the matrix is P×P with P = dC + Nd + C. Their
    Theorem 3.2: at any critical point that is not a global minimizer it has a negative eigenvalue.
    """
    M, Z, b = (torch.as_tensor(t, dtype=torch.float64) for t in (M, Z, b))
    if M.ndim != 2 or Z.ndim != 2 or b.ndim != 1:
        raise ValueError(f"expected M d×C, Z N×d, b (C,), got shapes {tuple(M.shape)}, {tuple(Z.shape)}, {tuple(b.shape)}")
    d, C = M.shape
    N = Z.shape[0]
    if N * d + d * C + C > 4000:
        raise ValueError(f"the full Hessian would be {N * d + d * C + C}² entries; use a smaller instance")
    y = torch.as_tensor(y, dtype=torch.int64)
    theta = torch.cat([M.reshape(-1), Z.reshape(-1), b.reshape(-1)])
    return torch.autograd.functional.hessian(
        lambda th: ufm_wd_loss(*_ufm_unflatten(th, d, C, N), y, lam_M, lam_Z, lam_b), theta
    )


def ufm_wd_origin_spectrum(C: int, d: int, n: int, lam_M: float, lam_Z: float, lam_b: float) -> np.ndarray:
    """Closed-form eigenvalues (ascending) of the Hessian of the UFM objective (Zhu et al. 2021) at
    the critical point M = 0, Z = 0, b = 0, for C balanced classes of n samples.

    At the origin every softmax is uniform, p = 1/C, so the second-order expansion is
    log C + (1/N) Σ_i (p − e_{y_i})ᵀ Mᵀ z_i + ½(b-terms) + weight decay. The M–Z block couples M with
    Z through G = [p − e_{y_i}]_i (N×C), whose Gram matrix is GᵀG = n(I − 11ᵀ/C): singular values
    √n (C−1 times) and 0. Hence, with s = 1/(C√n):
      - d(C−1) pairs ((λ_M+λ_Z) ± √((λ_M−λ_Z)² + 4s²))/2;
      - λ_M (d times) and λ_Z (Nd − d(C−1) times) on the uncoupled directions;
      - the b block (1/C)(I − 11ᵀ/C) + λ_b I: λ_b + 1/C (C−1 times) and λ_b.
    The smallest eigenvalue is negative iff λ_M λ_Z < s², i.e. iff C √(n λ_M λ_Z) < 1, exactly when
    the origin is not the global minimizer (:func:`ufm_wd_optimum`): a strict saddle.
    """
    for name, v in (("C", C), ("d", d), ("n", n)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if C < 2:
        raise ValueError(f"need C ≥ 2 classes, got {C}")
    lam_M, lam_Z = _positive("lam_M", lam_M, True), _positive("lam_Z", lam_Z, True)
    lam_b = _positive("lam_b", lam_b, True)
    N = n * C
    s = 1.0 / (C * math.sqrt(n))
    root = math.sqrt((lam_M - lam_Z) ** 2 + 4 * s * s)
    pairs = d * (C - 1)
    eig = ([(lam_M + lam_Z - root) / 2] * pairs + [(lam_M + lam_Z + root) / 2] * pairs
           + [lam_M] * d + [lam_Z] * (N * d - pairs) + [lam_b + 1.0 / C] * (C - 1) + [lam_b])
    return np.sort(np.asarray(eig))


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes of the training state of one SGD step (:func:`training_memory`), by category.

    parameters, gradients and optimizer_state are exact sums over tensors; buffers are non-trainable
    tensors of the model (e.g. a fixed ETF classifier); saved_activations are the distinct storages
    that autograd saved for the backward pass, excluding parameters, buffers and the input batch
    (counted in ``input``). ``total`` sums all of them: the memory that must be alive together at
    the start of the backward pass, ignoring short-lived temporaries and allocator overhead.
    """

    parameters: int
    gradients: int
    optimizer_state: int
    buffers: int
    input: int
    saved_activations: int

    @property
    def total(self) -> int:
        return (self.parameters + self.gradients + self.optimizer_state + self.buffers
                + self.input + self.saved_activations)

    def as_dict(self) -> dict[str, int]:
        return {"parameters": self.parameters, "gradients": self.gradients,
                "optimizer state": self.optimizer_state, "buffers": self.buffers, "input": self.input,
                "saved activations": self.saved_activations, "total": self.total}


def _nbytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()


def training_memory(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    loss_fn=F.cross_entropy) -> TrainingMemory:
    """Count the bytes of the training state in one optimizer step on the batch (x, y): the
    measurement behind the memory claim of Zhu et al. (2021) (fixed ETF classifier with d = C).

    One full step is run (forward, backward, ``optimizer.step()``), so optimizer state exists
    afterwards. Tensors saved for backward are intercepted with
    ``torch.autograd.graph.saved_tensors_hooks`` and counted once per distinct storage. This is an
    exact tensor-level count, independent of the allocator and of the device (on CPU, tools such as
    tracemalloc do not see torch's allocations).
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y must hold the same positive number of samples, got {x.shape[0]} and {y.shape[0]}")
    params = [p for p in model.parameters() if p.requires_grad]
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    buffer_ptrs = {t.untyped_storage().data_ptr() for t in model.buffers()}
    input_ptr = x.untyped_storage().data_ptr()
    saved: dict[int, int] = {}
    input_bytes = [0]

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr == input_ptr:
            input_bytes[0] = _nbytes(t)
        elif ptr not in param_ptrs and ptr not in buffer_ptrs:
            saved[ptr] = _nbytes(t)
        return t

    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    grads = sum(_nbytes(p.grad) for p in params if p.grad is not None)
    state = sum(_nbytes(v) for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    return TrainingMemory(
        parameters=sum(_nbytes(p) for p in model.parameters()),
        gradients=grads,
        optimizer_state=state,
        buffers=sum(_nbytes(t) for t in model.buffers()),
        input=input_bytes[0],
        saved_activations=sum(saved.values()),
    )


# ================================================================================================
# Jacot, Súkeník, Wang & Mondelli (2024): linear layers at the end, weight decay, balancedness
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
        z = self.backbone(x)
        for layer in self.linear:
            z = layer(z)
        return z

    def linear_weights(self) -> list[torch.Tensor]:
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
    lr, weight_decay = _positive("lr", lr), _positive("weight_decay", weight_decay, allow_zero=True)
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
# Wu & Mondelli (2025): two mean-field layers and a linear layer, square loss
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
        g = _generator(generator)
        self.w = nn.Parameter(torch.randn(m, d_in, generator=g) / math.sqrt(d_in))
        self.a = nn.Parameter(torch.randn(D, m, generator=g))
        self.W = nn.Parameter(torch.randn(C, D, generator=g) / math.sqrt(D))
        self.activation = activation
        self.m = m

    def features(self, x):
        return self.activation(x @ self.w.T) @ self.a.T / self.m

    def forward(self, x):
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
    lr, weight_decay = _positive("lr", lr), _positive("weight_decay", weight_decay, allow_zero=True)
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
    _positive("separation", separation, allow_zero=True)
    _positive("noise", noise)
    g = _generator(generator)
    if centres is None:
        Q, _ = torch.linalg.qr(torch.randn(dim, C, generator=g, dtype=torch.float64))
        centres = (separation * noise * math.sqrt(dim) / math.sqrt(2)) * Q.T
    centres = torch.as_tensor(centres, dtype=torch.float64)
    y = torch.arange(C).repeat_interleave(per_class)
    x = centres[y] + noise * torch.randn(C * per_class, dim, generator=g, dtype=torch.float64)
    perm = torch.randperm(len(y), generator=g)
    return x[perm].float(), y[perm], centres


# ================================================================================================
# Batched training: many small runs as one (seeds × weight decays), same arithmetic per run
# ================================================================================================
#
# The runs of chapter 9 are tiny full-batch problems where a step costs more in Python and autograd
# bookkeeping than in arithmetic. Stacking R runs along a leading axis turns R small matrix
# products into one batched product per layer; the tests check each run against its one-model
# version.


def _stack(tensors) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).clone().requires_grad_(True)


def _heavy_ball(params, bufs, lr, weight_decay, momentum):
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
    lr = _positive("lr", lr)
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
    back_w = [_stack([[l for l in m.backbone if isinstance(l, nn.Linear)][i].weight for m in models])
              for i in range(n_back)]
    back_b = [_stack([[l for l in m.backbone if isinstance(l, nn.Linear)][i].bias for m in models])
              for i in range(n_back)]
    lin_w = [_stack([m.linear[i].weight for m in models]) for i in range(len(models[0].linear))]
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
        _heavy_ball(params, bufs, lr, lam, momentum)
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


def train_mean_fields(models, xs, ys, xts, yts, *, lr: float, steps: int, weight_decay: float = 0.0,
                      log_every: int = 10, log_at=None) -> list[dict[str, np.ndarray]]:
    """:func:`train_mean_field` for R :class:`MeanFieldThreeLayer` of one architecture at once,
    each on its own data (``xs``: R×N×d_in or a list of R N×d_in sets, ``ys`` the labels; likewise
    the test sets). Same mean-field-time gradient descent on the regularized square loss of Wu &
    Mondelli (2025), same records (one dict of arrays per model); trained weights are written back."""
    models = list(models)
    if not models or len({(m.w.shape, m.a.shape, m.W.shape) for m in models}) != 1:
        raise ValueError("models must be a non-empty list of MeanFieldThreeLayer of one architecture")
    lr, weight_decay = _positive("lr", lr), _positive("weight_decay", weight_decay, allow_zero=True)
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
    w, a, W = (_stack([getattr(mod, name) for mod in models]) for name in ("w", "a", "W"))
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
# How sure: intervals over seeds, binomial intervals, detectable effects
# ================================================================================================


def basin_share(starts: int, probability: float) -> float:
    """The share p of random starts that a region (a basin of attraction) must draw for at least
    one of ``starts`` independent starts to land in it with the given probability:
    1 − (1 − probability)^(1/starts). With probability 0.8, the smallest detectable basin; with
    0.95, a 95% upper bound on the share of a basin that no start met."""
    if starts < 1 or not 0 < probability < 1:
        raise ValueError(f"need starts ≥ 1 and probability in (0, 1), got {starts}, {probability}")
    return 1 - (1 - probability) ** (1 / starts)


# ================================================================================================
# Decision functions: one Verdict per claim, from the numbers a rule names
# ================================================================================================

#: Which part decides a combined verdict: the first label of this list that any part has.
PRECEDENCE = ("violated", "untestable at this size", "not distinguishable from seed noise",
              "holds but vacuous", "holds")


def decide_ufm_landscape(gaps, grad_norms, etf_errors, nc1s, control_gaps, control_grad_norms,
                         control_etf_errors, control_final, *, control_dim: int, tol: float = 1e-9,
                         rest_tol: float = 1e-3, etf_tol: float = 1e-6, nc1_tol: float = 1e-8):
    """Zhu et al. (2021), Theorems 3.1–3.2 on the UFM with weight decay, from gradient-descent runs.

    Each run (f − f* ``gaps``, final gradient norms, ETF errors of M and of the class means, NC1)
    is *global* if |f − f*| ≤ ``tol`` with ETF error ≤ ``etf_tol`` and NC1 ≤ ``nc1_tol``; *at rest
    elsewhere* if its gradient norm is ≤ ``rest_tol`` but it is not global; *moving* otherwise.
    Violated if any run rests elsewhere or reaches f* without an ETF; untestable if any run is
    still moving, or if the control (the same descent with d = ``control_dim`` < C − 1, where no
    simplex ETF fits and f* cannot be reached) comes within ``tol`` of f* (then the test could not
    tell the cases apart); holds otherwise. Sureness: the smallest share of starts a spurious basin
    must draw to be met with probability 0.8, and the 95% upper bound on the share of any basin
    that no start met (:func:`basin_share`)."""
    from nclib.verdicts import Verdict

    gaps, grads = np.abs(np.asarray(gaps, float)), np.asarray(grad_norms, float)
    etf, ncs = np.asarray(etf_errors, float), np.asarray(nc1s, float)
    if not (gaps.shape == grads.shape == etf.shape == ncs.shape) or gaps.size == 0:
        raise ValueError("gaps, grad_norms, etf_errors and nc1s must be non-empty and of one length")
    cg, cgr = np.abs(np.asarray(control_gaps, float)), np.asarray(control_grad_norms, float)
    cetf = np.asarray(control_etf_errors, float)
    at_f = gaps <= tol
    is_etf = (etf <= etf_tol) & (ncs <= nc1_tol)
    glob = at_f & is_etf
    resting = ~glob & (grads <= rest_tol)
    moving = ~glob & ~resting
    R = gaps.size
    c_rest = int(((cg > tol) & (cgr <= rest_tol)).sum())
    c_values = len(np.unique(np.round(np.asarray(control_final, float), 5)))
    rule = (f"every start ends within {tol:.0e} of the closed-form f* at a simplex ETF "
            f"(ETF error ≤ {etf_tol:.0e}, NC1 ≤ {nc1_tol:.0e}); a start resting elsewhere "
            f"(‖∇f‖ ≤ {rest_tol:.0e}) violates it, a start still moving leaves it untestable")
    control = (f"d = {control_dim} < C − 1 (no ETF fits): {c_rest}/{cg.size} starts rest ≥ {cg.min():.2f} "
               f"above f*, ETF error ≥ {cetf.min():.2f}, at {c_values} different values")
    p80, p95 = basin_share(R, 0.8), basin_share(R, 0.95)
    sureness = (f"{R} random starts: a spurious basin drawing ≥ {100 * p80:.1f}% of starts would have "
                f"been met with probability 0.8; 95% upper bound on the share of an unmet one "
                f"{100 * p95:.1f}%")
    key = f"{int(glob.sum())}/{R} starts reach the ETF minimum"
    if resting.any() or (at_f & ~is_etf).any():
        label = "violated"
        detail = (f"{int(resting.sum())} start(s) rest at a critical point other than the global "
                  f"minimum; {int((at_f & ~is_etf).sum())} reach f* without an ETF")
    elif moving.any():
        label = "untestable at this size"
        detail = f"{int(moving.sum())} start(s) still moving: run more steps"
    elif (cg <= tol).any():
        label = "untestable at this size"
        detail = "the control reached f* too: the tolerance cannot separate the cases"
    else:
        label = "holds"
        detail = f"no spurious minimum met in {R} starts (max |f − f*| = {gaps.max():.0e}); evidence, not proof"
    return Verdict(label, rule, control, sureness, key, detail)


def decide_origin_saddle(hessian_min: float, closed_min: float, spectrum_err: float,
                         escape_gap: float, minimizer_min: float, *, curvature_tol: float = 1e-6,
                         tol: float = 1e-9):
    """Zhu et al. (2021), Theorem 3.2 at the critical point M = Z = 0, b = 0 of a small instance
    with C σ < 1 (where the origin is not the minimum): a strict saddle if the smallest Hessian
    eigenvalue is below −``curvature_tol``, and gradient descent started a small step along its
    eigenvector then reaches f* within ``tol``. Violated if the curvature is not negative or the
    escape run stops above f*. Control: the Hessian at the global minimizer that run found, where
    no negative curvature may appear (smallest eigenvalue ≥ −``curvature_tol``); if it does, the
    computation cannot tell minima from saddles: untestable. The closed-form spectrum
    (:func:`ufm_wd_origin_spectrum`) is the check on the arithmetic, reported in the sureness."""
    from nclib.verdicts import Verdict

    rule = (f"smallest Hessian eigenvalue at the origin < −{curvature_tol:.0e}, and descent from a "
            f"step along its eigenvector reaches f* within {tol:.0e}")
    control = f"at the minimum found: λ_min = {minimizer_min:.1e} (must be ≥ −{curvature_tol:.0e})"
    sureness = (f"exact computation: the autograd spectrum agrees with the closed form "
                f"({closed_min:.4f}) to {spectrum_err:.0e}; |λ_min| exceeds the tolerance "
                f"{abs(hessian_min) / curvature_tol:.0e}-fold")
    key = f"λ_min = {hessian_min:.3f} at the origin"
    if minimizer_min < -curvature_tol:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "negative curvature at the minimizer too: the run did not converge")
    if hessian_min >= -curvature_tol or not abs(escape_gap) <= tol:
        return Verdict("violated", rule, control, sureness, key,
                       "no negative curvature at the origin" if hessian_min >= -curvature_tol
                       else f"the escape run stopped {escape_gap:.1e} above f*")
    return Verdict("holds", rule, control, sureness, key, "the origin is a strict saddle, and descent leaves it")


def _points(fraction: float) -> str:
    pts = 100 * fraction
    return f"{pts:g} point" + ("" if pts == 1 else "s")


def decide_fixed_etf(acc_fixed, acc_learnable, acc_fixed_control, memory_fixed: int,
                     memory_learnable: int, *, margin: float = 0.01, level: float = 0.95,
                     power: float = 0.8):
    """Zhu et al. (2021), the practical claim: a fixed simplex-ETF classifier with d = C saves
    memory "without sacrificing the generalization performance".

    Accuracies are per seed (the same seeds, in the same order, for both arms: paired).
    Violated if the fixed-ETF network's training state is not smaller, or if the t interval of the
    paired accuracy difference (fixed − learnable) lies entirely below −``margin``; holds if it lies
    entirely above −``margin`` (no loss larger than the margin, the interval supports it);
    otherwise not distinguishable from seed noise. Control: the same difference between the fixed
    ETF and itself under other seeds (``acc_fixed_control``), zero by construction; if its interval
    does not fit inside ±``margin`` the runs are too noisy to certify the margin at all, and the
    verdict is "not distinguishable from seed noise". Fewer than 2 seeds: untestable."""
    from nclib.verdicts import Verdict

    a, b, c = (np.asarray(v, float).reshape(-1) for v in (acc_fixed, acc_learnable, acc_fixed_control))
    if not (a.size == b.size == c.size):
        raise ValueError("need one accuracy per seed in every arm")
    saving = 1 - memory_fixed / memory_learnable
    rule = (f"t interval ({100 * level:.0f}%) of the paired test-accuracy difference fixed − learnable "
            f"above −{_points(margin)}: holds; below: violated; across: undecided; and "
            f"the fixed-ETF training state must be smaller")
    if a.size < 2:
        return Verdict("untestable at this size", rule, "needs ≥ 2 seeds", "needs ≥ 2 seeds",
                       f"{100 * saving:.0f}% less memory, one seed", "one seed gives no interval")
    diff, ctrl = t_interval(a - b, level), t_interval(a - c, level)
    control = f"fixed ETF against itself (other seeds): {ctrl.text('+.2f', 100)} points"
    shift = detectable_shift(float(np.std(a - b, ddof=1)), a.size, level, power)
    sureness = (f"{diff.n} seeds: difference {diff.text('+.2f', 100)} points; a true loss of "
                f"{100 * shift:.2f} points would be caught with probability {power:g}")
    key = f"−{100 * saving:.0f}% memory, accuracy {diff.text('+.1f', 100)} pts"
    if saving <= 0:
        return Verdict("violated", rule, control, sureness, key, "the fixed ETF saved no memory")
    if not (-margin < ctrl.low and ctrl.high < margin):
        return Verdict("not distinguishable from seed noise", rule, control, sureness, key,
                       f"even identical models differ by up to ±{_points(margin)} at this size")
    if diff.low > -margin:
        return Verdict("holds", rule, control, sureness, key, f"no loss beyond {_points(margin)}")
    if diff.high < -margin:
        return Verdict("violated", rule, control, sureness, key, f"the fixed ETF loses more than {_points(margin)}")
    return Verdict("not distinguishable from seed noise", rule, control, sureness, key,
                   f"the interval crosses −{_points(margin)}")


def decide_zhu(landscape, saddle, fixed):
    """The row of Zhu et al. (2021): the worst of its three parts (:data:`PRECEDENCE`)."""
    from nclib.verdicts import Verdict

    parts = {"landscape": landscape, "saddle": saddle, "fixed ETF": fixed}
    label = next(lab for lab in PRECEDENCE if any(v.label == lab for v in parts.values()))
    return Verdict(
        label,
        "the worst of three parts decides: every random start reaches the closed-form ETF minimum; "
        "the origin has negative curvature; a fixed ETF with d = C saves memory and loses "
        "no accuracy beyond the margin",
        "; ".join(f"{name}: {v.control}" for name, v in parts.items()),
        "; ".join(f"{name}: {v.sureness}" for name, v in parts.items()),
        f"{landscape.key}; {saddle.key}; fixed ETF: {fixed.key}",
        "; ".join(f"{name} {v.label} ({v.detail})" for name, v in parts.items()),
    )


def decide_jacot(train_accuracy, unbalancedness, nc1_values, rate_ratio, control_unbalancedness,
                 control_retained, control_nc1, *, weight_decay: float, bal_tol: float = 0.05,
                 nc1_tol: float = 0.05, rate_tol: float = 0.25, level: float = 0.95):
    """Jacot et al. (2024), claims (i) and (iii) for one wide network trained with weight decay λ,
    over seeds: the training accuracies, the final relative unbalancedness of the worse linear
    pair, the penultimate NC1, and the measured decay rate of ‖W_{l+1}ᵀW_{l+1} − W_lW_lᵀ‖ divided
    by the gradient-flow rate 2λ·η/(1 − β) (:func:`decay_rate_ratio`).

    Untestable if some seed does not fit its training set (the premise of (i) is not produced).
    Violated if the rate interval lies outside 1 ± ``rate_tol`` (the imbalance does not decay as
    predicted), or if the network is balanced (unbalancedness interval below ``bal_tol``) yet not
    collapsed (NC1 interval above ``nc1_tol``); holds if all three lie inside. A network still
    unbalanced (interval above ``bal_tol``) whose imbalance decays at the predicted rate is
    *untestable at this size*: the budget was too short to reach the balance the theorem speaks of,
    which is no evidence against it. Otherwise not distinguishable from seed noise. Control: the same network without weight decay,
    where the imbalance is conserved by construction; it must stay unbalanced (interval above
    ``bal_tol``), else balance is not attributable to weight decay and the verdict is untestable.
    Its NC1 is reported: where it is small too, the run shows (i)'s conclusion but cannot show that
    balancedness is needed for it."""
    from nclib.verdicts import Verdict

    acc = np.asarray(train_accuracy, float).reshape(-1)
    bal, ncs = log_t_interval(unbalancedness, level), log_t_interval(nc1_values, level)
    rate = t_interval(rate_ratio, level)
    cbal, cnc1 = log_t_interval(control_unbalancedness, level), log_t_interval(control_nc1, level)
    cret = float(np.min(control_retained))
    rule = (f"with λ = {weight_decay:g} and every training label fitted: unbalancedness < {bal_tol:g}, "
            f"decay rate of the imbalance within {100 * rate_tol:.0f}% of 2λη/(1−β), NC1 < {nc1_tol:g} "
            f"({100 * level:.0f}% intervals over seeds decide; still unbalanced at the predicted rate: "
            "too short a run)")
    control = (f"λ = 0: unbalancedness {cbal.text('.2f')} (imbalance kept ≥ {100 * cret:.0f}%), "
               f"NC1 {cnc1.text('.1e')}")
    sureness = (f"{bal.n} seeds: unbalancedness {bal.text('.3f')}, rate/prediction {rate.text('.3f')}, "
                f"NC1 {ncs.text('.1e')}")
    key = f"unbalancedness {bal.estimate:.3f} (λ = 0: {cbal.estimate:.2f}), NC1 {ncs.estimate:.0e}"
    nc1_note = (f"without weight decay NC1 is {cnc1.estimate:.0e} too: at this size the run shows "
                f"(i)'s conclusion, not that balancedness is needed for it"
                if cnc1.estimate < nc1_tol else f"without weight decay NC1 stays at {cnc1.estimate:.0e}")
    if (acc < 1.0).any() or acc.size == 0:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "some seed does not fit its training set: the premise of (i) is not produced")
    if not cbal.low > bal_tol:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "the control is balanced without weight decay: balance cannot be attributed to it")
    if rate.high < 1 - rate_tol or rate.low > 1 + rate_tol:
        return Verdict("violated", rule, control, sureness, key,
                       "the imbalance does not decay at the rate weight decay predicts; " + nc1_note)
    rate_ok = 1 - rate_tol < rate.low and rate.high < 1 + rate_tol
    if bal.low > bal_tol and rate_ok:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       "the imbalance decays at the predicted rate but has not reached the tolerance within "
                       "this budget: too short a run to test balance, not a violation")
    if bal.high < bal_tol and ncs.low > nc1_tol:
        return Verdict("violated", rule, control, sureness, key, "balanced but not collapsed; " + nc1_note)
    if bal.high < bal_tol and rate_ok and ncs.high < nc1_tol:
        return Verdict("holds", rule, control, sureness, key, nc1_note)
    return Verdict("not distinguishable from seed noise", rule, control, sureness, key, nc1_note)


def decide_wu(mse, grad_norm, nc1_values, nc1_initial, test_error_rates, n_test_per_seed: int, *,
              loss_tol: float = 1e-2, grad_tol: float = 1e-2, nc1_tol: float = 1e-2,
              error_tol: float = 0.01, level: float = 0.95, overlap_nc1=None, overlap_error=None):
    """Wu & Mondelli (2025) on well-separated data, over seeds: final training MSE and gradient
    norm, final NC1 of the features h, NC1 at initialization (the control: the same network where
    loss and gradient are not small), and the test error rates, each on ``n_test_per_seed`` test
    points, pooled over seeds for an exact binomial interval.

    Untestable if training did not reach MSE ≤ ``loss_tol`` and gradient norm ≤ ``grad_tol`` (the
    premise). Violated if the NC1 interval lies above ``nc1_tol`` or the Clopper–Pearson interval of
    the test error above ``error_tol``; holds if both lie below, but holds only vacuously if NC1
    was already below ``nc1_tol`` at initialization; otherwise not distinguishable from seed
    noise. ``overlap_nc1`` / ``overlap_error``: the same network on overlapping data (where (iii)
    promises nothing), reported with the control."""
    from nclib.verdicts import Verdict

    mse, grad = np.asarray(mse, float), np.asarray(grad_norm, float)
    ncs, init = log_t_interval(nc1_values, level), log_t_interval(nc1_initial, level)
    rates = np.asarray(test_error_rates, float).reshape(-1)
    test_errors = int(np.round(rates * n_test_per_seed).sum())
    n_test = int(n_test_per_seed) * rates.size
    err = clopper_pearson(test_errors, n_test, level)
    rule = (f"where training MSE ≤ {loss_tol:g} and gradient norm ≤ {grad_tol:g}: NC1 < {nc1_tol:g} and "
            f"test error < {100 * error_tol:g}% on separated data ({100 * level:.0f}% intervals decide)")
    control = f"before training (loss and gradient not small): NC1 {init.text('.2f')}"
    if overlap_nc1 is not None and overlap_error is not None:
        control += (f"; overlapping data: NC1 {np.exp(np.mean(np.log(overlap_nc1))):.0e} with test error "
                    f"{100 * float(np.mean(overlap_error)):.0f}%")
    sureness = (f"{ncs.n} seeds: NC1 {ncs.text('.1e')}; test error {err.text('.2f', 100)}% "
                f"({test_errors} of {n_test})")
    key = f"NC1 {ncs.estimate:.0e} (before training {init.estimate:.2f}), test error {100 * err.estimate:.1f}%"
    if mse.max() > loss_tol or grad.max() > grad_tol:
        return Verdict("untestable at this size", rule, control, sureness, key,
                       f"training ended at MSE {mse.max():.1e}, gradient {grad.max():.1e}: the premise is not reached")
    if ncs.low > nc1_tol or err.low > error_tol:
        return Verdict("violated", rule, control, sureness, key,
                       "small loss and gradient without NC1" if ncs.low > nc1_tol else "NC1 without small test error")
    if ncs.high < nc1_tol and err.high < error_tol:
        if init.high < nc1_tol:
            return Verdict("holds but vacuous", rule, control, sureness, key,
                           "NC1 was below the threshold before training")
        return Verdict("holds", rule, control, sureness, key, "small loss and gradient came with NC1 and a small test error")
    return Verdict("not distinguishable from seed noise", rule, control, sureness, key,
                   "an interval crosses its threshold")


# ================================================================================================
# Analysis of the runs (what the chapter measures, in one place)
# ================================================================================================


def ufm_run_summary(runs: UFMRuns, optimum: UFMOptimum) -> dict[str, np.ndarray]:
    """Per gradient-descent run on the UFM (Zhu et al. 2021): f − f*, final gradient norm, NC1,
    the ETF error (the larger of that of M and of the centred class means, Definition 3.1), NC3
    self-duality, the largest relative deviation of ‖M_y‖ and ‖z_i‖ from :func:`ufm_wd_optimum`,
    the largest |b| and the final objective."""
    out = {k: [] for k in ("gap", "grad_norm", "nc1", "etf_error", "nc3", "norm_error", "bias", "final")}
    for k in range(runs.M.shape[0]):
        m = nc_metrics(runs.Z[k], runs.y, runs.M[k])
        norm_err = max((runs.M[k].norm(dim=0) / optimum.class_norm - 1).abs().max().item(),
                       (runs.Z[k].norm(dim=1) / optimum.feature_norm - 1).abs().max().item())
        for key, value in (("gap", runs.final_loss[k].item() - optimum.value),
                           ("grad_norm", runs.grad_norm[k].item()), ("nc1", m["nc1"]),
                           ("etf_error", max(m["nc2_etf_error_classifier"], m["nc2_etf_error_means"])),
                           ("nc3", m["nc3_self_duality"]), ("norm_error", norm_err),
                           ("bias", runs.b[k].abs().max().item()), ("final", runs.final_loss[k].item())):
            out[key].append(value)
    return {k: np.asarray(v) for k, v in out.items()}


@dataclass
class SaddleCheck:
    """The origin of a small UFM instance (:func:`origin_saddle_check`): the autograd Hessian's
    eigenvalues and the closed form's, the loss along the most negative direction, the escape run
    started a small step along it, and the smallest Hessian eigenvalue at the point it reached."""

    eigenvalues: np.ndarray
    closed_form: np.ndarray
    spectrum_err: float
    eps: np.ndarray
    drop: np.ndarray
    quad_ratio: float
    escape: UFMRuns
    optimum: UFMOptimum
    escape_gap: float
    minimizer_min: float

    @property
    def lam_min(self) -> float:
        return float(self.eigenvalues[0])


def origin_saddle_check(C: int, d: int, n: int, lam: float, *, steps: int, lr: float,
                        start: float = 1e-3, small: float = 1e-2) -> SaddleCheck:
    """Theorem 3.2 of Zhu et al. (2021) at the critical point M = Z = 0, b = 0 (λ_M = λ_Z = λ_b =
    ``lam``): the full Hessian (:func:`ufm_wd_hessian`) against :func:`ufm_wd_origin_spectrum`,
    f(εv) − f(0) along the unit eigenvector v of the smallest eigenvalue (its ratio to ½λ_min ε² at
    ε = ``small``), gradient descent started at ``start``·v, and the Hessian at its end point."""
    y = torch.arange(C).repeat_interleave(n)
    N, f64 = n * C, dict(dtype=torch.float64)
    H = ufm_wd_hessian(torch.zeros(d, C, **f64), torch.zeros(N, d, **f64), torch.zeros(C, **f64), y, lam, lam, lam)
    vals, vecs = torch.linalg.eigh(H)
    closed = ufm_wd_origin_spectrum(C, d, n, lam, lam, lam)
    v = vecs[:, 0]

    def f_at(theta):
        return ufm_wd_loss(*_ufm_unflatten(theta, d, C, N), y, lam, lam, lam).item()

    f0 = f_at(torch.zeros_like(v))
    eps = np.linspace(-1.5, 1.5, 61)
    drop = np.array([f_at(e * v) - f0 for e in eps])
    quad = (f_at(small * v) - f0) / (0.5 * vals[0].item() * small**2)
    M0, Z0, b0 = _ufm_unflatten(start * v, d, C, N)
    escape = ufm_wd_gradient_descent(y, d, lam, lam, lam, runs=1, steps=steps, lr=lr,
                                     M0=M0[None], Z0=Z0[None], b0=b0[None])
    optimum = ufm_wd_optimum(C, n, lam, lam)
    H_end = ufm_wd_hessian(escape.M[0], escape.Z[0], escape.b[0], y, lam, lam, lam)
    return SaddleCheck(vals.numpy(), closed, float(np.abs(vals.numpy() - closed).max()), eps, drop, quad,
                       escape, optimum, escape.final_loss.item() - optimum.value,
                       torch.linalg.eigvalsh(H_end)[0].item())


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


def head_models(kind: str, in_shape, num_classes: int, hidden: int, wide_dim: int, seed: int):
    """The two networks compared for the fixed-classifier claim of Zhu et al. (2021): the same MLP
    trunk (two hidden layers of ``hidden`` units, batch norm, ReLU) ending in ``"learnable"``, a
    projection to ``wide_dim`` and a learnable bias-free classifier, or ``"fixed"``, a projection to
    d = C and the fixed simplex ETF (no gradient). Initialized from ``seed``."""
    from nclib.etf import simplex_etf
    from nclib.models import FixedHead, LinearHead, NCModel, mlp

    torch.manual_seed(seed)
    if kind == "learnable":
        return NCModel(mlp(in_shape, wide_dim, hidden, depth=2), LinearHead(wide_dim, num_classes))
    if kind == "fixed":
        head = FixedHead(simplex_etf(num_classes, num_classes, generator=seed))
        return NCModel(mlp(in_shape, num_classes, hidden, depth=2), head)
    if kind == "learnable, d = C":
        return NCModel(mlp(in_shape, num_classes, hidden, depth=2), LinearHead(num_classes, num_classes))
    raise ValueError(f"kind must be 'learnable', 'fixed' or 'learnable, d = C', got {kind!r}")


def head_accuracies(kind: str, train_data, test_data, seeds, config, **model_args) -> np.ndarray:
    """Final test accuracy of :func:`head_models` ``kind`` trained by :func:`nclib.train.train`
    with ``config`` (its ``seed`` replaced by each seed, which also initializes the model)."""
    import dataclasses

    from nclib.train import train

    out = []
    for s in seeds:
        model = head_models(kind, tuple(train_data.x.shape[1:]), train_data.num_classes, seed=s, **model_args)
        history = train(model, train_data, test_data, dataclasses.replace(config, seed=int(s)), progress=False)
        out.append(history.records[-1]["test_accuracy"])
    return np.asarray(out)


def head_memory(kind: str, batch, config, num_classes: int, **model_args) -> TrainingMemory:
    """:func:`training_memory` of one SGD step (momentum and weight decay of ``config``) of
    :func:`head_models` ``kind`` on ``batch`` = (x, y)."""
    x, y = batch
    model = head_models(kind, tuple(x.shape[1:]), num_classes, seed=0, **model_args)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return training_memory(model, opt, x.clone(), y)


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


def text_table(header, rows, formats) -> str:
    """A plain-text table: ``header`` names, ``rows`` of values, ``formats`` one format spec per
    column (e.g. ``"8.1e"``); the width of each column is that of its format or of its name."""
    widths = [max([len(h)] + [len(format(r[i], f)) for r in rows]) for i, (h, f) in enumerate(zip(header, formats))]
    lines = [" ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += [" ".join(format(v, f).rjust(w) for v, f, w in zip(r, formats, widths)) for r in rows]
    return "\n".join(lines)


# ================================================================================================
# Figures (sized for the book's ~800 px column: at most 8 in wide at 100 dpi, fonts ≥ 10 pt)
# ================================================================================================


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_ufm_landscape(curves: dict, tol: float):
    """f − f* along gradient descent for every start, one colour per feature dimension:
    ``curves`` maps a label to (steps, S×R excess values)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.4), constrained_layout=True)
    for j, (label, (steps, excess)) in enumerate(curves.items()):
        lines = ax.loglog(np.maximum(steps, 1), np.maximum(excess, 1e-17), color=f"C{j}", alpha=0.45, lw=1)
        lines[0].set_label(label)
    ax.axhline(tol, color="k", ls=":", lw=1, label=f"tolerance {tol:g}")
    ax.set(xlabel="gradient-descent step", ylabel="f − f*  (f* in closed form)")
    ax.legend(loc="lower left")
    return fig


def plot_saddle(check: SaddleCheck):
    """Left: the loss along the most negative Hessian direction at the origin against the
    quadratic prediction. Right: gradient descent started a small step along it."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    axes[0].plot(check.eps, check.drop, label="f(εv) − f(0)")
    axes[0].plot(check.eps, 0.5 * check.lam_min * check.eps**2, "--", label="½ λ_min ε²")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set(xlabel="ε (unit eigenvector v of λ_min)", title="the origin: a strict saddle")
    axes[0].legend()
    excess = np.maximum(check.escape.loss_history[:, 0] - check.optimum.value, 1e-17)
    axes[1].semilogy(np.maximum(check.escape.steps, 1), excess)
    axes[1].set(xlabel="gradient-descent step", ylabel="f − f*", title="descent from 10⁻³·v")
    return fig


def plot_fixed_etf(memory: dict, accuracy: dict):
    """Top: the bytes alive at the start of the backward pass, by category, per network. Bottom:
    test accuracy per seed, on a ±2-point axis so that differences are not magnified."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.2), constrained_layout=True)
    kinds = list(memory)
    cats = [c for c in memory[kinds[0]].as_dict() if c != "total"]
    left = np.zeros(len(kinds))
    for i, cat in enumerate(cats):
        vals = np.array([memory[k].as_dict()[cat] for k in kinds]) / 2**20
        axes[0].barh(kinds, vals, left=left, label=cat, color=f"C{i}")
        left += vals
    axes[0].set(xlabel="MiB alive at the start of the backward pass (batch 64)")
    axes[0].legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    arms = list(accuracy)
    for i, arm in enumerate(arms):
        axes[1].scatter(100 * np.asarray(accuracy[arm]), [i] * len(accuracy[arm]), s=40, color=f"C{i}")
    axes[1].set_yticks(range(len(arms)), arms)
    centre = 100 * np.mean([np.mean(v) for v in accuracy.values()])
    axes[1].set(xlabel="test accuracy (%), one dot per seed", xlim=(centre - 2, centre + 2),
                ylim=(-0.7, len(arms) - 0.3))
    return fig


def plot_jacot_grid(sweep: dict, widths, weight_decays):
    """Four heat maps over (first-layer width, weight decay): NC1, the orthogonal-frame error
    (NC2), the unbalancedness of the worse pair, and κ of the features entering the linear part."""
    plt = _plt()
    panels = [("NC1 (penultimate)", lambda m: m["nc1_penultimate"], True),
              ("NC2: orthogonal-frame error", lambda m: m["nc2_orthogonal_error"], False),
              ("unbalancedness (worse pair)", lambda m: max(m["balancedness"]), True),
              ("κ entering the linear part", lambda m: m["kappa"], True)]
    fig, axes = plt.subplots(2, 2, figsize=(8, 5.6), constrained_layout=True)
    for ax, (title, get, logscale) in zip(axes.flat, panels):
        grid = np.array([[get(sweep[w, wd]) for wd in weight_decays] for w in widths])
        ax.imshow(np.log10(grid) if logscale else grid, cmap="viridis", aspect="auto")
        for i in range(len(widths)):
            for j in range(len(weight_decays)):
                ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", color="w", fontsize=10)
        ax.set_xticks(range(len(weight_decays)), [f"{wd:g}" for wd in weight_decays])
        ax.set_yticks(range(len(widths)), [str(w) for w in widths])
        ax.set(xlabel="weight decay λ", ylabel="width w", title=title)
    return fig


def plot_balance_law(logs: dict, lr: float, momentum: float):
    """‖W_{l+1}ᵀW_{l+1} − W_lW_lᵀ‖_F along training, one colour per weight decay (``logs`` maps λ
    to a log of :func:`train_linear_tail`), dashed: the gradient-flow law e^{−2λt}."""
    plt = _plt()
    n_pairs = len(next(iter(logs.values()))[0]["unbalance_norm"])
    fig, axes = plt.subplots(1, n_pairs, figsize=(8, 3.2), constrained_layout=True, sharey=True)
    axes = np.atleast_1d(axes)
    for pair, ax in enumerate(axes):
        for j, (wd, log) in enumerate(logs.items()):
            steps = np.array([r["step"] for r in log])
            D = np.array([r["unbalance_norm"][pair] for r in log])
            ax.semilogy(steps, D, color=f"C{j}", label=f"λ = {wd:g}")
            ax.semilogy(steps, D[0] * np.exp(-2 * wd * lr / (1 - momentum) * steps), color=f"C{j}", ls="--", lw=1)
        ax.set(xlabel="step", title=f"pair {pair + 1}–{pair + 2}")
    axes[0].set_ylabel("‖W₊ᵀW₊ − WWᵀ‖_F")
    axes[-1].legend(loc="lower left")
    return fig


def plot_wu(histories: dict):
    """Top: NC1 of h against training MSE and against the gradient norm. Bottom: NC1 (solid)
    and test error (dashed, 0 drawn at 10⁻⁴) against time. ``histories`` maps a label (one colour)
    to a list of :func:`train_mean_field` records (one line each)."""
    plt = _plt()
    fig = plt.figure(figsize=(8, 6.4), constrained_layout=True)
    grid = fig.add_gridspec(2, 2)
    ax_mse, ax_grad, ax_time = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    for j, (label, runs) in enumerate(histories.items()):
        for k, h in enumerate(runs):
            lab = label if k == 0 else None
            ax_mse.loglog(h["mse"], h["nc1"], color=f"C{j}", lw=1, label=lab)
            ax_grad.loglog(h["grad_norm"], h["nc1"], color=f"C{j}", lw=1, label=lab)
            ax_time.loglog(h["time"][1:], h["nc1"][1:], color=f"C{j}", lw=1,
                           label=f"NC1, {label}" if k == 0 else None)
            ax_time.loglog(h["time"][1:], np.maximum(h["test_error"][1:], 1e-4), color=f"C{j}", ls="--", lw=1,
                           label=f"test error, {label}" if k == 0 else None)
    ax_mse.set(xlabel="training MSE", ylabel="NC1 of h")
    ax_grad.set(xlabel="gradient norm (mean-field)")
    ax_time.set(xlabel="time (step × η)", ylabel="NC1 / test error")
    ax_mse.legend()
    ax_time.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    return fig


# ================================================================================================
# The chapter's experiments as one call each
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


def linear_tail_summary(runs, weight_decay: float, lr: float, momentum: float) -> dict[str, list]:
    """Per run of :func:`linear_tail_sweep` (a list of (metrics, log)): training accuracy, the
    unbalancedness of the worse linear pair, penultimate NC1, and — with weight decay — the
    decay-rate ratio of the pair farthest from the law (:func:`decay_rate_ratio`), or without it
    the share of the imbalance retained (:func:`unbalance_retained`). The inputs of
    :func:`decide_jacot`."""
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
