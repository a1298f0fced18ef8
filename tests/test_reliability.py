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

from nclib.records import RunStore, UnreadableRecord, atomic_write_text
from nclib.runner import main, summarize


def _valid_record_file(store, run_id="run-0000000000"):
    """A valid record written through the store (a tiny training is not needed: make_record)."""
    from nclib.records import make_record, provenance
    from nclib.train import History

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
    s = summarize(tmp_path)
    assert s["unreadable"] and rid in s["unreadable"] and not s["corrupt"] and not s["complete"]


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
