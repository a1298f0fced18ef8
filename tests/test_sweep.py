"""nclib.sweep: the batched trainer against the plain loop, checkpoints, equivalent classifiers.

Tolerance of the batched-versus-sequential comparison: the vmapped forward multiplies the same
numbers as K separate modules but may sum them in another order, so the two paths agree to float32
rounding at the first step and the gap then grows with training (training is chaotic: see
chapter 8). Over a few epochs on small data every recorded quantity agrees to 1e-4 (relative for
quantities above 1, absolute below); measured gaps are about 1e-6.
"""

import copy
import math

import pytest
import torch

from nclib.data import TensorDataset
from nclib.etf import simplex_etf
from nclib.models import FixedHead, LinearHead, NCModel, mlp, small_cnn
from nclib.sweep import (
    StackedModels,
    absorb_rotation,
    equivalent_classifiers,
    rotation_between,
    sweep_models,
    train_batched,
    train_sweep,
)
from nclib.train import TrainConfig, augment, set_deterministic

TOL = 1e-4


def _data(n_per_class=12, C=4, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n_per_class)
    centres = torch.randn(C, *shape, generator=g)
    x = centres[y] + 0.8 * torch.randn(len(y), *shape, generator=g)
    return TensorDataset(x, y, [str(c) for c in range(C)])


def _assert_histories_close(ha, hb, tol=TOL):
    assert len(ha) == len(hb)
    for a, b in zip(ha, hb):
        assert a.terminal_epoch == b.terminal_epoch
        assert len(a.records) == len(b.records)
        for ra, rb in zip(a.records, b.records):
            assert ra.keys() == rb.keys()
            for k in ra:
                x, y = ra[k], rb[k]
                if isinstance(x, float) and math.isnan(x):
                    assert math.isnan(y), k
                    continue
                assert abs(x - y) <= tol * max(1.0, abs(y)), (k, x, y)


def _sweep(fn, C=4, d=6, n_perm=2, n_rot=1, seed=0):
    _, heads = equivalent_classifiers(C, d, n_perm, n_rot, seed=3)
    return sweep_models(fn, heads, seed=seed, logit_scale=2.0)


def test_batched_equals_sequential_mlp():
    data, test = _data(), _data(seed=1)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, weight_decay=5e-4, milestones=(2,), seed=5)
    fn = lambda: mlp((1, 8, 8), 6, width=32)
    hb = train_sweep(_sweep(fn), data, test, cfg, batched=True)
    hs = train_sweep(_sweep(fn), data, test, cfg, batched=False)
    _assert_histories_close(hb, hs)
    assert hb[0].records[-1]["train_loss"] < hb[0].records[0]["train_loss"]  # it trained


def test_batched_equals_sequential_cnn_with_augmentation_and_learnable_head():
    data, test = _data(n_per_class=8), _data(n_per_class=4, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.02, seed=1, augment="crop_flip", augment_pad=2,
                      channels_last=True)
    def models():
        torch.manual_seed(0)
        base = NCModel(small_cnn(1, 6, width=4), LinearHead(6, 4))
        return [copy.deepcopy(base) for _ in range(3)]
    hb = train_sweep(models(), data, test, cfg, batched=True)
    hs = train_sweep(models(), data, test, cfg, batched=False)
    _assert_histories_close(hb, hs)


def test_chunks_equal_one_batch_and_weights_are_written_back():
    data = _data()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=2)
    fn = lambda: mlp((1, 8, 8), 6, width=16)
    one, chunked = _sweep(fn), _sweep(fn)
    h1 = train_sweep(one, data, data, cfg, batched=True, max_models=None)
    h2 = train_sweep(chunked, data, data, cfg, batched=True, max_models=2)
    _assert_histories_close(h1, h2)
    init = _sweep(fn)
    for a, b, c in zip(one, chunked, init):
        for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
            assert torch.allclose(pa, pb, atol=1e-5), n
            assert not torch.equal(pa, pc) or "head" in n


def test_checkpoint_resume_is_exact(tmp_path):
    data = _data()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, milestones=(3,), seed=4, augment="crop", augment_pad=1)
    fn = lambda: mlp((1, 8, 8), 6, width=16)
    straight = train_batched(_sweep(fn), data, data, cfg, progress=False)

    class Killed(Exception):
        pass

    def kill_after_2(epoch, histories):
        if epoch == 2:
            raise Killed

    ckpt = tmp_path / "group.pt"
    with pytest.raises(Killed):
        train_batched(_sweep(fn), data, data, cfg, progress=False, checkpoint=ckpt, checkpoint_every=0,
                      on_epoch_end=kill_after_2)
    assert ckpt.is_file()
    seen = []
    resumed = train_batched(_sweep(fn), data, data, cfg, progress=False, checkpoint=ckpt, checkpoint_every=0,
                            on_epoch_end=lambda e, h: seen.append(e))
    assert seen == [3, 4]  # epochs 1–2 were not redone
    for a, b in zip(straight, resumed):
        assert a.records == b.records and a.terminal_epoch == b.terminal_epoch
    # A checkpoint of other models (different initialisation) is ignored, not resumed.
    other = train_batched(_sweep(fn, seed=9), data, data, cfg, progress=False, checkpoint=ckpt)
    assert len(other[0].records) == cfg.epochs + 1


def test_stacking_rejects_incompatible_models():
    M = simplex_etf(4, 6, generator=0)
    a = NCModel(mlp((1, 8, 8), 6, width=16), FixedHead(M, 1.0))
    b = NCModel(mlp((1, 8, 8), 6, width=32), FixedHead(M, 1.0))
    c = NCModel(mlp((1, 8, 8), 6, width=16), FixedHead(M, 2.0))
    d = NCModel(mlp((1, 8, 8), 6, width=16), LinearHead(6, 4))
    for pair, msg in (([a, b], "identical architectures"), ([a, c], "logit_scale"), ([a, d], "head type")):
        with pytest.raises(ValueError, match=msg):
            StackedModels(pair)
    with pytest.raises(ValueError, match="at least one"):
        StackedModels([])


def test_equivalent_classifiers_and_structure_switch():
    structure, heads = equivalent_classifiers(5, 6, 3, 2, seed=0)
    assert structure == "simplex_etf" and [h.label for h in heads] == ["base", "perm01", "perm02", "perm03", "rota01", "rota02"]
    base = heads[0].M
    for h in heads[1:]:
        assert torch.allclose(h.M.T @ h.M, base.T @ base, atol=1e-10) or h.kind == "permutation"
        # Every permutation of a simplex ETF is a rotation of it (equal Gram matrices).
        _, residual = rotation_between(base, h.M)
        assert residual < 1e-10
    structure, heads = equivalent_classifiers(6, 2, 1, 1, seed=0, ufm_steps=300)
    assert structure == "ufm" and heads[0].M.shape == (2, 6)
    with pytest.raises(ValueError):
        equivalent_classifiers(4, 4, -1, 0)


def test_absorb_rotation_makes_the_same_function():
    torch.manual_seed(0)
    net = mlp((1, 8, 8), 6, width=16)
    M = simplex_etf(4, 6, generator=0)
    _, heads = equivalent_classifiers(4, 6, 0, 1, seed=1)
    R = heads[1].transform
    a = NCModel(copy.deepcopy(net), FixedHead(R @ M))
    b = NCModel(absorb_rotation(copy.deepcopy(net), R), FixedHead(M))
    x = torch.randn(5, 1, 8, 8)
    a.eval(), b.eval()
    assert torch.allclose(a(x), b(x), atol=1e-5)
    with pytest.raises(ValueError, match="nn.Linear"):
        absorb_rotation(small_cnn(1, 6, 4)[:-1], R)
    # after a ReLU the rotation is no change of variables: a different function
    relu = mlp((1, 8, 8), 6, width=16, feature_relu=True)
    c = NCModel(copy.deepcopy(relu), FixedHead(R @ M)).eval()
    d = NCModel(absorb_rotation(copy.deepcopy(relu), R), FixedHead(M)).eval()
    assert not torch.allclose(c(x), d(x), atol=1e-3)


@pytest.mark.parametrize("bad, match", [
    (torch.ones(6, 6), "orthogonal"), (torch.full((6, 6), float("nan")), "NaN|finite"),
    (torch.zeros(6, 6), "orthogonal"), (torch.eye(5), "6×6")])
def test_absorb_rotation_refuses_what_is_no_rotation(bad, match):
    net = mlp((1, 8, 8), 6, width=16)
    before = net[-1].weight.clone()
    with pytest.raises(ValueError, match=match):
        absorb_rotation(net, bad)
    assert torch.equal(net[-1].weight, before)  # nothing poisoned


def test_augment_shapes_and_identity_cases():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, 5)
    assert torch.equal(augment(x, g, "crop", pad=0), x)
    y = augment(x, g, "crop_flip", pad=2)
    assert y.shape == x.shape
    # Every output is a shifted (and possibly flipped) window of the zero-padded input.
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        ok = any(torch.equal(y[i], w) or torch.equal(y[i], w.flip(2))
                 for r in range(5) for c in range(5) for w in [padded[i, :, r : r + 5, c : c + 5]])
        assert ok
    with pytest.raises(ValueError):
        augment(x[0], g)
    with pytest.raises(ValueError):
        TrainConfig(augment="rotate")


def test_deterministic_mode_switches_on_and_off():
    try:
        set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_the_sweep_helper_defaults_to_the_loop_on_a_cpu(monkeypatch):
    """batched=None: what make bench measured faster here (the loop on a CPU)."""
    import nclib.sweep as sweep

    calls = []
    monkeypatch.setattr(sweep, "train_batched", lambda *a, **kw: calls.append("batched") or [])
    monkeypatch.setattr(sweep, "train", lambda *a, **kw: calls.append("loop"))
    data = _data()
    sweep.train_sweep(_sweep(lambda: mlp((1, 8, 8), 6, width=16)), data, data, TrainConfig(epochs=1))
    assert calls and set(calls) == {"loop"}
