"""Bad input to nclib.data and nclib.models raises a clear error that names the argument, what was
wrong and how to fix it: never a silent fallback, a plausible wrong result, or a raw error from
inside torch, numpy, gzip or pickle. All data files here are small synthetic ones written by the
tests (idx files for Fashion-MNIST, pickles for CIFAR)."""

import gzip
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nclib.datasets as datasets
from nclib.datasets import DatasetCorruptError, DatasetNotFoundError, cifar, fashion_mnist
from nclib.data import TensorDataset, balanced_split, balanced_subset
from nclib.etf import simplex_etf
from nclib.models import (
    BACKBONES,
    FixedHead,
    LinearHead,
    NCModel,
    build_backbone,
    count_parameters,
    densenet121,
    mlp,
    resnet32,
    small_cnn,
    vgg11,
)

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ---------------------------------------------------------------------------------------------
# Small synthetic Fashion-MNIST and CIFAR files
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An idx file: magic (0, 0, 0x08 = uint8, ndim), big-endian sizes, then the bytes."""
    magic = 0x0800 + array.ndim if magic is None else magic
    return magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape) \
        + array.astype(np.uint8).tobytes()


def write(path: Path, payload: bytes, gz: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake(root: Path, gz=True, n_train=30, n_test=20, labels_offset=0):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write(root / f"{split}-images-idx3-ubyte", idx_bytes(rng.integers(0, 256, (n, 28, 28))), gz)
        write(root / f"{split}-labels-idx1-ubyte", idx_bytes((np.arange(n) + labels_offset) % 10), gz)
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NCLIB_DATA", raising=False)
    # A good copy where Debian's would be: any silent fallback would load it and pass unnoticed.
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", fake(tmp_path / "debian", n_train=40))


def write_cifar(root: Path, num_classes=10, n=8, labels=None, meta_names=None):
    rng = np.random.default_rng(1)
    if num_classes == 10:
        folder, files, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels"
        meta_name, meta_key = "batches.meta", "label_names"
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], "fine_labels"
        meta_name, meta_key = "meta", "fine_label_names"
    folder.mkdir(parents=True)
    for name in files:
        batch = {"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                 key: list(rng.integers(0, num_classes, n)) if labels is None else list(labels)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: meta_names or [f"c{i}" for i in range(num_classes)]}, f)
    return folder


def blobs(C=3, n=20):
    y = torch.arange(C).repeat_interleave(n)
    return TensorDataset(torch.arange(float(C * n))[:, None], y, [f"c{c}" for c in range(C)])


# ---------------------------------------------------------------------------------------------
# balanced_subset and balanced_split
# ---------------------------------------------------------------------------------------------

Y = torch.arange(5).repeat_interleave(torch.tensor([10, 20, 30, 40, 50]))


@pytest.mark.parametrize("per_class,phrase", [
    (-2, "per_class must be ≥ 1"),        # used to keep all but 2 per class
    (0, "per_class must be ≥ 1"),
    (2.5, "must be an integer"),
    (3.0, "must be an integer"),
    (True, "must be an integer"),
    ("7", "must be an integer"),
    (None, "must be an integer"),
])
def test_balanced_subset_rejects_bad_per_class(per_class, phrase):
    with pytest.raises(ValueError, match=phrase) as err:
        balanced_subset(Y, per_class)
    assert "number of samples kept from each class" in str(err.value)


def test_balanced_subset_too_many_per_class_says_how_many_there_are():
    with pytest.raises(ValueError, match=r"class 0 has only 10 samples.*at most 10"):
        balanced_subset(Y, 11)


@pytest.mark.parametrize("y,exc,phrase", [
    (Y.reshape(5, 30), ValueError, "1-D"),
    (torch.tensor([0.0, 0.5, 1.0]), ValueError, "integer labels"),
    (torch.tensor([], dtype=torch.long), ValueError, "empty"),
    (torch.tensor([True, False]), TypeError, "integer labels"),
    ([[0, 1], [1]], TypeError, "1-D tensor of integer labels"),
])
def test_balanced_subset_rejects_bad_labels(y, exc, phrase):
    with pytest.raises(exc, match=phrase):
        balanced_subset(y, 1)


def test_balanced_subset_rejects_bad_generator():
    with pytest.raises(ValueError, match="generator.*integer seed"):
        balanced_subset(Y, 2, generator="seven")
    with pytest.raises(ValueError, match="generator.*integer seed"):
        balanced_subset(Y, 2, generator=1.5)


def test_balanced_subset_accepts_integer_valued_float_labels_and_numpy():
    idx = balanced_subset(Y.double(), 3, generator=1)
    assert torch.equal(idx, balanced_subset(Y, 3, generator=1))
    assert torch.equal(idx, balanced_subset(Y.numpy(), np.int64(3), generator=np.int64(1)))


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(per_class_train=-1, per_class_test=None), r"per_class_train.*≥ 0"),
    (dict(per_class_train=None, per_class_test=1.5), r"per_class_test.*integer"),
    (dict(per_class_train="5", per_class_test=None), r"per_class_train.*integer"),
    (dict(per_class_train=2, per_class_test=2, seed="x"), r"seed.*integer"),
    (dict(per_class_train=2, per_class_test=2, seed=0.5), r"seed.*integer"),
])
def test_balanced_split_rejects_bad_arguments(kwargs, phrase):
    train, test = blobs(), blobs()
    with pytest.raises(ValueError, match=phrase):
        balanced_split(train, test, **kwargs)


def test_balanced_split_too_many_per_class_names_the_split():
    with pytest.raises(ValueError, match=r"per_class_test=21\) on the test split: class 0 has only 20"):
        balanced_split(blobs(), blobs(), 5, 21)


def test_balanced_split_refuses_datasets_with_an_absent_class_or_other_classes():
    missing = blobs().subset(torch.arange(40))  # classes 0 and 1 only, of three named
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no samples"):
        balanced_split(missing, blobs(), 5, None)
    balanced_split(missing, blobs(), None, 5)  # kept whole: fine
    other = TensorDataset(torch.zeros(4, 1), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="different classes"):
        balanced_split(blobs(), other, 1, 1)
    with pytest.raises(TypeError, match="train must be a TensorDataset"):
        balanced_split((torch.zeros(3, 1), torch.zeros(3)), blobs(), 1, 1)


# ---------------------------------------------------------------------------------------------
# TensorDataset
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x,y,classes,exc,phrase", [
    (torch.zeros(5, 2), torch.zeros(4, dtype=torch.long), ["a"], ValueError, "5 samples but y has 4 labels"),
    (torch.zeros(4, 2), torch.zeros(4, dtype=torch.int32), ["a"], TypeError, r"int64.*y\.long\(\)"),
    (torch.zeros(4, 2), torch.zeros(4), ["a"], TypeError, "int64"),
    (torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]), ["a", "b"], ValueError, r"\[0, 2\).*max 3"),
    (torch.zeros(4, 2), torch.tensor([0, -1, 0, 0]), ["a", "b"], ValueError, "min -1"),
    (torch.zeros(4, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ["a"], TypeError, "floating point"),
    (torch.zeros(4), torch.zeros(4, dtype=torch.long), ["a"], ValueError, r"x\[:, None\]"),
    (torch.tensor([[0.0], [math.nan]]), torch.zeros(2, dtype=torch.long), ["a"], ValueError, "NaN or infinite values in 1 of 2"),
    (torch.zeros(4, 2), torch.zeros(4, 1, dtype=torch.long), ["a"], ValueError, "1-D vector"),
    (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), "ab", TypeError, "list of class names"),
    (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), [], ValueError, "classes is empty"),
    ([[0.0]], torch.zeros(1, dtype=torch.long), ["a"], TypeError, "x must be a torch.Tensor"),
])
def test_tensor_dataset_construction_checks(x, y, classes, exc, phrase):
    with pytest.raises(exc, match=phrase):
        TensorDataset(x, y, classes)


def test_tensor_dataset_subset_checks_its_index():
    ds = blobs()  # 60 samples
    with pytest.raises(IndexError, match=r"\[0, 60\).*max 60"):
        ds.subset(torch.tensor([0, 60]))
    with pytest.raises(IndexError, match="negative indices"):
        ds.subset(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integers"):
        ds.subset(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="boolean mask must have length 60"):
        ds.subset(torch.ones(59, dtype=torch.bool))
    with pytest.raises(ValueError, match="1-D"):
        ds.subset(torch.tensor(3))
    # What is allowed: lists, masks, repeats, empty.
    assert len(ds.subset([0, 0, 59])) == 3 and len(ds.subset(ds.y == 1)) == 20 and len(ds.subset([])) == 0


def test_tensor_dataset_to_checks_the_device():
    ds = blobs()
    with pytest.raises(ValueError, match="'gpu' is not a device name"):
        ds.to("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch.cuda.is_available"):
            ds.to("cuda")
    else:
        with pytest.raises(ValueError, match="does not exist"):
            ds.to(f"cuda:{torch.cuda.device_count()}")
    assert ds.to("cpu").x.device.type == "cpu"


# ---------------------------------------------------------------------------------------------
# fashion_mnist: a named root never falls back
# ---------------------------------------------------------------------------------------------


def test_named_root_without_files_raises_instead_of_loading_debian(tmp_path):
    assert len(fashion_mnist(download=False)[0]) == 40  # nothing named: the (fake) Debian copy
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        fashion_mnist(tmp_path / "empty")
    msg = str(err.value)
    assert f"fashion_mnist(root='{tmp_path / 'empty'}')" in msg
    assert "has no complete set" in msg and all(name in msg for name in NAMES)
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in msg  # where it looked
    assert "pass root=None" in msg


def test_nclib_data_without_files_raises_instead_of_loading_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLIB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match=r"NCLIB_DATA=.*does not exist.*unset NCLIB_DATA"):
        fashion_mnist()
    monkeypatch.setenv("NCLIB_DATA", "")  # empty counts as unset
    assert len(fashion_mnist(download=False)[0]) == 40


def test_named_root_with_three_of_four_files_names_the_missing_one(tmp_path):
    root = fake(tmp_path / "fm")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\(\.gz\)"):
        fashion_mnist(root)


def test_bad_root_and_download_arguments(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetNotFoundError, match="is a file, not a folder"):
        fashion_mnist(tmp_path / "file")
    with pytest.raises(ValueError, match="empty string"):
        fashion_mnist("")
    with pytest.raises(TypeError, match="root must be a path"):
        fashion_mnist(3)
    with pytest.raises(TypeError, match="download=.*True or False"):
        fashion_mnist(download="no")


# ---------------------------------------------------------------------------------------------
# fashion_mnist: damaged files
# ---------------------------------------------------------------------------------------------


def corrupt(root: Path, name: str, payload: bytes, gz=True):
    for old in (root / name, root / f"{name}.gz"):
        old.unlink(missing_ok=True)
    write(root / name, payload, gz)


def test_truncated_gz_names_the_file_and_the_fix(tmp_path):
    root = fake(tmp_path / "fm")
    gz = root / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-500])
    with pytest.raises(DatasetCorruptError, match="truncated or damaged") as err:
        fashion_mnist(root)
    assert str(gz) in str(err.value) and "re-download" in str(err.value)
    assert isinstance(err.value, DatasetNotFoundError)  # callers that catch the parent still do


def test_gz_suffix_on_a_plain_file(tmp_path):
    root = fake(tmp_path / "fm")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.arange(20) % 10))
    with pytest.raises(DatasetCorruptError, match="not gzip-compressed.*rename it to t10k-labels-idx1-ubyte"):
        fashion_mnist(root)


@pytest.mark.parametrize("name,payload,phrase", [
    ("train-labels-idx1-ubyte", idx_bytes(np.arange(30) % 10, magic=0x0802), "wrong magic number 0x00000802"),
    ("train-labels-idx1-ubyte", idx_bytes(np.zeros((30, 28, 28))), "magic number of an images file.*swapped"),
    ("train-labels-idx1-ubyte", idx_bytes(np.arange(29) % 10), "holds 30 images but .* holds 29 labels"),
    ("train-labels-idx1-ubyte", idx_bytes(np.arange(30) % 12), "labels out of range: label 10 at position 10"),
    ("train-labels-idx1-ubyte", idx_bytes(np.arange(30) % 10)[:-3], "truncated: its header announces 30 labels"),
    ("train-labels-idx1-ubyte", idx_bytes(np.arange(30) % 10) + b"\0", "1 bytes more than its header"),
    ("train-labels-idx1-ubyte", b"\0\0", "too short to be an idx file"),
    ("t10k-images-idx3-ubyte", idx_bytes(np.zeros((20, 27, 27))), "27×27 pixels"),
    ("t10k-images-idx3-ubyte", idx_bytes(np.zeros((0, 28, 28))), "holds no images"),
])
@pytest.mark.parametrize("gz", [True, False])
def test_bad_idx_files_name_the_file_and_the_problem(tmp_path, name, payload, phrase, gz):
    root = fake(tmp_path / "fm", gz=gz)
    corrupt(root, name, payload, gz)
    with pytest.raises(DatasetCorruptError, match=phrase) as err:
        fashion_mnist(root)
    assert str(root / name) in str(err.value) and "re-download" in str(err.value)


def test_damaged_debian_copy_says_reinstall(tmp_path, monkeypatch):
    root = fake(tmp_path / "bad-debian")
    corrupt(root, "t10k-labels-idx1-ubyte", idx_bytes(np.arange(19) % 10))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", root)
    with pytest.raises(DatasetCorruptError, match="apt-get install --reinstall dataset-fashion-mnist"):
        fashion_mnist(download=False)


def test_damaged_file_in_torchvision_layout(tmp_path):
    raw = fake(tmp_path / "tv" / "FashionMNIST" / "raw", gz=False)  # read in place, not staged
    corrupt(raw, "train-labels-idx1-ubyte", idx_bytes(np.arange(30) % 10)[:-1], gz=False)
    with pytest.raises(DatasetCorruptError, match="truncated") as err:
        fashion_mnist(tmp_path / "tv")
    assert str(raw / "train-labels-idx1-ubyte") in str(err.value)


def test_unwritable_cache_names_nclib_cache(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("NCLIB_CACHE", str(tmp_path / "not-a-folder"))
    with pytest.raises(OSError, match="NCLIB_CACHE"):
        fashion_mnist(fake(tmp_path / "fm"))


# ---------------------------------------------------------------------------------------------
# fashion_mnist: the staging cache is keyed by content
# ---------------------------------------------------------------------------------------------


def test_changed_source_with_an_older_mtime_is_never_served_stale(tmp_path):
    root = fake(tmp_path / "fm", gz=False)  # plain files: the new copy has exactly the same size
    train, _ = fashion_mnist(root)
    assert train.y[:3].tolist() == [0, 1, 2]
    labels = root / "train-labels-idx1-ubyte"
    before = labels.stat()
    # Another copy with other labels, same size, and the old timestamps put back (as cp -p, tar
    # or a package upgrade can do): the old cache compared mtimes and kept the stale copy.
    labels.write_bytes(idx_bytes((np.arange(30) + 3) % 10))
    assert labels.stat().st_size == before.st_size
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    train, _ = fashion_mnist(root)
    assert train.y[:3].tolist() == [3, 4, 5]


def test_unchanged_source_is_not_rehashed_and_touched_source_not_restaged(tmp_path, monkeypatch):
    root = fake(tmp_path / "fm")
    monkeypatch.setattr(datasets, "_RACY_NS", -10**18)  # trust stat keys at once (files here are brand new)
    hashed, copied = [], []
    real_hash, real_copy = datasets._sha256, datasets._copy_decompressed
    monkeypatch.setattr(datasets, "_sha256", lambda p: hashed.append(p) or real_hash(p))
    monkeypatch.setattr(datasets, "_copy_decompressed", lambda *a: copied.append(a[0]) or real_copy(*a))
    fashion_mnist(root)
    assert len(hashed) == 4 and len(copied) == 4
    fashion_mnist(root)
    assert len(hashed) == 4 and len(copied) == 4  # stat keys unchanged: no hashing, no copying
    os.utime(root / "train-images-idx3-ubyte.gz")  # touched, same content
    fashion_mnist(root)
    assert len(hashed) == 5 and len(copied) == 4  # hashed once more, hash matches: reused


def test_damaged_staged_copy_is_restaged(tmp_path):
    root = fake(tmp_path / "fm")
    fashion_mnist(root)
    staged = next((tmp_path / "cache" / "staged").glob("*/FashionMNIST/raw/train-labels-idx1-ubyte"))
    staged.write_bytes(staged.read_bytes()[:-5])
    train, _ = fashion_mnist(root)
    assert len(train) == 30


# ---------------------------------------------------------------------------------------------
# cifar
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [7, 0, True, "10", None, 10.5])
def test_cifar_bad_num_classes(tmp_path, num_classes):
    write_cifar(tmp_path)
    with pytest.raises(ValueError, match=r"10 or 100 classes.*use 10 for CIFAR-10 or 100 for CIFAR-100"):
        cifar(tmp_path, num_classes, verify=False)


def test_cifar_bad_root_and_verify(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(TypeError, match="verify must be True or False"):
        cifar(tmp_path, 10, verify="no")
    with pytest.raises(TypeError, match="root must be a path"):
        cifar(None, 10)
    with pytest.raises(ValueError, match="empty string"):
        cifar("", 10)


def test_cifar_wrong_num_classes_for_the_folder_suggests_the_other(tmp_path):
    write_cifar(tmp_path, 100)
    with pytest.raises(DatasetNotFoundError, match="did you mean num_classes=100"):
        cifar(tmp_path, 10, verify=False)


def test_cifar_missing_batch_is_listed(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="incomplete: missing data_batch_3"):
        cifar(tmp_path, 10, verify=False)


def test_cifar_md5_failure_lists_the_files(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(DatasetCorruptError, match="MD5 of data_batch_1, .*test_batch"):
        cifar(tmp_path, 10)


def test_cifar_truncated_batch_is_named(tmp_path):
    folder = write_cifar(tmp_path)
    batch = folder / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetCorruptError, match="data_batch_2 cannot be unpickled"):
        cifar(tmp_path, 10, verify=False)


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(labels=[0, 1, 2, 3, 4, 5, 6, 12]), r"labels from 0 to 12, outside \[0, 10\)"),
    (dict(labels=[0, 1, 2, 3, 4, 5, 6]), "holds 8 images but 7 labels"),
    (dict(meta_names=["a", "b"]), "2 class names under 'label_names', expected 10"),
])
def test_cifar_inconsistent_files_are_named(tmp_path, kwargs, phrase):
    write_cifar(tmp_path, **kwargs)
    with pytest.raises(DatasetCorruptError, match=phrase):
        cifar(tmp_path, 10, verify=False)


def test_cifar_batch_with_wrong_image_size(tmp_path):
    folder = write_cifar(tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((8, 100), dtype=np.uint8), "labels": [0] * 8}, f)
    with pytest.raises(DatasetCorruptError, match=r"test_batch 'data' has shape \(8, 100\)"):
        cifar(tmp_path, 10, verify=False)


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("d,phrase", [(0, "≥ 1"), (-3, "≥ 1"), (2.5, "integer"), ("64", "integer")])
def test_build_backbone_rejects_bad_d(name, d, phrase):
    shape = (1, 28, 28)
    with pytest.raises(ValueError, match=f"d must be {phrase}" if phrase == "≥ 1" else f"d must be an {phrase}"):
        build_backbone(name, shape, d=d)


@pytest.mark.parametrize("name", ["mlp", "small_cnn"])
@pytest.mark.parametrize("width", [0, -1, 1.5])
def test_build_backbone_rejects_bad_width(name, width):
    with pytest.raises(ValueError, match="width"):
        build_backbone(name, (1, 28, 28), width=width)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("in_shape", [(1, 0, 28), (0, 28, 28), (1, 28.5, 28), (28, 28), "abc", None, 784])
def test_build_backbone_rejects_bad_in_shape(name, in_shape):
    with pytest.raises(ValueError, match=r"in_shape must be \(channels, height, width\)"):
        build_backbone(name, in_shape)


@pytest.mark.parametrize("name,phrase", [
    ("resnet18", "unknown backbone 'resnet18'; choose one of mlp, mlp_relu, mlp_gauss, small_cnn, vgg11, resnet32, densenet121"),
    ("ResNet32", "lower-case: 'resnet32'"),
    (None, "unknown backbone None"),
])
def test_build_backbone_unknown_name_lists_the_valid_ones(name, phrase):
    with pytest.raises(ValueError, match=phrase):
        build_backbone(name, (3, 4, 4))  # the name is checked first, before the input size


def test_build_backbone_input_too_small():
    with pytest.raises(ValueError, match="at least 4×4"):
        build_backbone("small_cnn", (1, 3, 3))
    with pytest.raises(ValueError, match="at least 8×8"):
        build_backbone("vgg11", (1, 7, 7))


@pytest.mark.parametrize("fn", [vgg11, resnet32, densenet121, lambda c: small_cnn(c, 8)])
@pytest.mark.parametrize("in_channels,phrase", [(0, "≥ 1"), (1.5, "an integer"), ("3", "an integer")])
def test_backbones_reject_bad_in_channels(fn, in_channels, phrase):
    with pytest.raises(ValueError, match=f"in_channels must be {phrase}"):
        fn(in_channels)


def test_mlp_and_densenet_reject_bad_sizes():
    with pytest.raises(ValueError, match=r"depth must be ≥ 1.*number of hidden layers"):
        mlp((1, 8, 8), 4, depth=0)
    with pytest.raises(ValueError, match="depth must be an integer"):
        mlp((1, 8, 8), 4, depth=1.5)
    with pytest.raises(ValueError, match="d must be ≥ 1"):
        mlp((1, 8, 8), 0)
    with pytest.raises(ValueError, match="in_shape"):
        mlp((), 4)
    with pytest.raises(ValueError, match="growth rate must be ≥ 1"):
        densenet121(3, growth=0)
    with pytest.raises(ValueError, match="feature dimension d must be ≥ 1"):
        resnet32(3, d=0)
    assert mlp((6,), 4, width=8)(torch.randn(2, 6)).shape == (2, 4)  # vector inputs still work


@pytest.mark.parametrize("M,exc,phrase", [
    (torch.full((4, 3), math.nan), ValueError, "NaN or infinite"),
    (torch.tensor([[1.0, math.inf], [0.0, 1.0]]), ValueError, "NaN or infinite"),
    (torch.full((2, 3), 1e300, dtype=torch.float64), ValueError, "float32's range"),
    (torch.ones(4), ValueError, r"d×C matrix.*got shape \(4,\)"),
    (torch.ones(4, 1), ValueError, "C ≥ 2"),
    (torch.ones(2, 3, 4), ValueError, "d×C matrix"),
    (torch.ones(0, 3), ValueError, "d ≥ 1"),
    (torch.ones(2, 3, dtype=torch.complex64), TypeError, "real numbers"),
    ("etf", TypeError, "d×C tensor of real numbers"),
])
def test_fixed_head_rejects_bad_M(M, exc, phrase):
    with pytest.raises(exc, match=phrase):
        FixedHead(M)


@pytest.mark.parametrize("scale,phrase", [
    (0.0, "must be > 0"), (-1.0, "must be > 0"), (math.nan, "must be finite"), (math.inf, "must be finite"),
    ("2", "must be a real number"), (True, "must be a real number"), (None, "must be a real number"),
])
def test_fixed_head_rejects_bad_logit_scale(scale, phrase):
    with pytest.raises(ValueError, match=f"logit_scale {phrase}.*multiplies the logits"):
        FixedHead(simplex_etf(3, 4, generator=0), logit_scale=scale)


def test_fixed_head_accepts_tensor_scale_and_detaches_M():
    M = simplex_etf(3, 4, generator=0).requires_grad_(True)
    head = FixedHead(M, logit_scale=torch.tensor(2.0))
    assert head.logit_scale == 2.0 and not head.M.requires_grad


@pytest.mark.parametrize("d,C,phrase", [
    (0, 10, "d must be ≥ 1"), (-1, 10, "d must be ≥ 1"), (8.5, 10, "d must be an integer"),
    (8, 1, "C must be ≥ 2"), (8, 0, "C must be ≥ 2"), (8, 2.5, "C must be an integer"), (8, "10", "C must be an integer"),
])
def test_linear_head_rejects_bad_sizes(d, C, phrase):
    with pytest.raises(ValueError, match=phrase):
        LinearHead(d, C)


def test_nc_model_checks_its_parts():
    with pytest.raises(ValueError, match=r"backbone gives 16 features but the head expects d = 8"):
        NCModel(mlp((1, 8, 8), 16, width=8), LinearHead(8, 3))
    with pytest.raises(ValueError, match="backbone gives 5 features"):
        NCModel(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), FixedHead(simplex_etf(3, 4, generator=0)))
    with pytest.raises(TypeError, match="no matrix\\(\\) method"):
        NCModel(mlp((1, 8, 8), 4, width=8), nn.Linear(4, 3))
    with pytest.raises(TypeError, match="backbone must be an nn.Module"):
        NCModel(lambda x: x, LinearHead(4, 3))
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        count_parameters([torch.zeros(3)])
