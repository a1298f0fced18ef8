"""nclib.experiments: atomic records, corruption, resume, papermill runs and a kill mid-sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import psutil
import pytest
import torch
from papermill.translators import PythonTranslator

import nclib.sweep
from nclib.data import DatasetNotFoundError, TensorDataset
from nclib.experiments import (
    EXPERIMENTS,
    PRESETS,
    RunSpec,
    RunStore,
    Table,
    atomic_write_text,
    execute,
    load_dataset,
    load_results,
    main,
    make_record,
    repo_root,
    run_group,
    run_id_for,
    to_jsonable,
    validate_record,
)
from nclib.models import mlp
from nclib.sweep import equivalent_classifiers, sweep_models
from nclib.train import TrainConfig

ROOT = repo_root()


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat(6)
    return TensorDataset(torch.randn(24, 1, 6, 6, generator=g) + y[:, None, None, None], y, list("abcd"))


def _specs(n=3):
    _, heads = equivalent_classifiers(4, 5, n - 1, 0, seed=0)
    return [RunSpec(f"run{i}", {"i": i, "note": "test"}, h.M) for i, h in enumerate(heads)]


def _build(specs):
    return sweep_models(lambda: mlp((1, 6, 6), 5, width=8), [s.head for s in specs], seed=0)


CFG = TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=0)


def test_json_values_and_run_ids():
    assert to_jsonable({"a": float("nan"), "b": torch.tensor([1.0, float("inf")]), "c": (1, 2)}) == {
        "a": None, "b": [1.0, None], "c": [1, 2]}
    with pytest.raises(ValueError):
        to_jsonable(object())
    assert run_id_for("x", {"a": 1}) == run_id_for("x", {"a": 1})
    assert run_id_for("x", {"a": 1}) != run_id_for("x", {"a": 2})
    with pytest.raises(ValueError):
        run_id_for("a/b", {})


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]  # no temporary left behind


def test_record_checksum_and_corruption(tmp_path):
    store = RunStore(tmp_path)
    hist = run_group(_specs(1), _build, _data(), _data(1), CFG)
    spec = _specs(1)[0]
    rec = make_record(spec.run_id, spec.name, spec.params, hist[spec.run_id], {"device": "cpu"}, 1.0)
    store.save(rec)
    assert store.load(spec.run_id) == json.loads(store.path(spec.run_id).read_text())
    tampered = json.loads(json.dumps(rec))
    tampered["history"]["records"][1]["test_accuracy"] = 1.0
    with pytest.raises(ValueError, match="checksum"):
        validate_record(tampered)
    text = store.path(spec.run_id).read_text()
    store.path(spec.run_id).write_text(text[: len(text) // 2])  # a truncated file
    assert store.load(spec.run_id) is None
    assert store.path(spec.run_id).with_name(f"{spec.run_id}.json.corrupt").is_file()


def test_run_group_skips_finished_and_redoes_corrupt(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    calls = []
    real = nclib.sweep.train_sweep

    def counting(models, *args, **kwargs):
        calls.append(len(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(nclib.sweep, "train_sweep", counting)
    specs = _specs(3)
    first = run_group(specs, _build, _data(), _data(1), CFG, store=store)
    assert calls == [3] and len(list(store.runs.glob("*.json"))) == 3
    assert not list(store.checkpoints.glob("*"))  # the group's checkpoint is removed once recorded
    again = run_group(specs, _build, _data(), _data(1), CFG, store=store)
    assert calls == [3]  # nothing retrained
    for s in specs:
        assert again[s.run_id].records == [{k: v for k, v in r.items()} for r in first[s.run_id].records]
    store.path(specs[1].run_id).write_text("{not json")
    third = run_group(specs, _build, _data(), _data(1), CFG, store=store)
    assert calls == [3, 1]  # only the corrupt run
    # The retrained run repeats the original (same seed, same models; a subset trains alike).
    for a, b in zip(third[specs[1].run_id].records, first[specs[1].run_id].records):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-6)
    store.write_csv()
    lines = (tmp_path / "records.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * (CFG.epochs + 1) and lines[0].startswith("run_id,name")


def test_missing_cifar_root_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NCLIB_CIFAR", raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match=str(missing)):
        load_dataset("cifar10", data_root=str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", data_root=str(empty))
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")


def test_execute_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown experiment"):
        execute("figure9", "tiny")
    with pytest.raises(ValueError, match="unknown scale"):
        execute("margins_tpt", "huge")


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_presets_name_real_notebook_parameters(experiment):
    nb = jupytext.read(ROOT / EXPERIMENTS[experiment])
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {p.name for p in PythonTranslator.inspect(cell)}
    assert {"scale", "device", "results_dir", "deterministic"} <= names
    for scale, overrides in PRESETS[experiment].items():
        assert set(overrides) <= names, (scale, set(overrides) - names)


def _check_folder(folder: Path, experiment: str, output: str = "notebook.ipynb"):
    manifest = json.loads((folder / "manifest.json").read_text())
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["status"] == "complete" and prov["torch"] == torch.__version__ and prov["wall_time_s"] > 0
    assert prov["parameters"]["scale"] == "tiny"
    assert (folder / output).is_file()
    for run_id in manifest["run_ids"]:
        rec = validate_record(json.loads((folder / "runs" / f"{run_id}.json").read_text()))
        assert rec["params"]["experiment"] == experiment
        assert rec["provenance"]["device"] == "cpu"
        assert len(rec["history"]["records"]) == rec["params"]["config"]["epochs"] + 1
    assert (folder / "records.csv").is_file()
    res = load_results(experiment, "tiny", folder.parent.parent)
    assert res is not None and len(res.records) == len(manifest["run_ids"])
    assert dict(res.provenance_rows())["status"] == "complete"
    runs = res.runs()
    assert [p for p, _ in runs] == [r["params"] for r in res.records]
    assert all(len(h.records) == p["config"]["epochs"] + 1 for p, h in runs)


def _recorded_section_ran(folder: Path, n_runs: int):
    """The chapter's last section found the records (read from the same folder) and showed them."""
    text = (folder / "notebook.ipynb").read_text()
    assert f"{n_runs} tiny-scale runs are recorded" in text
    assert "recorded" in text and "provenance" in text


def test_papermill_run_of_chapter_7_at_tiny_scale(tmp_path, capsys):
    # The chapter also reads back what it recorded, which exercises its "recorded runs" section.
    folder = execute("margins_tpt", "tiny", "cpu", tmp_path, progress=False,
                     parameters={"recorded_scale": "tiny", "results_root": str(tmp_path)})
    _check_folder(folder, "margins_tpt")
    _recorded_section_ran(folder, 2)
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "margins_tpt" in capsys.readouterr().out


def test_script_runner_for_machines_without_papermill(tmp_path):
    folder = execute("margins_tpt", "tiny", "cpu", tmp_path, runner="script", parameters={"epochs": 2})
    _check_folder(folder, "margins_tpt", output="notebook.log")
    assert json.loads((folder / "provenance.json").read_text())["runner"] == "script"
    assert "first epoch at 100% train accuracy" in (folder / "notebook.log").read_text()


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    """Chapter 8 at tiny scale under the CLI, killed (SIGKILL, kernel included) as soon as the first
    record exists; the rerun completes the sweep and leaves the finished records untouched. The
    rerun is also the papermill run of chapter 8 at tiny scale."""
    folder = tmp_path / "non_conservative" / "tiny"
    cmd = [sys.executable, "-m", "nclib.experiments", "run", "--experiment", "non_conservative", "--scale", "tiny",
           "--device", "cpu", "--results", str(tmp_path), "--param", "epochs=30"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((folder / "runs").glob("*.json")):
            assert proc.poll() is None, "the run ended before writing a record"
            assert time.monotonic() < deadline, "no record after 120 s"
            time.sleep(0.02)
        family = [proc, *psutil.Process(proc.pid).children(recursive=True)]
        for p in family:  # the CLI and the papermill kernel it started, by pid
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        psutil.wait_procs([psutil.Process(p.pid) for p in family if psutil.pid_exists(p.pid)], timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    planned = json.loads((folder / "manifest.json").read_text())["run_ids"]
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (folder / "runs").glob("*.json")}
    assert 1 <= len(finished) < len(planned), (len(finished), len(planned))
    assert json.loads((folder / "provenance.json").read_text())["status"] == "running"  # killed, not finished

    execute("non_conservative", "tiny", "cpu", tmp_path, progress=False,
            parameters={"epochs": 30, "recorded_scale": "tiny", "results_root": str(tmp_path)})
    _check_folder(folder, "non_conservative")
    _recorded_section_ran(folder, len(planned))
    for name, (mtime, content) in finished.items():
        p = folder / "runs" / name
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == content, f"{name} was redone"
    assert len(list((folder / "runs").glob("*.json"))) == len(planned)
    assert not list(folder.rglob(".*.tmp"))


def test_table_renders_html_and_text():
    t = Table(["a", "bb"], [[1, "x<y"], [22, 3.5]], caption="cap")
    html = t._repr_html_()
    assert "<caption>cap</caption>" in html and "x&lt;y" in html and html.count("<tr>") == 3
    assert repr(t).splitlines() == ["cap", "a   bb", "--  ---", "1   x<y", "22  3.5"]
    with pytest.raises(ValueError):
        Table(["a"], [[1, 2]])
