"""bench/metrics_speed.py runs end to end at its tiny size, prints its table with the ratio row,
and records its numbers with provenance (no timing is asserted: the numbers are the benchmark's
output, not a test condition)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_benchmark_tiny_prints_ratios_and_records(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "metrics_speed.py"), "--size", "tiny", "--repeats", "1",
         "--record", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("method") and "seconds" in line for line in lines)
    assert any(line.startswith("ratio reference float64 / nclib: nc_metrics") and
               "reference float32 default / nclib statistics only" in line for line in lines)
    assert sum(line.startswith("nclib ") for line in lines) == 3
    assert sum(line.startswith("reference ") for line in lines) == 2
    record = json.loads((tmp_path / "metrics_speed-tiny.json").read_text())
    assert [r["method"] for r in record["rows"]][0].startswith("reference")
    assert all(r["seconds"] > 0 and r["ratio_reference_over_this"] > 0 for r in record["rows"])
    # the re-implemented reference computes the same NC1 and NC4 as nclib
    assert record["agreement"]["nc1"] < 1e-9 and record["agreement"]["nc4"] == 0.0
    # the float32 paths agree with float64 to float32's precision
    assert record["agreement"]["statistics_nc1_vs_float64"] < 1e-5
    assert record["statistics_ratio_float32_reference_over_nclib"] > 0
    prov = record["provenance"]
    assert prov["threads"] == 1 and prov["cpu_model"] and prov["torch"] and prov["git_commit"]
