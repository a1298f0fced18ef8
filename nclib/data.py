"""Datasets: Fashion-MNIST (the embedded default), CIFAR-10/100 from a local root, balanced subsets.

Fashion-MNIST is found, in this order, at
  1. a root passed by the caller, or the ``NCLIB_DATA`` environment variable;
  2. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
  3. torchvision's download, where a network exists.
Files are always read by torchvision's dataset classes. A root may hold torchvision's layout
(``ROOT/FashionMNIST/raw/``) or the four idx files themselves (``.gz`` or not); the latter are
staged (decompressed) into torchvision's layout under the cache directory (``NCLIB_CACHE``, default
``~/.cache/nclib``), since torchvision reads only its own layout.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "DatasetNotFoundError",
    "TensorDataset",
    "fashion_mnist",
    "cifar",
    "balanced_subset",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DatasetNotFoundError(FileNotFoundError):
    """Raised when no way of obtaining a dataset worked; the message lists every way tried."""


@dataclass
class TensorDataset:
    """A whole split in memory: images ``x`` (N×channels×H×W, float32, normalized with the training
    split's per-channel mean and std) and labels ``y`` (N, int64)."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.y.shape[0]

    def subset(self, index: torch.Tensor) -> "TensorDataset":
        return TensorDataset(self.x[index], self.y[index], self.classes)

    def to(self, device) -> "TensorDataset":
        return TensorDataset(self.x.to(device), self.y.to(device), self.classes)


def _cache_dir() -> Path:
    return Path(os.environ.get("NCLIB_CACHE", Path.home() / ".cache" / "nclib"))


def _stage_idx_files(source: Path, target_root: Path) -> bool:
    """Copy (decompressing) the four Fashion-MNIST idx files from ``source`` into torchvision's
    layout under ``target_root``. Returns False when ``source`` does not hold all four."""
    found = {}
    for name in _FMNIST_FILES:
        for candidate in (source / name, source / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    if len(found) < len(_FMNIST_FILES):
        return False
    raw = target_root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        dest = raw / name
        if dest.is_file() and dest.stat().st_mtime >= path.stat().st_mtime:
            continue
        tmp = dest.with_suffix(".part")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        tmp.replace(dest)  # atomic: an interrupted copy never looks like a finished file
    return True


def _torchvision_root_for(root: Path) -> Path | None:
    """A directory that torchvision's FashionMNIST can read, made from ``root`` if needed."""
    if (root / "FashionMNIST" / "raw").is_dir() and _stage_idx_files(
        root / "FashionMNIST" / "raw", root
    ):
        return root
    # A stable name per source folder (hash() is salted per process, so use a digest).
    staged = _cache_dir() / "staged" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return staged if _stage_idx_files(root, staged) else None


def _normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def _from_uint8(train_images: torch.Tensor, test_images: torch.Tensor, channels_last_input: bool):
    """uint8 images → float32 N×C×H×W in [0, 1], normalized with the training split's statistics."""
    def as_float(a):
        a = torch.as_tensor(a)
        if a.ndim == 3:
            a = a[:, None]
        elif channels_last_input:
            a = a.permute(0, 3, 1, 2)
        return a.float().div_(255.0)

    tr, te = as_float(train_images), as_float(test_images)
    mean = tr.mean(dim=(0, 2, 3))
    std = tr.std(dim=(0, 2, 3))
    return _normalize(tr, mean, std), _normalize(te, mean, std)


def fashion_mnist(root: str | os.PathLike | None = None, *, download: bool = True):
    """Fashion-MNIST (Xiao et al. 2017) as ``(train, test)`` :class:`TensorDataset` pairs
    (60 000 / 10 000 images of 1×28×28, 10 classes), found as described in the module docstring."""
    tried = []
    explicit = root if root is not None else os.environ.get("NCLIB_DATA")
    tv_root = None
    if explicit:
        tv_root = _torchvision_root_for(Path(explicit))
        tried.append(f"1. the root {explicit!s} (argument or NCLIB_DATA): no Fashion-MNIST idx files there")
    else:
        tried.append("1. a root passed as argument or in NCLIB_DATA: none given")
    if tv_root is None:
        tv_root = _torchvision_root_for(DEBIAN_FASHION_MNIST) if DEBIAN_FASHION_MNIST.is_dir() else None
        tried.append(
            f"2. Debian's package dataset-fashion-mnist at {DEBIAN_FASHION_MNIST}: "
            + ("files incomplete" if DEBIAN_FASHION_MNIST.is_dir() else "not installed")
            + " (install it with `sudo apt-get install dataset-fashion-mnist`)"
        )
    if tv_root is None and download:
        tv_root = _cache_dir() / "download"
        try:
            torchvision.datasets.FashionMNIST(tv_root, train=True, download=True)
            torchvision.datasets.FashionMNIST(tv_root, train=False, download=True)
        except Exception as exc:  # no network: report it together with the other two ways
            tried.append(f"3. torchvision's download into {tv_root}: failed ({type(exc).__name__}: {exc})")
            tv_root = None
    elif tv_root is None:
        tried.append("3. torchvision's download: disabled (download=False)")
    if tv_root is None:
        raise DatasetNotFoundError(
            "Fashion-MNIST was not found. Tried, in order:\n  " + "\n  ".join(tried)
            + "\nFix: pass root=... or set NCLIB_DATA to a folder with the four idx files, install "
            "Debian's dataset-fashion-mnist, or run once where a network exists."
        )
    train = torchvision.datasets.FashionMNIST(tv_root, train=True, download=False)
    test = torchvision.datasets.FashionMNIST(tv_root, train=False, download=False)
    xtr, xte = _from_uint8(train.data, test.data, channels_last_input=False)
    return (
        TensorDataset(xtr, train.targets.long(), list(train.classes)),
        TensorDataset(xte, test.targets.long(), list(test.classes)),
    )


def _cifar_class(num_classes: int, verify: bool):
    base = {10: torchvision.datasets.CIFAR10, 100: torchvision.datasets.CIFAR100}[num_classes]
    if verify:
        return base

    class Unverified(base):
        """Same reader; checks that the files exist but not their published MD5 sums, so that a
        repacked or test-sized file in CIFAR's format loads."""

        train_list = [[name, None] for name, _ in base.train_list]
        test_list = [[name, None] for name, _ in base.test_list]
        meta = {**base.meta, "md5": None}

    return Unverified


def cifar(root: str | os.PathLike, num_classes: int = 10, *, verify: bool = True):
    """CIFAR-10 or CIFAR-100 (Krizhevsky 2009) from a local root holding torchvision's
    ``cifar-10-batches-py`` / ``cifar-100-python`` folder, as ``(train, test)`` datasets
    (3×32×32, normalized). ``verify=False`` skips the MD5 check of the files."""
    if num_classes not in (10, 100):
        raise ValueError(f"CIFAR comes with 10 or 100 classes, got num_classes = {num_classes}")
    cls = _cifar_class(num_classes, verify)
    folder = Path(root) / cls.base_folder
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"CIFAR-{num_classes} not found: expected the folder {folder} (torchvision's layout, "
            f"as unpacked from {cls.filename}). Download it where a network exists with "
            f"torchvision.datasets.CIFAR{num_classes}(root, download=True) and pass that root."
        )
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except RuntimeError as exc:
        raise DatasetNotFoundError(
            f"CIFAR-{num_classes} files under {folder} are incomplete or corrupted ({exc}); "
            "re-download them, or pass verify=False for files repacked on purpose"
        ) from exc
    xtr, xte = _from_uint8(train.data, test.data, channels_last_input=True)
    return (
        TensorDataset(xtr, torch.as_tensor(train.targets).long(), list(train.classes)),
        TensorDataset(xte, torch.as_tensor(test.targets).long(), list(test.classes)),
    )


def balanced_subset(y, per_class: int, generator=None) -> torch.Tensor:
    """Indices of a class-balanced random subset: ``per_class`` samples of each class, drawn
    without replacement with the given seed or generator, returned in random order."""
    y = torch.as_tensor(y)
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(
        0 if generator is None else int(generator)
    )
    chosen = []
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero().flatten()
        if members.numel() < per_class:
            raise ValueError(
                f"class {c} has only {members.numel()} samples, fewer than per_class = {per_class}"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:per_class]])
    index = torch.cat(chosen)
    return index[torch.randperm(index.numel(), generator=g)]


def balanced_split(train: TensorDataset, test: TensorDataset, per_class_train: int | None,
                   per_class_test: int | None, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Class-balanced subsets of a train/test pair (:func:`balanced_subset`), drawn with ``seed``
    for the training split and ``seed + 1`` for the test split, so the two draws are independent.
    None or 0 keeps a split whole."""
    if per_class_train:
        train = train.subset(balanced_subset(train.y, int(per_class_train), generator=seed))
    if per_class_test:
        test = test.subset(balanced_subset(test.y, int(per_class_test), generator=seed + 1))
    return train, test
