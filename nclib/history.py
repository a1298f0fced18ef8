"""A run's measured history: the one record type that training writes, the run store keeps and the
analysis and figures read (its record keys: :data:`nclib.records.RECORD_KEYS`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["History", "final"]


@dataclass
class History:
    """The measured epochs of a run (one dict of floats per measured epoch, epoch 0 = before
    training, in increasing order; which epochs is :class:`~nclib.schedule.MetricSchedule`'s
    choice), the first measured epoch with 100% training accuracy (None if never reached) and the
    measured epoch before it (the terminal phase started in ``(terminal_after, terminal_epoch]``;
    exact when they are consecutive), and per trained epoch the running loss and accuracy on its
    mini-batches (``running``: free to record, in train mode, while the weights move)."""

    records: list[dict] = field(default_factory=list)
    pairwise_margins: list[list[list[float]]] = field(default_factory=list)
    terminal_epoch: int | None = None
    terminal_after: int | None = None
    running: list[dict] = field(default_factory=list)

    def at(self, epoch: int) -> dict:
        """The record of a measured ``epoch`` (a KeyError names the measured ones otherwise)."""
        for r in self.records:
            if r["epoch"] == epoch:
                return r
        raise KeyError(f"epoch {epoch} was not measured; measured: {self.column('epoch')}")

    def observe(self, record: dict, pairwise) -> None:
        """Append a measured epoch (after the last one) and update the terminal epoch."""
        if self.records and record["epoch"] <= self.records[-1]["epoch"]:
            raise ValueError(f"epoch {record['epoch']} recorded after epoch {self.records[-1]['epoch']}")
        if self.terminal_epoch is None and record["train_accuracy"] == 1.0:
            self.terminal_epoch = record["epoch"]
            self.terminal_after = self.records[-1]["epoch"] if self.records else None
        self.records.append(record)
        self.pairwise_margins.append(pairwise)

    @property
    def epochs_trained(self) -> int:
        """The last epoch recorded (the number of training epochs run)."""
        return int(self.records[-1]["epoch"]) if self.records else 0

    def column(self, key: str) -> list[float]:
        """The values of one quantity over the epochs."""
        return [r[key] for r in self.records]

    def to_dict(self) -> dict:
        """Plain lists and dicts (JSON-able) for a run record; :meth:`from_dict` inverts it."""
        return {
            "records": [dict(r) for r in self.records],
            "pairwise_margins": self.pairwise_margins,
            "terminal_epoch": self.terminal_epoch,
            "terminal_after": self.terminal_after,
            "running": [dict(r) for r in self.running],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """Rebuild a history from :meth:`to_dict` output (missing values stored as None become NaN)."""
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ValueError("a history needs a dict with a 'records' list")
        records = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in data["records"]]
        return cls(records, data.get("pairwise_margins") or [], data.get("terminal_epoch"),
                   data.get("terminal_after"), list(data.get("running") or []))


def final(h: History, key: str) -> float:
    """The value of ``key`` at the last measured epoch of history ``h``."""
    if not h.records:
        raise ValueError("the history has no measured epoch")
    return float(h.records[-1][key])
