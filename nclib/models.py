"""Networks as ``backbone → features (d) → head → logits``, with the head's d×C matrix M exposed.

The paper's classifier is logit = Mᵀ f(x; w) with no bias (Section 4, Notations), so both heads
are bias-free. A fixed head holds a simplex ETF (Section 5.2, following Yang et al. 2022) as a
buffer: it is saved with the model but never receives a gradient.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from nclib._checks import check_int, check_real

__all__ = [
    "LinearHead",
    "FixedHead",
    "NCModel",
    "mlp",
    "small_cnn",
    "vgg11",
    "resnet32",
    "densenet121",
    "BACKBONES",
    "build_backbone",
    "count_parameters",
]


def _int_arg(value, name: str, minimum: int | None, hint: str) -> int:
    """:func:`nclib._checks.check_int` with a hint on how to fix the argument."""
    try:
        return check_int(value, name, minimum=minimum)
    except ValueError as exc:
        raise ValueError(f"{exc}; {hint}") from None


def _optional_int(value, name: str, hint: str) -> int | None:
    return None if value is None else _int_arg(value, name, 1, hint)


def _check_logit_scale(value, where: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    try:
        return check_real(value, f"{where}: logit_scale", positive=True)
    except ValueError as exc:
        raise ValueError(f"{exc}; it multiplies the logits, so it must be a finite number > 0 (1.0 "
                         "leaves them unscaled)") from None


class LinearHead(nn.Module):
    """A learnable d×C classifier M (logits = z @ M), initialised like ``nn.Linear``."""

    def __init__(self, d: int, C: int):
        super().__init__()
        d = _int_arg(d, "LinearHead(d, C): d", 1, "d is the feature dimension (the backbone's feature_dim)")
        C = _int_arg(C, "LinearHead(d, C): C", 2, "C is the number of classes, at least 2")
        bound = 1.0 / math.sqrt(d)
        self.M = nn.Parameter(torch.empty(d, C).uniform_(-bound, bound))

    def forward(self, z):
        return z @ self.M

    def matrix(self) -> torch.Tensor:
        """The current classifier M (d×C), detached."""
        return self.M.detach()


class FixedHead(nn.Module):
    """A fixed classifier: logits = s · z @ M with M a non-trainable buffer (e.g. a simplex ETF,
    a permuted one M P or a rotated one R M, Definition 4.7) and an explicit logit scale s."""

    def __init__(self, M: torch.Tensor, logit_scale: float = 1.0):
        super().__init__()
        where = "FixedHead(M, logit_scale)"
        try:
            M = torch.as_tensor(M)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{where}: M must be a d×C tensor of real numbers ({exc})") from None
        if M.dtype == torch.bool or M.is_complex():
            raise TypeError(f"{where}: M must hold real numbers, got dtype {M.dtype}")
        if M.ndim != 2 or M.shape[0] < 1 or M.shape[1] < 2:
            raise ValueError(
                f"{where}: M must be a d×C matrix with d ≥ 1 and C ≥ 2 classes (columns are the class "
                f"vectors M_y, logits = z @ M), got shape {tuple(M.shape)}; e.g. simplex_etf(C, d)"
            )
        M32 = M.detach().to(torch.float32).clone()
        if not bool(torch.isfinite(M32).all()):
            cause = "NaN or infinite values" if not bool(torch.isfinite(M).all()) else \
                "values beyond float32's range (the buffer is float32)"
            raise ValueError(f"{where}: M contains {cause}; a fixed classifier must be finite")
        self.register_buffer("M", M32)
        self.logit_scale = _check_logit_scale(logit_scale, where)

    def forward(self, z):
        return self.logit_scale * (z @ self.M.to(z.dtype))

    def extra_repr(self) -> str:
        d, C = self.M.shape
        return f"d={d}, C={C}, logit_scale={self.logit_scale}, fixed (buffer, no gradient)"

    def matrix(self) -> torch.Tensor:
        """The effective classifier s·M, so that margins are measured on the logits actually used."""
        return self.logit_scale * self.M


class NCModel(nn.Module):
    """``backbone`` maps inputs to d features; ``head`` maps features to C logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        for name, module in (("backbone", backbone), ("head", head)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"NCModel(backbone, head): {name} must be an nn.Module, got {type(module).__name__}")
        if not callable(getattr(head, "matrix", None)):
            raise TypeError(
                f"NCModel(backbone, head): the head ({type(head).__name__}) has no matrix() method giving "
                "its d×C classifier; use LinearHead or FixedHead"
            )
        d_head = head.M.shape[0] if isinstance(getattr(head, "M", None), torch.Tensor) else None
        d_backbone = _feature_dim(backbone)
        if d_head is not None and d_backbone is not None and d_head != d_backbone:
            raise ValueError(
                f"NCModel(backbone, head): the backbone gives {d_backbone} features but the head expects "
                f"d = {d_head} (its M is {d_head}×{head.M.shape[1]}); build the head with d = {d_backbone} "
                "(backbone.feature_dim) or the backbone with that d"
            )
        self.backbone = backbone
        self.head = head

    def features(self, x):
        """The d-dimensional last-layer features f(x; w)."""
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.backbone(x))

    def logits(self, x, amp: bool = False):
        """Logits with the backbone under bf16 autocast when ``amp`` is set and ``x`` is on CUDA,
        and the head always in fp32 (outside autocast), so that the fixed ETF's logits and the
        loss keep full precision (ARCHITECTURE.md, Speed). With ``amp=False`` this is ``forward``."""
        if not (amp and x.device.type == "cuda"):  # bf16 on a CPU without AMX only costs time
            return self.head(self.backbone(x))
        return self._mixed_logits(x)

    def _mixed_logits(self, x):
        """The accelerator path of :meth:`logits`: backbone under bf16 autocast on ``x``'s device,
        head in fp32. Split out so that a CPU test runs the same code a GPU reader's run does."""
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            z = self.backbone(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.head(z.float())

    def classifier_matrix(self) -> torch.Tensor:
        """The d×C matrix M with logits = features @ M."""
        return self.head.matrix()


def _feature_dim(backbone: nn.Module) -> int | None:
    """The backbone's feature dimension when it can be read off: ``feature_dim``, or the width of
    a final ``nn.Linear``."""
    d = getattr(backbone, "feature_dim", None)
    if isinstance(d, int):
        return d
    last = backbone[-1] if isinstance(backbone, nn.Sequential) and len(backbone) else backbone
    return last.out_features if isinstance(last, nn.Linear) else None


def _check_shape(in_shape, where: str, ndim: int | None = None) -> tuple[int, ...]:
    """``in_shape`` as a tuple of positive ints (of length ``ndim`` when given)."""
    want = "(channels, height, width)" if ndim == 3 else "a tuple of positive ints, e.g. (1, 28, 28)"
    if isinstance(in_shape, (str, bytes)) or not hasattr(in_shape, "__len__") or not hasattr(in_shape, "__iter__"):
        raise ValueError(f"{where}: in_shape must be {want}, got {in_shape!r}")
    if (ndim is not None and len(in_shape) != ndim) or len(in_shape) == 0:
        raise ValueError(f"{where}: in_shape must be {want}, got {tuple(in_shape)!r} ({len(in_shape)} entries)")
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in in_shape):
        raise ValueError(f"{where}: in_shape must be {want} with positive integer sizes, got {tuple(in_shape)!r}")
    return tuple(int(s) for s in in_shape)


def mlp(in_shape, d: int, width: int = 256, depth: int = 2, *, feature_relu: bool = False,
        last_init: str = "uniform") -> nn.Module:
    """A ReLU MLP (``depth`` ≥ 1 hidden layers of ``width`` units with BatchNorm) ending in a linear
    layer to d features. ``in_shape`` is the shape of one input (e.g. (1, 28, 28) or (d_in,)).

    Two variants serve Section 5.2's test and its negative control (chapter 8's identity: for a
    backbone ending in a linear layer, a rotated head is a rotated initialisation of that layer):

    * ``feature_relu=True``: a ReLU after the last layer, so the features live in the positive
      orthant, as after the ReLU and pooling of VGG/ResNet/DenseNet; the identity fails.
    * ``last_init="gaussian"``: the last layer drawn i.i.d. N(0, 1/fan_in) with zero bias, a law
      invariant under rotations of the feature space (PyTorch's default ``"uniform"`` is not), so
      that a rotated or permuted simplex-ETF head cannot change the distribution of the trained
      network: an exact null.
    """
    in_shape = _check_shape(in_shape, "mlp(in_shape, d, width, depth)")
    d = _int_arg(d, "mlp: d", 1, "d is the feature dimension, a positive integer")
    width = _int_arg(width, "mlp: width", 1, "width is the number of hidden units per layer")
    depth = _int_arg(depth, "mlp: depth", 1, "depth is the number of hidden layers")
    if not isinstance(feature_relu, bool):
        raise ValueError(f"mlp: feature_relu must be True or False, got {feature_relu!r}")
    if last_init not in ("uniform", "gaussian"):
        raise ValueError(f"mlp: last_init must be 'uniform' (PyTorch's default) or 'gaussian' (rotation "
                         f"invariant), got {last_init!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(in_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.BatchNorm1d(width), nn.ReLU()]
        fan_in = width
    last = nn.Linear(fan_in, d)
    if last_init == "gaussian":
        with torch.no_grad():
            last.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
            last.bias.zero_()
    layers.append(last)
    if feature_relu:
        layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    net.feature_dim = d
    return net


def small_cnn(in_channels: int, d: int, width: int = 32) -> nn.Module:
    """A small CNN for CPU-scale runs: two conv–BN–ReLU–pool stages, global average pooling and a
    linear projection to d features (no ReLU after it, as in :func:`mlp`). Inputs need at least
    4×4 pixels (two 2×2 pools)."""
    in_channels = _int_arg(in_channels, "small_cnn: in_channels", 1, "the number of input channels (1 for "
                           "Fashion-MNIST, 3 for CIFAR)")
    d = _int_arg(d, "small_cnn: d", 1, "d is the feature dimension, a positive integer")
    width = _int_arg(width, "small_cnn: width", 1, "width is the number of channels of the first stage")

    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    net = nn.Sequential(
        *stage(in_channels, width),
        *stage(width, 2 * width),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, d),
    )
    net.feature_dim = d
    return net


# ---------------------------------------------------------------------------------------------
# The paper's backbones (Section 5): CIFAR-style VGG11, ResNet32 and DenseNet121.
#
# Each takes any number of input channels and any input size of at least 8×8 (Fashion-MNIST
# 1×28×28, CIFAR 3×32×32) and ends in global average pooling, so its features are the pooled
# activations of the last stage: d = 512 (VGG11), 64 (ResNet32), 1024 (DenseNet121). These come
# after a ReLU and are non-negative, as in the standard networks. With ``d`` given (and different
# from that width), a linear projection to d features is appended, as in :func:`mlp`; this also
# sets up the C > d case of Section 5.2 for any backbone.
# ---------------------------------------------------------------------------------------------


def _check_backbone_args(in_channels, d, where: str) -> tuple[int, int | None]:
    in_channels = _int_arg(in_channels, f"{where}: in_channels", 1,
                           "the number of input channels (1 for Fashion-MNIST, 3 for CIFAR)")
    d = _optional_int(d, f"{where}: feature dimension d",
                      "pass a positive integer, or None for the backbone's natural width")
    return in_channels, d


def _finish(layers: list[nn.Module], width: int, d: int | None) -> nn.Sequential:
    """Global average pooling, flatten, and a linear projection to ``d`` if ``d`` differs from
    the pooled width; records the feature dimension as ``feature_dim``."""
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if d is not None and d != width:
        layers.append(nn.Linear(width, d))
    net = nn.Sequential(*layers)
    net.feature_dim = width if d is None else d
    return net


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg11(in_channels: int = 3, d: int | None = None) -> nn.Sequential:
    """VGG11 with batch norm in its CIFAR form (Simonyan & Zisserman 2015, configuration A: eight
    3×3 conv–BN–ReLU layers, 64-128-256-256-512-512-512-512 channels, five 2×2 max-pools), used in
    Figures 3–4 of Gao et al. Pools round up (``ceil_mode``), so 28×28 inputs shrink
    28→14→7→4→2→1 like 32×32 ones do 32→16→8→4→2→1. Features: 512 (or ``d`` after a linear
    projection). About 9.23 M parameters with a 10-class head."""
    in_channels, d = _check_backbone_args(in_channels, d, "vgg11")
    layers: list[nn.Module] = []
    cin = in_channels
    for v in _VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            cin = v
    return _finish(layers, cin, d)


class _ShortcutA(nn.Module):
    """He et al. (2016) option A: identity shortcut that subsamples by 2 and zero-pads the new
    channels; parameter-free, which keeps ResNet32 at 0.46 M parameters."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        return nn.functional.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class _BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with a residual connection (He et al. 2016, Figure 2 left)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _ShortcutA(cout - cin) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet32(in_channels: int = 3, d: int | None = None) -> nn.Sequential:
    """ResNet32 for CIFAR (He et al. 2016, Section 4.2: n = 5, a 3×3 stem with 16 channels, then
    3 stages × 5 basic blocks with 16/32/64 channels, strides 1/2/2, option-A shortcuts, global
    average pooling): 0.46 M parameters with a 10-class head. Features: 64 (or ``d``)."""
    in_channels, d = _check_backbone_args(in_channels, d, "resnet32")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)
    ]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(5):
            layers.append(_BasicBlock(cin, cout, stride if i == 0 else 1))
            cin = cout
    net = _finish(layers, cin, d)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


class _DenseLayer(nn.Module):
    """DenseNet-BC bottleneck: BN–ReLU–conv1×1 (4k channels)–BN–ReLU–conv3×3 (k channels), whose
    output is concatenated to its input (Huang et al. 2017)."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return torch.cat([out, x], dim=1)


def _transition(cin: int, cout: int) -> nn.Sequential:
    """DenseNet-BC transition: BN–ReLU–conv1×1 to ``cout`` channels, 2×2 average pooling."""
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2))


def densenet121(in_channels: int = 3, d: int | None = None, growth: int = 32) -> nn.Sequential:
    """DenseNet121 in its CIFAR form (Huang et al. 2017, DenseNet-BC: blocks of 6-12-24-16
    bottleneck layers, growth rate 32, compression 0.5, a 3×3 stem with 2·growth channels and no
    initial pooling): about 6.96 M parameters with a 10-class head. Features: 1024 (or ``d``)."""
    in_channels, d = _check_backbone_args(in_channels, d, "densenet121")
    growth = _int_arg(growth, "densenet121: growth rate", 1, "the paper's DenseNet121 uses 32")
    channels = 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
    for i, n in enumerate((6, 12, 24, 16)):
        for _ in range(n):
            layers.append(_DenseLayer(channels, growth))
            channels += growth
        if i < 3:
            layers.append(_transition(channels, channels // 2))
            channels //= 2
    layers += [nn.BatchNorm2d(channels), nn.ReLU()]
    return _finish(layers, channels, d)


#: ``mlp_relu``: :func:`mlp` with a ReLU after its last layer (features after a nonlinearity, as in
#: the paper's backbones); ``mlp_gauss``: :func:`mlp` with a rotation-invariant last layer (the
#: negative control of Section 5.2, where a permuted simplex ETF cannot matter in distribution).
BACKBONES = ("mlp", "mlp_relu", "mlp_gauss", "small_cnn", "vgg11", "resnet32", "densenet121")


def build_backbone(name: str, in_shape, d: int | None = None, width: int | None = None) -> nn.Module:
    """A backbone by name (one of :data:`BACKBONES`) for inputs of shape ``in_shape`` =
    (channels, H, W). ``d`` is the feature dimension (``None``: the backbone's natural width;
    64 for the small networks); ``width`` sets the hidden width of ``mlp`` (default 256) and
    ``small_cnn`` (default 32); ``mlp_relu`` and ``mlp_gauss`` are the two variants of :func:`mlp`. The result has an attribute ``feature_dim``."""
    if not isinstance(name, str) or name not in BACKBONES:
        lower = f" (names are lower-case: {name.lower()!r})" if isinstance(name, str) and name.lower() in BACKBONES else ""
        raise ValueError(f"build_backbone: unknown backbone {name!r}{lower}; choose one of {', '.join(BACKBONES)}")
    where = f"build_backbone({name!r}, in_shape, d, width)"
    in_shape = _check_shape(in_shape, where, ndim=3)
    d = _optional_int(d, f"{where}: d", "pass a positive feature dimension, or None for the default")
    width = _optional_int(width, f"{where}: width", "pass a positive hidden width, or None for the default")
    if name in ("mlp", "mlp_relu", "mlp_gauss"):
        return mlp(in_shape, 64 if d is None else d, 256 if width is None else width,
                   feature_relu=name == "mlp_relu", last_init="gaussian" if name == "mlp_gauss" else "uniform")
    if name == "small_cnn":
        if min(in_shape[1:]) < 4:
            raise ValueError(f"{where}: small_cnn needs inputs of at least 4×4 pixels (two 2×2 pools), "
                             f"got {in_shape[1]}×{in_shape[2]}; use mlp for smaller inputs")
        return small_cnn(in_shape[0], 64 if d is None else d, 32 if width is None else width)
    if width is not None:
        raise ValueError(f"{where}: width applies to the MLPs and small_cnn only, not to {name}; pass width=None")
    if min(in_shape[1:]) < 8:
        raise ValueError(f"{where}: {name} needs inputs of at least 8×8 pixels, got {in_shape[1]}×{in_shape[2]}")
    builders = {"vgg11": vgg11, "resnet32": resnet32, "densenet121": densenet121}
    return builders[name](in_shape[0], d)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (by default only those that receive gradients; a fixed head's ETF is a
    buffer and never counts)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_parameters(module): module must be an nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
