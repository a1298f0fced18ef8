"""Zhu, Ding, Zhou, Li, You, Sulam & Qu (2021), "A Geometric Analysis of Neural Collapse with
Unconstrained Features" (chapter 9, first section).

The unconstrained feature model (UFM) with weight decay,

    f(M, Z, b) = (1/N) Σ_i CE(Mᵀ z_i + b, y_i) + λ_M/2 ‖M‖²_F + λ_Z/2 ‖Z‖²_F + λ_b/2 ‖b‖²,

in this book's conventions (M is d×C with the class vectors as columns, Z is N×d, logits Z M + b;
their W is Mᵀ and their H is Zᵀ). Its global minimizers are simplex ETFs (their Theorem 3.1), every
other critical point is a strict saddle (their Theorem 3.2). Here: the loss, batched gradient
descent from many initializations, the closed-form global minimum (:func:`ufm_wd_optimum`), the
full Hessian and its closed-form spectrum at the origin, the chapter's summaries of these runs, the
fixed-ETF-classifier experiment (its two networks and an honest byte count of their training
state), and the share of random starts a basin must draw to be met (:func:`basin_share`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nclib._checks import as_generator, check_real
from nclib.etf import simplex_etf
from nclib.metrics import nc_metrics
from nclib.models import FixedHead, LinearHead, NCModel, mlp
from nclib.train import train

__all__ = [
    # the UFM with weight decay
    "ufm_wd_loss",
    "ufm_wd_value_and_grad",
    "ufm_unflatten",
    "UFMOptimum",
    "ufm_wd_optimum",
    "UFMRuns",
    "ufm_wd_gradient_descent",
    "ufm_wd_hessian",
    "ufm_wd_origin_spectrum",
    # the chapter's analysis of the UFM runs
    "ufm_run_summary",
    "SaddleCheck",
    "origin_saddle_check",
    # the fixed simplex-ETF classifier
    "TrainingMemory",
    "training_memory",
    "head_models",
    "head_accuracies",
    "head_memory",
    # how sure
    "basin_share",
]


# ================================================================================================
# The UFM with weight decay
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
    lam_M = check_real(lam_M, "lam_M", positive=True)
    lam_Z = check_real(lam_Z, "lam_Z", positive=True)
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
    lam_M = check_real(lam_M, "lam_M", positive=True)
    lam_Z = check_real(lam_Z, "lam_Z", positive=True)
    lam_b, lr = check_real(lam_b, "lam_b", minimum=0), check_real(lr, "lr", positive=True)
    g = as_generator(generator)
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
        losses, grads = ufm_wd_value_and_grad(M, Z, b, Y, lam_M, lam_Z, lam_b)
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


def ufm_wd_value_and_grad(M, Z, b, Y, lam_M, lam_Z, lam_b):
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


def ufm_unflatten(theta: torch.Tensor, d: int, C: int, N: int):
    """(M, Z, b) from the flat vector θ = (vec M row-major, vec Z row-major, b) that
    :func:`ufm_wd_hessian` differentiates: views of θ, M d×C, Z N×d, b (C,)."""
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
        lambda th: ufm_wd_loss(*ufm_unflatten(th, d, C, N), y, lam_M, lam_Z, lam_b), theta
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
    lam_M = check_real(lam_M, "lam_M", minimum=0)
    lam_Z = check_real(lam_Z, "lam_Z", minimum=0)
    lam_b = check_real(lam_b, "lam_b", minimum=0)
    N = n * C
    s = 1.0 / (C * math.sqrt(n))
    root = math.sqrt((lam_M - lam_Z) ** 2 + 4 * s * s)
    pairs = d * (C - 1)
    eig = ([(lam_M + lam_Z - root) / 2] * pairs + [(lam_M + lam_Z + root) / 2] * pairs
           + [lam_M] * d + [lam_Z] * (N * d - pairs) + [lam_b + 1.0 / C] * (C - 1) + [lam_b])
    return np.sort(np.asarray(eig))


# ================================================================================================
# The chapter's analysis of the UFM runs
# ================================================================================================


def ufm_run_summary(runs: UFMRuns, optimum: UFMOptimum) -> dict[str, np.ndarray]:
    """Per gradient-descent run on the UFM (Zhu et al. 2021): f − f*, final gradient norm, NC1,
    the ETF error (the larger of that of M and of the centred class means, Definition 3.1), NC3
    self-duality, the largest relative deviation of ‖M_y‖ and ‖z_i‖ from :func:`ufm_wd_optimum`,
    the largest abs(b) and the final objective."""
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
        """The smallest Hessian eigenvalue at the origin (negative: a strict saddle)."""
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
        return ufm_wd_loss(*ufm_unflatten(theta, d, C, N), y, lam, lam, lam).item()

    f0 = f_at(torch.zeros_like(v))
    eps = np.linspace(-1.5, 1.5, 61)
    drop = np.array([f_at(e * v) - f0 for e in eps])
    quad = (f_at(small * v) - f0) / (0.5 * vals[0].item() * small**2)
    M0, Z0, b0 = ufm_unflatten(start * v, d, C, N)
    escape = ufm_wd_gradient_descent(y, d, lam, lam, lam, runs=1, steps=steps, lr=lr,
                                     M0=M0[None], Z0=Z0[None], b0=b0[None])
    optimum = ufm_wd_optimum(C, n, lam, lam)
    H_end = ufm_wd_hessian(escape.M[0], escape.Z[0], escape.b[0], y, lam, lam, lam)
    return SaddleCheck(vals.numpy(), closed, float(np.abs(vals.numpy() - closed).max()), eps, drop, quad,
                       escape, optimum, escape.final_loss.item() - optimum.value,
                       torch.linalg.eigvalsh(H_end)[0].item())


# ================================================================================================
# The fixed simplex-ETF classifier (d = C): memory and accuracy
# ================================================================================================


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
        """All categories together: the bytes alive at the start of the backward pass."""
        return (self.parameters + self.gradients + self.optimizer_state + self.buffers
                + self.input + self.saved_activations)

    def as_dict(self) -> dict[str, int]:
        """The categories and ``total`` by readable name (the rows of the chapter's table)."""
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


def head_models(kind: str, in_shape, num_classes: int, hidden: int, wide_dim: int, seed: int):
    """The two networks compared for the fixed-classifier claim of Zhu et al. (2021): the same MLP
    trunk (two hidden layers of ``hidden`` units, batch norm, ReLU) ending in ``"learnable"``, a
    projection to ``wide_dim`` and a learnable bias-free classifier, or ``"fixed"``, a projection to
    d = C and the fixed simplex ETF (no gradient). Initialized from ``seed``."""
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


# ================================================================================================
# How sure: the share of random starts a basin must draw
# ================================================================================================


def basin_share(starts: int, probability: float) -> float:
    """The share p of random starts that a region (a basin of attraction) must draw for at least
    one of ``starts`` independent starts to land in it with the given probability:
    1 − (1 − probability)^(1/starts). With probability 0.8, the smallest detectable basin; with
    0.95, a 95% upper bound on the share of a basin that no start met."""
    if starts < 1 or not 0 < probability < 1:
        raise ValueError(f"need starts ≥ 1 and probability in (0, 1), got {starts}, {probability}")
    return 1 - (1 - probability) ** (1 / starts)
