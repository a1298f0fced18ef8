"""Input validation shared by nclib's public functions.

Every check raises ``ValueError`` (or its subclass :class:`UndefinedMetricError`) with a message
that names the argument, what is wrong and how to fix it: a metric silently computed on NaN
features, on truncated float labels or on a class with no samples is worse than no metric.

Degenerate geometry. Several quantities divide by a scatter or a norm (NC1 by Σ_B, cosines by
vector norms, normalized margins by ‖M_y − M_{y'}‖). Such a denominator counts as zero when it is
at most ``DEGENERATE_RTOL`` = √ε₆₄ ≈ 1.5e-8 times the scale of the data it comes from (for class
means: the RMS feature norm ρ̄ = (Ave_i ‖z_i‖²)^{1/2}; for classifier columns: the largest column
norm). Why this rule:

- it is relative, so rescaling Z or M (which leaves every NC metric unchanged) never changes the
  verdict, while a huge common offset that buries the class structure does;
- class means are computed from uncentred features and inherit rounding errors proportional to
  ρ̄ (float64 sums; features of a float32 model carry ε₃₂ ≈ 6e-8 relative error each, which a
  class average shrinks to about this level): a separation below √ε·ρ̄ keeps at most half of
  float64's digits, and a metric dividing by it (NC1 ∝ 1/Σ_B reached 2e16 for means 1e-9 apart)
  would mostly report rounding;
- real data sit far above it: even without any class signal, sampling noise alone separates
  class means by about σ_W·√(C/N) (1e-2·σ_W at N = 60 000), so the metrics of a network at
  random initialisation are defined.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "DEGENERATE_RTOL",
    "UndefinedMetricError",
    "as_float64",
    "as_generator",
    "check_bias",
    "check_bool",
    "check_classifier",
    "check_distribution",
    "check_features",
    "check_features_labels",
    "check_int",
    "check_labels",
    "check_matrix",
    "check_orthogonal",
    "check_real",
    "pow2_scale",
]

DEGENERATE_RTOL = math.sqrt(torch.finfo(torch.float64).eps)


class UndefinedMetricError(ValueError):
    """A metric whose definition divides by a quantity that is zero for these inputs (zero
    between-class scatter, a zero vector, coinciding classifier columns); see the module doc."""


def _tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            raise ValueError(f"{name} is on the meta device: a tensor with a shape but no values; "
                             "materialize it first (e.g. build the model on 'cpu', or .to_empty() and load weights)")
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a tensor, array or nested list of numbers, got "
                         f"{type(x).__name__} ({exc})") from None


def as_float64(x, name: str) -> torch.Tensor:
    """Return ``x`` as a float64 tensor (on its own device), accepting numpy arrays and lists."""
    t = _tensor(x, name)
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_int(t)):
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.to(torch.float64)


def _is_int(t: torch.Tensor) -> bool:
    return t.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def pow2_scale(amax: float) -> float:
    """A power of two s with amax/s in [½, 1), or 1 when amax is in [2⁻⁴⁰⁰, 2⁴⁰⁰], where squares and
    sums of squares of float64 numbers can neither overflow nor underflow. Dividing by a power of
    two is exact, so scale-invariant metrics computed on Z/s are bit-identical to those on Z."""
    if amax == 0.0 or 2.0**-400 <= amax <= 2.0**400:
        return 1.0
    return 2.0 ** math.frexp(amax)[1]


# --- scalars ------------------------------------------------------------------------------------

def _scalar(value):
    """A 0-d tensor or array as a Python number (a one-element tensor is a scalar argument)."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()
    return value


def check_int(value, name: str, *, minimum: int | None = None, hint: str = "") -> int:
    """An integer argument (bool and floats such as 2.5 or 3.0 are refused: a count that arrives as
    a float is almost always a unit or parsing mistake upstream). ``hint``, if given, says how to
    fix it and ends the message."""
    tail = f"; {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}){tail}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}{tail}")
    return int(value)


def check_real(value, name: str, *, positive: bool = False, minimum: float | None = None,
               maximum: float | None = None, below: float | None = None) -> float:
    """A finite real argument, optionally > 0, ≥ ``minimum``, ≤ ``maximum`` or < ``below``.
    A 0-d tensor or numpy scalar counts as a number."""
    value = _scalar(value)
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


def check_bool(value, name: str) -> bool:
    """A True/False flag (0/1 or strings such as "no" are refused: they hide mistakes)."""
    value = _scalar(value)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def as_generator(generator, name: str = "generator") -> torch.Generator:
    """nclib's one generator policy: a CPU ``torch.Generator`` is used as given, an integer seed
    (≥ 0) seeds a new one, and None means seed 0, so that every nclib draw is reproducible unless a
    generator or another seed is passed. ``name`` is how an error names the argument."""
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError(f"{name}: must be a CPU torch.Generator, got one on {generator.device}; "
                             "nclib draws on the CPU and moves the result")
        return generator
    if generator is None:
        return torch.Generator().manual_seed(0)
    seed = check_int(_scalar(generator), f"{name} (a torch.Generator or an integer seed)", minimum=0,
                     hint="None means seed 0")
    return torch.Generator().manual_seed(seed)


# --- tensors ------------------------------------------------------------------------------------

def _finite_or_raise(t: torch.Tensor, name: str, hint: str = "") -> float:
    """max |t| as a float; raises if t has a NaN or an infinity (one reduction, no N×d temporary)."""
    if t.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(t)
    amax = max(-lo.item(), hi.item())  # NaN propagates through both, so one test covers NaN and ±inf
    if not math.isfinite(amax):
        bad = ~torch.isfinite(t)
        where = ""
        if t.ndim == 2:
            rows = bad.any(dim=1).nonzero().flatten()
            where = f" in {rows.numel()} of {t.shape[0]} rows (first bad row: {rows[0].item()})"
        raise ValueError(f"{name} contains NaN or infinite values{where}" + (f"; {hint}" if hint else ""))
    return amax


def check_matrix(x, name: str, *, shape: tuple | None = None, ndim: int | None = 2,
                 finite: bool = True) -> torch.Tensor:
    """A real tensor with ``ndim`` dimensions (any when None; exactly ``shape`` if given, where None
    entries match any size), returned as float64."""
    t = as_float64(x, name)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
    if shape is not None and any(s is not None and s != n for s, n in zip(shape, t.shape)):
        want = "×".join("any" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if finite:
        _finite_or_raise(t, name)
    return t


_DIVERGED = ("a diverged model or an overflow upstream is the usual cause: lower the learning "
             "rate or check the forward pass")


def check_features(Z, name: str = "features Z", d: int | None = None):
    """A finite N×d feature matrix (N ≥ 1, d ≥ 1), *not* copied or cast: returns ``(Z, max|Z|)``
    with integer input converted to float64. The caller casts row blocks to float64 as it goes,
    which is cheaper than one full float64 copy."""
    Z = _tensor(Z, name)
    if Z.dtype == torch.bool or Z.is_complex() or not (Z.is_floating_point() or _is_int(Z)):
        raise ValueError(f"{name} must hold real numbers, got dtype {Z.dtype}")
    if _is_int(Z):
        Z = Z.to(torch.float64)
    if Z.ndim != 2:
        raise ValueError(f"{name} must be a 2-D N×d matrix (one row per sample), got shape "
                         f"{tuple(Z.shape)}; flatten the features first")
    if d is not None and Z.shape[1] != d:
        raise ValueError(f"{name} must be N×{d} (the classifier's feature dimension), got shape "
                         f"{tuple(Z.shape)}")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(Z.shape)}): need at least one sample and "
                         "one feature")
    return Z, _finite_or_raise(Z, name, _DIVERGED)


def check_labels(y, n: int | None = None, num_classes: int | None = None, *,
                 require_all: bool = True, name: str = "labels y"):
    """Integer class labels: a 1-D vector (of length ``n`` if given) with values in [0, C).

    Float labels are accepted only when every value is an integer (1.0, not 0.5: truncating 0.5
    to class 0 would silently compute a metric of the wrong labelling). ``C`` is ``num_classes``
    when given, else max(y) + 1, and must be ≥ 2. With ``require_all`` every class needs a sample.
    Returns ``(y int64, C)``."""
    y = _tensor(y, name)
    if y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices, got a bool tensor (a mask?)")
    if y.is_complex() or not (y.is_floating_point() or _is_int(y)):
        raise ValueError(f"{name} must be integer class indices, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of class indices, got shape {tuple(y.shape)}"
                         + ("; one-hot labels? pass y.argmax(dim=1)" if y.ndim == 2 else ""))
    if n is not None and y.shape[0] != n:
        raise ValueError(f"mismatched shapes: the features have {n} rows (samples) but {name} "
                         f"has {y.shape[0]} entries")
    if y.is_floating_point():
        bad = ~(torch.isfinite(y) & (y == y.round()))
        if bad.any():
            first = y[bad][0].item()
            raise ValueError(f"{name} must be integers in [0, C); got non-integer values such as "
                             f"{first} ({int(bad.sum())} of {y.numel()}). Float labels are not "
                             "truncated: round or cast them yourself if that is what you mean")
    y = y.to(torch.int64)
    if num_classes is not None:
        C = check_int(_scalar(num_classes), "num_classes", minimum=2)
    elif y.numel() == 0:
        raise ValueError(f"{name} is empty: need at least one sample per class")
    else:
        C = int(y.max().item()) + 1
        if C < 2:
            raise ValueError(f"need at least two classes, got C = {C} (labels max {C - 1})")
    if y.numel() and (y.min() < 0 or y.max() >= C):
        raise ValueError(f"{name} out of range: they must lie in [0, {C}), found min "
                         f"{y.min().item()} and max {y.max().item()}")
    if require_all:
        counts = torch.bincount(y, minlength=C)
        if (counts == 0).any():
            empty = (counts == 0).nonzero().flatten().tolist()
            raise ValueError(
                f"class(es) {empty} have no samples: every class in [0, {C}) needs at least one, "
                "since class means and margins are undefined for an empty class (use a "
                "class-balanced subset, see nclib.data.balanced_subset)")
    return y, C


def check_features_labels(Z, y, num_classes: int | None = None):
    """Validate a feature matrix ``Z`` (N×d) and labels ``y`` (N,) with every class present.

    Returns ``(Z float64, y int64, C)``. ``C`` is ``num_classes`` when given, else ``max(y) + 1``.
    """
    Z, _ = check_features(Z)
    y, C = check_labels(y, Z.shape[0], num_classes)
    return Z.to(torch.float64), y.to(Z.device), C


def check_classifier(M, d: int, C: int) -> torch.Tensor:
    """Validate a classifier ``M`` of shape d×C (columns are class vectors); returns float64."""
    M = as_float64(M, "classifier M")
    if M.ndim != 2 or tuple(M.shape) != (d, C):
        raise ValueError(
            f"classifier M must be d×C = {d}×{C} (columns are the class vectors M_y), got shape "
            f"{tuple(M.shape)}; if you hold the nn.Linear weight (C×d), pass weight.T")
    _finite_or_raise(M, "classifier M")
    return M


def check_bias(b, C: int) -> torch.Tensor | None:
    """A classifier bias: None, or a finite vector of C numbers (``nn.Linear(d, C).bias``); float64."""
    if b is None:
        return None
    b = check_matrix(b, "classifier bias", shape=(C,), ndim=1)
    return b


def check_distribution(p, C: int, name: str = "class_probs", atol: float = 1e-9) -> torch.Tensor:
    """A probability vector over C classes: finite, non-negative, summing to 1 (to ``atol``)."""
    p = check_matrix(p, name, shape=(C,), ndim=1)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative, got min {p.min().item():.3g}")
    if abs(p.sum().item() - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (a distribution over the {C} classes), got sum "
                         f"{p.sum().item():.6g}; normalize with p / p.sum()")
    return p


def check_orthogonal(Q, n: int, name: str, tol: float = 1e-8) -> torch.Tensor:
    """A finite n×n matrix with QᵀQ = I to ``tol`` (entrywise); returns float64."""
    Q = as_float64(Q, name)
    if tuple(Q.shape) != (n, n):
        raise ValueError(f"{name} must be {n}×{n}, got shape {tuple(Q.shape)}")
    _finite_or_raise(Q, name)
    err = (Q.T @ Q - torch.eye(n, dtype=Q.dtype, device=Q.device)).abs().max().item()
    if not err <= tol:
        raise ValueError(f"{name} must be orthogonal (QᵀQ = I); max deviation is {err:.2e} > {tol:g}"
                         " (draw one with nclib.etf.random_rotation or orthonormalize with QR)")
    return Q
