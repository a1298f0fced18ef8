"""Gradient flow on the unconstrained feature model (UFM) and the multiclass hard-margin SVM.

Theorem 4.1 and Remark 4.2 of Gao et al. (arXiv 2310.08358): on the UFM of their equation (1),

    CELoss(M, Z) = − Σ_i log softmax(Mᵀ z_i)_{y_i}     (a sum, no regularization),

gradient flow that drives the loss to zero drives p_min to infinity, and the normalized solution
approaches a multiclass max-margin one. Gradient flow is approximated by small-step gradient
descent. Far along the path the loss is tiny and plain steps crawl; ``normalized=True`` divides
each step by the current loss. That follows the *same* trajectory (dw/ds = −∇L/L is dw/dt = −∇L
with ds = L dt, a change of clock), so it reaches the late part of the path in few steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

from nclib._checks import (
    UndefinedMetricError,
    as_float64,
    check_bool,
    check_classifier,
    check_features_labels,
    check_int,
    check_labels,
    check_real,
    pow2_scale,
)

from nclib.metrics import margins

__all__ = ["ce_loss", "FlowPath", "gradient_flow", "multiclass_svm", "direction_cosine"]


def ce_loss(M: torch.Tensor, Z: torch.Tensor, y: torch.Tensor, weight_decay: float = 0.0) -> torch.Tensor:
    """Equation (1): the summed cross-entropy of logits Z M, plus (λ/2)(‖M‖²_F + ‖Z‖²_F) if λ > 0.
    Differentiable in M and Z; the arguments are checked (shapes, labels, λ ≥ 0) but not copied."""
    if not (isinstance(M, torch.Tensor) and isinstance(Z, torch.Tensor)):
        raise ValueError("M and Z must be tensors (ce_loss is differentiated through)")
    if M.ndim != 2 or Z.ndim != 2 or Z.shape[1] != M.shape[0] or M.shape[1] < 2:
        raise ValueError(f"need Z (N×d) and M (d×C, C ≥ 2) with matching d; got Z {tuple(Z.shape)}, "
                         f"M {tuple(M.shape)}")
    if not (M.is_floating_point() and Z.is_floating_point()):
        raise ValueError(f"M and Z must be floating point, got {M.dtype} and {Z.dtype}")
    y, _ = check_labels(y, Z.shape[0], M.shape[1], require_all=False)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0)
    return _ce_loss(M, Z, y.to(Z.device), weight_decay)


def _ce_loss(M, Z, y, weight_decay: float):
    """:func:`ce_loss` without the checks, for the inner loop of :func:`gradient_flow`."""
    loss = F.cross_entropy(Z @ M, y, reduction="sum")
    if weight_decay:
        loss = loss + 0.5 * weight_decay * (M.pow(2).sum() + Z.pow(2).sum())
    return loss


@dataclass
class FlowPath:
    """Snapshots along a gradient-flow path: flow time t (Σ of the effective step sizes), loss,
    p_min, scale-free margin, ‖M‖_F, ‖Z‖_F, and the classifier M at each snapshot."""

    t: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    p_min: list[float] = field(default_factory=list)
    scale_free: list[float] = field(default_factory=list)
    norm_M: list[float] = field(default_factory=list)
    norm_Z: list[float] = field(default_factory=list)
    M: list[torch.Tensor] = field(default_factory=list)
    Z_final: torch.Tensor | None = None

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k)) for k in ("t", "loss", "p_min", "scale_free", "norm_M", "norm_Z")}


def gradient_flow(
    M0, Z0, y, *, step: float, steps: int, train_features: bool = True, normalized: bool = False,
    weight_decay: float = 0.0, snapshots: int = 60,
) -> FlowPath:
    """Small-step gradient descent on equation (1) from (M0, Z0): the gradient flow of Theorem 4.1.

    ``train_features=False`` holds Z fixed (the setting of Remark 4.2 (a), where the direction of
    M(t) tends to the multiclass SVM). ``normalized=True`` uses step/loss, a change of clock along
    the same path (module docstring). Snapshots are spaced logarithmically in the step index.
    Every snapshot needs the margins, so M0's columns must be distinct (not a zero M0).
    """
    M0 = as_float64(M0, "M0")
    if M0.ndim != 2 or M0.shape[1] < 2:
        raise ValueError(f"M0 must be a d×C classifier with C ≥ 2, got shape {tuple(M0.shape)}")
    Z0, y, C = check_features_labels(Z0, y, M0.shape[1])
    M = check_classifier(M0, Z0.shape[1], C).clone()
    Z = Z0.clone()
    step = check_real(step, "step", positive=True)
    steps = check_int(steps, "steps", minimum=1)
    snapshots = check_int(snapshots, "snapshots", minimum=1)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0)
    train_features = check_bool(train_features, "train_features")
    normalized = check_bool(normalized, "normalized")
    marks = set(np.unique(np.geomspace(1, steps, snapshots).astype(int)).tolist()) | {0}
    path, t = FlowPath(), 0.0

    def record(loss_value):
        try:
            m = margins(Z, y, M)
        except UndefinedMetricError as exc:
            raise UndefinedMetricError(f"gradient_flow at step {k}: {exc}; start from a random M0 "
                                       "(e.g. 1e-2·randn) rather than a zero one") from None
        path.t.append(t)
        path.loss.append(loss_value)
        path.p_min.append(m.p_min)
        path.scale_free.append(m.scale_free)
        path.norm_M.append(M.norm().item())
        path.norm_Z.append(Z.norm().item())
        path.M.append(M.clone())

    for k in range(steps + 1):
        M.requires_grad_(True)
        Z.requires_grad_(train_features)
        loss = _ce_loss(M, Z, y, weight_decay)
        if not math.isfinite(loss.item()) or (normalized and loss.item() == 0.0):
            raise FloatingPointError(
                f"loss became {loss.item()} at step {k} (overflow, or underflow of the normalized "
                "clock): lower the step size or the number of steps"
            )
        if k in marks:
            record(loss.item())
        if k == steps:
            break
        grads = torch.autograd.grad(loss, [M, Z] if train_features else [M])
        eta = step / loss.item() if normalized else step
        with torch.no_grad():
            M = M - eta * grads[0]
            if train_features:
                Z = Z - eta * grads[1]
        t += eta
    path.Z_final = Z.detach()
    return path


def multiclass_svm(Z, y, num_classes: int | None = None) -> torch.Tensor:
    """Hard-margin multiclass SVM without bias (Crammer–Singer form, the max-margin problem that
    Remark 4.2 relates to CE): min ½‖M‖²_F s.t. ⟨M_{y_i} − M_{y'}, z_i⟩ ≥ 1 for all i, y' ≠ y_i.

    Solved as a QP with SciPy's SLSQP, independently of any gradient flow. Raises ValueError when
    the features are not linearly separable by such an M (the QP is infeasible).
    """
    Z, y, C = check_features_labels(Z, y, num_classes)
    Zn, yn = Z.cpu().numpy(), y.cpu().numpy()
    N, d = Zn.shape
    rows = []  # one constraint row per (i, y'): coefficients of vec(M) (d×C, column-major by class)
    for i in range(N):
        for c in range(C):
            if c == yn[i]:
                continue
            a = np.zeros((d, C))
            a[:, yn[i]] = Zn[i]
            a[:, c] = -Zn[i]
            rows.append(a.ravel())
    A = np.asarray(rows)
    # A feasible start: least squares towards margins of 1 (SLSQP also copes with infeasible ones).
    x0 = np.linalg.lstsq(A, np.ones(len(A)), rcond=None)[0]
    res = minimize(
        lambda x: 0.5 * x @ x, x0, jac=lambda x: x, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda x: A @ x - 1.0, "jac": lambda x: A}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    violation = max(0.0, float(np.max(1.0 - A @ res.x)))
    if not res.success or violation > 1e-6:
        raise ValueError(
            "the multiclass SVM has no solution: the features are not linearly separable by a "
            f"bias-free classifier (largest constraint violation {violation:.3g}; {res.message})"
        )
    return torch.as_tensor(res.x.reshape(d, C), dtype=torch.float64)


def direction_cosine(A, B) -> float:
    """Cosine between two matrices seen as vectors: ⟨A, B⟩_F/(‖A‖_F ‖B‖_F) (the direction comparison
    of Remark 4.2). Each is divided by a power of two first, so huge norms cannot overflow."""
    A, B = as_float64(A, "A"), as_float64(B, "B")
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {tuple(A.shape)} and {tuple(B.shape)}")
    if not (torch.isfinite(A).all() and torch.isfinite(B).all()):
        raise ValueError("A and B must be finite (no NaN or infinity)")
    A = A / pow2_scale(A.abs().max().item()) if A.numel() else A
    B = B / pow2_scale(B.abs().max().item()) if B.numel() else B
    if not (A.norm() > 0 and B.norm() > 0):
        raise UndefinedMetricError("the cosine is undefined: A or B is zero (no direction)")
    return ((A * B).sum() / (A.norm() * B.norm())).item()
