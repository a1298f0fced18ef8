"""Running the experiment chapters: papermill or plain script, workers, status; the CLI.

:func:`execute` runs one chapter at one scale into ``<results>/<experiment>/<scale>/`` (layout:
:mod:`nclib.records`). It refuses to start on parameters the chapter does not have, on values of
the wrong type and on datasets it cannot load (:func:`plan_parameters`), and it reports a run
complete only when every run the chapter planned has a valid record and no dataset was skipped;
otherwise the provenance says ``incomplete`` and :class:`ExperimentError` says why.

Workers. ``run --workers N`` starts N processes of the same command (each with ``cores // N``
torch threads); SLURM array tasks or GNU parallel jobs run that command themselves. They share the
results folder and split the runs through claims (:mod:`nclib.claims`, :func:`nclib.experiments.run_group`).
Every worker executes the whole chapter (it needs the histories for the analysis cells and waits
for the runs others train), but only worker 0 writes the canonical ``notebook.ipynb``,
``provenance.json`` and ``records.csv``; worker k > 0 writes its own under ``workers/<k>/``. The
index comes from ``--worker-index``, else from ``$SLURM_ARRAY_TASK_ID`` (minus
``$SLURM_ARRAY_TASK_MIN``), else 0. Two workers that both think they are 0 write the same
canonical files, atomically, each a complete run over the same records.

Lifetimes. Children never outlive their parent (:mod:`nclib.children`): the kernel, the script
and the workers are started through a ``PR_SET_PDEATHSIG`` shim, SIGTERM becomes an exception
that stops them, and papermill runs in a helper thread so that the main thread always sees the
signal. An interrupted run keeps its finished records and its claims go stale at once (same host,
dead pid), so a rerun resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from nclib.children import Interrupted, bound_command, on_termination, stop
from nclib.files import atomic_write_json, atomic_write_text, pid_alive
from nclib.records import RunStore, UnreadableRecord, provenance, repo_root, resolve_device
from nclib.scheme import choose_workers
from nclib.presets import (EXPERIMENTS, PRESETS, RUNNER_KEYS, SCALES, ParameterError, chapter_parameters,
                           dataset_problem, validate_parameters)

__all__ = ["ExperimentError", "plan_parameters", "execute", "dry_run", "folder_status", "main"]

# Appended to every chapter run: a chapter is not over while other workers still train its runs.
_FINISH = ("# nclib runner: wait for the runs other workers still train, so that the results folder\n"
           "# is complete when this notebook ends (see nclib.experiments.wait_for_others)\n"
           "from nclib.experiments import wait_for_others\nwait_for_others()\n")


class ExperimentError(RuntimeError):
    """An experiment that could not run, or ran without producing all it planned (one line)."""


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def plan_parameters(experiment: str, scale: str, parameters: dict | None = None) -> dict:
    """The chapter parameters of a run: the ``scale`` preset updated by ``parameters``, both held
    against the chapter's parameters cell, and every dataset checked for being loadable. Raises
    :class:`~nclib.presets.ParameterError` or :class:`ExperimentError` saying what to change."""
    if experiment not in EXPERIMENTS:
        raise ParameterError(f"--experiment: unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")
    if scale not in SCALES:
        raise ParameterError(f"--scale: unknown scale {scale!r}; choose one of {list(SCALES)}")
    validate_parameters(experiment, PRESETS[experiment][scale], origin=f"PRESETS[{experiment!r}][{scale!r}]")
    parameters = dict(parameters or {})
    for key in parameters:
        if key in RUNNER_KEYS:
            raise ParameterError(f"--param {key}: set by the runner; use {RUNNER_KEYS[key]} instead")
    validate_parameters(experiment, parameters)
    params = {**PRESETS[experiment][scale], **parameters}
    defaults = chapter_parameters(experiment)
    root = params.get("data_root", defaults.get("data_root")) or None
    problems = [p for d in params.get("datasets", defaults.get("datasets", [])) if (p := dataset_problem(d, root))]
    if problems:
        raise ExperimentError(f"{experiment} at {scale} scale: " + "; ".join(problems))
    return params


@contextlib.contextmanager
def _environ(**values):
    """Set environment variables for the kernels and scripts started inside, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------------------
# The two ways of running a chapter
# ----------------------------------------------------------------------------------------------

_KERNELS: list = []  # kernel managers started by this process (to kill their kernels on interrupt)


def _kernel_manager_class():
    """jupyter_client's kernel manager, with the kernel started through :func:`bound_command`."""
    from jupyter_client.manager import AsyncKernelManager

    class BoundKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            return bound_command(super().format_kernel_cmd(extra_arguments))

        async def start_kernel(self, **kw):
            _KERNELS.append(self)
            return await super().start_kernel(**kw)

    return BoundKernelManager


def _kill_kernels() -> None:
    for km in _KERNELS:
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _run_papermill(chapter: Path, params: dict, keep, progress: bool) -> None:
    """Execute ``chapter`` under papermill in a helper thread (the main thread stays free to take
    SIGINT/SIGTERM and kill the kernel); ``keep(path, outcome)`` stores the executed notebook, outcome
    complete, failed or interrupted."""
    import jupytext
    import nbformat
    import papermill

    nb = jupytext.read(chapter)
    nb.cells.append(nbformat.v4.new_code_cell(_FINISH, metadata={"tags": ["nclib-runner"]}))
    with tempfile.TemporaryDirectory(prefix="nclib-nb-") as tmp:
        src, out = Path(tmp) / "input.ipynb", Path(tmp) / "output.ipynb"
        nbformat.write(nb, src)
        error: list[BaseException] = []

        def target():
            try:
                papermill.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3",
                                           cwd=str(chapter.parent), progress_bar=progress,
                                           kernel_manager_class=_kernel_manager_class())
            except BaseException as exc:  # handed to the main thread
                error.append(exc)

        thread = threading.Thread(target=target, name="papermill", daemon=True)
        outcome = "failed"
        try:
            thread.start()
            while thread.is_alive():
                thread.join(0.2)  # short joins: signal handlers run between them
            if error:
                raise error[0]
            outcome = "complete"
        except KeyboardInterrupt:
            outcome = "interrupted"
            deadline = time.monotonic() + 10
            while thread.is_alive() and time.monotonic() < deadline:  # papermill may start one late
                _kill_kernels()
                thread.join(0.2)
            raise
        finally:
            _KERNELS.clear()
            if out.is_file():
                keep(out, outcome)


def _run_script(chapter: Path, params: dict, log_path: Path, echo: bool = True) -> None:
    """Run a jupytext percent-format chapter as a plain Python script, with ``params`` assigned in
    a cell right after its parameters cell (what papermill injects); output goes to ``log_path``
    (and to stdout when ``echo``)."""
    src = chapter.read_text(encoding="utf-8")
    marker = '# %% tags=["parameters"]'
    if marker not in src:
        raise ValueError(f"{chapter} has no parameters cell ({marker})")
    start = src.index(marker) + len(marker)
    end = src.find("\n# %%", start)
    end = len(src) if end < 0 else end
    inject = "\n# %% injected-parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="nclib-script-") as tmp:
        script = Path(tmp) / chapter.name
        script.write_text(src[:end] + inject + src[end:] + "\n# %%\n" + _FINISH, encoding="utf-8")
        lines = []
        proc = subprocess.Popen(bound_command([sys.executable, str(script)]), cwd=chapter.parent, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                if echo:
                    sys.stdout.write(line)
                lines.append(line)
            rc = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: the script goes with us
                stop(proc, grace=2)
            atomic_write_text(log_path, "".join(lines))
    if rc != 0:
        raise RuntimeError(f"{chapter.name} failed as a script (exit status {rc}); see {log_path}")


def _have_papermill() -> bool:
    try:
        import ipykernel  # noqa: F401
        import jupytext  # noqa: F401
        import papermill  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# One experiment at one scale
# ----------------------------------------------------------------------------------------------


def _csv_problem(folder: Path, valid: list[str]) -> str | None:
    """Why ``records.csv`` does not match the valid records (cut short, damaged, missing runs), or
    None. It is derived from the records: ``python -m nclib.experiments run`` rewrites it."""
    import csv

    path = folder / "records.csv"
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(text.splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"records.csv is damaged ({exc}); it is derived from runs/ and rewritten by the next run"
    if not text.endswith("\n") or any(len(r) != len(rows[0]) for r in rows[1:]):
        return "records.csv is cut short (a last row incomplete); it is rewritten from runs/ by the next run"
    ids = {r[0] for r in rows[1:]}
    lacking = [i for i in valid if i not in ids]
    if lacking:
        return f"records.csv lacks {len(lacking)} recorded run(s) (e.g. {lacking[0]}); the next run rewrites it"
    return None


def folder_status(folder) -> dict:
    """What a results folder holds, read only: planned run ids (manifest), valid records, missing
    and corrupt ones, the provenance status and its problems, and ``complete``: every planned run
    has a valid record and the provenance says complete."""
    folder = Path(folder)
    store = RunStore.view(folder)
    manifest = store.manifest()
    planned = manifest["run_ids"] if manifest else []
    valid, corrupt, unreadable = [], {}, {}
    for run_id in planned:
        try:
            record, problem = store.check(run_id)
        except UnreadableRecord as exc:
            unreadable[run_id] = str(exc)
            continue
        if record is not None:
            valid.append(run_id)
        elif problem is not None:
            corrupt[run_id] = problem
    damage = [p for p in [store.manifest_problem(), _csv_problem(folder, valid)] if p]
    prov = None
    if (folder / "provenance.json").exists():
        try:
            prov = json.loads((folder / "provenance.json").read_text())
        except (OSError, ValueError) as exc:
            damage.append(f"provenance.json is damaged ({exc})")
        if prov is not None and not isinstance(prov, dict):
            damage.append("provenance.json is damaged (not a JSON object)")
    prov = prov if isinstance(prov, dict) else {}
    status = prov.get("status", "damaged provenance" if (folder / "provenance.json").exists() else "no provenance")
    if status == "running" and prov.get("host") == socket.gethostname() and isinstance(prov.get("pid"), int) \
            and not pid_alive(prov["pid"]):
        status = f"interrupted (its process {prov['pid']} is gone; a rerun resumes)"
    missing = [i for i in planned if i not in valid]
    return {"manifest": manifest is not None, "planned": len(planned), "valid": len(valid), "missing": missing,
            "corrupt": corrupt, "unreadable": unreadable, "status": status,
            "problems": damage + list(prov.get("problems") or []),
            "complete": manifest is not None and bool(planned) and not missing and status == "complete" and not damage}


def _collect_problems(folder: Path, token: str) -> list[str]:
    out = []
    for p in sorted((folder / "problems").glob(f"{token}.*.txt")):
        out.append(p.read_text(encoding="utf-8").strip())
        p.unlink(missing_ok=True)
    return out


def _default_worker() -> int:
    """This worker's index from SLURM's array variables, else 0; variables that are set but are no
    array index are an error (silently becoming worker 0 would make two canonical writers)."""
    task, first = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_MIN", "0")
    if task is None:
        return 0
    try:
        index = int(task) - int(first)
    except ValueError:
        raise ParameterError(f"SLURM_ARRAY_TASK_ID={task!r} / SLURM_ARRAY_TASK_MIN={first!r}: not whole numbers; "
                             "unset them or pass --worker-index") from None
    if index < 0:
        raise ParameterError(f"SLURM_ARRAY_TASK_ID={task} is below SLURM_ARRAY_TASK_MIN={first}; pass --worker-index")
    return index


def execute(experiment: str, scale: str = "paper", device: str = "auto", results=None,
            parameters: dict | None = None, deterministic: bool = False, progress: bool = True,
            runner: str = "auto", *, worker: int | None = None, claim_timeout: float | None = None) -> Path:
    """Run one experiment's chapter with the ``scale`` preset (plus ``parameters``), recording into
    ``<results>/<experiment>/<scale>/``, and return that folder. ``runner``: ``"papermill"``
    (writes the executed ``notebook.ipynb``), ``"script"`` (runs the percent-format file as plain
    Python with the parameters injected, for machines without papermill; writes ``notebook.log``)
    or ``"auto"`` (papermill when installed). ``worker``: this worker's index (module docstring;
    default from SLURM, else 0); ``claim_timeout``: seconds of silence after which a worker's claim
    is taken over (default 120). Finished runs are skipped, so rerunning after an interruption
    resumes. Raises :class:`ExperimentError` when the run ends incomplete (provenance says why)."""
    if runner not in ("auto", "papermill", "script"):
        raise ParameterError(f"--runner: must be auto, papermill or script, got {runner!r}")
    params = plan_parameters(experiment, scale, parameters)
    runner = ("papermill" if _have_papermill() else "script") if runner == "auto" else runner
    worker = _default_worker() if worker is None else int(worker)
    dev = resolve_device(device)
    folder = Path(results or repo_root() / "results").resolve() / experiment / scale
    store = RunStore(folder, claim_timeout)
    own = folder if worker == 0 else folder / "workers" / str(worker)  # where this worker's files go
    chapter = repo_root() / EXPERIMENTS[experiment]
    params.update(scale=scale, device=str(dev), results_dir=str(folder), deterministic=bool(deterministic))
    token = uuid.uuid4().hex[:12]
    # the chapter's kernel trains with cpu_threads threads, not with this process's count
    prov = {**provenance(dev, threads=params.get("cpu_threads") or None), "pid": os.getpid(), "experiment": experiment,
            "scale": scale, "chapter": EXPERIMENTS[experiment], "runner": runner, "worker": worker, "parameters": params, "status": "running", "wall_time_s": None,
            "started_utc": _utc_now()}
    atomic_write_json(own / "provenance.json", prov)
    t0 = time.perf_counter()
    status, problems = "failed", []

    def keep(nb_path: Path, outcome: str):
        name = "notebook.ipynb" if outcome == "complete" else f"notebook.{outcome}.ipynb"
        atomic_write_text(own / name, nb_path.read_text(encoding="utf-8"))

    # The kernel (or script) imports nclib from this checkout even where it is not installed.
    env = dict(PYTHONPATH=os.pathsep.join(filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")])),
               NCLIB_RUN_TOKEN=token, NCLIB_WORKER=worker, NCLIB_CLAIM_TIMEOUT=claim_timeout)
    try:
        with _environ(**env):
            if runner == "script":
                _run_script(chapter, params, own / "notebook.log")
            else:
                _run_papermill(chapter, params, keep, progress)
        problems = _collect_problems(folder, token)
        summary = folder_status(folder) if store.manifest() else None
        if summary is None:
            problems.append("the chapter wrote no manifest (it planned no runs)")
        elif summary["planned"] == 0:
            problems.append("the chapter planned no runs (an empty list of backbones, datasets, heads or seeds?)")
        elif summary["missing"]:
            problems.append(f"{len(summary['missing'])} of {summary['planned']} planned runs have no valid record")
        status = "incomplete" if problems else "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        prov.update(status=status, problems=problems, wall_time_s=time.perf_counter() - t0, finished_utc=_utc_now())
        atomic_write_json(own / "provenance.json", prov)
        if worker == 0:
            store.write_csv()
    if problems:
        raise ExperimentError(f"{experiment} at {scale} scale is incomplete: " + "; ".join(problems))
    return folder


def dry_run(experiment: str, scale: str = "paper", results=None, parameters: dict | None = None,
            workers: int = 1, threads: int | None = None) -> str:
    """The planned runs of ``experiment`` at ``scale`` and what they will cost on this CPU, without
    training or writing anything in the results folder: the chapter runs as a script up to the
    point where it records its plan (:func:`nclib.experiments.record_plan`), the runs already
    recorded in ``results`` are marked, and the rest are priced (:mod:`nclib.pricing`) with
    ``threads`` torch threads per worker (default: the chapter's ``cpu_threads``)."""
    from nclib.pricing import format_projection, project
    from nclib.records import cpu_model

    params = plan_parameters(experiment, scale, parameters)
    folder = Path(results or repo_root() / "results").resolve() / experiment / scale
    threads = threads or params.get("cpu_threads") or chapter_parameters(experiment).get("cpu_threads") or 1
    params.update(scale=scale, device="cpu", results_dir="", deterministic=False)
    with tempfile.TemporaryDirectory(prefix="nclib-plan-") as tmp:
        plan_file = Path(tmp) / "plan.json"
        try:
            with _environ(NCLIB_PLAN_FILE=plan_file, PYTHONPATH=os.pathsep.join(
                    filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")]))):
                _run_script(repo_root() / EXPERIMENTS[experiment], params, Path(tmp) / "plan.log", echo=False)
        except RuntimeError as exc:
            tail = (Path(tmp) / "plan.log").read_text(encoding="utf-8").strip().splitlines()[-3:]
            raise ExperimentError(f"{experiment}: the chapter failed before it planned its runs: "
                                  + " | ".join(tail)) from exc
        if not plan_file.is_file():
            raise ExperimentError(f"{experiment}: the chapter ended without recording a plan "
                                  "(it must call nclib.experiments.record_plan)")
        plan = json.loads(plan_file.read_text())["runs"]
    store = RunStore.view(folder) if folder.is_dir() else None
    recorded = {e["run_id"] for e in plan if store is not None and store.check(e["run_id"])[0] is not None}
    from nclib.experiments import sibling_results  # here: nclib.experiments imports this module

    reused = {}  # runs the chapter will copy from another design's folder (its reuse_from)
    for other in sibling_results(params.get("reuse_from") or [], scale, own=folder):
        source, name = RunStore.view(other), os.path.relpath(other, folder.parent.parent)
        reused |= {e["run_id"]: name for e in plan if e["run_id"] not in recorded
                   and e["run_id"] not in reused and source.check(e["run_id"])[0] is not None}
    recorded |= set(reused)
    projection = project(plan, int(threads), recorded)
    return format_projection(experiment, scale, plan, recorded, projection, workers, cpu_model(), reused)


# ----------------------------------------------------------------------------------------------
# The CLI
# ----------------------------------------------------------------------------------------------


def _check_results_folder(results: str, must_write: bool = True) -> None:
    """``--results``: a non-empty path to a folder (created if missing) that this process may
    write; a file there, or a folder it cannot write, is an error before anything runs."""
    if not str(results).strip():
        raise ParameterError("--results: an empty path; give a folder (default: results/ of the checkout)")
    path = Path(results)
    if path.exists() and not path.is_dir():
        raise ParameterError(f"--results {results}: a file is there, not a folder")
    if must_write:
        probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ParameterError(f"--results {results}: {probe} is not writable by this user; choose another folder")


def _parse_param(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param takes key=value (value as JSON), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value  # a bare word is a string; validation says if one was not meant


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _workers_for(text, device: str, backbones=(), bench_folder=None) -> int:
    """``--workers``: a count ≥ 1, or ``auto``: one on an accelerator (the batched sweep's side);
    on a CPU what ``make bench`` measured fastest on this CPU model for these ``backbones``
    (:func:`nclib.scheme.choose_workers`: one worker per core, or one worker with every thread),
    printed with its evidence."""
    if str(text) == "auto":
        if resolve_device(device).type != "cpu":
            return 1
        choice = choose_workers(_cores(), list(backbones), bench_folder or repo_root() / "results" / "bench")
        print(f"--workers auto: {choice.workers} ({choice.reason})", flush=True)
        return choice.workers
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1 or str(n) != str(text).strip():
        raise ParameterError(f"--workers: must be a whole number ≥ 1 or auto, got {text!r}")
    return n


def _run_workers(args, names: list[str], params: dict) -> int:
    """Start ``args.workers`` workers of the same command and wait for them; a failing worker stops
    the others. Returns the exit status."""
    n = args.workers
    threads = max(1, _cores() // n)
    cmd = [sys.executable, "-m", "nclib.experiments", "run", "--experiment", ",".join(names), "--scale", args.scale,
           "--device", args.device, "--results", args.results, "--runner", args.runner,
           "--workers", "1"]  # each worker is one process (auto would make every worker start more)
    cmd += ["--deterministic"] if args.deterministic else []
    cmd += ["--claim-timeout", str(args.claim_timeout)] if args.claim_timeout else []
    given = dict(params)
    if "cpu_threads" not in given:
        given["cpu_threads"] = threads
    cmd += [f"--param={k}={json.dumps(v)}" for k, v in given.items()]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")]))}
    print(f"starting {n} workers ({threads} threads each) on {args.results}", flush=True)
    procs = [subprocess.Popen(bound_command(cmd + ["--worker-index", str(k)], sig=signal.SIGTERM), env=env)
             for k in range(n)]
    worst = 0
    try:
        while True:
            alive = [p.poll() is None for p in procs]  # poll every worker: any() would stop at the first
            if not any(alive):
                break
            for k, p in enumerate(procs):
                if p.returncode not in (None, 0) and worst == 0:
                    worst = p.returncode
                    print(f"error: worker {k} failed (exit status {p.returncode}); stopping the others",
                          file=sys.stderr, flush=True)
                    for q in procs:
                        if q.poll() is None:
                            q.terminate()
            time.sleep(0.2)
    finally:
        for p in procs:  # on Ctrl-C/SIGTERM: SIGTERM each worker, which stops its kernel
            if p.poll() is None:
                p.terminate()
        for p in procs:
            stop(p, grace=10)
    codes = [worst] + [p.returncode or 0 for p in procs]
    bad = next((c for c in codes if c), 0)
    return 128 - bad if bad < 0 else bad  # killed by signal N: the shell's 128 + N


def _status(results: str) -> int:
    root = Path(results)
    found = sorted(f for exp in EXPERIMENTS for f in (root / exp).glob("*") if (f / "runs").is_dir())
    if not found:
        print(f"no recorded experiments under {root}")
        return 0
    all_complete = True
    for folder in found:
        s = folder_status(folder)
        all_complete &= s["complete"]
        counts = f"{s['valid']}/{s['planned']} runs recorded" if s["manifest"] else "no manifest"
        extra = (f", {len(s['missing'])} missing" if s["missing"] else "") + (
            f" ({len(s['corrupt'])} corrupt)" if s["corrupt"] else "") + (
            f" ({len(s['unreadable'])} unreadable)" if s["unreadable"] else "")
        verdict = "complete" if s["complete"] else f"incomplete (provenance: {s['status']})"
        print(f"{folder.parent.name:18s} {folder.name:6s} {counts}{extra}  {verdict}")
        for problem in s["problems"]:
            print(f"    {problem}")
        for run_id, why in {**s["corrupt"], **s["unreadable"]}.items():
            print(f"    {run_id}: {why}")
    return 0 if all_complete else 1


def main(argv=None) -> int:
    """The ``make experiments`` entry point: ``run`` (papermill, resumable, workers) and ``status``
    (exit status 1 when some experiment is incomplete)."""
    parser = argparse.ArgumentParser(prog="python -m nclib.experiments",
                                     description="Run the experiment chapters and record every run.")
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
                     help="override a notebook parameter, key=JSON (repeatable); quote lists for the shell: "
                          "--param 'backbones=[\"mlp\"]'")
    run.add_argument("--workers", default="auto",
                     help="start this many local workers of the same run (torch threads = cores // workers); "
                          "auto: on a CPU what make bench measured fastest on this CPU model (one per core, "
                          "or one with every thread), one on a GPU")
    run.add_argument("--worker-index", type=int, default=None,
                     help="this worker's index; 0 writes the canonical notebook (default: SLURM array index, else 0)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the planned runs and price them on this CPU (worker-hours, wall time with "
                          "--workers); trains nothing and writes nothing in --results")
    run.add_argument("--record-price", default="", metavar="FOLDER",
                     help="with --dry-run: also write the priced plan, with the machine and commit, to "
                          "FOLDER/dry_run-<experiment>-<scale>.txt (e.g. results/bench)")
    run.add_argument("--claim-timeout", type=float, default=None,
                     help="seconds without heartbeat before another worker's claim is taken over (default 120)")
    status = sub.add_parser("status", help="recorded runs per experiment and scale, against the manifest")
    status.add_argument("--results", default=str(repo_root() / "results"))
    args = parser.parse_args(argv)
    if args.command == "status":
        try:
            _check_results_folder(args.results, must_write=False)
        except ParameterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _status(args.results)

    names = list(EXPERIMENTS) if args.experiment == "all" else [e.strip() for e in args.experiment.split(",")]
    params = dict(args.param)
    try:
        _check_results_folder(args.results, must_write=not args.dry_run)
        if args.worker_index is not None and args.worker_index < 0:
            raise ParameterError(f"--worker-index: must be ≥ 0, got {args.worker_index}")
        if args.worker_index is None and not args.dry_run:
            _default_worker()  # SLURM's variables checked before anything runs
        if args.claim_timeout is not None and not args.claim_timeout > 0:
            raise ParameterError(f"--claim-timeout: must be a positive number of seconds, got {args.claim_timeout}")
        backbones = []
        for exp in names:  # every experiment is checked before the first one starts
            planned = plan_parameters(exp, args.scale, params)
            # the chapter's own default when neither the preset nor --param names the backbones
            wanted = planned["backbones"] if "backbones" in planned else chapter_parameters(exp)["backbones"]
            backbones += [b for b in wanted if b not in backbones]
        resolve_device(args.device)
        args.workers = _workers_for(args.workers, args.device, backbones)
    except (ParameterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    if args.record_price and not args.dry_run:
        print("error: --record-price goes with --dry-run", file=sys.stderr)
        return 2
    if args.dry_run:
        try:
            for exp in names:
                text = dry_run(exp, args.scale, args.results, params, args.workers)
                print(text, flush=True)
                if args.record_price:
                    prov = provenance("cpu")
                    head = (f"# priced by `python -m nclib.experiments run --experiment {exp} --scale {args.scale} "
                            f"--dry-run --workers {args.workers}` on {prov.get('device_name')}, "
                            f"{prov.get('time_utc')}, commit {prov.get('git_commit')}"
                            f"{' (uncommitted changes)' if prov.get('git_dirty') else ''}\n")
                    from nclib.pricing import price_record_path

                    out = price_record_path(args.record_price, exp, args.scale)
                    atomic_write_text(out, head + text + "\n")
                    print(f"recorded: {out}", flush=True)
        except (ExperimentError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))}
    on_termination()
    try:
        if args.workers > 1:
            return _run_workers(args, names, params)
        exp = names[0]
        for exp in names:
            print(f"== {exp} at {args.scale} scale on {args.device} → {args.results}/{exp}/{args.scale}", flush=True)
            folder = execute(exp, args.scale, args.device, args.results, params, args.deterministic,
                             progress=args.worker_index in (None, 0), runner=args.runner,
                             worker=args.worker_index, claim_timeout=args.claim_timeout)
            print(f"   done: {folder}", flush=True)
        return 0
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"interrupted ({signal.Signals(signum).name}); finished runs are kept, a rerun resumes",
              file=sys.stderr, flush=True)
        return 128 + signum
    except Exception as exc:  # the chapter failed: one line here, the executed notebook has the rest
        if hasattr(exc, "ename"):  # papermill's error carries the cell's exception
            what = f"{exc.ename}: {exc.evalue}"
        else:
            what = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        where = Path(args.results) / exp / args.scale
        print(f"error: {exp} failed: {what} (traceback in {where}/notebook.failed.ipynb or notebook.log)",
              file=sys.stderr)
        return 1
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
