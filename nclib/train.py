"""Training into the terminal phase with a per-epoch history of every metric.

The terminal phase of training (TPT, Papyan et al. 2020) starts at the first epoch with 100%
training accuracy; neural collapse and the growth of p_min (Theorem 4.1) are properties of what
happens after it, so a run records that epoch and trains on past it.

Speed (ARCHITECTURE.md): the caller keeps the data on the model's device (``TensorDataset.to``);
augmentation (random crop and flip) runs on that device from its own seeded generator; with
``amp`` the backbone runs under bf16 autocast on CUDA while the head and the loss stay in fp32;
``channels_last`` stores images and convolution weights NHWC. :func:`set_deterministic` switches
on PyTorch's deterministic algorithms. Training many models that share a seed and a data order in
one batched step is :func:`nclib.sweep.train_batched`; :func:`train` here is the plain
one-model loop it is tested against.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nclib._checks import check_int, check_real
from nclib.accumulate import NCAccumulator
from nclib.data import TensorDataset
from nclib.history import History
from nclib.schedule import SCHEDULES, MetricSchedule

__all__ = [
    "TrainConfig",
    "TrainingDidNotConverge",
    "measure_batches",
    "evaluate",
    "evaluate_loss_accuracy",
    "augment",
    "set_deterministic",
    "keep_training",
    "data_generators",
    "batch_input",
    "TRAIN_SCALARS",
    "epoch_record",
    "run_epochs",
    "train",
]


@dataclass
class TrainConfig:
    """SGD with momentum and weight decay, a step schedule (lr × gamma at each milestone epoch).

    ``seed`` fixes the data order (and the augmentation draws); model initialisation is the
    caller's (seed ``torch.manual_seed`` before building). ``augment``: ``None``, ``"crop"`` or
    ``"crop_flip"`` (random crop after zero padding by ``augment_pad`` pixels, random horizontal
    flip), on the data's device. ``amp``: bf16 autocast for the backbone on CUDA (ignored on the
    CPU). ``channels_last``: NHWC memory format for 4-D inputs, in training and in the measurement
    passes (measured on the 2-core CPU for ``small_cnn``: 2× faster forward passes, 1.25× faster
    training; a no-op for the MLP). ``eval_batch_size``: batch size of
    the per-epoch measurement passes.

    Training *until* a condition holds (ARCHITECTURE.md: no chapter depends on a lucky run): with
    ``until_accuracy`` (training accuracy ≥ it, 1.0 = every training label fitted) and/or
    ``until_loss`` (training cross-entropy ≤ it) and/or ``min_terminal_epochs`` (at least that many
    epochs since the first with 100% training accuracy: a terminal phase long enough to study) set, training runs the ``epochs`` of the schedule
    and then goes on, epoch by epoch at the schedule's last learning rate, until the conditions
    hold together at the end of an epoch, or raises :class:`TrainingDidNotConverge` past
    ``max_epochs`` (default: four times ``epochs``, at least ``epochs + 50``). Floating-point
    rounding differs between CPUs, so the epoch a chaotic run fits its labels differs too; a fixed
    budget that is just enough on one machine fails on the next.

    ``measure``: when the full metric pass runs, ``"auto"`` (log-spaced epochs, every epoch
    around the start of the terminal phase and in the last ``measure_window`` epochs; see
    :mod:`nclib.schedule`) or ``"every"`` epoch.
    """

    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    seed: int = 0
    augment: str | None = None
    augment_pad: int = 4
    amp: bool = False
    channels_last: bool = False
    eval_batch_size: int = 1000
    until_accuracy: float | None = None
    until_loss: float | None = None
    min_terminal_epochs: int = 0
    max_epochs: int | None = None
    measure: str = "auto"
    measure_window: int = 10

    def __post_init__(self):
        check_int(self.epochs, "TrainConfig.epochs", minimum=0)
        check_int(self.batch_size, "TrainConfig.batch_size", minimum=1)
        check_int(self.eval_batch_size, "TrainConfig.eval_batch_size", minimum=1)
        check_int(self.seed, "TrainConfig.seed", minimum=0)
        check_int(self.augment_pad, "TrainConfig.augment_pad", minimum=0)
        check_real(self.lr, "TrainConfig.lr", positive=True)
        check_real(self.weight_decay, "TrainConfig.weight_decay", minimum=0.0)
        check_real(self.momentum, "TrainConfig.momentum", minimum=0.0, below=1.0)
        check_real(self.lr_gamma, "TrainConfig.lr_gamma", positive=True)
        if self.augment not in (None, "crop", "crop_flip"):
            raise ValueError(f"TrainConfig.augment must be None, 'crop' or 'crop_flip', got {self.augment!r}")
        if isinstance(self.milestones, (str, bytes)) or not hasattr(self.milestones, "__iter__"):
            raise ValueError(f"TrainConfig.milestones must be a list of epochs, got {self.milestones!r}")
        for m in self.milestones:
            check_int(m, "TrainConfig.milestones entry", minimum=1)
        self.milestones = tuple(sorted(int(m) for m in self.milestones))
        if self.until_accuracy is not None:
            check_real(self.until_accuracy, "TrainConfig.until_accuracy", positive=True, maximum=1.0)
        if self.until_loss is not None:
            check_real(self.until_loss, "TrainConfig.until_loss", positive=True)
        check_int(self.min_terminal_epochs, "TrainConfig.min_terminal_epochs", minimum=0)
        if self.measure not in SCHEDULES:
            raise ValueError(f"TrainConfig.measure must be one of {SCHEDULES}, got {self.measure!r}")
        check_int(self.measure_window, "TrainConfig.measure_window", minimum=1)
        if self.max_epochs is not None:
            check_int(self.max_epochs, "TrainConfig.max_epochs", minimum=self.epochs)
            if not self.has_condition:
                raise ValueError("TrainConfig.max_epochs caps training *until* a condition: set "
                                 "until_accuracy, until_loss or min_terminal_epochs too, or leave max_epochs None")

    @property
    def has_condition(self) -> bool:
        """Whether training runs until a condition holds rather than for exactly ``epochs``."""
        return self.until_accuracy is not None or self.until_loss is not None or self.min_terminal_epochs > 0

    @property
    def epoch_cap(self) -> int:
        """The last epoch training may run: ``epochs`` without a stopping condition, else
        ``max_epochs`` (default max(4·epochs, epochs + 50))."""
        if not self.has_condition:
            return self.epochs
        return self.max_epochs if self.max_epochs is not None else max(4 * self.epochs, self.epochs + 50)

    def condition_met(self, train_metrics: dict, epoch: int = 0, terminal_epoch: int | None = None) -> bool:
        """Whether one model's training-set measurement at ``epoch`` satisfies the stopping
        conditions (``terminal_epoch``: its first epoch with 100% training accuracy, if any)."""
        ok = self.until_accuracy is None or train_metrics["accuracy"] >= self.until_accuracy
        ok = ok and (self.until_loss is None or train_metrics["loss"] <= self.until_loss)
        if self.min_terminal_epochs:
            ok = ok and terminal_epoch is not None and epoch - terminal_epoch >= self.min_terminal_epochs
        return ok

    def describe_condition(self) -> str:
        """The stopping condition in words, for messages."""
        parts = [f"training accuracy ≥ {self.until_accuracy:g}"] if self.until_accuracy is not None else []
        parts += [f"training CE ≤ {self.until_loss:g}"] if self.until_loss is not None else []
        parts += ([f"{self.min_terminal_epochs} epochs past the first at 100% training accuracy"]
                  if self.min_terminal_epochs else [])
        return " and ".join(parts) or "none"

    def to_dict(self) -> dict:
        """The configuration as plain JSON-able values (for run records)."""
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        return out


class TrainingDidNotConverge(RuntimeError):
    """Training ran to ``TrainConfig.max_epochs`` without reaching its stopping condition. The
    histories so far are kept in ``histories`` (one per model) for inspection."""

    def __init__(self, message: str, histories=None):
        super().__init__(message)
        self.histories = histories or []


def keep_training(epoch: int, config: TrainConfig, train_metrics: list[dict],
                  terminal_epochs: list[int | None] | None = None) -> bool:
    """After ``epoch`` epochs, whether to run another: always within the schedule's ``epochs``;
    past it only while some model misses the stopping condition; past ``config.epoch_cap`` never,
    and then it is an error (:class:`TrainingDidNotConverge`) when the condition is unmet.
    ``train_metrics`` and ``terminal_epochs``: per model, its last training-set measurement and
    its first epoch with 100% training accuracy."""
    if epoch < config.epochs:
        return True
    terminal_epochs = terminal_epochs or [None] * len(train_metrics)
    missing = [k for k, (tr, t) in enumerate(zip(train_metrics, terminal_epochs))
               if not config.condition_met(tr, epoch, t)]
    if not missing:
        return False
    if epoch < config.epoch_cap:
        return True
    worst = min(train_metrics[k]["accuracy"] for k in missing)
    raise TrainingDidNotConverge(
        f"{len(missing)} of {len(train_metrics)} model(s) did not reach "
        f"{config.describe_condition()} within max_epochs = {config.epoch_cap} (lowest training "
        f"accuracy {worst:.4f}, highest training CE {max(train_metrics[k]['loss'] for k in missing):.3g}); "
        "raise max_epochs or lr, or check the data (a label the model cannot fit?)"
    )


def _in_memory_format(x, channels_last: bool):
    """A batch in the training's memory format: NHWC images for a channels-last model (mixing an
    NCHW batch with NHWC weights costs a layout conversion in every convolution)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


@torch.no_grad()
def measure_batches(batches, M, *, bias=None, device=None) -> dict:
    """One pass over ``batches`` of ``(features, logits, labels)``: mean cross-entropy of the
    logits plus every metric of :class:`~nclib.accumulate.NCAccumulator` for the classifier ``M``
    (d×C, and its ``bias``), the RMS feature norm ρ̄ = (Ave_i ‖z_i‖²)^{1/2} and the mean column norm
    of ``M`` (the two factors by which p_min grows under mere rescaling). What :func:`evaluate` and
    :class:`nclib.tracking.Tracker` measure each epoch."""
    acc = NCAccumulator(M, device=device, bias=bias)
    n, loss_sum, sq_norm = 0, 0.0, 0.0
    for z, logits, y in batches:
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        sq_norm += z.double().pow(2).sum().item()
        acc.update(z, y)
        n += len(y)
    out = acc.compute()  # refuses an empty pass, naming it
    out["loss"] = loss_sum / n
    out["feature_rms"] = math.sqrt(sq_norm / n)
    out["classifier_norm"] = M.double().norm(dim=0).mean().item()
    return out


@torch.no_grad()
def evaluate(model, data: TensorDataset, batch_size: int = 1000, channels_last: bool = False) -> dict:
    """One pass over ``data`` with the model's classifier matrix: :func:`measure_batches`.
    ``channels_last``: feed 4-D batches NHWC (set when the model was trained so)."""
    model.eval()

    def batches():
        for i in range(0, len(data), batch_size):
            x, y = _in_memory_format(data.x[i : i + batch_size], channels_last), data.y[i : i + batch_size]
            z = model.features(x)
            yield z, model.head(z), y

    return measure_batches(batches(), model.classifier_matrix(), device=data.x.device)


@torch.no_grad()
def evaluate_loss_accuracy(model, data: TensorDataset, batch_size: int = 1000,
                           channels_last: bool = False) -> dict:
    """One light pass over ``data``: mean cross-entropy and accuracy only (what the history keeps
    of the test set), cheaper than :func:`evaluate`."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(data), batch_size):
        x, y = _in_memory_format(data.x[i : i + batch_size], channels_last), data.y[i : i + batch_size]
        logits = model.head(model.features(x)).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    return {"loss": loss_sum / len(data), "accuracy": correct / len(data)}


#: The training-set measurements an epoch's record keeps, each as ``train_<name>``.
TRAIN_SCALARS = (
    "loss", "accuracy", "p_min", "scale_free_margin", "feature_rms", "classifier_norm", "nc1",
    "nc2_equinorm_means", "nc2_equiangular_means", "nc2_max_angle_means", "nc2_etf_error_means",
    "nc2_equinorm_classifier", "nc2_equiangular_classifier", "nc2_max_angle_classifier",
    "nc2_etf_error_classifier", "nc3_self_duality", "nc4_ncc_mismatch",
)


def epoch_record(epoch: int, lr: float, train_metrics: dict, test_metrics: dict) -> dict:
    """One measured epoch's record (:data:`nclib.records.RECORD_KEYS`): the epoch, the learning
    rate of its steps, ``train_<name>`` for each of :data:`TRAIN_SCALARS` and the test loss and
    accuracy."""
    rec = {"epoch": epoch, "lr": lr}
    rec.update({f"train_{k}": train_metrics[k] for k in TRAIN_SCALARS})
    rec.update({"test_loss": test_metrics["loss"], "test_accuracy": test_metrics["accuracy"]})
    return rec


def augment(x: torch.Tensor, generator: torch.Generator, mode: str = "crop_flip", pad: int = 4):
    """Random-crop (zero padding by ``pad``, then a random H×W window) and, for ``"crop_flip"``,
    random horizontal flip of a batch N×C×H×W, on the batch's device with ``generator`` (which
    must live on that device). The standard CIFAR augmentation (He et al. 2016), vectorized."""
    if x.ndim != 4:
        raise ValueError(f"augment expects a batch N×C×H×W, got shape {tuple(x.shape)}")
    if mode not in ("crop", "crop_flip"):
        raise ValueError(f"augment mode must be 'crop' or 'crop_flip', got {mode!r}")
    n, _, h, w = x.shape
    if pad > 0:
        shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=x.device)
        padded = F.pad(x, (pad, pad, pad, pad))
        rows = (shifts[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (shifts[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if mode == "crop_flip":
        flip = torch.rand(n, generator=generator, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def set_deterministic(enabled: bool = True) -> None:
    """PyTorch's deterministic mode (reproducible runs on CUDA at some cost in speed): deterministic
    algorithms (warning, not failing, where an op has none), cuDNN without autotuning, and the
    cuBLAS workspace setting that deterministic matmuls need (effective if set before CUDA starts).
    ``enabled=False`` switches deterministic algorithms off and cuDNN autotuning on (the fast
    setting for fixed-size batches)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def data_generators(config: TrainConfig, device: torch.device):
    """The data-order generator (CPU, seeded with ``config.seed``, as before augmentation existed)
    and the augmentation generator (on the data's device, seeded from ``config.seed``)."""
    order = torch.Generator().manual_seed(config.seed)
    aug = torch.Generator(device=device).manual_seed(config.seed + 7919)
    return order, aug


def batch_input(x, config: TrainConfig, aug_gen):
    """The training batch as the model sees it: augmented and in the configured memory format."""
    if config.augment is not None:
        x = augment(x, aug_gen, config.augment, config.augment_pad)
    return _in_memory_format(x, config.channels_last)


def _check_training_inputs(model, train_data, test_data, config) -> None:
    """What :func:`train` needs, checked before the first step, with how to provide it."""
    from torch import nn

    if not isinstance(model, nn.Module) or not callable(getattr(model, "classifier_matrix", None)):
        raise TypeError(f"train(model, ...): model must be an nn.Module with classifier_matrix() (the d×C matrix "
                        f"of its head) and features(x), as nclib.models.NCModel has; got {type(model).__name__}. "
                        "Wrap your network: NCModel(backbone, LinearHead(d, C)) or NCModel(backbone, FixedHead(M))")
    if not callable(getattr(model, "features", None)) or not isinstance(getattr(model, "head", None), nn.Module):
        raise TypeError("train(model, ...): model must have features(x) (the backbone's output, d features per "
                        "input) and a head module (features → logits); nclib.models.NCModel has both")
    for name, data in (("train_data", train_data), ("test_data", test_data)):
        if not isinstance(data, TensorDataset):
            raise TypeError(f"train(...): {name} must be an nclib.data.TensorDataset (the whole split in memory), "
                            f"got {type(data).__name__}; wrap tensors as TensorDataset(x, y, classes)")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train(...): config must be an nclib.train.TrainConfig, got {type(config).__name__}")


def run_epochs(config: TrainConfig, n_train: int, histories: list[History], log, train_epoch, opt, sched, *,
               trs: list[dict] | None = None, start: int = 1, label: str = "", progress: bool = True,
               after_epoch=None) -> None:
    """The epoch loop that :func:`train` and :func:`nclib.sweep.train_batched` share: train epoch
    after epoch while :func:`keep_training` says so, record each epoch's running loss and accuracy,
    step the schedule, and measure on the epochs :class:`~nclib.schedule.MetricSchedule` picks.

    ``log(epoch)`` measures every model and appends the epoch's record to its history, returning
    the training-set metrics per model (called for epoch 0 unless ``trs``, the last measurement of
    a resumed run, is given); ``train_epoch(epoch)`` runs one epoch's steps and returns, per model,
    the mean running loss and the number of misclassified training samples; ``after_epoch(epoch)``
    (optional) runs after the measurement (a checkpoint). ``start``: the first epoch to train.
    ``label``: what the progress bar names besides the epochs (e.g. "8 models")."""
    schedule = MetricSchedule(config.measure, config.epochs, n_train, config.measure_window)
    if trs is None:
        trs = log(0)
    named = f"{label}, " if label else ""
    bar = tqdm(total=config.epochs, initial=start - 1, desc=f"epochs ({label})" if label else "epochs",
               disable=not progress)
    epoch = start - 1
    while keep_training(epoch, config, trs, [h.terminal_epoch for h in histories]):
        epoch += 1
        if epoch > bar.total:  # past the schedule: training until every model meets the condition
            bar.total = epoch
            bar.set_description(f"epochs ({named}until {config.describe_condition()})")
        losses, errors = train_epoch(epoch)
        lr_used = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        for h, loss_k, err_k in zip(histories, losses, errors):
            h.running.append({"epoch": epoch, "lr": lr_used, "running_loss": loss_k,
                              "running_accuracy": 1.0 - err_k / n_train})
        if schedule.due(epoch, errors, [h.terminal_epoch for h in histories]):
            trs = log(epoch)
            bar.set_postfix(min_train_acc=f"{min(t['accuracy'] for t in trs):.4f}",
                            max_loss=f"{max(t['loss'] for t in trs):.2e}")
        if after_epoch is not None:
            after_epoch(epoch)
        bar.update(1)
    bar.close()


def train(model, train_data: TensorDataset, test_data: TensorDataset, config: TrainConfig,
          progress: bool = True, on_epoch=None, optimizer=None, scheduler=None) -> History:
    """Train ``model`` with cross-entropy and measure everything on the full training set (and loss
    and accuracy on the test set) after every epoch. The data order is drawn from ``config.seed``.

    ``on_epoch(epoch, model, train_metrics, test_metrics)``, if given, is called after each
    measurement (epoch 0 included; which epochs is ``config.measure``'s choice); a dict it returns
    is merged into that epoch's record.

    ``model``: an :class:`nclib.models.NCModel` (or any module with ``features(x)`` and
    ``classifier_matrix()``); the data: :class:`nclib.data.TensorDataset`. ``optimizer`` (a
    ``torch.optim.Optimizer`` over the model's parameters) and ``scheduler`` (an LR scheduler of
    that optimizer, stepped once per epoch) replace the default SGD with momentum, weight decay and
    the step schedule of ``config`` (whose ``lr``, ``momentum``, ``weight_decay``, ``milestones``
    are then not used). The record of each measured epoch: :data:`nclib.records.RECORD_KEYS`.
    """
    _check_training_inputs(model, train_data, test_data, config)
    device = train_data.x.device
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    g, aug_gen = data_generators(config, device)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"train(...): optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and optimizer is None:
        raise ValueError("train(...): a scheduler needs the optimizer it schedules; pass optimizer= too")
    if scheduler is not None and getattr(scheduler, "optimizer", None) is not optimizer:
        raise ValueError("train(...): scheduler must schedule the optimizer passed as optimizer=")
    opt = optimizer or torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                       weight_decay=config.weight_decay)
    sched = scheduler if optimizer is not None else torch.optim.lr_scheduler.MultiStepLR(
        opt, list(config.milestones), config.lr_gamma)
    history = History()

    def log(epoch):
        tr = evaluate(model, train_data, config.eval_batch_size, config.channels_last)
        te = evaluate_loss_accuracy(model, test_data, config.eval_batch_size, config.channels_last)
        rec = epoch_record(epoch, opt.param_groups[0]["lr"], tr, te)
        if on_epoch is not None:
            rec.update(on_epoch(epoch, model, tr, te) or {})
        history.observe(rec, tr["margins"].pairwise.nan_to_num(0.0).tolist())
        return [tr]

    def train_epoch(epoch):
        model.train()
        order = torch.randperm(len(train_data), generator=g).to(device)
        run_loss, run_errors = 0.0, torch.zeros((), dtype=torch.int64, device=device)
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            x = batch_input(train_data.x[idx], config, aug_gen)
            y = train_data.y[idx]
            logits = model.logits(x, config.amp) if hasattr(model, "logits") else model(x)
            loss = F.cross_entropy(logits.float(), y)
            step_loss = loss.item()
            if not math.isfinite(step_loss):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (loss {step_loss}); lower config.lr"
                )
            run_loss += step_loss * len(idx)
            run_errors += (logits.detach().argmax(dim=1) != y).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return [run_loss / len(order)], [int(run_errors.item())]

    run_epochs(config, len(train_data), [history], log, train_epoch, opt, sched, progress=progress)
    return history


class FeatureSnapshots:
    """An ``on_epoch`` hook for :func:`nclib.train.train` that keeps the training features at the
    first measured epoch with 100% training accuracy (the start of the terminal phase) and at
    the latest measured epoch, so that NC1 can be resampled at both (:func:`nc1_drop`)."""

    def __init__(self, x):
        self.x = x
        self.start = None
        self.start_epoch = None
        self.last = None
        self.last_epoch = None

    def __call__(self, epoch, model, train_metrics, test_metrics):
        import torch

        with torch.no_grad():
            Z = model.features(self.x).double().cpu().numpy()
        if self.start is None and train_metrics["accuracy"] == 1.0:
            self.start, self.start_epoch = Z, epoch
        self.last, self.last_epoch = Z, epoch
        return None
