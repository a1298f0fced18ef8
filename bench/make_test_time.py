"""Goal 5 of the speed work: ``make test`` from a fresh clone, package download included, against
the 8-minute goal, on this CPU.

The last commit is cloned into a temporary folder and CI's own command (``bash .ci/run``, which
runs ``make test``: the install into a new .venv, the suite beside the strict book build, the
browser test) runs there with ``CI=true``, as CI runs it. The wall time is measured around the
whole command and recorded with the test counts it printed; a run whose tests fail is recorded as
failed, not as a time. Each run is appended to ``make_test-<cpu model>.json``, so that the record
shows the spread between runs on one CPU model, not one lucky run.

    python bench/make_test_time.py                          # time it, print the share of the goal
    python bench/make_test_time.py --record results/bench   # also append the run to the record

Nothing else should run on the machine meanwhile: the suite and the build use both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nclib.children import on_termination  # noqa: E402
from nclib.files import atomic_write_json  # noqa: E402
from nclib.records import cpu_model, cpu_slug, provenance  # noqa: E402

GOAL_S = 8 * 60
# pytest's closing line: "967 passed, 3 warnings in 324.34s (0:05:24)", "1 failed, 2 passed in 3.1s"
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in ([\d.]+)s\b", re.M)


def record_name(cpu: str | None = None) -> str:
    return f"make_test-{cpu_slug(cpu)}.json"


def _git(folder, *args) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def pytest_summaries(log: str) -> list[dict]:
    """Each pytest summary line of the log as ``{"counts": {"passed": 967, ...}, "seconds": 324.34}``."""
    out = []
    for counts, seconds in SUMMARY.findall(log):
        parsed = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", counts)}
        out.append({"counts": parsed, "seconds": float(seconds)})
    return out


def run_once(source: Path, command: str, goal_s: float, keep: bool = False) -> dict:
    """Clone ``source`` at its last commit, run ``command`` there with CI=true, and return what
    happened: the commit, the wall time, its share of ``goal_s``, the exit status and the pytest
    summaries the command printed."""
    work = Path(tempfile.mkdtemp(prefix="nclib-make-test-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
        commit = _git(clone, "rev-parse", "HEAD")
        log_path = work / "make-test.log"
        with open(log_path, "w") as log, tqdm(total=round(goal_s), unit="s", desc="make test, against the goal",
                                               bar_format="{desc}: {n_fmt}/{total_fmt} s {bar} {elapsed}") as bar:
            start = time.perf_counter()
            # its own process group: an interrupted timing stops make and everything it started
            proc = subprocess.Popen(["bash", "-c", command], cwd=clone, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "CI": "true"}, start_new_session=True)
            try:
                while proc.poll() is None:
                    time.sleep(1)
                    bar.update(min(round(time.perf_counter() - start), bar.total) - bar.n)
            except BaseException:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                raise
            wall = time.perf_counter() - start
        text = log_path.read_text(errors="replace")
        result = {"commit": commit, "command": command, "returncode": proc.returncode, "wall_s": wall,
                  "goal_s": goal_s, "share_of_goal": wall / goal_s, "pytest": pytest_summaries(text)}
        if proc.returncode != 0:
            result["log_tail"] = text[-3000:]
        return result
    finally:
        if keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)  # the folder this run created, nothing else


def describe(result: dict) -> str:
    minutes, seconds = divmod(round(result["wall_s"]), 60)
    tests = "; ".join(", ".join(f"{n} {w}" for w, n in s["counts"].items()) + f" in {s['seconds']:.0f} s"
                      for s in result["pytest"])
    status = ("" if result["returncode"] == 0 else
              f" FAILED (exit status {result['returncode']}): not a timing of a passing make test")
    return (f"make test from a fresh clone of {result['commit'][:7]}: {minutes} min {seconds:02d} s, "
            f"{result['share_of_goal']:.2f} of the {result['goal_s'] / 60:g}-minute goal{status}\n  pytest: {tests}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--record", default="", help="folder for make_test-<cpu model>.json (e.g. results/bench)")
    p.add_argument("--source", default=str(ROOT), help="the git repository to clone (default: this checkout)")
    p.add_argument("--command", default="bash .ci/run", help="what CI runs in the clone")
    p.add_argument("--goal-min", type=float, default=GOAL_S / 60, help="the goal in minutes (default 8)")
    p.add_argument("--keep", action="store_true", help="keep the clone and its log")
    args = p.parse_args(argv)
    source = Path(args.source)
    if not (source / ".git").exists():
        p.error(f"--source {source}: not a git checkout (the run clones its last commit)")
    if args.goal_min <= 0:
        p.error(f"--goal-min {args.goal_min:g}: the goal must be a positive number of minutes")
    if _git(source, "status", "--porcelain", "--untracked-files=no"):
        print(f"note: {source} has uncommitted changes; the clone runs its last commit without them")
    on_termination()  # SIGTERM and SIGHUP stop the timing as Ctrl-C does (a job's time limit, a closed terminal)
    try:
        result = run_once(source, args.command, args.goal_min * 60, keep=args.keep)
    except KeyboardInterrupt as stopped:
        print("interrupted: make test and its children were stopped; nothing is recorded", file=sys.stderr)
        return 128 + getattr(stopped, "signum", signal.SIGINT)
    result["provenance"] = {**provenance("cpu"), "cpu_model": cpu_model()}
    print(f"CPU: {result['provenance']['cpu_model']}")
    print(describe(result))
    if args.record:
        path = Path(args.record) / record_name()
        old = json.loads(path.read_text()) if path.is_file() else {"runs": []}
        atomic_write_json(path, {"goal_s": result["goal_s"], "runs": [*old["runs"], result]})
        print(f"recorded: {path} ({len(old['runs']) + 1} runs)")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
