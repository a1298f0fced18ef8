"""The confirmatory design's budget rule (chapter 10), applied from the records.

The rule, written in chapter 10 before any further part ran: the design may spend at most
``budget_hours`` (24) of machine time on these 2-core machines. Machine time is the CPU time of
the runs trained (:func:`nclib.records.run_cpu_seconds`; a paused or slowed worker's wall clock runs on without
using the machine), and for a run recorded before nclib recorded CPU time, the cost its dry run
priced for it (:class:`nclib.pricing.PriceRecord`). Records copied from another design's folder
cost nothing where they are copied. Once the primary grid and the control are complete, each
further part runs, in the written order, only if the time spent plus its price (its dry run,
recorded just before it starts) stays within the budget; a part that does not fit is left and the
next one is considered. A part that has started counts its measured time and the price of its
runs still to train.

:func:`machine_time` adds up one folder; :func:`apply_budget_rule` walks the further parts in order
and says, for each, what the rule decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from nclib.experiments import RecordedResults
from nclib.pricing import PriceRecord
from nclib.records import run_cpu_seconds

__all__ = ["BUDGET_HOURS", "Spent", "machine_time", "PartDecision", "apply_budget_rule"]

BUDGET_HOURS = 24.0  #: the confirmatory design's budget, in worker-hours of machine time


@dataclass(frozen=True)
class Spent:
    """The machine time of one folder's trained runs: ``measured`` runs by their CPU time,
    ``priced`` runs (recorded before the CPU clock) by their priced minutes, in hours."""

    measured: int
    measured_hours: float
    priced: int
    priced_hours: float
    measured_price_hours: float = 0.0  # what the dry run priced the measured runs at (those it priced)

    @property
    def hours(self) -> float:
        return self.measured_hours + self.priced_hours

    def describe(self) -> str:
        parts = [f"{self.measured} runs by their CPU time ({self.measured_hours:.2f} h"
                 + (f", {self.measured_hours / self.measured_price_hours:.2f} × their price"
                    if self.measured_price_hours else "") + ")"] if self.measured else []
        if self.priced:
            parts.append(f"{self.priced} runs recorded before the CPU clock at their priced cost "
                         f"({self.priced_hours:.2f} h)")
        return f"{self.hours:.2f} worker-hours: " + (" and ".join(parts) or "no run trained")


def machine_time(recorded: RecordedResults | None, price: PriceRecord | None = None) -> Spent:
    """The machine time of the runs trained in ``recorded``'s folder (copies left out), by the rule
    in the module docstring. ``price`` is the folder's dry run, recorded before its runs; it is
    needed only for runs that do not record their CPU time, and a ValueError names those it
    does not price."""
    if recorded is None:
        return Spent(0, 0.0, 0, 0.0)
    cpu, priced, unpriced, cpu_priced = [], [], [], []
    for r in recorded.records:
        if r["run_id"] in recorded.reused:
            continue
        seconds = run_cpu_seconds(r)
        if seconds is not None:
            cpu.append(seconds)
            if price is not None and r["run_id"] in price.minutes:  # the price's accuracy, measured
                cpu_priced.append(60 * price.minutes[r["run_id"]])
        elif price is not None and r["run_id"] in price.minutes:
            priced.append(60 * price.minutes[r["run_id"]])
        else:
            unpriced.append(r["run_id"])
    if unpriced:
        raise ValueError(f"{recorded.experiment}/{recorded.scale}: {len(unpriced)} run(s) record no CPU time and "
                         f"are not in the price record {'given' if price else '(none given)'}, e.g. {unpriced[0]}; "
                         "pass the dry run recorded before they ran (nclib.pricing.read_price_record)")
    # the ratio to the price is shown only when the dry run priced every measured run
    price_h = sum(cpu_priced) / 3600 if len(cpu_priced) == len(cpu) else 0.0
    return Spent(len(cpu), sum(cpu) / 3600, len(priced), sum(priced) / 3600, price_h)


@dataclass(frozen=True)
class PartDecision:
    """What the budget rule decides for one further part: ``cost_hours`` is what it counts against
    the budget (its measured time and the price of what is left once started; its price if it
    fits and has not started; 0 if it is left), ``spent_before_hours`` the time spent before it."""

    part: str
    price_hours: float | None
    spent_before_hours: float
    cost_hours: float
    decision: str


def apply_budget_rule(spent_hours: float, parts, *, primary_complete: bool,
                      budget_hours: float = BUDGET_HOURS) -> list[PartDecision]:
    """The budget rule over the further parts, in their written order. ``spent_hours`` is the
    primary design's machine time; ``parts`` lists ``(name, recorded, price)`` with ``recorded``
    the part's :class:`~nclib.experiments.RecordedResults` (or None) and ``price`` its
    :class:`~nclib.pricing.PriceRecord` (or None when it was never priced)."""
    if not spent_hours >= 0:
        raise ValueError(f"spent_hours must be a number of hours ≥ 0, got {spent_hours!r}")
    if not budget_hours > 0:
        raise ValueError(f"budget_hours must be > 0, got {budget_hours!r}")
    rows, spent = [], float(spent_hours)
    for name, recorded, price in parts:
        price_h = price.hours if price is not None else None
        done = machine_time(recorded, price)
        if done.measured or done.priced:  # started: what it used, and the price of what is left
            have = {r["run_id"] for r in recorded.records}
            left = sum(m for run, m in (price.minutes.items() if price else ()) if run not in have) / 60
            status = ("complete" if not recorded.missing else
                      f"started, {len(recorded.records)} of {recorded.planned} runs recorded")
            rows.append(PartDecision(name, price_h, spent, done.hours + left,
                                     f"{status}: {done.hours:.2f} h used" + (f", {left:.2f} h priced to go" if left else "")))
        elif not primary_complete:
            rows.append(PartDecision(name, price_h, spent, 0.0, "waits for the primary grid and the control"))
        elif price is None:
            rows.append(PartDecision(name, None, spent, 0.0, "not priced yet: its dry run comes first"))
        elif spent + price_h <= budget_hours:
            rows.append(PartDecision(name, price_h, spent, price_h,
                                     f"fits ({spent + price_h:.2f} ≤ {budget_hours:g} h): it runs"))
        else:
            rows.append(PartDecision(name, price_h, spent, 0.0,
                                     f"does not fit ({spent + price_h:.2f} > {budget_hours:g} h): left"))
        spent += rows[-1].cost_hours
    return rows
