"""Experiment runs: records, provenance, atomic writes, resume, and the ``make experiments`` CLI.

Layout of one experiment at one scale (``results/<experiment>/<scale>/``)::

    runs/<run_id>.json     one tidy record per trained model: its parameters, every per-epoch
                           quantity, the first epoch with 100% train accuracy, provenance and a
                           SHA-256 checksum of the rest
    checkpoints/*.pt       the state of a group of models being trained (removed once recorded)
    manifest.json          the runs the notebook planned, with its parameters
    provenance.json        device, torch version, git commit, parameters, start/end, wall time
    records.csv            every run × epoch as one flat table (rebuilt from runs/)
    notebook.ipynb         the executed chapter notebook (papermill)

Every file is written to a temporary name in the same folder and renamed into place, so a kill at
any moment leaves either the previous version or the new one. A run counts as finished only when
its record parses and its checksum matches; anything else is moved aside (``*.corrupt``) and
redone. Reruns skip finished runs, and a group interrupted mid-training resumes from its
checkpoint. Run ids are a readable name plus a hash of every parameter that determines the run,
so changing a parameter never reuses a stale record.

CLI (what ``make experiments`` calls)::

    python -m nclib.experiments run --experiment all --scale paper --device cuda
    python -m nclib.experiments status

The chapters run under papermill where it is installed (the executed notebook is kept); on a
machine without papermill/jupytext/ipykernel (a bare GPU image) ``--runner script`` (chosen
automatically) runs the percent-format chapter as plain Python with the same injected parameters
and keeps its output as ``notebook.log``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nclib.data import DatasetNotFoundError, balanced_split, cifar, fashion_mnist
from nclib.train import History, TrainConfig

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "PRESETS",
    "SCHEMA",
    "repo_root",
    "atomic_write_text",
    "atomic_write_json",
    "to_jsonable",
    "run_id_for",
    "provenance",
    "make_record",
    "validate_record",
    "RunSpec",
    "RunStore",
    "run_group",
    "load_dataset",
    "resolve_device",
    "RecordedResults",
    "load_results",
    "execute",
    "notebook_helpers",
    "Table",
    "main",
]

SCHEMA = 1

#: experiment name → the chapter (jupytext percent-format) that runs it.
EXPERIMENTS = {
    "margins_tpt": "book/ch07_margins_tpt.py",
    "non_conservative": "book/ch08_non_conservative.py",
}
SCALES = ("tiny", "cpu", "paper")

_PAPER_TRAINING = dict(
    per_class_train=0, per_class_test=0, feature_dim=0, epochs=200, batch_size=128, lr=0.05,
    momentum=0.9, weight_decay=5e-4, milestones=[100, 150], augment="crop_flip", amp=True,
    channels_last=True, eval_batch_size=500,
)

#: Parameter overrides per experiment and scale; "cpu" is the notebooks' own defaults (the scale
#: the book build executes). Paper scale: the three backbones of Section 5 on full Fashion-MNIST
#: and on CIFAR-10/100 where their files are present (``data_root`` or ``NCLIB_CIFAR``); the
#: paper's Appendix A.1 (hyperparameters) is not available, so these are the usual CIFAR settings
#: (He et al. 2016): SGD 0.05, momentum 0.9, weight decay 5e-4, 200 epochs, ×0.1 at 100 and 150.
PRESETS: dict[str, dict[str, dict]] = {
    "margins_tpt": {
        "tiny": dict(backbones=["mlp"], heads=["etf", "learnable"], per_class_train=8, per_class_test=8,
                     feature_dim=16, widths={"mlp": 32}, epochs=3, batch_size=32),
        "cpu": {},
        "paper": dict(backbones=["vgg11", "resnet32", "densenet121"],
                      datasets=["fashion_mnist", "cifar10", "cifar100"], heads=["etf", "learnable"],
                      **_PAPER_TRAINING),
    },
    "non_conservative": {
        "tiny": dict(per_class_train=8, per_class_test=8, feature_dim=16, small_dim=4, widths={"mlp": 32},
                     epochs=3, batch_size=32, n_permutations=3, n_rotations=3, n_seeds=3,
                     grid_permutations=2, grid_seeds=2, compare_epochs=1, ufm_steps=200),
        "cpu": {},
        "paper": dict(backbones=["vgg11", "resnet32", "densenet121"],
                      datasets=["cifar10", "cifar100", "fashion_mnist"], small_dim=0, n_seeds=10,
                      grid_permutations=4, grid_seeds=5, compare_epochs=2, max_models=7,
                      ufm_steps=3000, **_PAPER_TRAINING),
    },
}


def repo_root() -> Path:
    """The repository root (the folder holding ``nclib/``)."""
    return Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------
# Atomic files and JSON
# ----------------------------------------------------------------------------------------------


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_jsonable(obj):
    """Plain JSON values: tensors and numpy arrays become lists, non-finite floats become None
    (strict JSON has no NaN), tuples become lists, dataclass-like objects need ``to_dict``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise ValueError(f"cannot store a value of type {type(obj).__name__} in a JSON record")


def _canonical(obj) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as indented strict JSON, atomically (see :func:`atomic_write_text`)."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def run_id_for(name: str, params: dict) -> str:
    """``<name>-<10 hex digits>``: a readable name plus the SHA-1 of every parameter."""
    if not name or any(c in name for c in "/\\ \t\n"):
        raise ValueError(f"a run name must be non-empty without slashes or spaces, got {name!r}")
    return f"{name}-{hashlib.sha1(_canonical(params).encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------------------------
# Provenance and records
# ----------------------------------------------------------------------------------------------


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else the CPU; ``"cuda"`` without a GPU is a ValueError."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    return dev


def provenance(device="cpu") -> dict:
    """Where and with what a run was made: device name, torch/CUDA/Python versions, platform,
    host, git commit (and whether the tree had uncommitted changes), UTC time."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        name = f"CPU: {name} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "device": str(dev),
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


_REQUIRED_EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "train_p_min", "test_loss", "test_accuracy")


def make_record(run_id: str, name: str, params: dict, history: History, prov: dict,
                wall_time_s: float, extra: dict | None = None) -> dict:
    """A run record: schema, ids, parameters, the full history, provenance, wall time and a
    SHA-256 checksum over all of it (checked by :func:`validate_record`)."""
    body = {
        "schema": SCHEMA, "run_id": run_id, "name": name, "params": params,
        "history": history.to_dict(), "provenance": prov, "wall_time_s": wall_time_s,
        "extra": extra or {},
    }
    body = to_jsonable(body)
    body["checksum"] = hashlib.sha256(_canonical(body).encode()).hexdigest()
    return body


def validate_record(record) -> dict:
    """Check a loaded record: schema, checksum, and a non-empty per-epoch history whose epochs
    count 0, 1, 2, … with the required quantities. Raises ValueError naming the first problem."""
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    if record.get("schema") != SCHEMA:
        raise ValueError(f"record schema {record.get('schema')!r} is not {SCHEMA}")
    body = {k: v for k, v in record.items() if k != "checksum"}
    digest = hashlib.sha256(_canonical(body).encode()).hexdigest()
    if record.get("checksum") != digest:
        raise ValueError("record checksum does not match its contents (truncated or edited)")
    recs = record.get("history", {}).get("records")
    if not isinstance(recs, list) or not recs:
        raise ValueError("record has no per-epoch history")
    for i, r in enumerate(recs):
        missing = [k for k in _REQUIRED_EPOCH_KEYS if k not in r]
        if missing:
            raise ValueError(f"epoch entry {i} lacks {missing}")
        if r["epoch"] != i:
            raise ValueError(f"epoch entries must count 0, 1, 2, …; entry {i} says {r['epoch']}")
    return record


@dataclass
class RunSpec:
    """One model to train: a readable ``name``, the JSON-able ``params`` that determine it (model,
    data, head, seed, training configuration) and optionally its fixed classifier ``head`` (d×C)."""

    name: str
    params: dict
    head: torch.Tensor | None = None
    run_id: str = field(init=False)

    def __post_init__(self):
        self.params = to_jsonable(self.params)
        self.run_id = run_id_for(self.name, self.params)


class RunStore:
    """The records of one experiment at one scale, in ``root`` (see the module docstring)."""

    def __init__(self, root):
        if not str(root):
            raise ValueError("a run store needs a folder")
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.checkpoints = self.root / "checkpoints"
        self.runs.mkdir(parents=True, exist_ok=True)
        for stale in self.root.rglob(".*.tmp"):  # temporaries of a killed writer
            stale.unlink(missing_ok=True)

    def path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs / f"{run_id}.json"

    def load(self, run_id: str) -> dict | None:
        """The finished record of ``run_id``, or None. A record that does not parse or validate
        is renamed ``<run_id>.json.corrupt`` (kept for inspection) and reported as missing."""
        p = self.path(run_id)
        if not p.is_file():
            return None
        try:
            record = validate_record(json.loads(p.read_text(encoding="utf-8")))
            if record["run_id"] != run_id:
                raise ValueError(f"file holds run {record['run_id']!r}")
            return record
        except (ValueError, UnicodeDecodeError) as exc:
            p.replace(p.with_name(p.name + ".corrupt"))
            print(f"corrupt record {p.name} ({exc}); moved aside, the run will be redone", file=sys.stderr)
            return None

    def save(self, record: dict) -> Path:
        """Validate and write a record atomically."""
        validate_record(record)
        return atomic_write_json(self.path(record["run_id"]), record)

    def records(self, run_ids=None) -> list[dict]:
        """All finished records (or those of ``run_ids``), in name order."""
        ids = run_ids if run_ids is not None else sorted(p.stem for p in self.runs.glob("*.json"))
        found = [self.load(i) for i in ids]
        return [r for r in found if r is not None]

    def write_manifest(self, run_ids, parameters: dict) -> Path:
        """The runs a notebook plans (so that a reader can tell finished from missing)."""
        return atomic_write_json(self.root / "manifest.json", {
            "run_ids": sorted(set(run_ids)), "parameters": parameters,
            "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })

    def manifest(self) -> dict | None:
        """The planned runs written by :meth:`write_manifest`, or None."""
        p = self.root / "manifest.json"
        try:
            return json.loads(p.read_text()) if p.is_file() else None
        except ValueError:
            return None

    def write_csv(self) -> Path:
        """``records.csv``: one row per run and epoch, with the run's scalar parameters as columns."""
        import csv
        import io

        rows, cols = [], []
        for rec in self.records():
            flat = {k: v for k, v in rec["params"].items() if not isinstance(v, (list, dict))}
            for ep in rec["history"]["records"]:
                row = {"run_id": rec["run_id"], "name": rec["name"], **flat, **ep,
                       "terminal_epoch": rec["history"]["terminal_epoch"]}
                rows.append(row)
                cols += [c for c in row if c not in cols]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, restval="")
        writer.writeheader()
        writer.writerows(rows)
        return atomic_write_text(self.root / "records.csv", buf.getvalue())


def run_group(specs, build_models, train_data, test_data, config: TrainConfig, *, store: RunStore | None = None,
              batched: bool = True, max_models: int | None = None, progress: bool = False,
              prov: dict | None = None, checkpoint_every: float = 120.0) -> dict[str, History]:
    """Train a group of runs that share ``config`` (seed, data order) and return their histories
    by run id. With a ``store``, finished runs are loaded instead of trained, the rest are trained
    together (:func:`nclib.sweep.train_sweep`) with a checkpoint in the store, and each gets a
    record written atomically. ``build_models(specs)`` returns one freshly initialised model per
    spec, in order (for a sweep: :func:`nclib.sweep.sweep_models`)."""
    from nclib.sweep import train_sweep

    specs = list({s.run_id: s for s in specs}.values())
    out: dict[str, History] = {}
    pending = []
    for s in specs:
        rec = store.load(s.run_id) if store is not None else None
        if rec is None:
            pending.append(s)
        else:
            out[s.run_id] = History.from_dict(rec["history"])
    if not pending:
        return out
    models = list(build_models(pending))
    if len(models) != len(pending):
        raise ValueError(f"build_models returned {len(models)} models for {len(pending)} runs")
    ckpt = None
    if store is not None:
        key = hashlib.sha1(",".join(sorted(s.run_id for s in pending)).encode()).hexdigest()[:12]
        ckpt = store.checkpoints / f"group-{key}.pt"
    t0 = time.perf_counter()
    histories = train_sweep(models, train_data, test_data, config, batched=batched, max_models=max_models,
                            progress=progress, checkpoint=ckpt, checkpoint_every=checkpoint_every)
    wall = time.perf_counter() - t0
    for s, h in zip(pending, histories):
        out[s.run_id] = h
        if store is not None:
            store.save(make_record(s.run_id, s.name, s.params, h, prov or provenance(train_data.x.device),
                                   wall / len(pending), extra={"group_size": len(pending), "group_wall_time_s": wall,
                                                               "batched": batched}))
    if ckpt is not None:
        for p in ckpt.parent.glob(f"{ckpt.stem}*"):
            p.unlink(missing_ok=True)
    return out


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def load_dataset(name: str, *, data_root: str | None = None, per_class_train: int | None = None,
                 per_class_test: int | None = None, seed: int = 0, device="cpu"):
    """``(train, test)`` for ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"`` on ``device``,
    optionally class-balanced subsets (``per_class_*``; None or 0 = the full split).

    CIFAR is read from ``data_root``, else ``$NCLIB_CIFAR``, else ``<repo>/data/cifar``;
    a missing folder raises :class:`~nclib.data.DatasetNotFoundError` saying where it looked.
    """
    if name == "fashion_mnist":
        train, test = fashion_mnist(data_root or None)
    elif name in ("cifar10", "cifar100"):
        root = data_root or os.environ.get("NCLIB_CIFAR") or str(repo_root() / "data" / "cifar")
        if not Path(root).is_dir():
            raise DatasetNotFoundError(
                f"{name}: the CIFAR root {root} does not exist (looked at data_root, then $NCLIB_CIFAR, "
                f"then <repo>/data/cifar). Put torchvision's cifar-10-batches-py / cifar-100-python "
                f"folder there, e.g. torchvision.datasets.CIFAR{name[5:]}(root, download=True) where "
                "a network exists, or set NCLIB_CIFAR."
            )
        train, test = cifar(root, int(name[5:]))
    else:
        raise ValueError(f"unknown dataset {name!r}; choose fashion_mnist, cifar10 or cifar100")
    train, test = balanced_split(train, test, per_class_train, per_class_test, seed)
    return train.to(device), test.to(device)


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

    def runs(self) -> list[tuple[dict, History]]:
        """``(params, history)`` per recorded run, the form the chapters analyse."""
        return [(r["params"], History.from_dict(r["history"])) for r in self.records]

    def provenance_table(self) -> "Table":
        """The provenance rows as a :class:`Table`."""
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
        if p.get("wall_time_s") is not None:
            rows.append(("wall time", f"{p['wall_time_s'] / 3600:.2f} h"))
        else:
            rows.append(("training time (sum over runs)", f"{sum(r['wall_time_s'] for r in self.records) / 3600:.2f} h"))
        return rows


def load_results(experiment: str, scale: str = "paper", root=None) -> RecordedResults | None:
    """The recorded runs of ``experiment`` at ``scale`` under ``root`` (default
    ``<repo>/results``), or None when nothing is recorded."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")
    folder = Path(root or repo_root() / "results") / experiment / scale
    if not (folder / "runs").is_dir():
        return None
    store = RunStore.__new__(RunStore)  # read-only view: no folder creation, no clean-up
    store.root, store.runs, store.checkpoints = folder, folder / "runs", folder / "checkpoints"
    manifest = store.manifest()
    ids = manifest["run_ids"] if manifest else None
    records = []
    for p in sorted(store.runs.glob("*.json")):
        if ids is not None and p.stem not in ids:
            continue
        try:
            records.append(validate_record(json.loads(p.read_text())))
        except ValueError:
            continue
    if not records:
        return None
    prov_path = folder / "provenance.json"
    try:
        prov = json.loads(prov_path.read_text()) if prov_path.is_file() else None
    except ValueError:
        prov = None
    return RecordedResults(experiment, scale, folder, records, len(ids) if ids else len(records), prov)


# ----------------------------------------------------------------------------------------------
# Running the chapters under papermill (or as plain scripts where papermill is not installed)
# ----------------------------------------------------------------------------------------------


class Table:
    """A small table for the chapters: HTML in notebooks and the book (myst_nb renders HTML
    outputs; its Markdown outputs are CommonMark, which has no tables) and aligned text elsewhere."""

    def __init__(self, header, rows, caption: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in r] for r in rows]
        if any(len(r) != len(self.header) for r in self.rows):
            raise ValueError("every row needs one cell per header column")
        self.caption = caption

    def _repr_html_(self) -> str:
        import html

        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        out = ([self.caption] if self.caption else []) + [line(self.header), line(["-" * w for w in widths])]
        return "\n".join(out + [line(r) for r in self.rows])


def experiment_setup(device: str = "auto", results_dir: str | None = None, cpu_threads: int = 0,
                     deterministic: bool = False):
    """The common start of the experiment chapters: torch's thread count (0: leave it), the
    deterministic switch (off: cuDNN autotuning on, for speed on a GPU), the device, a
    :class:`RunStore` when ``results_dir`` is given, and the run's provenance. Returns
    ``(device, store, provenance)``."""
    if cpu_threads:
        torch.set_num_threads(int(cpu_threads))
    from nclib.train import set_deterministic

    set_deterministic(bool(deterministic))
    dev = resolve_device(device)
    return dev, (RunStore(results_dir) if results_dir else None), provenance(dev)


def notebook_helpers():
    """``(glue, display)`` for the experiment chapters: myst_nb's ``glue`` and IPython's
    ``display`` where they are installed (the book build, papermill), and stand-ins that print
    where they are not (a bare GPU machine running a chapter as a script, see :func:`execute`)."""
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


def _have_papermill() -> bool:
    try:
        import ipykernel  # noqa: F401
        import jupytext  # noqa: F401
        import papermill  # noqa: F401
    except ImportError:
        return False
    return True


def _run_as_script(chapter: Path, params: dict, log_path: Path) -> None:
    """Run a jupytext percent-format chapter as a plain Python script, with ``params`` assigned in
    a cell right after its parameters cell (what papermill injects); output goes to ``log_path``."""
    src = chapter.read_text(encoding="utf-8")
    marker = '# %% tags=["parameters"]'
    if marker not in src:
        raise ValueError(f"{chapter} has no parameters cell ({marker})")
    start = src.index(marker) + len(marker)
    end = src.find("\n# %%", start)
    end = len(src) if end < 0 else end
    inject = "\n# %% injected-parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="nclib-script-") as tmp:
        script = Path(tmp) / chapter.name
        script.write_text(src[:end] + inject + src[end:], encoding="utf-8")
        tmp_log = Path(tmp) / "log.txt"
        with open(tmp_log, "w") as log:
            proc = subprocess.Popen([sys.executable, str(script)], cwd=chapter.parent, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    log.write(line)
            finally:
                rc = proc.wait()
        atomic_write_text(log_path, tmp_log.read_text())
    if rc != 0:
        raise RuntimeError(f"{chapter.name} failed as a script (exit status {rc}); see {log_path}")


def execute(experiment: str, scale: str = "paper", device: str = "auto", results=None,
            parameters: dict | None = None, deterministic: bool = False, progress: bool = True,
            runner: str = "auto") -> Path:
    """Run one experiment's chapter with the ``scale`` preset (plus ``parameters``), recording into
    ``<results>/<experiment>/<scale>/``, and return that folder. ``runner``: ``"papermill"``
    (writes the executed ``notebook.ipynb``), ``"script"`` (runs the percent-format file as plain
    Python with the parameters injected, for machines without papermill; writes ``notebook.log``)
    or ``"auto"`` (papermill when installed). ``provenance.json`` and ``records.csv`` are written
    atomically in every case. Finished runs are skipped, so rerunning after an interruption resumes."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    if runner not in ("auto", "papermill", "script"):
        raise ValueError(f"runner must be auto, papermill or script, got {runner!r}")
    if runner == "auto":
        runner = "papermill" if _have_papermill() else "script"
    dev = resolve_device(device)
    folder = Path(results or repo_root() / "results").resolve() / experiment / scale
    store = RunStore(folder)
    chapter = repo_root() / EXPERIMENTS[experiment]
    params = {**PRESETS[experiment][scale], **(parameters or {})}
    params.update(scale=scale, device=str(dev), results_dir=str(folder), deterministic=bool(deterministic))
    prov = {**provenance(dev), "experiment": experiment, "scale": scale, "chapter": EXPERIMENTS[experiment],
            "runner": runner, "parameters": params, "status": "running", "wall_time_s": None,
            "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(folder / "provenance.json", prov)
    # The kernel (or script) imports nclib from this checkout even where it is not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    status = "failed"
    try:
        if runner == "script":
            _run_as_script(chapter, params, folder / "notebook.log")
            status = "complete"
        else:
            import jupytext
            import nbformat
            import papermill

            with tempfile.TemporaryDirectory(prefix="nclib-nb-") as tmp:
                src, out = Path(tmp) / "input.ipynb", Path(tmp) / "output.ipynb"
                nbformat.write(jupytext.read(chapter), src)
                try:
                    papermill.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3",
                                               cwd=str(chapter.parent), progress_bar=progress)
                    status = "complete"
                except KeyboardInterrupt:
                    status = "interrupted"
                    raise
                finally:
                    if out.is_file():
                        name = "notebook.ipynb" if status == "complete" else f"notebook.{status}.ipynb"
                        atomic_write_text(folder / name, out.read_text())
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        prov.update(status=status, wall_time_s=time.perf_counter() - t0,
                    finished_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        atomic_write_json(folder / "provenance.json", prov)
        store.write_csv()
    return folder


def _parse_param(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv=None) -> int:
    """The ``make experiments`` entry point: ``run`` (papermill, resumable) and ``status``."""
    parser = argparse.ArgumentParser(prog="python -m nclib.experiments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run experiment notebooks under papermill and record every run")
    run.add_argument("--experiment", default="all", help=f"one of {sorted(EXPERIMENTS)}, a comma list, or all")
    run.add_argument("--scale", default="paper", choices=SCALES)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--results", default=str(repo_root() / "results"))
    run.add_argument("--deterministic", action="store_true", help="PyTorch deterministic mode")
    run.add_argument("--runner", default="auto", choices=("auto", "papermill", "script"),
                     help="papermill (executed notebook) or script (plain Python, where papermill is missing)")
    run.add_argument("--param", action="append", type=_parse_param, default=[],
                     help="override a notebook parameter, key=JSON (repeatable)")
    status = sub.add_parser("status", help="list recorded runs per experiment and scale")
    status.add_argument("--results", default=str(repo_root() / "results"))
    args = parser.parse_args(argv)

    if args.command == "status":
        for exp in EXPERIMENTS:
            for scale in SCALES:
                res = load_results(exp, scale, args.results)
                if res is not None:
                    st = (res.provenance or {}).get("status", "?")
                    print(f"{exp:18s} {scale:6s} {len(res.records):4d}/{res.planned} runs  ({st})")
        return 0
    names = list(EXPERIMENTS) if args.experiment == "all" else [e.strip() for e in args.experiment.split(",")]
    for exp in names:
        if exp not in EXPERIMENTS:
            parser.error(f"unknown experiment {exp!r}; choose from {sorted(EXPERIMENTS)} or all")
    for exp in names:
        print(f"== {exp} at {args.scale} scale on {args.device} → {args.results}/{exp}/{args.scale}", flush=True)
        folder = execute(exp, args.scale, args.device, args.results, dict(args.param), args.deterministic,
                         runner=args.runner)
        print(f"   done: {folder}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
