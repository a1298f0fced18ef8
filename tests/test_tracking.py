"""nclib.tracking.Tracker: the records of one's own model from one's own loop, against nclib's own
evaluation of the same model (an independent path), with a classifier bias, and on bad input."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset as TorchData

from nclib.data import TensorDataset
from nclib.etf import permute, random_permutation, simplex_etf
from nclib.models import FixedHead, NCModel
from nclib.records import RECORD_KEYS
from nclib.tracking import Tracker
from nclib.train import evaluate


def _data(n=120, C=4, d_in=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n // C)
    x = 2 * torch.randn(C, d_in, generator=g)[y] + torch.randn(n, d_in, generator=g)
    return x, y


class OwnNet(nn.Module):
    """A network written without nclib: a body and a linear head with a bias."""

    def __init__(self, d_in=5, d=6, C=4, head=None):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, 16), nn.ReLU(), nn.Linear(16, d), nn.ReLU())
        self.fc = head if head is not None else nn.Linear(d, C)

    def forward(self, x):
        return self.fc(self.body(x))


def test_records_match_nclib_evaluation_of_the_same_model_and_have_the_documented_keys():
    torch.manual_seed(0)
    x, y = _data()
    M = permute(simplex_etf(4, 6, generator=0), random_permutation(4, generator=1))
    net = OwnNet(head=FixedHead(M))
    tracker = Tracker(net, net.fc, DataLoader(TorchData(x, y), batch_size=32), DataLoader(TorchData(x, y), batch_size=50))
    rec = tracker.log(0)
    assert set(rec) == set(RECORD_KEYS)
    ref = evaluate(NCModel(net.body, net.fc), TensorDataset(x, y, ["a", "b", "c", "d"]), batch_size=40)
    for key in ("loss", "accuracy", "nc1", "p_min", "scale_free_margin", "feature_rms", "nc4_ncc_mismatch"):
        assert rec[f"train_{key}"] == pytest.approx(ref[key], rel=1e-6, abs=1e-12), key
    assert rec["test_accuracy"] == pytest.approx(ref["accuracy"])
    assert tracker.history.column("epoch") == [0]


def test_a_bias_is_the_models_own_decision_rule():
    torch.manual_seed(1)
    x, y = _data(seed=1)
    net = OwnNet()
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([3.0, -3.0, 1.0, 0.0]))  # a bias large enough to move decisions
    tracker = Tracker(net, net.fc, DataLoader(TorchData(x, y), batch_size=25))
    rec = tracker.log(0, lr=0.1)
    with torch.no_grad():
        own = (net(x).argmax(1) == y).double().mean().item()
    assert rec["train_accuracy"] == pytest.approx(own)  # the metrics classify as the model does
    assert rec["lr"] == 0.1 and math.isnan(rec["test_loss"])
    # training moves the record on; epochs must increase
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    later = tracker.log(1)
    assert later["train_loss"] < rec["train_loss"] and net.training
    with pytest.raises(ValueError, match="epoch"):
        tracker.log(1)


def test_bad_input_is_named():
    net = OwnNet()
    x, y = _data()
    with pytest.raises(ValueError, match="submodule"):
        Tracker(net, nn.Linear(6, 4), [(x, y)])
    with pytest.raises(TypeError, match="torch modules"):
        Tracker(net, "fc", [(x, y)])
    with pytest.raises(ValueError, match="expected an nn.Linear"):
        Tracker(net, net.body, [(x, y)])
    with pytest.raises(ValueError, match=r"\(inputs, labels\) pairs"):
        Tracker(net, net.fc, [x]).log(0)
