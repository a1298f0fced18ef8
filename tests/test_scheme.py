"""nclib.scheme: the sweep scheme of `--workers auto` is read from this CPU model's bench record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from nclib.scheme import bench_record_name, choose_workers

CPU = "Test CPU 9000"


def write_record(folder, mlp=None, cnn=None, cpu=CPU, size="cpu", time="2026-12-01T00:00:00+00:00", processes=2):
    sweep = {}
    for kind, ratio in (("mlp", mlp), ("small_cnn", cnn)):
        if ratio is not None:
            sweep[kind] = {"processes_steady_ratio": ratio}
    rec = {"size": size, "sweep": sweep, "sweep_processes": processes,
           "provenance": {"cpu_model": cpu, "time_utc": time}}
    path = folder / f"cpu_speed-{size}-{abs(hash((cpu, time))) % 10**6}.json"
    path.write_text(json.dumps(rec))
    return path


def test_processes_when_the_bench_found_them_faster_and_one_process_when_slower(tmp_path):
    write_record(tmp_path, mlp=1.19, cnn=0.76)
    fast = choose_workers(2, ["mlp"], tmp_path, cpu=CPU)
    assert fast.workers == 2 and "mlp 1.19×" in fast.reason and CPU in fast.reason
    slow = choose_workers(2, ["small_cnn"], tmp_path, cpu=CPU)
    assert slow.workers == 1 and "one worker with 2 threads" in slow.reason
    # both backbones: the geometric mean, sqrt(1.19 · 0.76) = 0.95 < 1
    assert choose_workers(2, ["mlp", "small_cnn"], tmp_path, cpu=CPU).workers == 1


def test_the_newest_record_of_this_cpu_model_decides(tmp_path):
    write_record(tmp_path, mlp=0.8, time="2026-11-01T00:00:00+00:00")
    write_record(tmp_path, mlp=1.3, time="2026-12-01T00:00:00+00:00")
    write_record(tmp_path, mlp=0.5, cpu="Another CPU", time="2026-12-02T00:00:00+00:00")
    write_record(tmp_path, mlp=0.5, size="tiny", time="2026-12-03T00:00:00+00:00")  # the test size says nothing
    assert choose_workers(2, ["mlp"], tmp_path, cpu=CPU).workers == 2
    assert choose_workers(2, ["mlp"], tmp_path, cpu="Another CPU").workers == 1


def test_without_a_measurement_it_keeps_one_worker_per_core_and_says_so(tmp_path):
    write_record(tmp_path, mlp=0.5, cpu="Another CPU")
    unmeasured = choose_workers(2, ["mlp"], tmp_path, cpu=CPU)
    assert unmeasured.workers == 2 and "unmeasured on this CPU" in unmeasured.reason
    write_record(tmp_path, cnn=0.5)
    no_backbone = choose_workers(2, ["vgg11"], tmp_path, cpu=CPU)
    assert no_backbone.workers == 2 and "measured none of ['vgg11']" in no_backbone.reason
    other_cores = choose_workers(4, ["small_cnn"], tmp_path, cpu=CPU)
    assert other_cores.workers == 4 and "unmeasured for 4 cores" in other_cores.reason
    assert choose_workers(1, ["mlp"], tmp_path, cpu=CPU).workers == 1
    (tmp_path / "cpu_speed-cpu-broken.json").write_text("{not json")  # an unreadable file is skipped
    assert choose_workers(2, ["mlp"], tmp_path, cpu="Third CPU").workers == 2


@pytest.mark.parametrize("cores, backbones, message", [
    (0, ["mlp"], "cores must be a whole number ≥ 1, got 0"),
    (2.0, ["mlp"], "cores must be a whole number ≥ 1, got 2.0"),
    (True, ["mlp"], "cores must be a whole number ≥ 1, got True"),
    (2, "mlp", "backbones must be a list of backbone names, got 'mlp'"),
    (2, [3], r"backbones must be a list of backbone names, got \[3\]"),
])
def test_bad_arguments_are_named(tmp_path, cores, backbones, message):
    with pytest.raises(ValueError, match=message):
        choose_workers(cores, backbones, tmp_path, cpu=CPU)


@given(st.text(min_size=1, max_size=60))
def test_record_names_are_file_safe_and_keep_size_and_model_apart(cpu):
    name = bench_record_name("cpu", cpu)
    assert name.startswith("cpu_speed-cpu-") and name.endswith(".json")
    stem = name[len("cpu_speed-cpu-"):-len(".json")]
    assert stem and all(c.isalnum() and c.isascii() or c == "-" for c in stem)
    assert bench_record_name("tiny", cpu) != name


def test_record_names_of_the_machines_we_have():
    assert bench_record_name("cpu", "Intel(R) Xeon(R) Processor") == "cpu_speed-cpu-intel-xeon-processor.json"
    assert bench_record_name("cpu", "AMD EPYC") == "cpu_speed-cpu-amd-epyc.json"
