"""Run records: their format, provenance, validation, and the store of one experiment (written
through the atomic writes of :mod:`nclib.files`).

Layout of one experiment at one scale (``results/<experiment>/<scale>/``)::

    runs/<run_id>.json     one tidy record per trained model: its parameters, every per-epoch
                           quantity, the first epoch with 100% train accuracy, provenance and a
                           SHA-256 checksum of the rest
    claims/<run_id>.lock   which worker trains the run now (nclib.claims; gone once recorded)
    checkpoints/           group-<key>.* : the state of a group of models being trained, and
                           group-<key>.json the runs it holds (removed once they are recorded)
    trainings.jsonl        one line per training done: run, host, pid, time (who trained what)
    reused/<run_id>.json   a record copied from another folder (RunStore.reuse), not trained here
    manifest.json          the runs the notebook planned, with its parameters
    provenance.json        device, torch version, git commit, parameters, start/end, wall time
    records.csv            every run × epoch as one flat table (rebuilt from runs/)
    notebook.ipynb         the executed chapter notebook (papermill)

Every file is written to a temporary name in the same folder and renamed into place, so a kill at
any moment leaves either the previous version or the new one. A run counts as finished only when
its record parses, its checksum matches and its content has the record's schema; anything else is
moved aside (``*.corrupt``) and redone. Run ids are a readable name plus a hash of every parameter
that determines the run, so changing a parameter never reuses a stale record.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nclib.claims import Claims, claim_timeout_from_env
from nclib.collapse import collapse_status
from nclib.files import atomic_write_json, atomic_write_text, to_jsonable, written_by_dead_process
from nclib.history import History

__all__ = [
    "SCHEMA", "repo_root", "run_id_for",
    "resolve_device", "provenance", "make_record", "validate_record", "RunSpec", "RunStore", "UnreadableRecord",
    "NewerRecord", "RECORD_KEYS", "cpu_model", "cpu_slug", "device_model", "run_cpu_seconds",
]

SCHEMA = 1
# A temporary older than this belongs to a writer that died (live writers rename within seconds);
# younger ones may be another worker's file in flight and are left alone.
_STALE_TEMPORARY_S = 600.0


def repo_root() -> Path:
    """The repository root (the folder holding ``nclib/``)."""
    return Path(__file__).resolve().parent.parent


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# Atomic files and JSON
# ----------------------------------------------------------------------------------------------


def _canonical(obj) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id_for(name: str, params: dict) -> str:
    """``<name>-<10 hex digits>``: a readable name plus the SHA-1 of every parameter."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ \t\n"):
        raise ValueError(f"a run name must be non-empty without slashes or spaces, got {name!r}")
    return f"{name}-{hashlib.sha1(_canonical(params).encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------------------------
# Provenance
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
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a torch device ({exc}); use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    return dev


def cpu_model() -> str:
    """This machine's CPU model as the kernel names it (``/proc/cpuinfo``), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_slug(cpu: str | None = None) -> str:
    """A CPU model as a file-name slug ("AMD EPYC" → "amd-epyc"), for records kept per machine."""
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(r\)|\(tm\)", "", (cpu or cpu_model()).lower())).strip("-")
    return slug or "unknown"


def run_cpu_seconds(record: dict) -> float | None:
    """The CPU seconds a run's training used, from its record (the training group's CPU time over
    the runs it trained together), or None for a record older than nclib's CPU clock."""
    extra = record.get("extra") or {}
    if "group_cpu_time_s" not in extra:
        return None
    return float(extra["group_cpu_time_s"]) / int(extra.get("group_size", 1))


def device_model(prov: dict) -> str:
    """The device a :func:`provenance` names, without the core and thread counts it appends to a
    CPU's model ("CPU: AMD EPYC (2 cores, 1 torch threads)" → "CPU: AMD EPYC"): runs made on the
    same machine with different thread counts read as one device. "?" when it names none."""
    return str(prov.get("device_name") or "?").split(" (")[0]


def provenance(device="cpu", threads: int | None = None) -> dict:
    """Where and with what a run was made: device name, torch/CUDA/Python versions, platform,
    host, git commit (and whether the tree had uncommitted changes), UTC time. ``threads``: the
    torch threads the run uses, when another process than this one runs it (default: this
    process's)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"CPU: {cpu_model()} ({os.cpu_count()} cores, {threads or torch.get_num_threads()} torch threads)"
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "device": str(dev), "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "platform": platform.platform(), "host": socket.gethostname(),
        "git_commit": _git("rev-parse", "HEAD"), "git_dirty": None if status is None else bool(status),
        "time_utc": _utc_now(),
    }


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------

#: The record of one measured epoch (``History.records``, records.csv's columns, ``on_epoch``'s
#: input), key → meaning and unit. Written by :func:`nclib.train.train` and the batched sweep;
#: the plotting and analysis functions read these names. Accuracies are fractions in [0, 1], losses
#: mean cross-entropy in nats, margins in the units of features × classifier.
RECORD_KEYS = {
    "epoch": "epochs trained when measured (0: at initialisation)",
    "lr": "learning rate used during that epoch",
    "train_loss": "mean cross-entropy on the training set (nats)",
    "train_accuracy": "fraction of training samples classified correctly",
    "train_p_min": "p_min of Theorem 4.1: the smallest logit gap ⟨M_y − M_y', z⟩ over samples and rivals",
    "train_scale_free_margin": "min γ_{y,y'}/(‖M_y − M_y'‖ ρ̄): p_min free of feature and classifier scale",
    "train_feature_rms": "ρ̄ = (mean ‖z_i‖²)^½, the RMS feature norm",
    "train_classifier_norm": "mean column norm ‖M_y‖ of the classifier",
    "train_nc1": "NC1 = tr(Σ_W Σ_B⁺)/C (Papyan et al. 2020)",
    "train_nc2_equinorm_means": "NC2: coefficient of variation of the centred class-mean norms",
    "train_nc2_equiangular_means": "NC2: sd of the cosines between centred class means",
    "train_nc2_max_angle_means": "NC2: mean |cos + 1/(C−1)| between centred class means",
    "train_nc2_etf_error_means": "NC2: distance of the centred means' Gram to a simplex ETF's",
    "train_nc2_equinorm_classifier": "NC2 equinorm of the classifier columns",
    "train_nc2_equiangular_classifier": "NC2 equiangularity of the classifier columns",
    "train_nc2_max_angle_classifier": "NC2 max-angle of the classifier columns",
    "train_nc2_etf_error_classifier": "NC2 ETF error of the classifier columns",
    "train_nc3_self_duality": "NC3: ‖M/‖M‖ − M̄/‖M̄‖‖²_F between classifier and centred means",
    "train_nc4_ncc_mismatch": "NC4: fraction of samples where the classifier and nearest class centre disagree",
    "test_loss": "mean cross-entropy on the test set (nats)",
    "test_accuracy": "fraction of test samples classified correctly",
}

_REQUIRED_EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "train_p_min", "test_loss", "test_accuracy")
_FIELDS = (("run_id", str), ("name", str), ("params", dict), ("history", dict), ("provenance", dict),
           ("extra", dict))


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


def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def validate_record(record) -> dict:
    """Check a loaded record and return it: schema, checksum, the type of every field (a record
    whose checksum matches may still have been written by a buggy or foreign program), a run id
    that matches name and parameters, and a non-empty per-epoch history whose epochs increase from
    0 (the metric schedule may skip epochs) with the required quantities as numbers (None for a
    missing value). Raises ValueError
    naming the first problem."""
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    schema = record.get("schema")
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
        raise NewerRecord(f"the record was written by a newer nclib (schema {schema}, this one reads {SCHEMA}); "
                          "update nclib to read it (it is kept, not redone)")
    if schema != SCHEMA:
        raise ValueError(f"record schema {schema!r} is not {SCHEMA}")
    body = {k: v for k, v in record.items() if k != "checksum"}
    if record.get("checksum") != hashlib.sha256(_canonical(body).encode()).hexdigest():
        raise ValueError("record checksum does not match its contents (truncated or edited)")
    for key, kind in _FIELDS:
        if not isinstance(record.get(key), kind):
            raise ValueError(f"record field {key!r} must be a {kind.__name__}, got {type(record.get(key)).__name__}")
    wall = record.get("wall_time_s")
    if not _is_number(wall) or wall is None or wall < 0:
        raise ValueError(f"record field 'wall_time_s' must be a number ≥ 0, got {wall!r}")
    if run_id_for(record["name"], record["params"]) != record["run_id"]:
        raise ValueError(f"run id {record['run_id']!r} does not match the record's name and parameters")
    hist = record["history"]
    recs = hist.get("records")
    if not isinstance(recs, list) or not recs:
        raise ValueError("record has no per-epoch history (history.records must be a non-empty list)")
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            raise ValueError(f"epoch entry {i} must be an object, got {type(r).__name__}")
        missing = [k for k in _REQUIRED_EPOCH_KEYS if k not in r]
        if missing:
            raise ValueError(f"epoch entry {i} lacks {missing}")
        ep, before = r["epoch"], recs[i - 1]["epoch"] if i else -1
        if not isinstance(ep, int) or isinstance(ep, bool) or (ep != 0 if i == 0 else ep <= before):
            raise ValueError(f"epoch entries must be increasing whole epochs from 0 (the schedule may skip "
                             f"some); entry {i} says {ep!r}")
        bad = [k for k, v in r.items() if not _is_number(v)]
        if bad:
            raise ValueError(f"epoch entry {i} has non-numeric values for {bad}")
    term, last = hist.get("terminal_epoch"), recs[-1]["epoch"]
    if term is not None and (not isinstance(term, int) or isinstance(term, bool) or not 0 <= term <= last):
        raise ValueError(f"history.terminal_epoch must be None or an epoch in 0…{last}, got {term!r}")
    if not isinstance(hist.get("pairwise_margins", []), list):
        raise ValueError("history.pairwise_margins must be a list")
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


class NewerRecord(ValueError):
    """A record of a newer schema than this nclib reads: not corrupt, not redone."""


class UnreadableRecord(OSError):
    """A record file that exists but cannot be read (permissions, I/O): not corrupt, not redone."""


def _flatten(params: dict, prefix: str = "") -> dict:
    """``{"config": {"lr": 0.1}}`` → ``{"config.lr": 0.1}``; lists become JSON text."""
    out = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
    return out


class RunStore:
    """The records of one experiment at one scale, in ``root`` (see the module docstring).
    ``claim_timeout``: seconds without heartbeat after which another worker's claim on a run is
    taken over (default ``$NCLIB_CLAIM_TIMEOUT``, else 120)."""

    def __init__(self, root, claim_timeout: float | None = None):
        if not str(root):
            raise ValueError("a run store needs a folder")
        self._paths(root, claim_timeout)
        self.runs.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for stale in self.root.rglob(".*.tmp"):  # temporaries of a killed writer, not of a live one
            try:
                if now - stale.stat().st_mtime > _STALE_TEMPORARY_S or written_by_dead_process(stale):
                    stale.unlink(missing_ok=True)
            except FileNotFoundError:
                pass

    def _paths(self, root, claim_timeout):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.checkpoints = self.root / "checkpoints"
        self.claims = Claims(self.root / "claims", claim_timeout or claim_timeout_from_env())

    @classmethod
    def view(cls, root) -> "RunStore":
        """A read-only view: creates no folder and cleans nothing up (for reading results)."""
        store = cls.__new__(cls)
        store._paths(root, None)
        return store

    def path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs / f"{run_id}.json"

    def check(self, run_id: str) -> tuple[dict | None, str | None]:
        """``(record, None)`` for a valid record, ``(None, reason)`` for a file that is not one,
        ``(None, None)`` for no file. Changes nothing. A file that cannot be *read* (permissions,
        an I/O error) is not judged: :class:`UnreadableRecord` says so."""
        try:
            text = self.path(run_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except UnicodeDecodeError as exc:
            return None, f"not UTF-8 text ({exc.reason})"
        except OSError as exc:
            raise UnreadableRecord(exc.errno, f"cannot read the record {self.path(run_id)}: {exc.strerror}; it is "
                                              "neither judged corrupt nor redone: fix its permissions (or the "
                                              "disk) and rerun") from exc
        try:
            record = validate_record(json.loads(text))
            if record["run_id"] != run_id:
                raise ValueError(f"file holds run {record['run_id']!r}")
            return record, None
        except NewerRecord as exc:
            raise NewerRecord(f"{self.path(run_id)}: {exc}") from None
        except ValueError as exc:
            return None, str(exc)

    def load(self, run_id: str) -> dict | None:
        """The finished record of ``run_id``, or None. A file that is not a valid record is
        renamed ``<run_id>.json.corrupt`` (kept for inspection) and reported as missing."""
        p = self.path(run_id)
        try:
            inode = p.stat().st_ino
        except FileNotFoundError:
            return None
        record, problem = self.check(run_id)
        if record is not None or problem is None:
            return record
        aside = p.with_name(p.name + ".corrupt")
        k = 1
        while aside.exists():  # never overwrite an earlier corrupt file: each is kept
            aside, k = p.with_name(f"{p.name}.corrupt{k}"), k + 1
        try:  # move aside only the file we judged: another worker may have just replaced it
            if p.stat().st_ino == inode:
                p.replace(aside)
        except FileNotFoundError:
            pass
        print(f"corrupt record {p.name} ({problem}); moved aside to {aside.name}, the run will be redone",
              file=sys.stderr)
        return None

    def save(self, record: dict) -> Path:
        """Validate and write a record atomically."""
        validate_record(record)
        return atomic_write_json(self.path(record["run_id"]), record)

    def reuse(self, run_id: str, sources) -> dict | None:
        """The record of ``run_id`` from the first of the results folders ``sources`` that holds a
        valid one, copied here unchanged, with a note ``reused/<run_id>.json`` naming that folder;
        None when none holds it. A run id is a hash of every parameter that determines the run, so
        the copy is the same computation: designs that share runs (a rotation grid's M* row and a
        permutation grid's) train them once. The note is written first, so that a kill between
        the two writes never leaves a copy that passes for a run trained here."""
        for src in map(Path, sources):
            record = RunStore.view(src).check(run_id)[0]
            if record is not None:
                atomic_write_json(self.root / "reused" / f"{run_id}.json",
                                  {"run_id": run_id, "from": os.path.relpath(src, self.root.parent.parent)})
                self.save(record)
                return record
        return None

    def reused(self) -> dict[str, str]:
        """``{run_id: the folder it was copied from}`` for the runs :meth:`reuse` copied here
        (relative to the results root)."""
        out = {}
        for p in sorted((self.root / "reused").glob("*.json")):
            try:
                note = json.loads(p.read_text(encoding="utf-8"))
                out[note["run_id"]] = note["from"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a note cut short: the run then counts as trained here, the safe side
        return out

    def records(self, run_ids=None) -> list[dict]:
        """All finished records (or those of ``run_ids``), in name order."""
        ids = run_ids if run_ids is not None else sorted(p.stem for p in self.runs.glob("*.json"))
        found = [self.load(i) for i in ids]
        return [r for r in found if r is not None]

    def log_training(self, run_id: str, **info) -> None:
        """Append one line to ``trainings.jsonl``: this process trained ``run_id``. A single
        ``O_APPEND`` write, so concurrent workers' lines do not interleave."""
        line = json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "time_utc": _utc_now(), **to_jsonable(info)}, sort_keys=True) + "\n"
        fd = os.open(self.root / "trainings.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut by a killed writer: end it
                line = "\n" + line
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_for(self, run_ids) -> Path:
        """The checkpoint path of a group of runs (``group-<key>.pt``, key a hash of the ids),
        with ``group-<key>.json`` listing them so that :meth:`prune_checkpoints` can tell when a
        group left behind by a dead worker is no longer needed."""
        ids = sorted(run_ids)
        key = hashlib.sha1(",".join(ids).encode()).hexdigest()[:12]
        atomic_write_json(self.checkpoints / f"group-{key}.json", {"run_ids": ids})
        return self.checkpoints / f"group-{key}.pt"

    def drop_checkpoint(self, ckpt: Path) -> None:
        """Remove every file of one group's checkpoint, whatever suffix the trainer used (chunks
        ``group-<key>.chunk<i>.pt``, temporaries ``.group-<key>.pt.<pid>.tmp``, the run list)."""
        key = Path(ckpt).stem
        for p in self.checkpoints.glob(f"*{key}*"):
            p.unlink(missing_ok=True)

    def prune_checkpoints(self) -> None:
        """Drop the checkpoints of groups whose runs all have records (a group that a dead worker
        left and others finished, possibly in other groupings)."""
        for listing in self.checkpoints.glob("group-*.json"):
            try:
                ids = json.loads(listing.read_text())["run_ids"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if all(self.path(i).is_file() for i in ids):
                self.drop_checkpoint(listing.with_suffix(".pt"))

    # -- manifest and table ------------------------------------------------------------------

    def write_manifest(self, run_ids, parameters: dict) -> Path:
        """The runs a notebook plans (so that a reader can tell finished from missing)."""
        return atomic_write_json(self.root / "manifest.json", {
            "run_ids": sorted(set(run_ids)), "parameters": parameters, "time_utc": _utc_now()})

    def manifest_problem(self) -> str | None:
        """Why ``manifest.json`` exists but cannot be used (None when it is fine or absent)."""
        p = self.root / "manifest.json"
        if not p.exists():
            return None
        try:
            m = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"manifest.json is damaged ({exc})"
        if not isinstance(m, dict) or not isinstance(m.get("run_ids"), list):
            return "manifest.json is damaged (no list of run_ids)"
        return None

    def manifest(self) -> dict | None:
        """The planned runs written by :meth:`write_manifest`, or None (also for a damaged file:
        :meth:`manifest_problem` says why)."""
        p = self.root / "manifest.json"
        try:
            m = json.loads(p.read_text()) if p.is_file() else None
        except (OSError, ValueError):
            return None
        if not isinstance(m, dict) or not isinstance(m.get("run_ids"), list):
            return None
        return m

    def write_csv(self) -> Path:
        """``records.csv``: one row per run and epoch, with every parameter of the run as a column
        (nested ones dotted, ``config.lr``; lists as JSON), so that runs of two configurations in
        one folder differ in a column and not only in their ids, ``planned``: whether the
        run is in the folder's current manifest, and ``collapsed`` with ``collapse``: whether the
        run met chapter 10's collapse criterion (:func:`nclib.collapse.collapse_status`) and, when
        it did not, why."""
        import csv
        import io

        manifest = self.manifest()
        planned = set(manifest["run_ids"]) if manifest else set()
        rows, cols = [], []
        for rec in self.records():
            flat = _flatten(rec["params"])
            collapsed, why = _collapse_columns(rec)
            for ep in rec["history"]["records"]:
                prov = rec.get("provenance") or {}
                row = {"run_id": rec["run_id"], "name": rec["name"], "planned": rec["run_id"] in planned,
                       "machine": prov.get("device_name"), **flat, **ep,
                       "terminal_epoch": rec["history"]["terminal_epoch"], "collapsed": collapsed, "collapse": why}
                rows.append(row)
                cols += [c for c in row if c not in cols]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, restval="")
        writer.writeheader()
        writer.writerows(rows)
        return atomic_write_text(self.root / "records.csv", buf.getvalue())


def _collapse_columns(rec: dict) -> tuple:
    """(collapsed, reason) of a record for ``records.csv``: the collapse criterion's outcome, or
    ("", why it cannot be decided) for a history that does not measure training NC1."""
    n_train = rec["params"].get("n_train")
    try:
        status = collapse_status(History.from_dict(rec["history"]),
                                 n_train=n_train if isinstance(n_train, int) and n_train > 0 else None)
    except ValueError as exc:
        return "", f"not decided: {exc}"
    return status.collapsed, status.reason or ""
