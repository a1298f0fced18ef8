"""What a sweep will cost on this machine, before it runs: ``run --dry-run``.

A reference-scale sweep is hours of CPU time, so its design is sized from measurements, not from a
guess. :func:`measure_rates` times nclib's own training loop (:func:`nclib.train.train`) and its
measurement passes on this CPU, with the thread count the runs will use, on random inputs of the
planned shape (the time of a dense network does not depend on the values). :func:`project` turns
the planned runs (their training configurations) into worker-hours and wall time:

    run seconds = E · N_train · r_train + K · (N_train · r_measure + N_test · r_test)

with E the planned epochs (a fixed budget, or for training *until* a condition the schedule's
length as the low end and ``max_epochs`` as the high end), K the measured epochs of the
``"auto"`` metric schedule (:mod:`nclib.schedule`: its log-spaced epochs, the last window and about
two windows around the first fit; "every" epoch at the high end) and r the measured seconds per
image. Workers are assumed to split the runs evenly (the claims of :mod:`nclib.claims` hand them
out one at a time) and to run side by side at the speed measured alone: ``make bench`` measured two
one-thread MLP epochs side by side at 1.01× the time of one alone on these CPUs.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nclib.data import TensorDataset
from nclib.models import LinearHead, NCModel, build_backbone
from nclib.schedule import log_spaced
from nclib.train import TrainConfig, evaluate, evaluate_loss_accuracy, train

__all__ = ["Rates", "RunCost", "PriceRecord", "measure_rates", "run_cost", "project", "format_projection",
           "price_record_path", "read_price_record"]

#: Input shape of one image per dataset.
SHAPES = {"fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}


@dataclass(frozen=True)
class Rates:
    """Measured seconds per image: a training step (``train``), the full metric pass over the
    training set (``measure``) and the loss/accuracy pass over the test set (``test``)."""

    train: float
    measure: float
    test: float
    threads: int
    images: int


def _key(params: dict) -> tuple:
    c = params["config"]
    return (params["backbone"], params["dataset"], params.get("width"), params.get("d"), params["C"],
            c["batch_size"], c["eval_batch_size"], bool(c.get("channels_last")))


def measure_rates(params: dict, threads: int = 1, batches: int = 60, repeats: int = 3) -> Rates:
    """Time :func:`nclib.train.train` (one warm-up epoch, then the fastest of ``repeats`` timed
    epochs: the least disturbed by other processes) and the two
    measurement passes for the model of one planned run (``params``: a run's parameters as the
    chapters record them: backbone, dataset, width, d, C, config), on ``batches`` mini-batches of
    random images, with ``threads`` torch threads."""

    if params["dataset"] not in SHAPES:
        raise ValueError(f"measure_rates: unknown dataset {params['dataset']!r}; known: {sorted(SHAPES)}")
    shape, C, c = SHAPES[params["dataset"]], int(params["C"]), params["config"]
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        g = torch.Generator().manual_seed(0)
        n = batches * int(c["batch_size"])
        data = TensorDataset(torch.randn(n, *shape, generator=g), torch.arange(n) % C, [str(k) for k in range(C)])
        torch.manual_seed(0)
        net = build_backbone(params["backbone"], shape, params.get("d"), params.get("width"))
        model = NCModel(net, LinearHead(net.feature_dim, C))  # a learnable head costs what a fixed one does
        config = TrainConfig(epochs=1 + repeats, batch_size=int(c["batch_size"]), eval_batch_size=int(c["eval_batch_size"]),
                             channels_last=bool(c.get("channels_last")), lr=0.01, measure="every")
        stamps = {}
        train(model, data, data, config, progress=False,
              on_epoch=lambda epoch, *_: stamps.__setitem__(epoch, time.perf_counter()))
        passes = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            evaluate(model, data, config.eval_batch_size, config.channels_last)
            t1 = time.perf_counter()
            evaluate_loss_accuracy(model, data, config.eval_batch_size, config.channels_last)
            passes.append((t1 - t0, time.perf_counter() - t1))
    finally:
        torch.set_num_threads(previous)
    measure, test = min(m for m, _ in passes), min(t for _, t in passes)
    epoch = max(min(stamps[e + 1] - stamps[e] for e in range(1, repeats + 1)) - measure - test, 1e-9)
    return Rates(epoch / n, measure / n, test / n, int(threads), n)


class _OtherLoad:
    """The cores that *other* processes kept busy, on average, from its creation to
    :meth:`cores`: the whole machine's busy CPU time minus this process's (psutil)."""

    def __init__(self):
        import psutil

        self._ps, self._me = psutil, psutil.Process()
        self._t0, self._busy0, self._mine0 = time.perf_counter(), self._busy(), self._mine()

    def _busy(self) -> float:
        t = self._ps.cpu_times()
        return sum(v for k, v in t._asdict().items() if k not in ("idle", "iowait", "guest", "guest_nice"))

    def _mine(self) -> float:
        t = self._me.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def cores(self) -> float:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        return max(0.0, (self._busy() - self._busy0) - (self._mine() - self._mine0)) / wall


@dataclass(frozen=True)
class RunCost:
    """Projected seconds of one run: ``low`` (the planned epochs, the auto schedule's measured
    epochs) and ``high`` (``max_epochs`` when training until a condition, every epoch measured)."""

    name: str
    epochs: tuple[int, int]
    low: float
    high: float


def _measured_epochs(epochs: int, window: int) -> int:
    grid = log_spaced(epochs) | {0} | set(range(max(0, epochs - window + 1), epochs + 1))
    return min(epochs + 1, len(grid) + 2 * window)


def run_cost(name: str, params: dict, rates: Rates) -> RunCost:
    """The projected cost of one planned run (module docstring)."""
    c = params["config"]
    low = int(c["epochs"])
    until = c.get("until_accuracy") or c.get("until_loss") or c.get("min_terminal_epochs")
    high = int(c.get("max_epochs") or 4 * low) if until else low
    n_train, n_test = int(params["n_train"]), int(params["n_test"])
    window = int(c.get("measure_window", 10))
    per_epoch = n_train * rates.train
    per_pass = n_train * rates.measure + n_test * rates.test
    k_low = low + 1 if c.get("measure") == "every" else _measured_epochs(low, window)
    return RunCost(name, (low, high), low * per_epoch + k_low * per_pass, high * per_epoch + (high + 1) * per_pass)


def project(plan: list[dict], threads: int = 1, recorded=frozenset(), measure=measure_rates) -> dict:
    """Price a chapter's plan (``[{"run_id", "name", "params"}]``): the rates of each distinct model
    (measured once each), the cost of every run still to train (not in ``recorded``), and the
    totals in worker-hours."""
    import os

    rates, costs = {}, []
    busy = _OtherLoad()
    for entry in plan:
        if entry["run_id"] in recorded:
            continue
        key = _key(entry["params"])
        if key not in rates:
            rates[key] = measure(entry["params"], threads)
        costs.append(run_cost(entry["name"], entry["params"], rates[key]))
    load = busy.cores() if rates else None
    return {"rates": rates, "costs": costs, "load": load, "cores": os.cpu_count(), "low_hours": sum(c.low for c in costs) / 3600,
            "high_hours": sum(c.high for c in costs) / 3600, "longest_low_hours": max((c.low for c in costs), default=0) / 3600}


def format_projection(experiment: str, scale: str, plan: list[dict], recorded, projection: dict, workers: int,
                      cpu: str, reused: dict | None = None) -> str:
    """The dry run's report: every planned run (recorded, recorded in another folder that the run
    copies it from (``reused``: {run id: folder}), or to train, its epochs and projected minutes),
    the measured rates, and worker-hours and wall time with ``workers`` workers."""
    reused = reused or {}
    copied = f" ({len(reused)} of them in {', '.join(sorted(set(reused.values())))}, copied, not trained)" \
        if reused else ""
    lines = [f"{experiment} at {scale} scale: {len(plan)} planned runs, {len(recorded)} recorded{copied}, "
             f"{len(plan) - len(recorded)} to train"]
    costs = {c.name: c for c in projection["costs"]}
    for entry in plan:
        c = costs.get(entry["name"]) if entry["run_id"] not in recorded else None
        what = f"recorded in {reused[entry['run_id']]}, copied" if entry["run_id"] in reused else "recorded" if c is None else (
            f"{c.epochs[0]} epochs, {c.low / 60:.1f} min" if c.epochs[0] == c.epochs[1] else
            f"{c.epochs[0]}–{c.epochs[1]} epochs, {c.low / 60:.1f}–{c.high / 60:.1f} min")
        lines.append(f"  {entry['run_id']:60s} {what}")
    for key, r in projection["rates"].items():
        backbone, dataset, width, d = key[:4]
        lines.append(f"measured on {cpu}, {r.threads} thread(s): {backbone} (width {width}, d {d}) on {dataset}: "
                     f"{1e6 * r.train:.1f} µs/image training, {1e6 * r.measure:.1f} µs/image metric pass, "
                     f"{1e6 * r.test:.1f} µs/image test pass")
    lo, hi = projection["low_hours"], projection["high_hours"]
    wall_lo = max(lo / workers, projection["longest_low_hours"])
    fixed = all(c.epochs[0] == c.epochs[1] for c in projection["costs"])
    spread = f"{lo:.2f} worker-hours" if math.isclose(lo, hi, rel_tol=1e-3) else (
        f"{lo:.2f} worker-hours (up to {hi:.2f} if every epoch is measured)" if fixed else
        f"{lo:.2f} worker-hours (up to {hi:.2f} if every run needs max_epochs and every epoch is measured)")
    load = projection.get("load")
    if load is not None and load > 0.25:
        lines.append(f"warning: other processes kept {load:.1f} of {projection.get('cores', '?')} cores busy while "
                     "the rates were measured: they are pessimistic; price on a quiet machine")
    lines.append(f"projected: {spread}; wall time with {workers} worker(s): {wall_lo:.2f} h"
                 + ("" if math.isclose(lo, hi, rel_tol=1e-3) else f" (up to {max(hi / workers, 0):.2f} h)"))
    return "\n".join(lines)


@dataclass(frozen=True)
class PriceRecord:
    """A dry run recorded with ``--dry-run --record-price FOLDER`` (the text of
    :func:`format_projection` under a header line saying where and when it was measured):
    ``minutes`` holds the projected minutes (the low end) of every run it priced to train, by run
    id; ``hours`` the projected worker-hours of them all; ``plan`` and ``projection`` its summary
    lines as printed (the runs planned, recorded and to train; the worker-hours and wall time)."""

    experiment: str
    scale: str
    where: str  # the machine, the time (UTC) and the commit of the pricing
    minutes: dict
    hours: float
    plan: str = ""
    projection: str = ""


_PLAN = re.compile(r"^(\S+) at (\S+) scale: ")
_PRICED_RUN = re.compile(r"^  (\S+)\s+\d+(?:–\d+)? epochs, ([\d.]+)(?:–[\d.]+)? min$")
_PROJECTED = re.compile(r"^projected: ([\d.]+) worker-hours")


def price_record_path(folder, experiment: str, scale: str) -> Path:
    """Where ``--dry-run --record-price FOLDER`` records the price of ``experiment`` at ``scale``
    (one file per experiment and scale, the latest pricing): the writer and every reader use it."""
    return Path(folder) / f"dry_run-{experiment}-{scale}.txt"


def read_price_record(path) -> PriceRecord:
    """Read back a recorded dry run (:class:`PriceRecord`). Raises ValueError naming the file and
    the line that is missing when the file is not such a record."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 3 or not lines[0].startswith("# priced by `") or "` on " not in lines[0]:
        raise ValueError(f"{path}: not a recorded dry run: its first line should be the '# priced by `...` "
                         "on ...' header that --record-price writes")
    plan = _PLAN.match(lines[1])
    projected = [m for m in map(_PROJECTED.match, lines) if m]
    if plan is None or not projected:
        raise ValueError(f"{path}: not a recorded dry run: it lacks the "
                         + ("'<experiment> at <scale> scale:' line" if plan is None else "'projected:' line")
                         + "; record it again with --dry-run --record-price")
    minutes = {m.group(1): float(m.group(2)) for m in map(_PRICED_RUN.match, lines) if m}
    return PriceRecord(plan.group(1), plan.group(2), lines[0].split("` on ", 1)[1], minutes,
                       float(projected[-1].group(1)), lines[1][plan.end():],
                       projected[-1].string.removeprefix("projected: "))
