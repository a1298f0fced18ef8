"""Probes of a hostile user (the reliability issue), by kind: record files that cannot be read or
are damaged, files the commands write, worker processes that die, and command-line values. Each
probe would have caught a bad outcome found before: a record judged corrupt because it could not
be read, a corrupt file overwritten by the next, records only their owner could read, a raw
``Errno 28``, a killed worker going unnoticed, a sweep of nothing reported complete."""

import errno
import json
import os
import signal
import types
from pathlib import Path

import pytest

from nclib.files import atomic_write_text
from nclib.records import RunStore, UnreadableRecord
from nclib.runner import main, folder_status


def _valid_record_file(store, run_id="run-0000000000"):
    """A valid record written through the store (a tiny training is not needed: make_record)."""
    from nclib.records import make_record, provenance
    from nclib.history import History

    h = History()
    h.observe({"epoch": 0, "train_accuracy": 0.5, "train_loss": 1.0, "train_p_min": -1.0, "test_accuracy": 0.5,
               "test_loss": 1.0}, [])
    from nclib.records import run_id_for

    rid = run_id_for("run", {"i": 0})
    store.save(make_record(rid, "run", {"i": 0}, h, provenance("cpu"), 1.0))
    return rid


# -- record files --------------------------------------------------------------------------------


def test_a_record_that_cannot_be_read_is_reported_not_redone(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    rid = _valid_record_file(store)
    store.write_manifest([rid], {})
    real = Path.read_text

    def deny(self, *a, **kw):
        if self.name == f"{rid}.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(UnreadableRecord, match=r"cannot read the record .*Permission denied.*nor redone"):
        store.load(rid)
    assert store.path(rid).is_file() and not list(store.runs.glob("*.corrupt*"))  # not moved aside
    s = folder_status(tmp_path)
    assert s["unreadable"] and rid in s["unreadable"] and not s["corrupt"] and not s["complete"]


def test_a_reused_record_is_copied_unchanged_from_the_first_valid_source_and_noted(tmp_path):
    """RunStore.reuse: a run recorded by another design is copied, never a corrupt one, and a
    copy is told apart from a run trained here (its note), even when the note was cut short."""
    broken, good, later = (RunStore(tmp_path / e / "reference") for e in ("broken", "good", "later"))
    rid = _valid_record_file(good)
    _valid_record_file(later)
    atomic_write_text(broken.path(rid), '{"run_id": "cut sh')  # a damaged record is no source
    here = RunStore(tmp_path / "mine" / "reference")
    assert here.reuse("nobody-has-this-0000000000", [broken.root, good.root]) is None
    assert not here.reused() and not here.path("nobody-has-this-0000000000").exists()
    rec = here.reuse(rid, [broken.root, good.root, later.root])
    assert rec == good.load(rid) and here.path(rid).read_bytes() == good.path(rid).read_bytes()
    assert here.reused() == {rid: "good/reference"}  # relative to the results root
    assert broken.path(rid).read_text() == '{"run_id": "cut sh'  # a source is only read
    (here.root / "reused" / f"{rid}.json").write_text('{"run_id": ')  # a note cut by a kill
    assert here.reused() == {}  # then the run counts as trained here: no cost is hidden


def test_corrupt_records_are_kept_side_by_side_and_named_by_status(tmp_path, capsys):
    store = RunStore(tmp_path)
    rid = _valid_record_file(store)
    store.write_manifest([rid], {})
    for text in ("{first", "{second"):
        store.path(rid).write_text(text)
        assert store.load(rid) is None
    kept = sorted(p.read_text() for p in store.runs.glob(f"{rid}.json.corrupt*"))
    assert kept == ["{first", "{second"]
    store.path(rid).write_text("{third")
    results = tmp_path.parent / "results-status"
    folder = results / "margins_tpt" / "tiny"
    os.makedirs(folder.parent, exist_ok=True)
    os.rename(tmp_path, folder)
    assert main(["status", "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "(1 corrupt)" in out and f"{rid}:" in out  # the run and the reason, not only a count


def test_records_are_readable_by_others_like_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*r\.json: No space left on device \(the disk is full"):
        atomic_write_text(tmp_path / "r.json", "{}")
    assert list(tmp_path.iterdir()) == []


class _Stop(BaseException):
    pass


@pytest.mark.parametrize("write", ["text", "torch"])
def test_a_signal_inside_a_write_finishes_it_then_interrupts(tmp_path, monkeypatch, write):
    """The stopped sweep's leftover: a signal that landed right after the temporary was created
    (before the cleanup that guards it) left an empty ``.tmp`` in the results folder. Now the write
    completes, no temporary is left, and the signal still interrupts, right after."""
    import tempfile

    import torch

    from nclib.files import atomic_torch_save

    def stop(signum, frame):
        raise _Stop(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    real_mkstemp, real_open = tempfile.mkstemp, open

    def mkstemp_then_signal(*a, **kw):
        made = real_mkstemp(*a, **kw)
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs at the next bytecode, here
        return made

    def open_then_signal(*a, **kw):
        f = real_open(*a, **kw)
        os.kill(os.getpid(), signal.SIGTERM)
        return f

    if write == "text":
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_signal)
        target, do = tmp_path / "r.json", lambda p: atomic_write_text(p, "{}")
    else:
        monkeypatch.setattr("builtins.open", open_then_signal)
        target, do = tmp_path / "c.pt", lambda p: atomic_torch_save({"w": torch.ones(2)}, p)
    try:
        with pytest.raises(_Stop):
            do(target)
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGTERM, previous)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # written whole, no temporary
    assert signal.getsignal(signal.SIGTERM) is previous


# -- worker processes ----------------------------------------------------------------------------


class _FakeProc:
    """A worker that runs until terminated (``rc`` None) or has already died with ``rc``."""

    def __init__(self, rc=None):
        self.returncode, self.pid, self.terminated = rc, 0, False

    def poll(self):
        return self.returncode

    def terminate(self):
        self.terminated, self.returncode = True, -signal.SIGTERM

    def wait(self, timeout=None):
        return self.returncode

    def kill(self):
        self.terminate()


def test_a_killed_second_worker_stops_the_sweep_with_its_status(monkeypatch, capsys):
    """kill -9 of worker 1 while worker 0 trains: the parent must see it (it polled only until the
    first live worker), stop worker 0 and exit 137."""
    import nclib.runner as runner

    procs = [_FakeProc(None), _FakeProc(-signal.SIGKILL)]
    monkeypatch.setattr(runner.subprocess, "Popen", lambda *a, **kw: procs.pop(0) if procs else None)
    started = list(procs)
    monkeypatch.setattr(runner, "stop", lambda p, grace=0: None)
    args = types.SimpleNamespace(workers=2, scale="tiny", device="cpu", results="/nonexistent", runner="script",
                                 deterministic=False, claim_timeout=None)
    rc = runner._run_workers(args, ["margins_tpt"], {})
    assert rc == 137 and started[0].terminated
    assert "worker 1 failed" in capsys.readouterr().err


# -- command-line values -------------------------------------------------------------------------


@pytest.mark.parametrize("param, message", [
    ("backbones=[]", "must name at least one"), ("heads=[]", "must name at least one"),
    ('seeds_per_backbone={"mlp": -1}', "whole number ≥ 1"), ("epochs=-1", "whole number ≥ 0"),
    ("lr=0", "must be > 0"), ("batch_size=0", "whole number ≥ 1"),
])
def test_values_that_would_plan_nothing_are_refused_before_anything_runs(tmp_path, capsys, param, message):
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", str(tmp_path), "--param", param])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_record_price_needs_dry_run(tmp_path, capsys):
    assert main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", str(tmp_path),
                 "--record-price", str(tmp_path)]) == 2
    assert "--record-price goes with --dry-run" in capsys.readouterr().err


def test_a_record_of_a_newer_schema_is_kept_and_named(tmp_path):
    from nclib.records import NewerRecord, _canonical
    import hashlib

    store = RunStore(tmp_path)
    rid = _valid_record_file(store)
    rec = json.loads(store.path(rid).read_text())
    rec["schema"] = 99
    body = {k: v for k, v in rec.items() if k != "checksum"}
    rec["checksum"] = hashlib.sha256(_canonical(body).encode()).hexdigest()
    store.path(rid).write_text(json.dumps(rec))
    with pytest.raises(NewerRecord, match="newer nclib .*schema 99"):
        store.load(rid)
    assert store.path(rid).is_file() and not list(store.runs.glob("*.corrupt*"))


def test_a_line_cut_in_trainings_jsonl_is_not_glued_to_the_next(tmp_path):
    store = RunStore(tmp_path)
    (tmp_path / "trainings.jsonl").write_text('{"run_id": "a"}\n{"run_id": "b", "ho')  # a killed writer
    store.log_training("c", wall_time_s=1.0)
    lines = (tmp_path / "trainings.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["run_id"] == "c"


def test_damaged_manifest_or_provenance_is_named_not_called_missing(tmp_path):
    RunStore(tmp_path)  # a results folder as a sweep leaves it
    (tmp_path / "manifest.json").write_text("{cut")
    (tmp_path / "provenance.json").write_text("[1, 2")
    s = folder_status(tmp_path)
    assert any("manifest.json is damaged" in p for p in s["problems"])
    assert any("provenance.json is damaged" in p for p in s["problems"])
    assert s["status"] == "damaged provenance" and not s["complete"]


def test_a_killed_cli_is_not_running_for_good(tmp_path):
    """kill -9 of a single CLI leaves provenance 'running'; status sees its process is gone."""
    store = RunStore(tmp_path)
    store.write_manifest(["x-0000000000"], {})
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "provenance.json").write_text(json.dumps({"status": "running", "host": socket.gethostname(),
                                                          "pid": dead.pid}))
    assert folder_status(tmp_path)["status"].startswith("interrupted (its process")


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", "", "x\\y", 3])
def test_a_claim_cannot_escape_its_folder(tmp_path, run_id):
    from nclib.claims import Claims

    claims = Claims(tmp_path / "claims")
    with pytest.raises(ValueError, match="run id"):
        claims.claim(run_id)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.lock").exists()


@pytest.mark.parametrize("damage", ["folder", "binary"])
def test_a_malformed_lock_is_a_stale_claim_not_a_crash(tmp_path, damage):
    from nclib.claims import Claims

    claims = Claims(tmp_path / "claims", timeout=1.0)
    lock = claims.path("run-1")
    lock.parent.mkdir(parents=True)
    if damage == "folder":
        lock.mkdir()
    else:
        lock.write_bytes(b"\xff\xfe\x00junk")
    h = claims.holder("run-1")
    assert h is not None and h.pid == 0 and h.token == ""


@pytest.mark.parametrize("results, message", [("", "empty path"), ("FILE", "a file is there")])
def test_results_paths_are_checked_before_anything_runs(tmp_path, capsys, results, message):
    if results == "FILE":
        results = str(tmp_path / "f")
        Path(results).write_text("x")
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", results])
    assert rc == 2 and message in capsys.readouterr().err


def test_a_read_only_results_folder_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as root every folder is writable
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", str(tmp_path / "r")])
    assert rc == 2 and "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("task, first", [("x", "0"), ("3", "five"), ("1", "4")])
def test_bad_slurm_variables_are_an_error_not_worker_0(tmp_path, capsys, monkeypatch, task, first):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", first)
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", str(tmp_path), "--workers", "1"])
    assert rc == 2 and "SLURM_ARRAY_TASK" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_resumed_stale_worker_does_not_overwrite_the_record_another_wrote(tmp_path, monkeypatch):
    """Worker A is stopped mid-run, B takes its claim over and records the run; A resumes and
    finishes: B's record stands (A's training is the same configuration, and is not written over it)."""
    import nclib.sweep
    from nclib.experiments import run_group
    from test_experiments import CFG, _build, _data, _specs

    store = RunStore(tmp_path)
    spec = _specs(1)[0]
    real = nclib.sweep.train_sweep

    def b_records_meanwhile(models, *args, **kwargs):
        out = real(models, *args, **kwargs)
        other = RunStore(tmp_path)  # worker B, which took the claim over and finished first
        from nclib.records import make_record, provenance

        other.save(make_record(spec.run_id, spec.name, spec.params, out[0], {**provenance("cpu"), "who": "B"}, 1.0))
        return out

    monkeypatch.setattr(nclib.sweep, "train_sweep", b_records_meanwhile)
    run_group([spec], _build, _data(), _data(1), CFG, store=store)
    assert store.load(spec.run_id)["provenance"]["who"] == "B"


def test_a_truncated_records_csv_is_not_complete(tmp_path):
    store = RunStore(tmp_path)
    rid = _valid_record_file(store)
    store.write_manifest([rid], {})
    (tmp_path / "provenance.json").write_text(json.dumps({"status": "complete"}))
    store.write_csv()
    assert folder_status(tmp_path)["complete"]
    text = (tmp_path / "records.csv").read_text()
    (tmp_path / "records.csv").write_text(text[: len(text) // 2 + 3])
    s = folder_status(tmp_path)
    assert not s["complete"] and any("records.csv" in p for p in s["problems"])


# -- the library ---------------------------------------------------------------------------------


def test_nan_and_meta_tensors_get_named_errors_not_raw_ones():
    import torch

    from nclib.etf import simplex_etf
    from nclib.metrics import nc_metrics
    from nclib.sweep import rotation_between

    M = simplex_etf(3, 4, generator=0)
    with pytest.raises(ValueError, match="rotation_between: B .*(NaN|finite)"):
        rotation_between(M, torch.full_like(M, float("nan")))
    Z = torch.empty(6, 4, device="meta")
    with pytest.raises(ValueError, match="meta device"):
        nc_metrics(Z, torch.tensor([0, 1, 2, 0, 1, 2]), M)


def test_a_killed_writers_checkpoint_temporary_is_removed_at_once(tmp_path):
    """A checkpoint temporary of a dead writer on this host is cleaned when the store opens (it
    lingered for the stale age: its name did not say who wrote it)."""
    import socket
    import subprocess
    import sys

    from nclib.files import atomic_torch_save as _atomic_torch_save

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "checkpoints").mkdir()
    _atomic_torch_save({"x": 1}, tmp_path / "checkpoints" / "group-a.pt")
    host = __import__("re").sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())
    left = tmp_path / "checkpoints" / f".group-b.pt.w-{host}-{dead.pid}.ckpt.tmp"
    left.write_bytes(b"partial")
    RunStore(tmp_path)
    assert not left.exists() and (tmp_path / "checkpoints" / "group-a.pt").is_file()
