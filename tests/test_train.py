"""nclib.train: training until a condition holds (never a fixed budget that one machine's rounding
happens to meet), its cap, and TrainConfig's argument checks."""

import pytest
import torch

from nclib.data import TensorDataset
from nclib.models import LinearHead, NCModel, mlp
from nclib.sweep import train_batched
from nclib.train import TrainConfig, TrainingDidNotConverge, keep_training, train


def _blobs(n_per_class=10, C=3, dim=6, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n_per_class)
    x = 2.0 * torch.randn(C, dim, generator=g)[y] + spread * torch.randn(len(y), dim, generator=g)
    return TensorDataset(x, y, [str(c) for c in range(C)])


def _model(seed=0, dim=6, C=3):
    torch.manual_seed(seed)
    return NCModel(mlp((dim,), 4, width=16), LinearHead(4, C))


def test_trains_past_the_schedule_until_every_label_fits():
    data = _blobs()
    # one epoch at a tiny learning rate cannot fit: the condition, not the budget, decides
    config = TrainConfig(epochs=1, batch_size=10, lr=0.02, momentum=0.9, weight_decay=0.0,
                         until_accuracy=1.0, max_epochs=400)
    h = train(_model(), data, data, config, progress=False)
    assert h.records[-1]["train_accuracy"] == 1.0
    assert h.epochs_trained > 1
    # it stops at the first epoch where the condition holds, not later
    assert all(r["train_accuracy"] < 1.0 for r in h.records[1:-1])
    assert [r["epoch"] for r in h.records] == list(range(h.epochs_trained + 1))  # past the schedule: every epoch


def test_never_stops_before_the_schedule_ends():
    data = _blobs()
    config = TrainConfig(epochs=40, batch_size=10, lr=0.05, weight_decay=0.0, until_accuracy=1.0)
    h = train(_model(), data, data, config, progress=False)
    assert h.terminal_epoch is not None and h.terminal_epoch < 40
    # it stops at the first epoch of the schedule's end or later where every label fits
    assert h.epochs_trained == next(r["epoch"] for r in h.records if r["epoch"] >= 40 and r["train_accuracy"] == 1.0)


def test_until_loss_trains_on_after_the_fit():
    data = _blobs()
    config = TrainConfig(epochs=1, batch_size=10, lr=0.1, weight_decay=0.0, until_accuracy=1.0,
                         until_loss=1e-2, max_epochs=2000)
    h = train(_model(), data, data, config, progress=False)
    last = h.records[-1]
    assert last["train_accuracy"] == 1.0 and last["train_loss"] <= 1e-2
    assert h.epochs_trained > h.terminal_epoch


def test_min_terminal_epochs_gives_a_terminal_phase_of_that_length():
    data = _blobs()
    config = TrainConfig(epochs=1, batch_size=10, lr=0.02, momentum=0.9, weight_decay=0.0,
                         until_accuracy=1.0, min_terminal_epochs=5, max_epochs=400)
    h = train(_model(), data, data, config, progress=False)
    assert h.terminal_epoch is not None
    assert h.epochs_trained >= h.terminal_epoch + 5
    assert h.records[-1]["train_accuracy"] == 1.0


def test_a_condition_that_cannot_hold_raises_past_the_cap():
    # each input twice, with two different labels: no network fits them
    x = torch.eye(6)[[0, 0, 1, 1, 2, 2]]
    data = TensorDataset(x, torch.tensor([0, 1, 1, 2, 2, 0]), ["a", "b", "c"])
    config = TrainConfig(epochs=2, batch_size=6, lr=0.1, until_accuracy=1.0, max_epochs=5)
    with pytest.raises(TrainingDidNotConverge, match="within max_epochs = 5") as info:
        train(_model(), data, data, config, progress=False)
    assert "raise max_epochs" in str(info.value)


def test_batched_training_waits_for_the_slowest_model():
    data = _blobs()
    config = TrainConfig(epochs=1, batch_size=10, lr=0.02, momentum=0.9, weight_decay=0.0,
                         until_accuracy=1.0, max_epochs=400)
    hs = train_batched([_model(0), _model(1)], data, data, config, progress=False)
    assert len({h.epochs_trained for h in hs}) == 1
    assert all(h.records[-1]["train_accuracy"] == 1.0 for h in hs)
    assert hs[0].epochs_trained > 1


def test_keep_training_is_a_pure_rule():
    cfg = TrainConfig(epochs=3, until_accuracy=1.0, max_epochs=6)
    fit, unfit = {"accuracy": 1.0, "loss": 0.1}, {"accuracy": 0.9, "loss": 0.5}
    assert keep_training(0, cfg, [fit]) and keep_training(2, cfg, [fit])
    assert not keep_training(3, cfg, [fit])
    assert keep_training(3, cfg, [fit, unfit]) and keep_training(5, cfg, [unfit])
    with pytest.raises(TrainingDidNotConverge, match="1 of 2 model"):
        keep_training(6, cfg, [fit, unfit])
    plain = TrainConfig(epochs=3)  # no condition: exactly the schedule
    assert plain.epoch_cap == 3 and not keep_training(3, plain, [unfit])
    assert TrainConfig(epochs=10, until_accuracy=1.0).epoch_cap == 60
    assert TrainConfig(epochs=100, until_accuracy=1.0).epoch_cap == 400


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(epochs=2.5), "TrainConfig.epochs must be an integer"),
    (dict(epochs=-1), "TrainConfig.epochs must be ≥ 0"),
    (dict(epochs=True), "must be an integer"),
    (dict(batch_size=0), "TrainConfig.batch_size must be ≥ 1"),
    (dict(lr=float("nan")), "TrainConfig.lr must be finite"),
    (dict(lr=0.0), "TrainConfig.lr must be > 0"),
    (dict(lr="0.1"), "TrainConfig.lr must be a real number"),
    (dict(momentum=1.0), "TrainConfig.momentum must be < 1"),
    (dict(weight_decay=-1e-4), "TrainConfig.weight_decay must be ≥ 0"),
    (dict(milestones="30"), "TrainConfig.milestones must be a list"),
    (dict(milestones=[0]), "milestones entry must be ≥ 1"),
    (dict(milestones=[2.5]), "milestones entry must be an integer"),
    (dict(augment="flip"), "TrainConfig.augment must be None"),
    (dict(until_accuracy=1.5), "TrainConfig.until_accuracy must be ≤ 1"),
    (dict(until_loss=0.0), "TrainConfig.until_loss must be > 0"),
    (dict(epochs=10, until_accuracy=1.0, max_epochs=5), "TrainConfig.max_epochs must be ≥ 10"),
    (dict(max_epochs=100), "set until_accuracy, until_loss or min_terminal_epochs"),
    (dict(min_terminal_epochs=-1), "min_terminal_epochs must be ≥ 0"),
])
def test_bad_training_configuration_is_refused(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        TrainConfig(**kwargs)


def test_measurement_in_channels_last_matches_the_plain_layout():
    """The NHWC measurement pass (the CPU-fast path for CNNs) computes the same metrics."""
    from nclib.data import TensorDataset
    from nclib.etf import simplex_etf
    from nclib.models import FixedHead, NCModel, small_cnn
    from nclib.train import evaluate, evaluate_loss_accuracy

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(60, 1, 12, 12), torch.arange(60) % 3, ["a", "b", "c"])
    model = NCModel(small_cnn(1, 4, 4), FixedHead(simplex_etf(3, 4, generator=0)))
    plain = evaluate(model, data, 16)
    model.to(memory_format=torch.channels_last)
    fast = evaluate(model, data, 16, channels_last=True)
    for key in ("loss", "accuracy", "nc1", "p_min", "feature_rms"):
        assert fast[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-6), key
    light = evaluate_loss_accuracy(model, data, 16, channels_last=True)
    assert light["accuracy"] == plain["accuracy"] and light["loss"] == pytest.approx(plain["loss"], rel=1e-4)


def test_measurement_passes_build_no_autograd_graph():
    """evaluate and evaluate_loss_accuracy run under no_grad: a measurement pass that recorded a
    graph would cost memory and time in every measured epoch."""
    from nclib.data import TensorDataset
    from nclib.etf import simplex_etf
    from nclib.models import FixedHead
    from nclib.train import evaluate, evaluate_loss_accuracy

    model = NCModel(mlp((1, 8, 8), 4, width=16), FixedHead(simplex_etf(3, 4, generator=0)))
    seen, features = [], model.features
    model.features = lambda x: seen.append(torch.is_grad_enabled()) or features(x)
    data = TensorDataset(torch.randn(30, 1, 8, 8), torch.arange(30) % 3, ["a", "b", "c"])
    evaluate(model, data, 16)
    evaluate_loss_accuracy(model, data, 16)
    assert seen and not any(seen)


def test_the_record_format_is_the_documented_one():
    """Every measured epoch carries exactly the keys of nclib.records.RECORD_KEYS (one place)."""
    from nclib.records import RECORD_KEYS
    from nclib.data import TensorDataset
    from nclib.models import LinearHead, NCModel, mlp

    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(8)
    data = TensorDataset(torch.randn(24, 1, 4, 4, generator=g) + y[:, None, None, None], y, list("abc"))
    torch.manual_seed(0)
    model = NCModel(mlp((1, 4, 4), 4, width=8), LinearHead(4, 3))
    h = train(model, data, data, TrainConfig(epochs=2, batch_size=8, measure="every"), progress=False)
    for rec in h.records:
        assert set(rec) == set(RECORD_KEYS)


def test_train_says_what_it_needs_and_takes_an_optimizer_and_a_schedule():
    from torch import nn

    from nclib.data import TensorDataset
    from nclib.models import LinearHead, NCModel, mlp

    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat(8)
    data = TensorDataset(torch.randn(24, 1, 4, 4, generator=g), y, list("abc"))
    cfg = TrainConfig(epochs=3, batch_size=8)
    with pytest.raises(TypeError, match="NCModel"):
        train(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), data, data, cfg, progress=False)
    model = NCModel(mlp((1, 4, 4), 4, width=8), LinearHead(4, 3))
    with pytest.raises(TypeError, match="TensorDataset"):
        train(model, (data.x, data.y), data, cfg, progress=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = train(model, data, data, cfg, progress=False, optimizer=opt, scheduler=sched)
    assert [r["lr"] for r in h.running] == pytest.approx([1e-3, 5e-4, 2.5e-4])  # the given schedule, per epoch
    with pytest.raises(ValueError, match="needs the optimizer"):
        train(model, data, data, cfg, progress=False, scheduler=sched)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="must schedule the optimizer"):
        train(model, data, data, cfg, progress=False, optimizer=other, scheduler=sched)
