"""Experiment runs as the chapters see them: train groups of runs shared between workers, load
datasets and recorded results, set up a run. ``python -m nclib.experiments`` is the
``make experiments`` CLI (:func:`nclib.runner.main`).

Its neighbours in the runs layer: :mod:`nclib.presets` (experiments, scales, parameter checks),
:mod:`nclib.records` (records, provenance, :class:`~nclib.records.RunStore`; the folder layout is in
its docstring), :mod:`nclib.claims` (per-run claims with a heartbeat), :mod:`nclib.runner` (a
chapter under papermill or as a script, workers, the CLI).

:func:`run_group` is the worker mechanism. Any number of workers (local processes, SLURM array
tasks, GNU parallel jobs) run the same chapter on the same results folder. For each group of runs
a worker loads what is recorded, claims what no one else holds, trains its claims together and
records them, and gets back, for runs that live workers hold, histories that fill in from the
store when first used: the chapter goes on planning and training further groups, and waits only
when its analysis reads a run another worker is still training (a dead worker's claim goes stale
and is then taken over, and trained, by the waiting worker).

CLI (what ``make experiments`` calls)::

    python -m nclib.experiments run --experiment all --scale paper --device cuda [--workers N]
    python -m nclib.experiments status
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nclib.datasets import DatasetNotFoundError, cifar, fashion_mnist
from nclib.data import balanced_split
from nclib.files import atomic_write_json, atomic_write_text
from nclib.history import History
from nclib.presets import DATASETS, EXPERIMENTS
from nclib.records import RunSpec, RunStore, device_model, run_cpu_seconds, make_record, provenance, repo_root, resolve_device
from nclib.tables import Table
from nclib.train import TrainConfig, set_deterministic

__all__ = [
    "run_group", "wait_for_others", "load_dataset", "load_datasets", "RecordedResults", "load_results",
    "experiment_setup", "notebook_helpers", "record_plan", "main",
]

# The results folder of the running chapter (set by experiment_setup), where load_dataset notes a
# dataset it could not load so that the runner reports the run incomplete instead of complete.
_RESULTS_DIR: Path | None = None


# ----------------------------------------------------------------------------------------------
# Training groups of runs, shared between workers
# ----------------------------------------------------------------------------------------------


class _Group:
    """The runs of one :func:`run_group` call that were not recorded yet, with their freshly built
    models (kept until trained: a run another worker holds may have to be taken over later, and
    the chapter's ``build_models`` may by then see other loop variables)."""

    def __init__(self, specs, models, train_data, test_data, config, store, prov, options):
        self.specs, self.store, self.options = list(specs), store, options
        self.models = {s.run_id: m for s, m in zip(self.specs, models)}
        self.train_data, self.test_data, self.config, self.prov = train_data, test_data, config, prov
        self.done: dict[str, History] = {}

    def claim(self, limit: int | None = None) -> list[RunSpec]:
        """Claim what no live worker holds (at most ``limit`` runs); a run recorded meanwhile (its
        trainer writes the record before releasing the claim, so we see it here) is loaded instead."""
        mine = []
        for s in self.specs:
            if limit is not None and len(mine) >= limit:
                break
            if s.run_id in self.done or not self.store.claims.claim(s.run_id):
                continue
            rec = self.store.load(s.run_id)
            if rec is None:
                mine.append(s)
            else:
                self.store.claims.release(s.run_id)
                self.done[s.run_id] = History.from_dict(rec["history"])
        return mine

    def train(self, specs) -> None:
        """Train ``specs`` together, record each run, then release their claims and checkpoint."""
        from nclib.sweep import train_sweep  # looked up at call time (tests count its calls)

        store, opt = self.store, self.options
        models = [self.models.pop(s.run_id) for s in specs]
        ckpt = store.checkpoint_for([s.run_id for s in specs]) if store is not None else None
        try:
            # CPU time beside wall time: a worker stopped (SIGSTOP) or slowed by other load keeps
            # its wall clock running, while its CPU time is the machine time the runs really took
            t0, c0 = time.perf_counter(), time.process_time()
            histories = train_sweep(models, self.train_data, self.test_data, self.config, batched=opt["batched"],
                                    max_models=opt["max_models"], progress=opt["progress"], checkpoint=ckpt,
                                    checkpoint_every=opt["checkpoint_every"])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            for s, h in zip(specs, histories):
                self.done[s.run_id] = h
                if store is None:
                    continue
                if store.path(s.run_id).is_file():
                    # another worker took this run over while we were stopped and recorded it: its
                    # record stands (the same configuration); ours is not written over it
                    print(f"{s.run_id}: already recorded by another worker; keeping that record",
                          file=sys.stderr, flush=True)
                    continue
                prov = self.prov or provenance(self.train_data.x.device)
                store.save(make_record(s.run_id, s.name, s.params, h, prov, wall / len(specs), extra={
                    "group_size": len(specs), "group_wall_time_s": wall, "group_cpu_time_s": cpu,
                    "batched": opt["batched"],
                    "trained_by": {"host": prov.get("host"), "pid": os.getpid(),
                                   "worker": os.environ.get("NCLIB_WORKER", "0")}}))
                store.log_training(s.run_id, group_size=len(specs), wall_time_s=wall / len(specs),
                                   cpu_time_s=cpu / len(specs))
        finally:
            if store is not None:
                for s in specs:
                    store.claims.release(s.run_id)
        if ckpt is not None:
            store.drop_checkpoint(ckpt)
            store.prune_checkpoints()

    def wait(self) -> None:
        """Until every run of the group has a history: poll the store for the records of other
        workers; claim and train the runs whose claims went stale."""
        left = [s for s in self.specs if s.run_id not in self.done]
        if not left:
            return
        claims = self.store.claims
        holders = sorted({h.describe() for s in left if (h := claims.holder(s.run_id)) is not None})
        print(f"waiting for {len(left)} run(s) that other workers train ({'; '.join(holders) or 'none held now'}); "
              f"a claim without heartbeat for {claims.timeout:g} s is taken over", file=sys.stderr, flush=True)
        # Poll often at first (a sweep's last runs end at about the same time, and a short sweep's
        # wall time would otherwise carry up to a whole poll), then back off to the cap.
        poll, cap = 0.05, max(0.05, min(2.0, claims.timeout / 10))
        with tqdm(total=len(left), desc="runs trained by other workers") as bar:
            while left:
                for s in left:
                    rec = self.store.load(s.run_id)
                    if rec is not None:
                        self.done[s.run_id] = History.from_dict(rec["history"])
                stale = self.claim()
                if stale:
                    bar.write(f"training {len(stale)} run(s) whose holder went silent")
                    self.train(stale)
                now_left = [s for s in left if s.run_id not in self.done]
                bar.update(len(left) - len(now_left))
                left = now_left
                if left:
                    time.sleep(poll)
                    poll = min(cap, poll * 1.5)
        self.models.clear()  # nothing left to train: let the models and data go
        self.train_data = self.test_data = None


_AWAITING: list[_Group] = []  # groups whose runs other workers hold; see wait_for_others


class _AwaitedHistory(History):
    """The history of a run that another worker holds: filled in from the store the first time
    any of its fields is read (which waits for the record, see :meth:`_Group.wait`)."""

    def __init__(self, run_id: str, group: _Group):  # no History.__init__: the fields come later
        self.__dict__["_awaited"] = (run_id, group)

    def __getattribute__(self, name):
        if name in _HISTORY_FIELDS:
            d = object.__getattribute__(self, "__dict__")
            if "_awaited" in d:
                run_id, group = d["_awaited"]
                group.wait()
                h = group.done[run_id]
                d.update({f: getattr(h, f) for f in _HISTORY_FIELDS})
                del d["_awaited"]
        return object.__getattribute__(self, name)


_HISTORY_FIELDS = frozenset(f.name for f in dataclasses.fields(History))


def run_group(specs, build_models, train_data, test_data, config: TrainConfig, *, store: RunStore | None = None,
              batched: bool = False, max_models: int | None = None, progress: bool = False,
              prov: dict | None = None, checkpoint_every: float = 120.0, reuse=()) -> dict[str, History]:
    """Train a group of runs that share ``config`` (seed, data order) and return their histories
    by run id. ``build_models(specs)`` returns one freshly initialised model per spec, in order
    (for a sweep: :func:`nclib.sweep.sweep_models`).

    Without a ``store`` every run is trained here. With one, finished runs are loaded, or copied
    from the results folders ``reuse`` where one holds the same run id
    (:meth:`~nclib.records.RunStore.reuse`); the others
    are claimed (:mod:`nclib.claims`) and the claimed ones trained together
    (:func:`nclib.sweep.train_sweep`) with a checkpoint in the store, recorded atomically, and
    their claims and checkpoint removed. Runs that live workers hold come back as histories that
    wait for those workers' records when first read (or train the run if its claim goes stale);
    :func:`wait_for_others` waits for all of them at once."""
    specs = list({s.run_id: s for s in specs}.values())
    out: dict[str, History] = {}
    pending = []
    for s in specs:
        rec = store.load(s.run_id) if store is not None else None
        if rec is None and store is not None and reuse:
            rec = store.reuse(s.run_id, reuse)
        if rec is None:
            pending.append(s)
        else:
            out[s.run_id] = History.from_dict(rec["history"])
    if not pending:
        return out
    models = list(build_models(pending))
    if len(models) != len(pending):
        raise ValueError(f"build_models returned {len(models)} models for {len(pending)} runs")
    group = _Group(pending, models, train_data, test_data, config, store, prov,
                   dict(batched=batched, max_models=max_models, progress=progress, checkpoint_every=checkpoint_every))
    if store is None:
        group.train(pending)
    elif batched:  # one vmapped step for every run this worker gets
        if mine := group.claim():
            group.train(mine)
    else:  # one run at a time, so that workers sharing the store split the group between them
        while mine := group.claim(limit=1):
            group.train(mine)
    for s in pending:
        out[s.run_id] = group.done[s.run_id] if s.run_id in group.done else _AwaitedHistory(s.run_id, group)
    if any(s.run_id not in group.done for s in pending):
        _AWAITING.append(group)
    else:
        group.models.clear()
    return out


def wait_for_others() -> None:
    """Wait until every run handed out as held by another worker (in this process) is recorded,
    training those whose claims go stale. The runner calls it at the end of each chapter, so that
    a chapter is never reported complete while its runs are still in flight elsewhere."""
    while _AWAITING:
        _AWAITING[0].wait()
        _AWAITING.pop(0)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _note_unloadable(name: str, exc: Exception) -> None:
    """Leave ``problems/<token>.<name>.txt`` in the running chapter's results folder: the chapter
    skips the dataset and goes on, and the runner (:func:`nclib.runner.execute`, which set the
    token) then reports the run incomplete with this reason."""
    if _RESULTS_DIR is None:
        return
    token = os.environ.get("NCLIB_RUN_TOKEN", "run")
    try:
        atomic_write_text(_RESULTS_DIR / "problems" / f"{token}.{name}.txt", " ".join(str(exc).split()) + "\n")
    except OSError:
        pass


def load_dataset(name: str, *, data_root: str | None = None, per_class_train: int | None = None,
                 per_class_test: int | None = None, seed: int = 0, device="cpu"):
    """``(train, test)`` for ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"`` on ``device``,
    optionally class-balanced subsets (``per_class_*``; None or 0 = the full split).

    CIFAR is read from ``data_root``, else ``$NCLIB_CIFAR``, else ``<repo>/data/cifar``;
    a missing folder raises :class:`~nclib.datasets.DatasetNotFoundError` saying where it looked (and,
    in a recorded run, notes it so that the run is not reported complete)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose fashion_mnist, cifar10 or cifar100")
    try:
        if name == "fashion_mnist":
            train, test = fashion_mnist(data_root or None)
        else:
            root = data_root or os.environ.get("NCLIB_CIFAR") or str(repo_root() / "data" / "cifar")
            if not Path(root).is_dir():
                raise DatasetNotFoundError(
                    f"{name}: the CIFAR root {root} does not exist (looked at data_root, then $NCLIB_CIFAR, "
                    f"then <repo>/data/cifar). Put torchvision's cifar-10-batches-py / cifar-100-python "
                    f"folder there, e.g. torchvision.datasets.CIFAR{name[5:]}(root, download=True) where "
                    "a network exists, or set NCLIB_CIFAR."
                )
            train, test = cifar(root, int(name[5:]))
    except DatasetNotFoundError as exc:
        _note_unloadable(name, exc)
        raise
    train, test = balanced_split(train, test, per_class_train, per_class_test, seed)
    return train.to(device), test.to(device)


def load_datasets(names, **kwargs) -> dict:
    """``{name: (train, test)}`` for each of ``names`` that can be loaded (:func:`load_dataset`,
    same keyword arguments). A dataset that is not on this machine is skipped with a printed
    reason (the paper scale lists CIFAR beside Fashion-MNIST); when none can be loaded this raises
    :class:`~nclib.datasets.DatasetNotFoundError` with every reason, so an experiment never runs, and
    reports, zero runs."""
    names = list(names)
    if not names:
        raise ValueError("datasets is empty: name at least one of fashion_mnist, cifar10, cifar100")
    out, missing = {}, []
    for name in names:
        try:
            out[name] = load_dataset(name, **kwargs)
        except DatasetNotFoundError as exc:
            print(f"skipping {name}: {exc}")
            missing.append(f"{name}: {exc}")
    if not out:
        raise DatasetNotFoundError("none of the datasets could be loaded, so there is nothing to run:\n"
                                   + "\n".join(missing))
    return out


# ----------------------------------------------------------------------------------------------
# Reading recorded results (for the chapters)
# ----------------------------------------------------------------------------------------------


@dataclass
class RecordedResults:
    """The finished records of one experiment at one scale, with the run-level provenance."""

    experiment: str
    scale: str
    root: Path
    records: list[dict]
    planned: int
    provenance: dict | None
    missing: list[str] = field(default_factory=list)  # planned run ids without a valid record
    reused: dict = field(default_factory=dict)  # {run id: folder} of records copied, not trained here

    def runs(self) -> list[tuple[dict, History]]:
        """``(params, history)`` per recorded run, the form the chapters analyse."""
        return [(r["params"], History.from_dict(r["history"])) for r in self.records]

    def provenance_table(self) -> "Table":
        """The provenance rows as a :class:`~nclib.tables.Table`."""
        return Table(["provenance", ""], self.provenance_rows(),
                     caption=f"recorded {self.experiment} runs at {self.scale} scale")

    def provenance_rows(self) -> list[tuple[str, str]]:
        """(field, value) rows for a provenance table."""
        p = self.provenance or {}
        first = self.records[0]["provenance"] if self.records else {}
        src = {**first, **{k: v for k, v in p.items() if v is not None}}
        rows = [
            ("scale", self.scale),
            ("runs recorded / planned", f"{len(self.records)} / {self.planned}"),
            ("device", str(src.get("device_name", "?"))),
            ("torch", str(src.get("torch", "?"))),
            ("git commit", f"{str(src.get('git_commit', '?'))[:12]}" + (" (dirty)" if src.get("git_dirty") else "")),
            ("started (UTC)", str(p.get("started_utc", src.get("time_utc", "?")))),
            ("status", str(p.get("status", "records only"))),
        ]
        # a sweep that spans several sessions has one provenance per invocation (the last); the
        # records' own times add up to what every invocation spent (in worker-hours: each worker
        # trains one run at a time), paused or slowed time included
        trained = [r for r in self.records if r["run_id"] not in self.reused]  # the copies cost nothing here
        devices = sorted({device_model(r["provenance"]) for r in trained})
        rows.append(("training time (sum over runs)",
                     f"{sum(r['wall_time_s'] for r in trained) / 3600:.2f} worker-hours on {', '.join(devices)}"))
        if self.reused:
            rows.append(("copied from another design's folder, not trained here",
                         f"{len(self.reused)} runs ({', '.join(sorted(set(self.reused.values())))})"))
        timed = [t for t in map(run_cpu_seconds, trained) if t is not None]
        if timed:  # records older than the CPU clock lack it
            cpu = sum(timed)
            rows.append(("CPU time (sum over runs)", f"{cpu / 3600:.2f} CPU-hours"
                         + ("" if len(timed) == len(trained) else f" over the {len(timed)} runs that record it")))
        if p.get("wall_time_s") is not None:
            rows.append(("wall time of the last invocation", f"{p['wall_time_s'] / 3600:.2f} h"))
        return rows


def load_results(experiment: str, scale: str = "paper", root=None) -> RecordedResults | None:
    """The recorded runs of ``experiment`` at ``scale`` under ``root`` (default
    ``<repo>/results``), or None when nothing is recorded. Reads only: invalid records are
    skipped, not moved."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")
    folder = Path(root or repo_root() / "results") / experiment / scale
    if not (folder / "runs").is_dir():
        return None
    store = RunStore.view(folder)
    manifest = store.manifest()
    ids = manifest["run_ids"] if manifest else sorted(p.stem for p in store.runs.glob("*.json"))
    checked = {i: store.check(i)[0] for i in ids}
    records = [r for r in checked.values() if r is not None]
    if not records:
        return None
    import json

    try:
        prov = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        prov = None
    copies = {i: src for i, src in store.reused().items() if checked.get(i) is not None}
    return RecordedResults(experiment, scale, folder, records, len(ids), prov if isinstance(prov, dict) else None,
                           [i for i, r in checked.items() if r is None], copies)


# ----------------------------------------------------------------------------------------------
# What the chapters call at their start
# ----------------------------------------------------------------------------------------------


def experiment_setup(device: str = "auto", results_dir: str | None = None, cpu_threads: int = 0,
                     deterministic: bool = False):
    """The common start of the experiment chapters: torch's thread count (0: leave it), the
    deterministic switch (off: cuDNN autotuning on, for speed on a GPU), the device, a
    :class:`~nclib.records.RunStore` when ``results_dir`` is given, and the run's provenance. Returns
    ``(device, store, provenance)``."""
    global _RESULTS_DIR
    if cpu_threads:
        torch.set_num_threads(int(cpu_threads))

    set_deterministic(bool(deterministic))
    dev = resolve_device(device)
    _RESULTS_DIR = Path(results_dir) if results_dir else None
    return dev, (RunStore(results_dir) if results_dir else None), provenance(dev)


def sibling_results(experiments, scale: str, own=None) -> list[Path]:
    """The results folders of ``experiments`` at ``scale`` beside the folder ``own``
    (``<results root>/<experiment>/<scale>/``; default: the one :func:`experiment_setup` was given),
    for :func:`run_group`'s ``reuse``; empty when nothing is recorded (the book build)."""
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"reuse_from: unknown experiment {unknown[0]!r}; choose from {sorted(EXPERIMENTS)}")
    own = Path(own) if own is not None else _RESULTS_DIR
    if own is None:
        return []
    return [own.parent.parent / e / scale for e in experiments]


#: Set by ``run --dry-run``: the file the chapter's plan goes to, after which the chapter stops.
PLAN_FILE_ENV = "NCLIB_PLAN_FILE"


def record_plan(store: RunStore | None, specs, meta: dict) -> None:
    """The runs a chapter plans: written as the store's manifest (so that ``status`` and chapter 10
    can tell finished from missing runs). Under ``run --dry-run`` (``$NCLIB_PLAN_FILE`` set) every
    spec's id, name and parameters go to that file instead and the chapter stops here, before
    anything trains (:mod:`nclib.pricing` prices the plan)."""
    specs = list(specs)
    plan_file = os.environ.get(PLAN_FILE_ENV)
    if plan_file:
        atomic_write_json(Path(plan_file), {"meta": meta, "runs": [
            {"run_id": s.run_id, "name": s.name, "params": s.params} for s in specs]})
        raise SystemExit(0)
    if store is not None:
        store.write_manifest([s.run_id for s in specs], meta)


def notebook_helpers():
    """``(glue, display)`` for the experiment chapters: myst_nb's ``glue`` and IPython's
    ``display`` where they are installed (the book build, papermill), and stand-ins that print
    where they are not (a bare GPU machine running a chapter as a script, see :func:`~nclib.runner.execute`)."""
    try:
        from myst_nb import glue
    except ImportError:
        def glue(name, value, display=True):
            """Stand-in for myst_nb.glue: prints the value under its name."""
            print(f"[glue] {name} = {value}")
    try:
        from IPython.display import display
    except ImportError:
        def display(obj):
            """Stand-in for IPython.display.display: prints the object."""
            print(repr(obj))
    return glue, display


from nclib.runner import main  # noqa: E402  (the CLI: `python -m nclib.experiments`; needs nothing from here)

if __name__ == "__main__":
    sys.exit(main())
