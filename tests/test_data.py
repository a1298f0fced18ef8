"""nclib.data: the Fashion-MNIST search order, CIFAR's format, balanced subsets."""

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nclib.datasets as datasets
from nclib.datasets import DatasetNotFoundError, cifar, fashion_mnist
from nclib.data import TensorDataset, balanced_split, balanced_subset


def write_idx(path: Path, array: np.ndarray, gz: bool):
    """Write an idx file (the MNIST format) by hand: magic (0, 0, dtype 0x08, ndim), sizes, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(path.with_name(path.name + (".gz" if gz else "")), "wb") as f:
        f.write(payload)


def fake_fashion_mnist(root: Path, gz: bool, n_train=30, n_test=20):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(root / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, gz)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NCLIB_DATA", raising=False)


@pytest.mark.parametrize("gz", [True, False])
def test_explicit_root_with_idx_files(tmp_path, gz):
    fake_fashion_mnist(tmp_path / "fm", gz)
    train, test = fashion_mnist(tmp_path / "fm", download=False)
    assert train.x.shape == (30, 1, 28, 28) and test.x.shape == (20, 1, 28, 28)
    assert train.y.dtype == torch.int64 and train.y.tolist() == [i % 10 for i in range(30)]
    assert train.num_classes == 10
    # Normalized with the training split's statistics.
    assert abs(train.x.mean().item()) < 1e-5 and abs(train.x.std().item() - 1) < 1e-3


@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_idx_reader_matches_torchvision(tmp_path_factory, n, seed):
    # nclib reads the idx files itself (importing torchvision costs ~0.9 s a process); the
    # independent reader is torchvision's own FashionMNIST: the same bytes, labels and class names.
    import torchvision

    root = tmp_path_factory.mktemp("fm")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for split, m in (("train", n), ("t10k", n + 1)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (m, 28, 28)), gz=False)
        write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, m), gz=False)
    for train in (True, False):
        ours = datasets._read_idx(raw / f"{'train' if train else 't10k'}-images-idx3-ubyte")
        theirs = torchvision.datasets.FashionMNIST(root, train=train, download=False)
        labels = datasets._read_idx(raw / f"{'train' if train else 't10k'}-labels-idx1-ubyte").long()
        assert ours.dtype == theirs.data.dtype == torch.uint8 and torch.equal(ours, theirs.data)
        assert torch.equal(labels, theirs.targets.long())
        assert list(datasets.FASHION_MNIST_CLASSES) == list(theirs.classes)


def test_loading_fashion_mnist_leaves_torchvision_unimported(tmp_path):
    # The point of reading idx files here: a process that loads Fashion-MNIST (a chapter kernel,
    # a worker) does not pay torchvision's import.
    fake_fashion_mnist(tmp_path / "fm", gz=True)
    code = ("import sys, nclib.datasets as d; tr, te = d.fashion_mnist(sys.argv[1], download=False); "
            "assert len(tr) == 30; print('torchvision' in sys.modules)")
    env = {**os.environ, "NCLIB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fm")], capture_output=True, text=True,
                         env=env, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_environment_variable_root(tmp_path, monkeypatch):
    fake_fashion_mnist(tmp_path / "env", gz=True)
    monkeypatch.setenv("NCLIB_DATA", str(tmp_path / "env"))
    train, _ = fashion_mnist(download=False)
    assert len(train) == 30


def test_missing_dataset_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    import torchvision

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    with pytest.raises(DatasetNotFoundError) as err:
        fashion_mnist()  # nothing named: the whole search order is tried
    msg = str(err.value)
    assert "NCLIB_DATA" in msg and "dataset-fashion-mnist" in msg and "download" in msg
    assert "network unreachable" in msg


def test_named_root_without_files_never_falls_back(tmp_path, monkeypatch):
    # Even with a good copy where Debian's would be, a named root that lacks the files is an error.
    fake_fashion_mnist(tmp_path / "debian", gz=True)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    assert len(fashion_mnist(download=False)[0]) == 30  # the fallback itself works
    with pytest.raises(DatasetNotFoundError, match="train-labels-idx1-ubyte") as err:
        fashion_mnist(tmp_path / "empty")
    assert "does not exist" in str(err.value) and "root=None" in str(err.value)
    monkeypatch.setenv("NCLIB_DATA", str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError, match="unset NCLIB_DATA"):
        fashion_mnist()


@pytest.mark.skipif(not datasets.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian():
    train, test = fashion_mnist(download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.y).tolist() == [6000] * 10


def test_in_place_normalization_gives_the_bits_of_the_expression():
    """The loaders normalize in place (no temporaries of the whole split); the recorded runs were
    made with ``(x − mean) / std``, so the two must agree bit for bit."""
    from nclib.datasets import _normalize

    x = torch.rand(500, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    expected = (x - mean[None, :, None, None]) / std[None, :, None, None]
    assert torch.equal(_normalize(x.clone(), mean, std), expected)


def write_cifar(root: Path, num_classes: int, n_per_batch=8):
    rng = np.random.default_rng(1)
    if num_classes == 10:
        folder, files, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels"
        meta_name, meta = "batches.meta", {"label_names": [f"c{i}" for i in range(10)]}
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], "fine_labels"
        meta_name, meta = "meta", {"fine_label_names": [f"c{i}" for i in range(100)]}
    folder.mkdir(parents=True)
    for name in files:
        # The real files are Python 2 pickles whose str keys load as str; write str keys too.
        batch = {
            "data": rng.integers(0, 256, (n_per_batch, 3 * 32 * 32), dtype=np.uint8),
            key: list(rng.integers(0, num_classes, n_per_batch)),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / meta_name, "wb") as f:
        pickle.dump(meta, f)


@pytest.mark.parametrize("num_classes,n_train", [(10, 40), (100, 8)])
def test_cifar_tiny_files_in_cifar_format(tmp_path, num_classes, n_train):
    write_cifar(tmp_path, num_classes)
    train, test = cifar(tmp_path, num_classes, verify=False)
    assert train.x.shape == (n_train, 3, 32, 32) and test.x.shape == (8, 3, 32, 32)
    assert train.num_classes == num_classes
    # With verification on, the tiny files fail torchvision's MD5 check, and the error says so.
    with pytest.raises(DatasetNotFoundError, match="corrupted"):
        cifar(tmp_path, num_classes)


def test_cifar_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        cifar(tmp_path / "nowhere", 10)
    with pytest.raises(ValueError, match="10 or 100"):
        cifar(tmp_path, 20)


def test_balanced_subset():
    y = torch.arange(5).repeat_interleave(torch.tensor([10, 20, 30, 40, 50]))
    idx = balanced_subset(y, 7, generator=3)
    assert torch.bincount(y[idx]).tolist() == [7] * 5
    assert idx.unique().numel() == idx.numel()
    assert torch.equal(idx, balanced_subset(y, 7, generator=3))
    assert not torch.equal(idx, balanced_subset(y, 7, generator=4))
    with pytest.raises(ValueError, match="only 10 samples"):
        balanced_subset(y, 11)


def test_balanced_split_draws_train_with_seed_and_test_with_seed_plus_one():
    y = torch.arange(3).repeat_interleave(20)
    train = TensorDataset(torch.arange(60.0)[:, None], y, ["a", "b", "c"])
    test = TensorDataset(100 + torch.arange(60.0)[:, None], y, ["a", "b", "c"])
    tr, te = balanced_split(train, test, 4, 5, seed=7)
    assert torch.equal(tr.x, train.x[balanced_subset(y, 4, generator=7)])
    assert torch.equal(te.x, test.x[balanced_subset(y, 5, generator=8)])
    whole_train, some_test = balanced_split(train, test, None, 2, seed=0)
    assert whole_train is train and torch.bincount(some_test.y).tolist() == [2, 2, 2]
