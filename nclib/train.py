"""Training into the terminal phase with a per-epoch history of every metric.

The terminal phase of training (TPT, Papyan et al. 2020) starts at the first epoch with 100%
training accuracy; neural collapse and the growth of p_min (Theorem 4.1) are properties of what
happens after it, so a run records that epoch and trains on past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nclib.accumulate import NCAccumulator
from nclib.data import TensorDataset

__all__ = ["TrainConfig", "History", "evaluate", "train"]


@dataclass
class TrainConfig:
    """SGD with momentum and weight decay, a step schedule (lr × gamma at each milestone epoch)."""

    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    seed: int = 0


@dataclass
class History:
    """Per-epoch records (one dict of floats per epoch, epoch 0 = before training) and the first
    epoch with 100% training accuracy (None if never reached)."""

    records: list[dict] = field(default_factory=list)
    pairwise_margins: list[list[list[float]]] = field(default_factory=list)
    terminal_epoch: int | None = None

    def column(self, key: str) -> list[float]:
        return [r[key] for r in self.records]


@torch.no_grad()
def evaluate(model, data: TensorDataset, batch_size: int = 1000) -> dict:
    """One pass over ``data``: mean cross-entropy plus every metric of :class:`NCAccumulator` for the
    model's classifier matrix."""
    model.eval()
    acc = NCAccumulator(model.classifier_matrix(), device=data.x.device)
    loss_sum = 0.0
    for i in range(0, len(data), batch_size):
        x, y = data.x[i : i + batch_size], data.y[i : i + batch_size]
        z = model.features(x)
        loss_sum += F.cross_entropy(model.head(z).float(), y, reduction="sum").item()
        acc.update(z, y)
    out = acc.compute()
    out["loss"] = loss_sum / len(data)
    return out


_SCALARS = (
    "loss", "accuracy", "p_min", "scale_free_margin", "nc1",
    "nc2_equinorm_means", "nc2_equiangular_means", "nc2_max_angle_means", "nc2_etf_error_means",
    "nc2_equinorm_classifier", "nc2_equiangular_classifier", "nc2_max_angle_classifier",
    "nc2_etf_error_classifier", "nc3_self_duality", "nc4_ncc_mismatch",
)


def _record(epoch, lr, train_metrics, test_metrics) -> dict:
    rec = {"epoch": epoch, "lr": lr}
    rec.update({f"train_{k}": train_metrics[k] for k in _SCALARS})
    rec.update({"test_loss": test_metrics["loss"], "test_accuracy": test_metrics["accuracy"]})
    return rec


def train(model, train_data: TensorDataset, test_data: TensorDataset, config: TrainConfig,
          progress: bool = True, on_epoch=None) -> History:
    """Train ``model`` with cross-entropy and measure everything on the full training set (and loss
    and accuracy on the test set) after every epoch. The data order is drawn from ``config.seed``.

    ``on_epoch(epoch, model, train_metrics, test_metrics)``, if given, is called after each epoch's
    measurement (epoch 0 included) for quantities the history does not keep; whatever it returns
    (a dict of floats, or None) is merged into that epoch's record."""
    g = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(config.milestones), config.lr_gamma)
    history = History()

    def log(epoch):
        tr, te = evaluate(model, train_data), evaluate(model, test_data)
        history.records.append(_record(epoch, opt.param_groups[0]["lr"], tr, te))
        if on_epoch is not None:
            history.records[-1].update(on_epoch(epoch, model, tr, te) or {})
        history.pairwise_margins.append(tr["margins"].pairwise.nan_to_num(0.0).tolist())
        if history.terminal_epoch is None and tr["accuracy"] == 1.0:
            history.terminal_epoch = epoch
        return tr

    log(0)
    bar = tqdm(range(1, config.epochs + 1), desc="epochs", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_data), generator=g).to(train_data.x.device)
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            loss = F.cross_entropy(model(train_data.x[idx]).float(), train_data.y[idx])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (loss {loss.item()}); lower config.lr"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        tr = log(epoch)
        bar.set_postfix(train_acc=f"{tr['accuracy']:.4f}", loss=f"{tr['loss']:.2e}", p_min=f"{tr['p_min']:.3g}")
    return history
