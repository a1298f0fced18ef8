"""Input validation shared by the metric and bound functions.

Every check raises ``ValueError`` with a message that names the problem and how to fix it: a
metric silently computed on NaN features or on a class with no samples is worse than no metric.
"""

from __future__ import annotations

import torch

__all__ = ["as_float64", "check_features_labels", "check_classifier"]


def as_float64(x, name: str) -> torch.Tensor:
    """Return ``x`` as a float64 tensor (on its own device), accepting numpy arrays and lists."""
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.to(torch.float64)


def check_features_labels(Z, y, num_classes: int | None = None):
    """Validate a feature matrix ``Z`` (N×d) and labels ``y`` (N,) with every class present.

    Returns ``(Z float64, y int64, C)``. ``C`` is ``num_classes`` when given, else ``max(y) + 1``.
    """
    Z = as_float64(Z, "Z")
    y = torch.as_tensor(y)
    if Z.ndim != 2:
        raise ValueError(f"features Z must be a 2-D N×d matrix, got shape {tuple(Z.shape)}")
    if y.ndim != 1:
        raise ValueError(f"labels y must be a 1-D vector of length N, got shape {tuple(y.shape)}")
    if y.shape[0] != Z.shape[0]:
        raise ValueError(
            f"mismatched shapes: Z has {Z.shape[0]} rows (samples) but y has {y.shape[0]} labels"
        )
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise ValueError("labels y must be integers in [0, C); got non-integer values")
    y = y.to(device=Z.device, dtype=torch.int64)
    if not torch.isfinite(Z).all():
        bad = (~torch.isfinite(Z)).any(dim=1).nonzero().flatten()
        raise ValueError(
            f"features Z contain NaN or infinite values in {bad.numel()} of {Z.shape[0]} rows "
            f"(first bad row: {bad[0].item()}); a diverged model or an overflow upstream is the "
            "usual cause: lower the learning rate or check the forward pass"
        )
    C = int(y.max().item()) + 1 if num_classes is None else int(num_classes)
    if C < 2:
        raise ValueError(f"need at least two classes, got C = {C}")
    if y.numel() and (y.min() < 0 or y.max() >= C):
        raise ValueError(
            f"labels out of range: they must lie in [0, {C}), found min {y.min().item()} and "
            f"max {y.max().item()}"
        )
    counts = torch.bincount(y, minlength=C)
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(
            f"class(es) {empty} have no samples: every class in [0, {C}) needs at least one, "
            "since class means and margins are undefined for an empty class (use a class-balanced "
            "subset, see nclib.data.balanced_subset)"
        )
    return Z, y, C


def check_classifier(M, d: int, C: int) -> torch.Tensor:
    """Validate a classifier ``M`` of shape d×C (columns are class vectors)."""
    M = as_float64(M, "M")
    if M.ndim != 2 or tuple(M.shape) != (d, C):
        raise ValueError(
            f"classifier M must be d×C = {d}×{C} (columns are the class vectors M_y), got shape "
            f"{tuple(M.shape)}; if you hold the nn.Linear weight (C×d), pass weight.T"
        )
    if not torch.isfinite(M).all():
        raise ValueError("classifier M contains NaN or infinite values")
    return M


# --- scalar arguments (TrainConfig and other configuration objects)


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """An integer argument (bool and floats such as 2.5 or 3.0 are refused: a count that arrives as
    a float is almost always a unit or parsing mistake upstream)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")
    return int(value)


def check_real(value, name: str, *, positive: bool = False, minimum: float | None = None,
               maximum: float | None = None, below: float | None = None) -> float:
    """A finite real argument, optionally > 0, ≥ ``minimum``, ≤ ``maximum`` or < ``below``."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be ≤ {maximum}, got {value}")
    if below is not None and value >= below:
        raise ValueError(f"{name} must be < {below}, got {value}")
    return value
