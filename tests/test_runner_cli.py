"""The experiment CLI: errors before anything runs, incomplete runs reported as such, children that
never outlive it (SIGTERM, SIGKILL), and the number of local workers it starts (two workers
splitting chapter 7's runs: test_experiments.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nclib.experiments import main
from nclib.records import repo_root
from nclib.runner import folder_status

ROOT = repo_root()
# Chapter 7 at tiny scale with a fixed budget (no training until fit): quick and predictable.
FIXED = ["--param", "fit_until=0", "--param", "terminal_epochs=0"]


def _cli(*args):
    return [sys.executable, "-m", "nclib.experiments", *args]


@pytest.mark.parametrize("args, message", [
    (["--param", "epoch=5"], "error: --param epoch: margins_tpt has no parameter 'epoch'; valid keys: "),
    (["--param", "backbones=[mlp]"], "error: --param backbones: expected a list"),
    (["--param", 'backbones=["resnet"]'], "error: --param backbones: unknown name 'resnet'"),
    (["--param", "results_dir=/tmp/x"], "error: --param results_dir: set by the runner; use --results instead"),
    (["--workers", "0"], "error: --workers: must be a whole number ≥ 1"),
    (["--device", "tpu"], "error: device 'tpu'"),
])
def test_bad_arguments_stop_the_cli_before_anything_runs(tmp_path, capsys, args, message):
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_a_dataset_that_cannot_be_loaded_is_an_error_not_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NCLIB_CIFAR", raising=False)
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--results", str(tmp_path), "--workers", "1",
               "--param", f"data_root={tmp_path / 'no-cifar'}", "--param", 'datasets=["fashion_mnist", "cifar10"]'])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "cifar10 cannot be loaded" in err and "NCLIB_CIFAR" in err and "datasets=" in err
    assert not list(tmp_path.iterdir())


def test_a_dataset_skipped_by_the_chapter_makes_the_run_incomplete(tmp_path, capsys, monkeypatch):
    """The CIFAR folder exists but holds no files: the check before the run passes, the chapter
    skips the dataset; the run must end as incomplete, and status must say so."""
    cifar = tmp_path / "cifar"
    (cifar / "cifar-10-batches-py").mkdir(parents=True)
    monkeypatch.setenv("NCLIB_CIFAR", str(cifar))
    results = tmp_path / "results"
    rc = main(["run", "--experiment", "margins_tpt", "--scale", "tiny", "--device", "cpu", "--runner", "script",
               "--workers", "1", "--results", str(results), "--param", 'datasets=["fashion_mnist", "cifar10"]',
               "--param", "epochs=1", *FIXED])
    err = capsys.readouterr().err
    assert rc == 1 and "error: margins_tpt at tiny scale is incomplete: CIFAR-10" in err, err[-2000:]
    folder = results / "margins_tpt" / "tiny"
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["status"] == "incomplete" and "CIFAR-10" in prov["problems"][0]
    s = folder_status(folder)
    assert s["valid"] == s["planned"] == 2 and not s["complete"]  # the Fashion-MNIST runs are there
    assert main(["status", "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "incomplete (provenance: incomplete)" in out and "CIFAR-10" in out


def _descendants_running(proc, results: Path, n_kernels: int, runner: str, timeout=120):
    """Wait until the chapter trains (a claim exists) in ``n_kernels`` kernels or scripts; return
    every descendant process of ``proc``."""
    deadline = time.monotonic() + timeout
    marker = "ipykernel_launcher" if runner == "papermill" else "nclib-script-"
    while True:
        assert proc.poll() is None, f"the CLI ended early: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "no training started"
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
            workers = [k for k in kids if any(marker in part for part in k.cmdline())]
        except psutil.Error:
            workers, kids = [], []
        if len(workers) >= n_kernels and list(results.rglob("claims/*.lock")):
            return kids
        time.sleep(0.1)


# A killed CLI with one worker runs papermill in its own process; the kernel's tie to its parent
# is the same one that ends the kernels of killed workers, so the 2-worker case covers it.
@pytest.mark.parametrize("runner, sig, workers", [
    ("papermill", signal.SIGTERM, 1),
    ("script", signal.SIGKILL, 1),
    ("papermill", signal.SIGKILL, 2),
])
def test_killing_the_cli_stops_every_child(tmp_path, runner, sig, workers):
    cmd = _cli("run", "--experiment", "margins_tpt", "--scale", "tiny", "--device", "cpu", "--results",
               str(tmp_path), "--runner", runner, "--workers", str(workers), "--param", "epochs=100000", *FIXED)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    kids = []
    try:
        kids = _descendants_running(proc, tmp_path, workers, runner)
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(kids, timeout=10)
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
    finally:
        for p in kids:
            try:
                p.kill()
            except psutil.Error:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert rc == -sig if sig == signal.SIGKILL else rc == 128 + sig
    if sig == signal.SIGTERM:  # a clean stop: the provenance says so, the notebook so far is kept
        folder = tmp_path / "margins_tpt" / "tiny"
        assert json.loads((folder / "provenance.json").read_text())["status"] == "interrupted"
        assert (folder / "notebook.interrupted.ipynb").is_file()


def test_workers_auto_follows_the_bench_record_of_this_cpu(tmp_path, capsys):
    from nclib.records import cpu_model
    from nclib.runner import _cores, _workers_for
    from nclib.scheme import choose_workers

    # unmeasured here: one worker per core, and the reason is printed
    assert _workers_for("auto", "cpu", ["mlp"], tmp_path) == _cores()
    assert "--workers auto" in capsys.readouterr().out
    record = {"size": "cpu", "sweep_processes": _cores(), "sweep": {"mlp": {"processes_steady_ratio": 0.7}},
              "provenance": {"cpu_model": cpu_model(), "time_utc": "2026-12-05T00:00:00+00:00"}}
    (tmp_path / "cpu_speed-cpu-this.json").write_text(json.dumps(record))
    assert _workers_for("auto", "cpu", ["mlp"], tmp_path) == choose_workers(_cores(), ["mlp"], tmp_path).workers
    if _cores() > 1:  # measured slower here: one process with every thread
        assert _workers_for("auto", "cpu", ["mlp"], tmp_path) == 1
    assert _workers_for("3", "cpu") == 3
    for bad in ("0", "-1", "2.5", "two"):
        with pytest.raises(ValueError, match="whole number ≥ 1 or auto"):
            _workers_for(bad, "cpu")
