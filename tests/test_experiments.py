"""nclib.experiments: atomic records, corruption (also of the schema), resume, checkpoints, parameter
checks, status against the manifest, papermill runs and a kill mid-sweep."""

import json
import os
import re
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
from nclib.collapse import collapse_status
from nclib.history import History
from nclib.datasets import DatasetNotFoundError
from nclib.data import TensorDataset
from nclib.experiments import experiment_setup, load_dataset, load_results, main, run_group
from nclib.files import atomic_write_text, to_jsonable
from nclib.presets import EXPERIMENTS, PRESETS, SCALES, ParameterError, validate_parameters
from nclib.records import RunSpec, RunStore, device_model, cpu_model, make_record, provenance, repo_root, run_id_for, validate_record
from nclib.runner import execute
from nclib.tables import Table
from nclib.runner import folder_status
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


def test_a_temporary_of_a_writer_killed_mid_write_is_removed_on_resume(tmp_path):
    """A worker killed while writing a record leaves its temporary; the next store on the folder
    removes it at once when its writer (named in the file) is a dead process of this host, and
    leaves a live writer's, an older-named one and another host's alone until they are stale."""
    from nclib.files import HOST as _HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = tmp_path / "runs"
    runs.mkdir()
    killed = runs / f".a.json.w-{_HOST}-{dead.pid}.k1ll3d_.tmp"
    live = runs / f".b.json.w-{_HOST}-{os.getpid()}.l1ve__.tmp"
    old_name = runs / ".c.json.0ldn4me_.tmp"
    other_host = runs / f".d.json.w-{_HOST}x-{dead.pid}.0th3r_.tmp"
    for p in (killed, live, old_name, other_host):
        p.write_text("{")
    RunStore(tmp_path)
    assert not killed.exists() and live.exists() and old_name.exists() and other_host.exists()
    # an atomic write names its writer in the temporary, as the clean-up reads it
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        real_replace(src, dst)

    try:
        os.replace = spy
        atomic_write_text(tmp_path / "e.json", "{}")
    finally:
        os.replace = real_replace
    assert seen and seen[0].startswith(f".e.json.w-{_HOST}-{os.getpid()}.") and seen[0].endswith(".tmp")


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
    first = run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True)
    assert calls == [3] and len(list(store.runs.glob("*.json"))) == 3
    assert not list(store.checkpoints.glob("*"))  # the group's checkpoint is removed once recorded
    again = run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True)
    assert calls == [3]  # nothing retrained
    for s in specs:
        assert again[s.run_id].records == [{k: v for k, v in r.items()} for r in first[s.run_id].records]
    store.path(specs[1].run_id).write_text("{not json")
    third = run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True)
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


def test_load_datasets_skips_a_missing_one_and_refuses_to_run_on_none(tmp_path, monkeypatch, capsys):
    from nclib import experiments

    def fake(name, **kw):
        if name == "cifar10":
            raise DatasetNotFoundError("cifar10: not here")
        return ("train", "test")

    monkeypatch.setattr(experiments, "load_dataset", fake)
    assert experiments.load_datasets(["fashion_mnist", "cifar10"]) == {"fashion_mnist": ("train", "test")}
    assert "skipping cifar10" in capsys.readouterr().out
    with pytest.raises(DatasetNotFoundError, match="nothing to run:\ncifar10: cifar10: not here"):
        experiments.load_datasets(["cifar10"])
    with pytest.raises(ValueError, match="datasets is empty"):
        experiments.load_datasets([])


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


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_preset_passes_the_parameter_checks(experiment, scale):
    validate_parameters(experiment, PRESETS[experiment][scale], origin="preset")


@pytest.mark.parametrize("override, message", [
    ({"epoch": 50}, r"--param epoch: margins_tpt has no parameter 'epoch'; valid keys: .*epochs"),
    ({"backbones": "[mlp]"}, r"--param backbones: expected a list .* got a string '\[mlp\]' \(did the shell strip"),
    ({"epochs": 2.5}, r"--param epochs: expected an int like the default \d+, got a float 2.5"),
    ({"amp": 1}, r"--param amp: expected a bool"),
    ({"lr": "fast"}, r"--param lr: expected a float"),
    ({"backbones": ["mlp", "resnet50"]}, r"--param backbones: unknown name 'resnet50'; choose from \['mlp'"),
    ({"datasets": ["mnist"]}, r"--param datasets: unknown name 'mnist'"),
    ({"heads": ["svm"]}, r"--param heads: unknown name 'svm'; choose from \['etf', 'learnable'\]"),
    ({"widths": {"vgg": 3}}, r"--param widths: unknown name 'vgg'"),
])
def test_parameter_checks_name_key_expected_and_got(override, message):
    with pytest.raises(ParameterError, match=message):
        validate_parameters("margins_tpt", override)


def test_parameter_checks_accept_ints_for_floats_and_anything_for_none(monkeypatch):
    validate_parameters("margins_tpt", {"lr": 1, "epochs": 5, "backbones": ["resnet32"], "augment": "crop"})
    import nclib.presets

    monkeypatch.setattr(nclib.presets, "chapter_parameters", lambda e: {"cap": None, "lr": 0.1})
    validate_parameters("margins_tpt", {"cap": [1, 2], "lr": 3})


def _reseal(record: dict) -> dict:
    """The record with its checksum recomputed: what a buggy or foreign writer would leave."""
    import hashlib

    from nclib.records import _canonical

    body = {k: v for k, v in record.items() if k != "checksum"}
    return {**body, "checksum": hashlib.sha256(_canonical(body).encode()).hexdigest()}


@pytest.mark.parametrize("damage, message", [
    (lambda r: r.update(history="all fine"), "field 'history' must be a dict"),
    (lambda r: r["history"].update(records=[1, 2, 3]), "epoch entry 0 must be an object"),
    (lambda r: r.update(params="lr=0.1"), "field 'params' must be a dict"),
    (lambda r: r["history"]["records"][1].update(train_loss="low"), r"non-numeric values for \['train_loss'\]"),
    (lambda r: r["history"]["records"][0].update(epoch=True), "must be increasing whole epochs from 0"),
    (lambda r: r["history"]["records"][1].update(epoch=0), "must be increasing whole epochs from 0"),
    (lambda r: r.update(wall_time_s="1 h"), "wall_time_s"),
    (lambda r: r["history"].update(terminal_epoch="soon"), "terminal_epoch"),
    (lambda r: r.update(provenance=None), "field 'provenance' must be a dict"),
    (lambda r: r["params"].update(i=99), "does not match the record's name and parameters"),
])
def test_record_with_valid_checksum_but_wrong_schema_is_corrupt(tmp_path, damage, message):
    store = RunStore(tmp_path)
    specs = _specs(1)
    run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True)
    run_id = specs[0].run_id
    good = json.loads(store.path(run_id).read_text())
    bad = json.loads(json.dumps(good))
    damage(bad)
    bad = _reseal(bad)
    with pytest.raises(ValueError, match=message):
        validate_record(bad)
    store.path(run_id).write_text(json.dumps(bad))
    store.write_manifest([run_id], {})
    s = folder_status(tmp_path)  # status reads it without crashing, and calls it corrupt
    assert s["valid"] == 0 and run_id in s["corrupt"] and not s["complete"]
    assert store.load(run_id) is None and store.path(run_id).with_name(f"{run_id}.json.corrupt").is_file()
    again = run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True)  # and the run is redone
    assert again[run_id].records and store.load(run_id) is not None


def test_checkpoints_are_removed_once_recorded_whatever_their_suffix(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    specs = _specs(3)
    written = []
    real = nclib.sweep.train_sweep

    def spying(*args, **kwargs):
        out = real(*args, **kwargs)
        written.extend(sorted(p.name for p in store.checkpoints.iterdir()))
        return out

    monkeypatch.setattr(nclib.sweep, "train_sweep", spying)
    # chunks of two models: the trainer writes group-<key>.chunk0.pt and .chunk1.pt
    run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True, max_models=2, checkpoint_every=0)
    assert any(".chunk1." in n for n in written), written  # there were checkpoints to remove
    assert all(store.load(s.run_id) for s in specs)
    assert not list(store.checkpoints.iterdir())
    # a group left by a dead worker whose runs others have recorded since is pruned as well
    left = store.checkpoint_for([s.run_id for s in specs[:2]])
    left.write_bytes(b"state")
    left.with_name(left.stem + ".chunk0.pt").write_bytes(b"state")
    run_group(_specs(4)[3:], _build, _data(), _data(1), CFG, store=store, batched=True)
    assert not list(store.checkpoints.iterdir())


def test_status_counts_records_against_the_manifest(tmp_path, capsys):
    folder = tmp_path / "margins_tpt" / "tiny"
    store = RunStore(folder)
    specs = _specs(3)
    run_group(specs[:2], _build, _data(), _data(1), CFG, store=store, batched=True)
    store.write_manifest([s.run_id for s in specs], {"scale": "tiny"})
    atomic_write_text(folder / "provenance.json", json.dumps({"status": "complete"}))
    s = folder_status(folder)
    assert (s["planned"], s["valid"], s["missing"], s["complete"]) == (3, 2, [specs[2].run_id], False)
    assert main(["status", "--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "2/3 runs recorded, 1 missing" in out and "incomplete" in out
    run_group(specs, _build, _data(), _data(1), CFG, store=store, batched=True)
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "3/3 runs recorded  complete" in capsys.readouterr().out


def test_an_unloadable_dataset_is_noted_for_the_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLIB_RUN_TOKEN", "tok")
    experiment_setup("cpu", str(tmp_path))
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", data_root=str(tmp_path / "nowhere"))
    note = (tmp_path / "problems" / "tok.cifar10.txt").read_text()
    assert "cifar10" in note and "nowhere" in note
    experiment_setup("cpu", "")  # the book build: nothing is written


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
        assert rec["history"]["records"][-1]["epoch"] >= rec["params"]["config"]["epochs"]  # trained until fit
    assert (folder / "records.csv").is_file()
    res = load_results(experiment, "tiny", folder.parent.parent)
    assert res is not None and len(res.records) == len(manifest["run_ids"]) and res.missing == []
    rows = dict(res.provenance_rows())
    assert rows["status"] == "complete"
    # every invocation's time is in the records; the provenance holds only the last invocation's
    hours = sum(json.loads((folder / "runs" / f"{i}.json").read_text())["wall_time_s"] for i in manifest["run_ids"]) / 3600
    assert re.fullmatch(rf"{hours:.2f} worker-hours on CPU: [^,]+", rows["training time (sum over runs)"])
    assert "wall time of the last invocation" in rows
    # CPU time, which a paused worker does not spend, summed the same way
    extras = [json.loads((folder / "runs" / f"{i}.json").read_text())["extra"] for i in manifest["run_ids"]]
    cpu = sum(e["group_cpu_time_s"] / e["group_size"] for e in extras) / 3600
    assert rows["CPU time (sum over runs)"] == f"{cpu:.2f} CPU-hours"
    runs = res.runs()
    assert [p for p, _ in runs] == [r["params"] for r in res.records]
    assert all(h.records[-1]["epoch"] >= p["config"]["epochs"] for p, h in runs)
    assert folder_status(folder)["complete"]


def _recorded_section_ran(folder: Path, n_runs: int):
    """The chapter's last section found the records (read from the same folder) and showed them."""
    text = (folder / "notebook.ipynb").read_text()
    assert f"{n_runs} tiny-scale runs are recorded" in text
    assert "recorded" in text and "provenance" in text


def test_two_local_workers_run_chapter_7_under_papermill_and_chapter_10_reads_it(tmp_path, capsys, chapter_10):
    """Chapter 7 at tiny scale under the CLI with two local workers (papermill, one kernel each):
    every planned run trained once, one canonical notebook whose last section reads back the
    records, the dry run of the same command finds nothing left to train; then one run is lost and
    chapter 10 names it and decides no verdict on it."""
    cli = [sys.executable, "-m", "nclib.experiments", "run", "--experiment", "margins_tpt", "--scale", "tiny",
           "--results", str(tmp_path), "--workers", "2", "--param", "epochs=2", "--param", "fit_until=0",
           "--param", "terminal_epochs=0", "--param", 'recorded_scale="tiny"',
           "--param", f"results_root={json.dumps(str(tmp_path))}"]
    proc = subprocess.run(cli + ["--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "margins_tpt" / "tiny"
    _check_folder(folder, "margins_tpt")
    planned = json.loads((folder / "manifest.json").read_text())["run_ids"]
    trained = [json.loads(line)["run_id"] for line in (folder / "trainings.jsonl").read_text().splitlines()]
    assert sorted(trained) == sorted(planned)  # every planned run trained once, by one of the workers
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["worker"] == 0 and prov["parameters"]["cpu_threads"] >= 1
    assert (folder / "workers" / "1" / "notebook.ipynb").is_file()
    assert json.loads((folder / "workers" / "1" / "provenance.json").read_text())["status"] == "complete"
    assert not list((folder / "claims").glob("*.lock"))
    _recorded_section_ran(folder, len(planned))  # the canonical notebook read the records back
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "margins_tpt" in capsys.readouterr().out
    dry = subprocess.run(cli + ["--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert f"{len(planned)} planned runs, {len(planned)} recorded, 0 to train" in dry.stdout

    gone = planned[0]
    (folder / "runs" / f"{gone}.json").unlink()  # a run lost: the chapters must name it
    assert load_results("margins_tpt", "tiny", tmp_path).missing == [gone]
    # Chapter 10 renders what is recorded, names the missing run and decides no verdict on it.
    text = chapter_10(tmp_path)
    assert f"1 of 2 planned runs are recorded; missing: {gone}" in text
    assert "incomplete: 1 of 2 runs" in text and "nothing is recorded under results/non_conservative" in text


def test_script_runner_for_machines_without_papermill(tmp_path):
    folder = execute("margins_tpt", "tiny", "cpu", tmp_path, runner="script", parameters={"epochs": 2})
    _check_folder(folder, "margins_tpt", output="notebook.log")
    assert json.loads((folder / "provenance.json").read_text())["runner"] == "script"
    assert "first epoch at 100% train accuracy" in (folder / "notebook.log").read_text()


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, chapter_10):
    """Chapter 8 at tiny scale under the CLI, killed (SIGKILL, kernel included) as soon as the first
    record exists; the rerun completes the sweep and leaves the finished records untouched. The
    rerun is also the papermill run of chapter 8 at tiny scale."""
    folder = tmp_path / "non_conservative" / "tiny"
    cmd = [sys.executable, "-m", "nclib.experiments", "run", "--experiment", "non_conservative", "--scale", "tiny",
           "--device", "cpu", "--workers", "1", "--results", str(tmp_path), "--param", "epochs=30"]
    log = open(tmp_path / "cli.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((folder / "runs").glob("*.json")):
            if proc.poll() is not None:
                pytest.fail(f"the run ended before writing a record:\n{(tmp_path / 'cli.log').read_text()[-3000:]}")
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
        log.close()
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

    # Chapter 10 on this sweep with one run of the C > d setting lost: the simplex-ETF setting,
    # complete, gets its verdict; the other waits for its missing run.
    small = next(i for i in planned if "-d4-" in i)
    (folder / "runs" / f"{small}.json").unlink()
    text = chapter_10(tmp_path)
    assert "ref_nc_gen_small: incomplete: 1 runs of this setting missing, no verdict" in text
    assert "ref_nc_gen:" not in text  # decided: not among the undecided


def test_table_renders_html_and_text():
    t = Table(["a", "bb"], [[1, "x<y"], [22, 3.5]], caption="cap")
    html = t._repr_html_()
    assert "<caption>cap</caption>" in html and "x&lt;y" in html and html.count("<tr>") == 3
    assert repr(t).splitlines() == ["cap", "a   bb", "--  ---", "1   x<y", "22  3.5"]
    with pytest.raises(ValueError):
        Table(["a"], [[1, 2]])


def test_one_run_at_a_time_lets_workers_split_a_group(tmp_path, monkeypatch):
    """batched=False (the CPU default): a worker claims and trains one run at a time, so a run that
    another worker holds is left to it while this one trains the rest of the group."""
    from nclib.claims import Claims

    store = RunStore(tmp_path)
    specs = _specs(3)
    other = Claims(store.claims.folder, timeout=60)  # another live worker holds the middle run
    assert other.claim(specs[1].run_id)
    calls = []
    import nclib.sweep as sweep
    real = sweep.train_sweep
    monkeypatch.setattr(sweep, "train_sweep", lambda models, *a, **k: calls.append(len(models)) or real(models, *a, **k))
    out = run_group(specs, _build, _data(), _data(1), CFG, store=store)
    assert calls == [1, 1]  # the two free runs, one by one
    assert store.load(specs[0].run_id) and store.load(specs[2].run_id) and not store.load(specs[1].run_id)
    import nclib.experiments as experiments

    other.release_all()
    experiments._AWAITING.clear()  # the held run is another worker's business: don't wait for it here
    del out


def test_the_reference_grid_is_sized_for_power_against_half_the_residual_sd():
    """Issue-level design rule of the reference scale: the permutation grid detects a classifier
    effect with sd half the path-noise sd with probability ≥ 0.8 (random-effects F test)."""
    from nclib.stats import f_test_power

    ref = PRESETS["non_conservative"]["reference"]
    a, b = ref["grid_permutations"] + 1, ref["grid_seeds"]
    assert f_test_power(a, b, 0.5) >= 0.8
    assert ref["n_permutations"] >= ref["grid_permutations"] and ref["n_seeds"] >= b
    assert ref["per_class_train"] == 0 and ref["backbones"] == ["mlp"]  # the full split


def test_provenance_names_the_threads_the_run_uses():
    import torch

    from nclib.records import cpu_model, provenance

    assert f"{torch.get_num_threads()} torch threads" in provenance("cpu")["device_name"]
    named = provenance("cpu", threads=1)["device_name"]  # a worker's kernel with cpu_threads = 1
    assert named.startswith(f"CPU: {cpu_model()} (") and named.endswith(", 1 torch threads)")


def test_two_configurations_in_one_folder_differ_in_a_column_of_records_csv(tmp_path):
    """Probe: the same sweep twice into one folder, the second with another learning rate. The run
    ids differ (every parameter is hashed); records.csv tells the rows apart by the config.lr
    column and says which runs the folder's current plan holds."""
    import csv
    import dataclasses

    store = RunStore(tmp_path)
    _, heads = equivalent_classifiers(4, 5, 1, 0, seed=0)
    ids = {}
    for lr in (0.05, 0.1):
        cfg = dataclasses.replace(CFG, lr=lr)
        specs = [RunSpec(f"run{i}", {"i": i, "config": cfg.to_dict()}, h.M) for i, h in enumerate(heads)]
        store.write_manifest([s.run_id for s in specs], {"lr": lr})
        run_group(specs, _build, _data(), _data(1), cfg, store=store)
        ids[lr] = {s.run_id for s in specs}
    assert not ids[0.05] & ids[0.1]
    store.write_csv()
    rows = list(csv.DictReader((tmp_path / "records.csv").open()))
    by_run = {r["run_id"]: (float(r["config.lr"]), r["planned"]) for r in rows}
    assert {i: v for i, v in by_run.items()} == {**{i: (0.05, "False") for i in ids[0.05]},
                                                  **{i: (0.1, "True") for i in ids[0.1]}}
    # every row of a run says whether it met the collapse criterion, as collapse_status decides it
    for rec in store.records():
        status = collapse_status(History.from_dict(rec["history"]), n_train=rec["params"].get("n_train"))
        mine = {(r["collapsed"], r["collapse"]) for r in rows if r["run_id"] == rec["run_id"]}
        assert mine == {(str(status.collapsed), status.reason)}


def test_the_device_model_drops_only_what_provenance_appends_to_a_cpu():
    here = provenance("cpu", threads=1)
    assert here["device_name"].startswith(device_model(here) + " (")
    assert device_model(here) == device_model(provenance("cpu", threads=2)) == f"CPU: {cpu_model()}"
    assert device_model({"device_name": "NVIDIA H100 80GB HBM3"}) == "NVIDIA H100 80GB HBM3"
    assert device_model({}) == device_model({"device_name": None}) == "?"
