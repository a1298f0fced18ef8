"""Data in memory: :class:`TensorDataset` (a whole split as tensors, on the model's device) and
class-balanced subsets and splits. The loaders of Fashion-MNIST and CIFAR are in
:mod:`nclib.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nclib._checks import as_generator, check_int

__all__ = [
    "TensorDataset",
    "balanced_subset",
    "balanced_split",
]

# ---------------------------------------------------------------------------------------------
# TensorDataset
# ---------------------------------------------------------------------------------------------


@dataclass
class TensorDataset:
    """A whole split in memory: images ``x`` (N×channels×H×W, float32, normalized with the training
    split's per-channel mean and std) and labels ``y`` (N, int64, in [0, len(classes))).

    Construction checks these (a mismatched length, float or int32 labels, a label with no class
    name, or NaN inputs raise ``ValueError``/``TypeError`` here, not deep inside a training step).
    ``x`` may be any floating tensor with a leading sample axis (N×d for synthetic data)."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]

    def __post_init__(self):
        where = "TensorDataset(x, y, classes)"
        if not isinstance(self.x, torch.Tensor):
            if isinstance(self.x, np.ndarray):
                self.x = torch.from_numpy(self.x)
            else:
                raise TypeError(f"{where}: x must be a torch.Tensor (or numpy array), got {type(self.x).__name__}")
        if not isinstance(self.y, torch.Tensor):
            if isinstance(self.y, np.ndarray):
                self.y = torch.from_numpy(self.y)
            else:
                raise TypeError(f"{where}: y must be a torch.Tensor of int64 labels, got {type(self.y).__name__}")
        if isinstance(self.classes, str) or not isinstance(self.classes, (list, tuple)) or not all(
            isinstance(c, str) for c in self.classes
        ):
            raise TypeError(f"{where}: classes must be a list of class names (str), got {self.classes!r}")
        self.classes = list(self.classes)
        x, y = self.x, self.y
        if not x.is_floating_point():
            raise TypeError(
                f"{where}: x must be floating point, got dtype {x.dtype}; convert images with "
                "x.float() / 255 (and normalize) first"
            )
        if x.ndim < 2:
            raise ValueError(
                f"{where}: x must have a sample axis and at least one feature axis (N×d or N×C×H×W), "
                f"got shape {tuple(x.shape)}; for scalar features use x[:, None]"
            )
        if y.ndim != 1:
            raise ValueError(f"{where}: y must be a 1-D vector of N labels, got shape {tuple(y.shape)}")
        if y.dtype != torch.int64:
            how = "y.long()" if not y.is_floating_point() else "y.round().long() if they are whole numbers"
            raise TypeError(
                f"{where}: labels y must be int64 (torch.long; cross-entropy needs them so), got "
                f"dtype {y.dtype}; convert them with {how}"
            )
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{where}: x has {x.shape[0]} samples but y has {y.shape[0]} labels; they must have "
                "the same length (one label per sample)"
            )
        if x.device != y.device:
            raise ValueError(f"{where}: x is on {x.device} but y on {y.device}; put both on one device")
        if not self.classes:
            raise ValueError(f"{where}: classes is empty; give one name per class")
        if y.numel():
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= len(self.classes):
                raise ValueError(
                    f"{where}: labels must lie in [0, {len(self.classes)}) (one per entry of classes), "
                    f"found min {lo} and max {hi}; relabel them or pass the full list of class names"
                )
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).flatten(1).any(dim=1).sum())
            raise ValueError(f"{where}: x contains NaN or infinite values in {bad} of {x.shape[0]} samples")

    @classmethod
    def _trusted(cls, x: torch.Tensor, y: torch.Tensor, classes: list[str]) -> "TensorDataset":
        """A dataset from parts already checked (a subset or a copy of a checked one), skipping the
        O(N) checks of construction."""
        obj = object.__new__(cls)
        obj.x, obj.y, obj.classes = x, y, classes
        return obj

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.y.shape[0]

    def subset(self, index) -> "TensorDataset":
        """The samples at ``index``: a 1-D tensor (or list, array) of indices in [0, N), repeats
        allowed, or a boolean mask of length N."""
        where = f"TensorDataset.subset(index) on a dataset of {len(self)} samples"
        try:
            index = torch.as_tensor(index)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{where}: index must be a tensor of integer indices or a boolean mask ({exc})") from None
        if index.ndim != 1:
            raise ValueError(f"{where}: index must be 1-D, got shape {tuple(index.shape)}")
        if index.dtype == torch.bool:
            if index.shape[0] != len(self):
                raise ValueError(f"{where}: a boolean mask must have length {len(self)}, got {index.shape[0]}")
        elif index.numel() == 0:
            index = index.long()  # torch.as_tensor([]) is float32
        elif index.is_floating_point() or index.is_complex():
            raise TypeError(f"{where}: index must hold integers, got dtype {index.dtype}; use index.long()")
        elif index.numel():
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi >= len(self):
                raise IndexError(
                    f"{where}: indices must lie in [0, {len(self)}), found min {lo} and max {hi} "
                    "(negative indices are refused: counting from the end is usually a bug here)"
                )
        index = index.to(self.y.device)
        return TensorDataset._trusted(self.x[index], self.y[index], self.classes)

    def to(self, device) -> "TensorDataset":
        """The same dataset on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``)."""
        dev = _check_device(device, "TensorDataset.to(device)")
        return TensorDataset._trusted(self.x.to(dev), self.y.to(dev), self.classes)


def _check_device(device, where: str) -> torch.device:
    """``device`` as a torch.device that exists on this machine, or a ValueError saying why not."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: {device!r} is not a device name torch knows ({exc}); use 'cpu', 'cuda', "
            "'cuda:N' or a torch.device"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{where}: {device!r} asks for CUDA, but torch.cuda.is_available() is False "
                             "on this machine; use 'cpu'")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{where}: {device!r} does not exist: this machine has {n} CUDA device(s), "
                             f"cuda:0 to cuda:{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{where}: {device!r} asks for Apple's MPS, which is not available here; use 'cpu'")
    return dev


# ---------------------------------------------------------------------------------------------
# Class-balanced subsets
# ---------------------------------------------------------------------------------------------


def _as_labels(y, where: str) -> torch.Tensor:
    try:
        y = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{where}: y must be a 1-D tensor of integer labels ({exc})") from None
    if y.ndim != 1:
        raise ValueError(f"{where}: y must be a 1-D vector of labels, got shape {tuple(y.shape)}")
    if y.numel() == 0:
        raise ValueError(f"{where}: y is empty; there is nothing to draw from")
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{where}: y must hold integer labels, got dtype {y.dtype}")
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()) or not torch.equal(y, y.round()):
            raise ValueError(f"{where}: y must hold integer labels, got non-integer values (dtype {y.dtype})")
        y = y.long()
    return y


def _balanced_index(y: torch.Tensor, per_class: int, g: torch.Generator, where: str,
                    num_classes: int | None = None) -> torch.Tensor:
    classes, counts = torch.unique(y, return_counts=True)
    if num_classes is not None:  # every named class must be there, not just those present
        full = torch.bincount(y.clamp(min=0), minlength=num_classes)
        empty = (full[:num_classes] == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"{where}: class(es) {empty} have no samples, so a subset with {per_class} of each of "
                f"the {num_classes} classes cannot be drawn; use the full split (per_class None or 0)"
            )
    smallest = int(counts.argmin())
    if int(counts[smallest]) < per_class:
        c, n = classes[smallest].item(), int(counts[smallest])
        raise ValueError(
            f"{where}: class {c} has only {n} samples, fewer than per_class = {per_class}; per_class "
            f"can be at most {n} here (the smallest class), or pass None/0 to keep the split whole"
        )
    chosen = []
    for c in classes.tolist():
        members = (y == c).nonzero().flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:per_class]])
    index = torch.cat(chosen)
    return index[torch.randperm(index.numel(), generator=g)]


def balanced_subset(y, per_class: int, generator=None) -> torch.Tensor:
    """Indices of a class-balanced random subset: ``per_class`` samples of each class, drawn
    without replacement with the given seed or generator, returned in random order.

    ``per_class`` must be a positive integer no larger than the smallest class."""
    where = f"balanced_subset(y, per_class={per_class!r})"
    per_class = check_int(per_class, f"{where}: per_class", minimum=1,
                          hint="it is the number of samples kept from each class")
    y = _as_labels(y, where)
    g = as_generator(generator, f"{where}: generator")
    return _balanced_index(y, per_class, g, where)


def balanced_split(train: TensorDataset, test: TensorDataset, per_class_train: int | None,
                   per_class_test: int | None, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Class-balanced subsets of a train/test pair (:func:`balanced_subset`), drawn with ``seed``
    for the training split and ``seed + 1`` for the test split, so the two draws are independent.
    None or 0 keeps a split whole; every class of the dataset must have at least that many samples."""
    for name, split in (("train", train), ("test", test)):
        if not isinstance(split, TensorDataset):
            raise TypeError(f"balanced_split: {name} must be a TensorDataset, got {type(split).__name__}")
    if train.classes != test.classes:
        raise ValueError(
            f"balanced_split: train and test have different classes ({train.num_classes} vs "
            f"{test.num_classes}: {train.classes[:3]}… vs {test.classes[:3]}…); pass the two splits "
            "of one dataset"
        )
    seed = check_int(seed, "balanced_split(seed)", hint="pass an integer seed")
    for name, value in (("per_class_train", per_class_train), ("per_class_test", per_class_test)):
        if value is not None:
            check_int(value, f"balanced_split({name}={value!r})", minimum=0,
                      hint="it is the number of samples kept per class; None or 0 keeps the split whole")
    if per_class_train:
        where = f"balanced_split(per_class_train={per_class_train}) on the training split"
        train = train.subset(_balanced_index(train.y, int(per_class_train), as_generator(seed, f"{where}: seed"), where,
                                             train.num_classes))
    if per_class_test:
        where = f"balanced_split(per_class_test={per_class_test}) on the test split"
        test = test.subset(_balanced_index(test.y, int(per_class_test), as_generator(seed + 1, f"{where}: seed"), where,
                                           test.num_classes))
    return train, test
