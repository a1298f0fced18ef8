"""Has a run collapsed? The criterion the confirmatory Section 5.2 runs are held to.

The paper's claims are about networks trained deep into the terminal phase, where neural collapse
holds (Papyan et al. 2020; Gao et al., Section 5: "trained ... until the terminal phase").
A run stopped at its first epoch with every training label fitted is a network at the end of
fitting: its within-class variability (NC1 = tr(Σ_W Σ_B⁺)/C, :func:`nclib.metrics.nc_metrics`) is
still far from zero. The criterion, fixed before the confirmatory sweep (chapter 10), is read off a
run's measured history (:class:`nclib.history.History`):

* **terminal phase**: training accuracy 100% at the last epoch, and the first epoch with 100%
  at least ``min_terminal_epochs`` epochs before it;
* **collapse**: training NC1 at the last epoch at most ``nc1_max``, *or* at most
  ``nc1_fraction`` of its value at the first fitted epoch (NC1 falls slowly on a small MLP; the
  relative condition says the terminal phase did the collapsing).

A run that fails the criterion is reported with the reason, never dropped silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nclib._checks import check_int, check_real

__all__ = ["CollapseCriterion", "CollapseStatus", "CRITERION", "collapse_status"]


@dataclass(frozen=True)
class CollapseCriterion:
    """The thresholds of the collapse criterion (module docstring)."""

    min_terminal_epochs: int = 20
    nc1_max: float = 0.1
    nc1_fraction: float = 0.25

    def __post_init__(self):
        check_int(self.min_terminal_epochs, "CollapseCriterion.min_terminal_epochs", minimum=0)
        check_real(self.nc1_max, "CollapseCriterion.nc1_max", minimum=0.0)
        check_real(self.nc1_fraction, "CollapseCriterion.nc1_fraction", minimum=0.0)

    def describe(self) -> str:
        return (f"every training label fitted for at least {self.min_terminal_epochs} epochs at the end, and final "
                f"training NC1 ≤ {self.nc1_max:g} or ≤ {self.nc1_fraction:g} × its value at the first fitted epoch")


#: The criterion of the confirmatory reference runs (chapter 10), fixed before the sweep.
CRITERION = CollapseCriterion()


@dataclass(frozen=True)
class CollapseStatus:
    """Whether one run met the criterion, the numbers it was decided on, and why not."""

    collapsed: bool
    terminal_epoch: int | None
    last_epoch: int
    terminal_epochs: int
    nc1_first_fit: float | None
    nc1_last: float
    nc1_ratio: float | None
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _short_of_one(fraction: float) -> str:
    """A fraction just below 1 as a percentage with the digits that keep it below 100 (1 label
    of 30 000 unfitted is 99.997%, not a rounded "100.00%")."""
    for digits in range(2, 10):
        text = f"{100 * fraction:.{digits}f}"
        if float(text) < 100:
            return text + "%"
    return f"{100 * fraction!r}%"


def collapse_status(history, criterion: CollapseCriterion = CRITERION, n_train: int | None = None) -> CollapseStatus:
    """Decide ``criterion`` on a run's ``history`` (a :class:`nclib.history.History`, or anything with
    its ``records`` and ``terminal_epoch``): the terminal phase's length in epochs, training NC1
    at the first fitted epoch and at the last, their ratio, and the reason when it fails.
    ``n_train``, the number of training samples (a record's ``params["n_train"]``), lets the
    reason count the labels left unfitted at the last epoch."""
    if n_train is not None and (isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1):
        raise ValueError(f"collapse_status: n_train must be a positive number of training samples, got {n_train!r}")
    records = getattr(history, "records", None)
    if not records:
        raise ValueError("collapse_status: history has no measured epochs; pass the History a training returned")
    for key in ("epoch", "train_accuracy", "train_nc1"):
        if key not in records[-1]:
            raise ValueError(f"collapse_status: the history's records lack {key!r}; records of nclib.train carry it")
    last = records[-1]
    t0 = history.terminal_epoch
    nc1_last = float(last["train_nc1"])
    if t0 is None:
        return CollapseStatus(False, None, int(last["epoch"]), 0, None, nc1_last, None,
                              "never fitted every training label")
    first = next(r for r in records if r["epoch"] == t0)
    nc1_fit = float(first["train_nc1"])
    ratio = nc1_last / nc1_fit if nc1_fit > 0 else None
    length = int(last["epoch"]) - int(t0)
    reasons = []
    if last["train_accuracy"] < 1.0:
        acc = float(last["train_accuracy"])
        # at least one: an accuracy below 1 leaves a label unfitted, whatever the rounding
        unfitted = f"{max(1, round((1 - acc) * n_train)):,} of {n_train:,} training labels unfitted, " if n_train else ""
        reasons.append(f"{unfitted}training accuracy {_short_of_one(acc)} at the last epoch")
    if length < criterion.min_terminal_epochs:
        reasons.append(f"{length} epochs of terminal phase (< {criterion.min_terminal_epochs})")
    if not (nc1_last <= criterion.nc1_max or (ratio is not None and ratio <= criterion.nc1_fraction)):
        reasons.append(f"final NC1 {nc1_last:.3g} > {criterion.nc1_max:g} and {ratio:.2f} × its first-fit value "
                       f"(> {criterion.nc1_fraction:g})" if ratio is not None else f"final NC1 {nc1_last:.3g}")
    return CollapseStatus(not reasons, int(t0), int(last["epoch"]), length, nc1_fit, nc1_last, ratio,
                          "; ".join(reasons) or "collapsed")
