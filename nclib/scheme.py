"""How a sweep on a CPU splits its cores: chosen from what ``make bench`` measured on this CPU model.

Many small models train fastest either as one process using every core or as one worker process
per core with a thread each (the workers share the results folder and claim runs,
:mod:`nclib.claims`). Which one wins depends on the machine: on the 2-core AMD EPYC machines of
this project two processes trained MLPs 1.06–1.09× faster than the loop; on the 2-core Intel Xeon
ones, in the runner's own workload, MLPs 1.36× faster in the steady state while the small CNN ran
0.93× as fast, because two threads already speed one CNN up 1.88× there (``results/bench/``). So
``--workers auto`` is not a fixed rule: it reads the newest ``make bench`` record of this CPU
model (``results/bench/cpu_speed-cpu-<cpu>.json``, its sweep row: the steady-state ratio of the
worker processes to the one-process loop, the start of the processes left out because a sweep pays
it once) for the backbones the sweep trains, and takes the processes when they were faster. With
no record of this CPU model, or none of these backbones, it keeps one worker per core and says that
this is unmeasured here. The decision and its evidence are printed when a sweep starts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from nclib.records import cpu_model, cpu_slug

__all__ = ["SchemeChoice", "bench_record_name", "choose_workers"]


def bench_record_name(size: str, cpu: str | None = None) -> str:
    """The file name of a ``make bench`` record: ``cpu_speed-<size>-<cpu model, as a slug>.json``,
    so that records of different machines sit side by side."""
    return f"cpu_speed-{size}-{cpu_slug(cpu)}.json"


@dataclass(frozen=True)
class SchemeChoice:
    """The number of worker processes for a CPU sweep and why (the evidence, in words)."""

    workers: int
    reason: str


def _newest_record(folder: Path, cpu: str) -> dict | None:
    newest = None
    for path in sorted(Path(folder).glob("cpu_speed-cpu-*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        prov = rec.get("provenance") or {}
        if rec.get("size") != "cpu" or prov.get("cpu_model") != cpu or not isinstance(rec.get("sweep"), dict):
            continue
        if newest is None or str(prov.get("time_utc", "")) > str(newest["provenance"].get("time_utc", "")):
            newest = rec
    return newest


def choose_workers(cores: int, backbones, bench_folder, cpu: str | None = None) -> SchemeChoice:
    """Worker processes for a sweep of ``backbones`` on ``cores`` CPU cores: ``cores`` (one thread
    each) when this CPU model's newest bench record found the processes faster than the loop for
    these backbones (geometric mean of their steady-state ratios > 1), 1 (every core in one
    process) when it found them slower, and ``cores`` with an "unmeasured" reason without a
    record. ``cpu``: the CPU model (default: this machine's)."""
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise ValueError(f"choose_workers: cores must be a whole number ≥ 1, got {cores!r}")
    if isinstance(backbones, str) or not all(isinstance(b, str) for b in backbones):
        raise ValueError(f"choose_workers: backbones must be a list of backbone names, got {backbones!r}")
    cpu = cpu or cpu_model()
    if cores == 1:
        return SchemeChoice(1, "one core: one worker")
    rec = _newest_record(Path(bench_folder), cpu)
    if rec is None:
        return SchemeChoice(cores, f"one worker per core: unmeasured on this CPU ({cpu}); `make bench` measures "
                                   f"it and records it in {bench_folder}")
    compared = rec.get("sweep_processes", 2)  # records from before the field compared 2 processes
    if compared != cores:
        return SchemeChoice(cores, f"one worker per core: unmeasured for {cores} cores (make bench on {cpu} "
                                   f"compared {compared} processes)")
    ratios = {b: rec["sweep"][b]["processes_steady_ratio"] for b in backbones
              if isinstance(rec["sweep"].get(b), dict) and rec["sweep"][b].get("processes_steady_ratio", 0) > 0}
    when = rec["provenance"].get("time_utc", "?")[:10]
    if not ratios:
        return SchemeChoice(cores, f"one worker per core: make bench on {cpu} ({when}) measured none of "
                                   f"{list(backbones)}")
    mean = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    evidence = ", ".join(f"{b} {r:.2f}×" for b, r in ratios.items())
    measured = f"make bench on {cpu} ({when}): {cores} processes ran {evidence} as fast as one process"
    if mean > 1.0:
        return SchemeChoice(cores, f"one worker per core ({measured})")
    return SchemeChoice(1, f"one worker with {cores} threads ({measured})")
