"""nclib.claims and the worker mechanism of run_group: exclusive claims, heartbeat, takeover of
stale claims (timeout, dead pid), and real worker processes sharing one results folder."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nclib.claims import Claims
from nclib.files import pid_alive
from nclib.records import repo_root

ROOT = repo_root()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _fake_lock(claims: Claims, run_id: str, host: str, pid: int, age_s: float = 0.0, token="t0"):
    claims.folder.mkdir(parents=True, exist_ok=True)
    p = claims.path(run_id)
    p.write_text(json.dumps({"host": host, "pid": pid, "token": token, "started_utc": "?"}))
    if age_s:
        t = time.time() - age_s
        os.utime(p, (t, t))
    return p


def test_claims_are_exclusive_and_released(tmp_path):
    a, b = Claims(tmp_path, timeout=5), Claims(tmp_path, timeout=5)
    assert a.claim("r1") and a.claim("r1")  # claiming again what one holds is a no-op
    assert not b.claim("r1")
    h = b.holder("r1")
    assert h.host == socket.gethostname() and h.pid == os.getpid() and h.age_s < 5
    assert b.claim("r2") and not a.claim("r2")
    a.release("r1")
    assert not a.path("r1").exists() and b.claim("r1")
    b.release_all()
    assert a.held() == [] and b.held() == [] and not list(tmp_path.glob("*.lock"))


def test_heartbeat_keeps_a_live_claim_fresh(tmp_path):
    a, b = Claims(tmp_path, timeout=0.8), Claims(tmp_path, timeout=0.8)
    assert a.claim("r")
    time.sleep(2.0)  # 2.5 timeouts: only the heartbeat keeps it
    assert b.holder("r").age_s < 0.8 and not b.claim("r")
    a.release("r")


def test_silent_claim_of_another_host_is_taken_over_after_the_timeout(tmp_path):
    b = Claims(tmp_path, timeout=2)
    _fake_lock(b, "r", "elsewhere", 12345, age_s=1.0)
    assert not b.claim("r")  # heartbeat 1 s old: alive
    os.utime(b.path("r"), (time.time() - 3, time.time() - 3))
    assert b.claim("r")
    assert b.holder("r").pid == os.getpid()
    assert (tmp_path / "r.lock.stale-t0").is_file()  # the old claim, kept for inspection
    assert not list(tmp_path.glob("*.takeover-*"))
    b.release("r")


def test_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    b = Claims(tmp_path, timeout=60)
    pid = _dead_pid()
    assert not pid_alive(pid) and pid_alive(os.getpid())
    _fake_lock(b, "r", socket.gethostname(), pid)
    assert b.claim("r")
    b.release("r")


def test_only_one_taker_wins_a_stale_claim(tmp_path):
    boards = [Claims(tmp_path, timeout=1) for _ in range(8)]
    for trial in range(5):
        run = f"r{trial}"
        _fake_lock(boards[0], run, "elsewhere", 1, age_s=10, token=f"t{trial}")
        barrier, won = threading.Barrier(len(boards)), []

        def take(board):
            barrier.wait()
            if board.claim(run):
                won.append(board)

        threads = [threading.Thread(target=take, args=(b,)) for b in boards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, (trial, len(won))
        assert won[0].holder(run).token == won[0]._held[run]
        won[0].release(run)


def test_lost_claim_is_noticed_by_its_heartbeat(tmp_path, capsys):
    a = Claims(tmp_path, timeout=0.8)
    assert a.claim("r")
    a.path("r").write_text(json.dumps({"host": "x", "pid": 1, "token": "other", "started_utc": "?"}))
    time.sleep(0.6)
    assert a.held() == []
    assert "lost the claim on r" in capsys.readouterr().err


def test_bad_timeouts_are_rejected(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="timeout"):
        Claims(tmp_path, timeout=0)
    from nclib.records import RunStore

    monkeypatch.setenv("NCLIB_CLAIM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="NCLIB_CLAIM_TIMEOUT"):
        RunStore(tmp_path)


# ----------------------------------------------------------------------------------------------
# run_group with runs held by someone else (in this process, for speed)
# ----------------------------------------------------------------------------------------------


def _setup():
    import torch

    from nclib.data import TensorDataset
    from nclib.records import RunSpec
    from nclib.models import mlp
    from nclib.sweep import equivalent_classifiers, sweep_models
    from nclib.train import TrainConfig

    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(6)
    data = TensorDataset(torch.randn(24, 1, 6, 6, generator=g) + y[:, None, None, None], y, list("abcd"))
    _, heads = equivalent_classifiers(4, 5, 2, 0, seed=0)
    specs = [RunSpec(f"h{i}", {"i": i}, h.M) for i, h in enumerate(heads)]
    build = lambda sp: sweep_models(lambda: mlp((1, 6, 6), 5, width=8), [s.head for s in sp], seed=0)
    return specs, build, data, TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=0)


def test_runs_held_by_a_live_worker_are_awaited_when_first_read(tmp_path):
    from nclib.experiments import run_group, wait_for_others
    from nclib.records import RunStore
    from nclib.history import History

    specs, build, data, cfg = _setup()
    ours, theirs = RunStore(tmp_path, claim_timeout=2), RunStore(tmp_path, claim_timeout=2)
    held = specs[1]
    assert theirs.claims.claim(held.run_id)  # "another worker" holds run 1
    out = run_group(specs, build, data, data, cfg, store=ours, batched=True)
    assert ours.load(specs[0].run_id) and ours.load(specs[2].run_id)  # the free runs were trained and recorded
    assert ours.load(held.run_id) is None and isinstance(out[held.run_id], History)

    def other_worker():
        time.sleep(0.5)
        run_group([held], build, data, data, cfg, store=theirs, batched=True)  # trains its claim, records, releases

    t = threading.Thread(target=other_worker)
    t.start()
    t0 = time.monotonic()
    records = out[held.run_id].records  # waits here, for the other worker's record
    t.join()
    assert time.monotonic() - t0 >= 0.3 and records == theirs.load(held.run_id)["history"]["records"]
    assert out[held.run_id].terminal_after == History.from_dict(theirs.load(held.run_id)["history"]).terminal_after
    trained = [json.loads(line) for line in (tmp_path / "trainings.jsonl").read_text().splitlines()]
    assert sorted(t["run_id"] for t in trained) == sorted(s.run_id for s in specs)  # each once
    wait_for_others()  # nothing left to wait for


def test_an_awaited_run_whose_claim_goes_stale_is_trained_by_the_waiter(tmp_path, capsys):
    from nclib.experiments import run_group, wait_for_others
    from nclib.records import RunStore

    specs, build, data, cfg = _setup()
    store = RunStore(tmp_path, claim_timeout=1)
    _fake_lock(store.claims, specs[0].run_id, "elsewhere", 4242)  # a fresh claim, then silence
    out = run_group(specs, build, data, data, cfg, store=store, batched=True)
    assert store.load(specs[0].run_id) is None
    wait_for_others()  # the claim goes stale after 1 s: the waiter takes it over and trains the run
    assert store.load(specs[0].run_id) is not None and out[specs[0].run_id].records
    assert "taking over" in capsys.readouterr().err
    assert not list(store.claims.folder.glob("*.lock")) and not list(store.checkpoints.iterdir())


# ----------------------------------------------------------------------------------------------
# Worker processes running run_group on one folder
# ----------------------------------------------------------------------------------------------

WORKER = r'''
import json, sys, time
import torch
import nclib.sweep
from nclib.data import TensorDataset
from nclib.experiments import run_group, wait_for_others
from nclib.records import RunSpec, RunStore
from nclib.models import mlp
from nclib.sweep import equivalent_classifiers, sweep_models
from nclib.train import TrainConfig

root, timeout, delay, n_ready = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
real = nclib.sweep.train_sweep

def slow(models, *args, **kwargs):  # a long training, so that workers overlap (and can be killed in it)
    time.sleep(delay)
    return real(models, *args, **kwargs)

nclib.sweep.train_sweep = slow
g = torch.Generator().manual_seed(0)
y = torch.arange(4).repeat(6)
data = TensorDataset(torch.randn(24, 1, 6, 6, generator=g) + y[:, None, None, None], y, list("abcd"))
_, heads = equivalent_classifiers(4, 5, 3, 0, seed=0)
store = RunStore(root, claim_timeout=timeout)
cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=0)
build = lambda specs: sweep_models(lambda: mlp((1, 6, 6), 5, width=8), [s.head for s in specs], seed=0)
ready = store.root / "ready"
ready.mkdir(exist_ok=True)
(ready / str(__import__("os").getpid())).touch()
while len(list(ready.iterdir())) < n_ready:  # start together
    time.sleep(0.05)
out = {}
for group in range(3):
    specs = [RunSpec(f"g{group}-h{i}", {"group": group, "i": i}, h.M) for i, h in enumerate(heads)]
    out.update(run_group(specs, build, data, data, cfg, store=store, batched=True))
wait_for_others()
print(json.dumps({k: len(h.records) for k, h in out.items()}))
'''


def _worker(tmp_path, root, timeout=2.0, delay=0.0, n_ready=1):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(root), str(timeout), str(delay), str(n_ready)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trainings(root: Path) -> list[dict]:
    path = root / "trainings.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def test_two_workers_train_every_run_exactly_once(tmp_path):
    root = tmp_path / "store"
    procs = [_worker(tmp_path, root, delay=1.5, n_ready=2) for _ in range(2)]
    results = [_finish(p)[0] for p in procs]
    assert results[0] == results[1] and len(results[0]) == 12  # both saw every run, alike
    trained = _trainings(root)
    ids = [t["run_id"] for t in trained]
    assert sorted(ids) == sorted(results[0]) and len(set(ids)) == 12  # every run once, none twice
    assert {t["pid"] for t in trained} == {p.pid for p in procs}  # and both workers trained
    recs = [json.loads(p.read_text()) for p in (root / "runs").glob("*.json")]
    assert len(recs) == 12 and {r["extra"]["trained_by"]["pid"] for r in recs} == {p.pid for p in procs}
    assert not list((root / "claims").glob("*.lock")) and not list((root / "checkpoints").iterdir())


def test_claim_of_a_killed_worker_is_taken_over(tmp_path):
    """SIGKILL mid-training: the dead pid on this host frees the claims at once."""
    root = tmp_path / "store"
    a = _worker(tmp_path, root, delay=60)
    try:
        deadline = time.monotonic() + 60
        while len(list((root / "claims").glob("*.lock"))) < 4:
            assert a.poll() is None and time.monotonic() < deadline, a.stderr.read() if a.poll() is not None else ""
            time.sleep(0.05)
    finally:
        a.kill()
        a.wait()
    t0 = time.monotonic()
    result, _ = _finish(_worker(tmp_path, root, timeout=300))  # a long timeout: only the dead pid frees them
    assert len(result) == 12 and time.monotonic() - t0 < 240
    ids = [t["run_id"] for t in _trainings(root)]
    assert len(ids) == len(set(ids)) == 12


def test_claim_of_a_silent_worker_is_taken_over_after_the_heartbeat_timeout(tmp_path):
    """A stopped worker (alive, but its heartbeat silent) loses its claims after the timeout."""
    root = tmp_path / "store"
    a = _worker(tmp_path, root, delay=60)
    try:
        deadline = time.monotonic() + 60
        while len(list((root / "claims").glob("*.lock"))) < 4:
            assert a.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(a.pid, signal.SIGSTOP)
        b = _worker(tmp_path, root, timeout=2.0)
        result, err = _finish(b)
    finally:
        a.kill()
        a.wait()
    assert len(result) == 12
    trained = _trainings(root)
    assert len(trained) == 12 and {t["pid"] for t in trained} == {b.pid}
    assert len(list((root / "claims").glob("*.lock.stale-*"))) == 4  # the four claims of the stopped worker
    assert "taking over" in err
