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
