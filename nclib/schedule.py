"""When a training run measures its metrics: every epoch, or densely only where the chapters look.

A full measurement (every metric of :class:`~nclib.accumulate.NCAccumulator` on the training set,
loss and accuracy on the test set) is a forward pass over both sets: about 40% of an epoch of
training for Fashion-MNIST. Measuring every epoch therefore makes a long run 1.4× slower for
points that mostly sit on smooth curves. The ``"auto"`` schedule measures:

* epoch 0 and log-spaced epochs (⌈1.25^k⌉: 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 19, 23, …), enough for
  curves plotted against the epoch on a log or a linear axis;
* every epoch from the first whose *running* training error (the mistakes made on the mini-batches
  during the epoch, free to count) is at most ``max(1, N/1000)``, until the first measured epoch at
  100% training accuracy, then for ``window`` epochs more: the start of the terminal phase is
  where Theorem 4.1 and Remark 4.6 look;
* the last ``window`` epochs of the schedule, and every epoch past it (training until a condition,
  :class:`~nclib.train.TrainConfig`, needs the measurement to decide).

The first epoch at 100% training accuracy is then found exactly when the running error reached its
threshold no later than the evaluated one did; otherwise it is known to lie in the interval
``(History.terminal_after, History.terminal_epoch]`` that the history records.
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "log_spaced", "MetricSchedule"]

SCHEDULES = ("auto", "every")


def log_spaced(last: int, growth: float = 1.25) -> set[int]:
    """The epochs ⌈growth^k⌉ ≤ ``last`` (k = 0, 1, …): dense at the start, sparse later."""
    if not growth > 1:
        raise ValueError(f"growth must be > 1, got {growth}")
    out, k = set(), 0
    while (e := math.ceil(growth**k - 1e-9)) <= last:
        out.add(e)
        k += 1
    return out


class MetricSchedule:
    """Decides after each epoch whether to measure (see the module docstring).

    ``mode``: ``"every"`` or ``"auto"``; ``epochs``: the length of the schedule (training may go on
    past it); ``n_train``: the training-set size, which sets the running-error threshold.
    """

    def __init__(self, mode: str, epochs: int, n_train: int, window: int = 10):
        if mode not in SCHEDULES:
            raise ValueError(f"measure must be one of {SCHEDULES}, got {mode!r}")
        self.mode, self.epochs, self.window = mode, int(epochs), int(window)
        self.error_threshold = max(1, n_train // 1000)
        self._grid = log_spaced(self.epochs)

    def due(self, epoch: int, running_errors, terminal_epochs) -> bool:
        """Whether to measure after ``epoch`` given, per model, the mistakes on this epoch's
        mini-batches and the first measured epoch at 100% training accuracy (None if not yet)."""
        if self.mode == "every" or epoch == 0 or epoch in self._grid:
            return True
        if epoch > self.epochs - self.window:
            return True
        for errors, t in zip(running_errors, terminal_epochs):
            if t is None and errors <= self.error_threshold:
                return True  # about to fit: find the first epoch at 100% exactly
            if t is not None and epoch <= t + self.window:
                return True  # the start of the terminal phase
        return False
