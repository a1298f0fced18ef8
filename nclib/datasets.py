"""Dataset loaders: Fashion-MNIST (the embedded default) and CIFAR-10/100 from a local root, each
returned as a pair of in-memory :class:`nclib.data.TensorDataset` splits.

Fashion-MNIST is found, in this order, at

  1. a root passed by the caller, or the ``NCLIB_DATA`` environment variable (an empty value counts
     as unset). A root named this way must hold the files: if it does not, the loader raises
     :class:`DatasetNotFoundError` rather than quietly loading another copy;
  2. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
  3. torchvision's download, where a network exists.

A root may hold torchvision's layout (``ROOT/FashionMNIST/raw/``) or the four idx files themselves
(``.gz`` or not); the latter are staged (decompressed) into that layout under the cache directory
(``NCLIB_CACHE``, default ``~/.cache/nclib``), so that every copy is read the same way. A staged copy is keyed by the
content of its source (a SHA-256 recorded in a manifest; the hash is skipped while the source's
path, size, mtime, ctime and inode are unchanged), so a replaced source file is never served stale.
Before they are read, the files are checked (idx magic numbers, sizes against their headers, 28×28
images, as many labels as images, labels in 0–9), and a bad file raises
:class:`DatasetCorruptError` naming it, what is wrong and how to get a good copy. The checked idx
files are then read here, byte for byte as torchvision's ``FashionMNIST`` reads them (a test holds
the two to the same tensors): importing torchvision costs about 0.9 s (it imports ``torch._dynamo``),
paid by every chapter kernel and every worker process, so it is imported only for CIFAR and for
downloads.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import pickle
import shutil
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import torch

from nclib.data import TensorDataset

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "DatasetNotFoundError",
    "DatasetCorruptError",
    "FASHION_MNIST_CLASSES",
    "fashion_mnist",
    "cifar",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_FMNIST_PAIRS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
_FMNIST_CLASSES = 10
_MANIFEST = "nclib-staged.json"
# A source whose ctime lies within this long of the moment it was hashed is hashed again on the
# next call: file-system clocks are coarse, so a rewrite right after hashing can leave the stat key
# unchanged (the "racy clean" case git handles the same way).
_RACY_NS = 2_000_000_000


class DatasetNotFoundError(FileNotFoundError):
    """Raised when no way of obtaining a dataset worked; the message lists every way tried."""


class DatasetCorruptError(DatasetNotFoundError):
    """Raised when a dataset's files exist but are unusable (truncated, not in the expected format,
    or inconsistent with each other); the message names the file, the problem and the fix. A
    subclass of :class:`DatasetNotFoundError`: no usable copy was found."""


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST: locating, checking and staging the idx files
# ---------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    return Path(os.environ.get("NCLIB_CACHE") or Path.home() / ".cache" / "nclib")


def _find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The four idx files in ``folder`` (plain preferred over ``.gz``), and the names missing."""
    found, missing = {}, []
    for name in _FMNIST_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _locate(root: Path) -> tuple[Path | None, dict[str, Path], list[Path]]:
    """The first of ``root/FashionMNIST/raw``, ``root/raw`` and ``root`` holding all four idx files:
    ``(folder, files, folders looked at)``; folder is None when none does."""
    looked = []
    for folder in (root / "FashionMNIST" / "raw", root / "raw", root):
        looked.append(folder)
        found, missing = _find_idx_files(folder)
        if not missing:
            return folder, found, looked
    return None, {}, looked


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _copy_decompressed(source: Path, dest: Path, hint: str) -> None:
    """Write ``source`` (gunzipped if ``.gz``) to ``dest`` atomically, turning gzip's errors into
    a :class:`DatasetCorruptError` that names the source."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        if source.suffix == ".gz":
            with open(source, "rb") as f:
                magic = f.read(2)
            if magic != b"\x1f\x8b":
                raise DatasetCorruptError(
                    f"{source} is named .gz but is not gzip-compressed (it starts with bytes "
                    f"{magic.hex(' ') or 'nothing: the file is empty'}); if it is a plain idx file, "
                    f"rename it to {source.stem}. {hint}"
                )
        opener = gzip.open if source.suffix == ".gz" else open
        try:
            with opener(source, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DatasetCorruptError(
                f"{source} is truncated or damaged: decompressing it failed ({type(exc).__name__}: {exc}). {hint}"
            ) from None
        tmp.replace(dest)  # atomic: an interrupted copy never looks like a finished file
    finally:
        tmp.unlink(missing_ok=True)


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _stage_idx_files(sources: dict[str, Path], target_root: Path, hint: str, *, force: bool = False) -> bool:
    """Copy (decompressing) the four idx files ``sources`` into torchvision's layout under
    ``target_root``, reusing earlier copies whose source content is unchanged.

    A manifest records, per file, the source path, its stat key (size, mtime, ctime, inode), its
    SHA-256 and the stat key of the staged copy. A copy is reused without hashing while both stat
    keys match (and the source was not modified around the time it was hashed); otherwise the
    source is hashed, and re-staged unless the hash matches. ``force`` re-stages everything.
    Returns True when any staged file was reused rather than written now."""
    raw = target_root / "FashionMNIST" / "raw"
    manifest_path = target_root / _MANIFEST
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(
            f"cannot create the Fashion-MNIST staging folder {raw} ({exc}); set NCLIB_CACHE to a "
            "writable folder"
        ) from None
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        files = manifest.get("files", {}) if manifest.get("version") == 1 else {}
    except (ValueError, OSError, AttributeError):
        files = {}  # an unreadable manifest only costs a re-stage
    changed, reused = False, False
    for name, source in sources.items():
        dest = raw / name
        entry = files.get(name)
        key = _stat_key(source)
        staged_ok = (
            not force and isinstance(entry, dict) and dest.is_file()
            and entry.get("staged") == _stat_key(dest)
        )
        if (staged_ok and entry.get("source") == str(source) and entry.get("key") == key
                and entry.get("hashed_at_ns", 0) - key[2] > _RACY_NS):
            reused = True
            continue
        try:
            digest = _sha256(source)
        except OSError as exc:
            raise type(exc)(f"cannot read {source} ({exc}); check that it is a readable file") from None
        now = time.time_ns()
        if staged_ok and entry.get("sha256") == digest:
            reused = True
        else:
            try:
                _copy_decompressed(source, dest, hint)
            except OSError as exc:
                if isinstance(exc, DatasetNotFoundError):
                    raise
                raise type(exc)(
                    f"cannot stage {source} into {raw} ({exc}); check that {source} is readable and set "
                    "NCLIB_CACHE to a writable folder"
                ) from None
        files[name] = {"source": str(source), "key": key, "sha256": digest, "hashed_at_ns": now,
                       "staged": _stat_key(dest)}
        changed = True
    if changed:
        try:
            _write_json_atomic(manifest_path, {"version": 1, "files": files})
        except OSError:
            pass  # without a manifest the next call re-hashes and re-stages: slower, never stale
    return reused


def _idx_shape(head: bytes, ndim: int) -> tuple[int, ...]:
    """The shape an idx header gives: ``ndim`` big-endian 32-bit sizes after the 4-byte magic."""
    return tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))


def _idx_problem(path: Path, kind: str) -> tuple[str | None, int]:
    """Check an uncompressed idx file of ``kind`` "images" (N×28×28) or "labels" (N, in 0–9).
    Returns ``(problem or None, N)``."""
    ndim = 3 if kind == "images" else 1
    expected_magic = 0x0800 + ndim
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    if head[:2] == b"\x1f\x8b":
        return "is gzip-compressed but named without .gz (rename it to end in .gz)", 0
    if len(head) < 4:
        return f"is too short to be an idx file ({size} bytes)", 0
    magic = int.from_bytes(head[:4], "big")
    if magic != expected_magic:
        other = {0x0801: "a labels file", 0x0803: "an images file"}.get(magic)
        what = f"; that is the magic number of {other}, so the files may be swapped" if other else ""
        return (f"has the wrong magic number 0x{magic:08X} (an idx {kind} file starts with "
                f"0x{expected_magic:08X}){what}"), 0
    if len(head) < 4 + 4 * ndim:
        return f"is truncated: it ends inside its header ({size} bytes)", 0
    shape = _idx_shape(head, ndim)
    if kind == "images" and shape[1:] != (28, 28):
        return f"holds images of {shape[1]}×{shape[2]} pixels; Fashion-MNIST's are 28×28", 0
    if shape[0] == 0:
        return f"holds no {kind} (its header says 0)", 0
    expected = len(head) + math.prod(shape)
    if size < expected:
        return (f"is truncated: its header announces {shape[0]} {kind} ({expected} bytes) but the "
                f"file has {size} bytes"), shape[0]
    if size > expected:
        return (f"has {size - expected} bytes more than its header announces ({shape[0]} {kind}, "
                f"{expected} bytes)"), shape[0]
    if kind == "labels":
        labels = np.fromfile(path, dtype=np.uint8, offset=len(head))
        if labels.max() >= _FMNIST_CLASSES:
            bad = int(np.argmax(labels >= _FMNIST_CLASSES))
            return (f"holds labels out of range: label {int(labels[bad])} at position {bad} "
                    f"(Fashion-MNIST labels are 0–{_FMNIST_CLASSES - 1})"), shape[0]
    return None, shape[0]


def _check_fashion_mnist_files(raw: Path, shown: dict[str, Path], hint: str) -> None:
    """Raise :class:`DatasetCorruptError` unless the four idx files in ``raw`` are sound and
    agree (as many labels as images). ``shown`` are the paths to name in messages (the sources
    the user knows, not the staged copies)."""
    counts = {}
    for name in _FMNIST_FILES:
        problem, counts[name] = _idx_problem(raw / name, "images" if "images" in name else "labels")
        if problem:
            raise DatasetCorruptError(f"Fashion-MNIST file {shown[name]} {problem}. {hint}")
    for images, labels in _FMNIST_PAIRS:
        if counts[images] != counts[labels]:
            raise DatasetCorruptError(
                f"Fashion-MNIST files disagree: {shown[images]} holds {counts[images]} images but "
                f"{shown[labels]} holds {counts[labels]} labels; they come from different copies or one "
                f"is damaged. {hint}"
            )


def _fix_hint(origin: str) -> str:
    if origin == "debian":
        return ("Re-install Debian's copy: sudo apt-get install --reinstall dataset-fashion-mnist "
                "(or point root/NCLIB_DATA at a good copy)")
    if origin == "download":
        return ("Delete that folder and run once where a network exists to download it again, or "
                "install Debian's dataset-fashion-mnist")
    return ("Replace it with a fresh copy (re-download the four files from "
            "https://github.com/zalandoresearch/fashion-mnist), or " + origin)


def _prepare(folder: Path, found: dict[str, Path], root: Path, hint: str) -> Path:
    """A checked root in torchvision's layout for the idx files ``found`` in ``folder`` (read in
    place when already uncompressed in that layout, else staged into the cache)."""
    in_place = folder == root / "FashionMNIST" / "raw" and all(p.suffix != ".gz" for p in found.values())
    if in_place:
        _check_fashion_mnist_files(folder, found, hint)
        return root
    # A stable name per source folder (hash() is salted per process, so use a digest).
    staged = _cache_dir() / "staged" / hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    reused = _stage_idx_files(found, staged, hint)
    raw = staged / "FashionMNIST" / "raw"
    try:
        _check_fashion_mnist_files(raw, found, hint)
    except DatasetCorruptError:
        if not reused:
            raise
        _stage_idx_files(found, staged, hint, force=True)  # a damaged cached copy: stage afresh
        _check_fashion_mnist_files(raw, found, hint)
    return staged


def _normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x − mean) / std`` per channel, in place: the same float32 operations as the expression,
    hence the same bits, without two temporaries of the whole split (every chapter and worker
    loads the data once)."""
    return x.sub_(mean[None, :, None, None]).div_(std[None, :, None, None])


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
    if not bool((std > 0).all()):
        raise DatasetCorruptError(
            f"the training images cannot be normalized: per-channel std {std.tolist()} (every "
            "image is constant); the files are damaged or a placeholder"
        )
    return _normalize(tr, mean, std), _normalize(te, mean, std)


def _check_root_arg(root, where: str) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{where}: root must be a path (str or os.PathLike), got {type(root).__name__}")
    if str(os.fspath(root)) == "":
        raise ValueError(f"{where}: root is an empty string; pass the folder that holds the files")
    return Path(root)


def fashion_mnist(root: str | os.PathLike | None = None, *, download: bool = True):
    """Fashion-MNIST (Xiao et al. 2017) as ``(train, test)`` :class:`~nclib.data.TensorDataset` pairs
    (60 000 / 10 000 images of 1×28×28, 10 classes), found as described in the module docstring.

    A ``root`` (or ``NCLIB_DATA``) that lacks the files raises :class:`DatasetNotFoundError`
    listing the files expected and the folders looked at; damaged files raise
    :class:`DatasetCorruptError`."""
    if not isinstance(download, bool):
        raise TypeError(f"fashion_mnist(download=...) must be True or False, got {download!r}")
    if root is not None:
        where = f"fashion_mnist(root={os.fspath(root)!r})" if isinstance(root, (str, os.PathLike)) \
            else "fashion_mnist(root=...)"
        explicit, unset = _check_root_arg(root, where), "pass root=None"
    elif os.environ.get("NCLIB_DATA"):
        where = f"fashion_mnist(): NCLIB_DATA={os.environ['NCLIB_DATA']!r}"
        explicit, unset = Path(os.environ["NCLIB_DATA"]), "unset NCLIB_DATA"
    else:
        explicit = None

    if explicit is not None:
        # A root named by the caller must hold the files: never fall back to another copy.
        folder, found, looked = _locate(explicit)
        if folder is None:
            state = ("does not exist" if not explicit.exists()
                     else "is a file, not a folder" if not explicit.is_dir()
                     else "has no complete set of Fashion-MNIST idx files")
            detail = "; ".join(f"{f} lacks {', '.join(n + '(.gz)' for n in _find_idx_files(f)[1])}"
                               for f in looked if f.is_dir())
            raise DatasetNotFoundError(
                f"{where}: {explicit} {state}. Expected the four idx files {', '.join(_FMNIST_FILES)} "
                f"(each plain or .gz) in {', '.join(str(f) for f in looked)}"
                + (f" ({detail})" if detail else "")
                + f". Point root/NCLIB_DATA at the folder that holds them, or {unset} to use "
                f"the search order (Debian's dataset-fashion-mnist at {DEBIAN_FASHION_MNIST}, then "
                "torchvision's download)."
            )
        tv_root = _prepare(folder, found, explicit, _fix_hint(unset + " to use Debian's copy"))
        return _load_fashion_mnist(tv_root)

    tried = ["1. a root passed as argument or in NCLIB_DATA: none given"]
    tv_root = None
    if DEBIAN_FASHION_MNIST.is_dir():
        folder, found, _ = _locate(DEBIAN_FASHION_MNIST)
        if folder is not None:
            tv_root = _prepare(folder, found, DEBIAN_FASHION_MNIST, _fix_hint("debian"))
        else:
            missing = _find_idx_files(DEBIAN_FASHION_MNIST)[1]
            tried.append(f"2. Debian's package dataset-fashion-mnist at {DEBIAN_FASHION_MNIST}: files "
                         f"incomplete (missing {', '.join(missing)}; re-install it with "
                         "`sudo apt-get install --reinstall dataset-fashion-mnist`)")
    else:
        tried.append(f"2. Debian's package dataset-fashion-mnist at {DEBIAN_FASHION_MNIST}: not installed "
                     "(install it with `sudo apt-get install dataset-fashion-mnist`)")
    if tv_root is None and download:
        tv_root = _cache_dir() / "download"
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(tv_root, train=True, download=True)
            torchvision.datasets.FashionMNIST(tv_root, train=False, download=True)
        except Exception as exc:  # no network: report it together with the other two ways
            tried.append(f"3. torchvision's download into {tv_root}: failed ({type(exc).__name__}: {exc})")
            tv_root = None
        else:
            raw = tv_root / "FashionMNIST" / "raw"
            _check_fashion_mnist_files(raw, {n: raw / n for n in _FMNIST_FILES},
                                       f"(downloaded into {raw}) " + _fix_hint("download"))
    elif tv_root is None:
        tried.append("3. torchvision's download: disabled (download=False)")
    if tv_root is None:
        raise DatasetNotFoundError(
            "Fashion-MNIST was not found. Tried, in order:\n  " + "\n  ".join(tried)
            + "\nFix: pass root=... or set NCLIB_DATA to a folder with the four idx files, install "
            "Debian's dataset-fashion-mnist, or run once where a network exists."
        )
    return _load_fashion_mnist(tv_root)


#: Fashion-MNIST's class names, in label order (Xiao et al. 2017; torchvision's ``classes``).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def _read_idx(path: Path) -> torch.Tensor:
    """An uncompressed idx file of unsigned bytes (LeCun et al.'s format, already checked by
    :func:`_idx_problem`) as a uint8 tensor of the shape its header gives."""
    raw = path.read_bytes()
    ndim = raw[3]
    shape = _idx_shape(raw, ndim)
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy())


def _load_fashion_mnist(tv_root: Path):
    raw = Path(tv_root) / "FashionMNIST" / "raw"
    xtr, xte = (_read_idx(raw / f"{split}-images-idx3-ubyte") for split in ("train", "t10k"))
    ytr, yte = (_read_idx(raw / f"{split}-labels-idx1-ubyte").long() for split in ("train", "t10k"))
    xtr, xte = _from_uint8(xtr, xte, channels_last_input=False)
    return (TensorDataset._trusted(xtr, ytr, list(FASHION_MNIST_CLASSES)),
            TensorDataset._trusted(xte, yte, list(FASHION_MNIST_CLASSES)))


# ---------------------------------------------------------------------------------------------
# CIFAR-10/100
# ---------------------------------------------------------------------------------------------


def _cifar_class(num_classes: int, verify: bool):
    import torchvision

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


def _cifar_file_problem(path: Path, num_classes: int, meta_key: str | None) -> str | None:
    """What is wrong with one CIFAR pickle (a batch, or the meta file when ``meta_key`` is set)."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except Exception as exc:  # truncated or not a pickle: any of several exception types
        return f"cannot be unpickled ({type(exc).__name__}: {exc}); it is truncated or not a CIFAR file"
    if not isinstance(entry, dict):
        return f"holds a {type(entry).__name__}, not CIFAR's dict"
    if meta_key is not None:
        names = entry.get(meta_key)
        if not isinstance(names, (list, tuple)) or len(names) != num_classes:
            got = "none" if names is None else f"{len(names)}" if isinstance(names, (list, tuple)) else repr(names)
            return f"has {got} class names under {meta_key!r}, expected {num_classes}"
        return None
    if "data" not in entry:
        return f"has no 'data' entry (keys: {sorted(map(str, entry))})"
    label_key = "labels" if "labels" in entry else "fine_labels" if "fine_labels" in entry else None
    if label_key is None:
        return f"has no 'labels' or 'fine_labels' entry (keys: {sorted(map(str, entry))})"
    data, labels = np.asarray(entry["data"]), np.asarray(entry[label_key])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        return f"'data' has shape {data.shape}; CIFAR's is N×3072 (3×32×32 bytes per image)"
    if data.dtype != np.uint8:
        return f"'data' has dtype {data.dtype}; CIFAR's images are uint8"
    if labels.shape != (data.shape[0],):
        return f"holds {data.shape[0]} images but {labels.size} labels"
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        return (f"holds labels from {labels.min()} to {labels.max()}, outside [0, {num_classes}) "
                f"for CIFAR-{num_classes}")
    return None


def _cifar_problems(folder: Path, cls, num_classes: int) -> list[str]:
    names = [n for n, _ in cls.train_list + cls.test_list]
    problems = []
    for name in names:
        p = _cifar_file_problem(folder / name, num_classes, None)
        if p:
            problems.append(f"{folder / name} {p}")
    p = _cifar_file_problem(folder / cls.meta["filename"], num_classes, cls.meta["key"])
    if p:
        problems.append(f"{folder / cls.meta['filename']} {p}")
    return problems


def cifar(root: str | os.PathLike, num_classes: int = 10, *, verify: bool = True):
    """CIFAR-10 or CIFAR-100 (Krizhevsky 2009) from a local root holding torchvision's
    ``cifar-10-batches-py`` / ``cifar-100-python`` folder, as ``(train, test)`` datasets
    (3×32×32, normalized). ``verify=False`` skips the MD5 check of the files.

    A missing folder or file raises :class:`DatasetNotFoundError`; damaged or inconsistent files
    (failed MD5, truncated pickles, labels out of range) raise :class:`DatasetCorruptError`."""
    where = f"cifar(root={os.fspath(root)!r}, num_classes={num_classes!r})" if isinstance(
        root, (str, os.PathLike)) else "cifar(root=...)"
    if isinstance(num_classes, bool) or num_classes not in (10, 100):
        raise ValueError(
            f"{where}: CIFAR comes with 10 or 100 classes, got num_classes = {num_classes!r}; use "
            "10 for CIFAR-10 or 100 for CIFAR-100 (for fewer classes, subset the labels afterwards)"
        )
    num_classes = int(num_classes)
    if not isinstance(verify, bool):
        raise TypeError(f"{where}: verify must be True or False, got {verify!r}")
    root = _check_root_arg(root, where)
    import torchvision  # here, not at the top: only CIFAR needs it (module docstring)

    cls = _cifar_class(num_classes, verify)
    folder = root / cls.base_folder
    if not folder.is_dir():
        other = {10: torchvision.datasets.CIFAR100, 100: torchvision.datasets.CIFAR10}[num_classes]
        hint = (f" {root} holds {other.base_folder} instead: did you mean num_classes="
                f"{110 - num_classes}?" if (root / other.base_folder).is_dir() else "")
        raise DatasetNotFoundError(
            f"CIFAR-{num_classes} not found: expected the folder {folder} (torchvision's layout, "
            f"as unpacked from {cls.filename}).{hint} Download it where a network exists with "
            f"torchvision.datasets.CIFAR{num_classes}(root, download=True) and pass that root."
        )
    expected = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [n for n in expected if not (folder / n).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-{num_classes} files under {folder} are incomplete: missing {', '.join(missing)} "
            f"(expected {', '.join(expected)}); unpack {cls.filename} again or re-download it"
        )
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except RuntimeError as exc:
        if verify:
            from torchvision.datasets.utils import check_integrity

            bad = [n for n, md5 in cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
                   if not check_integrity(str(folder / n), md5)]
            detail = f": the MD5 of {', '.join(bad)} differs from the published sums" if bad else f" ({exc})"
        else:
            detail = f" ({exc})"
        raise DatasetCorruptError(
            f"CIFAR-{num_classes} files under {folder} are incomplete or corrupted{detail}; "
            "re-download them, or pass verify=False for files repacked on purpose"
        ) from exc
    except Exception as exc:  # a damaged pickle surfaces as any of several exception types
        problems = _cifar_problems(folder, cls, num_classes)
        raise DatasetCorruptError(
            f"CIFAR-{num_classes} files under {folder} cannot be read: "
            + ("; ".join(problems) if problems else f"{type(exc).__name__}: {exc}")
            + f". Re-download them (torchvision.datasets.CIFAR{num_classes}(root, download=True))."
        ) from exc
    for split in (train, test):
        targets = np.asarray(split.targets)
        bad = (len(targets) != len(split.data) or len(split.classes) != num_classes
               or (targets.size and (targets.min() < 0 or targets.max() >= num_classes)))
        if bad:
            problems = _cifar_problems(folder, cls, num_classes) or [
                f"{len(split.data)} images, {len(targets)} labels, {len(split.classes)} class names"]
            raise DatasetCorruptError(
                f"CIFAR-{num_classes} files under {folder} are inconsistent: " + "; ".join(problems)
                + f". Re-download them (torchvision.datasets.CIFAR{num_classes}(root, download=True))."
            )
    xtr, xte = _from_uint8(train.data, test.data, channels_last_input=True)
    return (
        TensorDataset._trusted(xtr, torch.as_tensor(train.targets).long(), list(train.classes)),
        TensorDataset._trusted(xte, torch.as_tensor(test.targets).long(), list(test.classes)),
    )
