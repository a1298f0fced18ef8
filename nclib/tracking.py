"""Measure your own model from your own training loop: NC1–NC4 (Papyan et al. 2020), the margins
of Gao et al. (Theorem 4.1, Definition 4.3), loss and accuracy, once per epoch, in the record format
that :func:`nclib.train.train` writes (:data:`nclib.records.RECORD_KEYS`), kept as a
:class:`~nclib.history.History` that nclib's figures and analysis read.

The features are what the classifier head receives: a forward pre-hook on ``head`` captures its
input while ``model(x)`` runs, so the model needs no ``features`` method and the head may be an
``nn.Linear`` (with or without bias: the metrics then describe the affine classifier the model
uses), or nclib's ``FixedHead``/``LinearHead`` (a fixed simplex ETF, permuted or rotated, dropped
into your network)::

    tracker = Tracker(model, model.fc, train_loader, test_loader)
    for epoch in range(1, epochs + 1):
        ...  # your training steps
        tracker.log(epoch, lr=optimizer.param_groups[0]["lr"])
    tracker.history.column("train_nc1")
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nclib.history import History
from nclib.metrics import classifier_of
from nclib.train import epoch_record, measure_batches

__all__ = ["Tracker"]


class Tracker:
    """Per-epoch measurements of ``model`` whose classifier is the module ``head`` (applied to the
    d features, returning the C logits). ``train_loader`` / ``test_loader`` yield ``(inputs,
    labels)``; every class must appear in the training loader. ``device``: where batches are moved
    (default: that of the head's parameters, or the CPU)."""

    def __init__(self, model: nn.Module, head: nn.Module, train_loader, test_loader=None, *, device=None):
        if not isinstance(model, nn.Module) or not isinstance(head, nn.Module):
            raise TypeError(f"Tracker(model, head, ...): model and head must be torch modules (head: the "
                            f"classifier applied to the features), got {type(model).__name__} and "
                            f"{type(head).__name__}")
        if not any(m is head for m in model.modules()):
            raise ValueError("Tracker(model, head, ...): head must be a submodule of model (e.g. model.fc), "
                             "so that model(x) runs it and the tracker sees its input features")
        classifier_of(head)  # refuses a head whose matrix it cannot read, before any training
        self.model, self.head = model, head
        self.train_loader, self.test_loader = train_loader, test_loader
        params = list(head.parameters()) + list(head.buffers())
        self.device = torch.device(device) if device is not None else (params[0].device if params else None)
        self.history = History()
        self._captured: torch.Tensor | None = None

    def _capture(self, module, inputs):
        self._captured = inputs[0]

    def _batches(self, loader):
        """``(features, logits, labels)`` per batch of ``loader``: the features as the head received
        them while ``model(x)`` ran (a forward pre-hook, removed at the end)."""
        handle = self.head.register_forward_pre_hook(self._capture)
        try:
            for k, batch in enumerate(loader):
                if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                    raise ValueError(f"Tracker: a loader must yield (inputs, labels) pairs; batch {k} is a "
                                     f"{type(batch).__name__}")
                x, y = batch
                if self.device is not None:
                    x, y = x.to(self.device), y.to(self.device)
                self._captured = None
                logits = self.model(x)
                if self._captured is None:
                    raise RuntimeError("Tracker: model(x) did not call head; pass the module that maps "
                                       "the features to the logits")
                yield self._captured.flatten(1), logits, y
        finally:
            handle.remove()
            self._captured = None

    @torch.no_grad()
    def _test_pass(self) -> dict:
        """Loss and accuracy of the model's own logits on the test loader."""
        n, loss_sum, correct = 0, 0.0, 0
        for _, logits, y in self._batches(self.test_loader):
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == y).sum())
            n += len(y)
        if n == 0:
            raise ValueError("Tracker: the test loader yielded no samples")
        return {"loss": loss_sum / n, "accuracy": correct / n}

    def log(self, epoch: int, lr: float = math.nan) -> dict:
        """Measure now (in eval mode; the model's mode is restored) and append the epoch's record
        to ``history``; returns the record. ``lr``: the learning rate of the epoch's steps, kept
        in the record. Epochs must increase (0 = before training)."""
        was_training = self.model.training
        self.model.eval()
        try:
            M, bias = classifier_of(self.head)
            tr = measure_batches(self._batches(self.train_loader), M, bias=bias, device=self.device)
            te = self._test_pass() if self.test_loader is not None else {"loss": math.nan, "accuracy": math.nan}
        finally:
            self.model.train(was_training)
        record = epoch_record(int(epoch), float(lr), tr, te)
        self.history.observe(record, tr["margins"].pairwise.nan_to_num(0.0).tolist())
        return record
