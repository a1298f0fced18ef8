"""Speed on the machine we have (a 2-core x86-64 CPU, no accelerator): every ratio of the speed
issue, measured in one run, each against a baseline measured in the same run.

1. GEMM limit: ``torch.mm`` of two 2048² fp32 matrices at 1 and 2 threads (GFLOP/s).
2. Training rate: the MLP 784-512-512-32 and ``small_cnn`` (width 16), fp32, batch 128, 2 threads:
   images/s and GFLOP/s (FLOPs counted by torch's ``FlopCounterMode``), as a share of the GEMM limit.
3. The measurement pass (``nclib.train.evaluate`` on the training set plus
   ``evaluate_loss_accuracy`` on the test set) against one training epoch, and the forward pass's
   FLOP rate against the training FLOP rate (a forward-only pass should run at least as fast).
4. The metric schedule: a real run (``train`` with ``measure="auto"``, then ``"every"``) with the
   time spent measuring as a share of the time spent training.
5. The sweep scheme: K models sharing their data order, trained (a) one after the other in one
   process with 2 threads, (b) batched in one vmapped step (``train_sweep(batched=True)``), and
   (c) by 2 worker processes with 1 thread each, which share a results folder and claim runs
   (``nclib.experiments.run_group``: the same mechanism as ``make experiments WORKERS=2``; its wall
   time includes starting the processes and loading the data). Ratios: (a) time / (b) or (c) time.
   The models are the ones the runner sweeps, in their chapters' settings: the reference scale's
   MLP (width 256, the full split) and chapter 7's ``small_cnn`` (NHWC, measurement batch 256),
   several epochs each, so that training and measurement weigh about what they weigh in a run.
   Beside it, the ceiling of (c): one epoch at 2 threads against 1 thread in one process (the
   thread speed-up s); two processes with a thread each can be at most 2 / s times the loop, less
   what they take from each other (memory bandwidth, caches).
6. Chapter 7's sweep through the runner (``python -m nclib.experiments run --experiment
   margins_tpt``, papermill, one thread per worker, the reference preset's settings on a
   subset): its wall time with 2 workers against 1 worker, start-up and analysis cells included.
   The workers split the runs only if the chapter never waits on one run before claiming the next.
7. ``nc_metrics`` and ``NCAccumulator`` on 60 000 × 512, C = 10, against the reference library's
   float64 formulas (``bench/metrics_speed.py``, a re-implementation of their formulas).

    python bench/cpu_speed.py                          # the full table (about 18 minutes)
    python bench/cpu_speed.py --size tiny              # seconds, for the test
    python bench/cpu_speed.py --record results/bench   # also writes cpu_speed-<size>-<cpu model>.json

No timing is asserted anywhere; the ratios are the result.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import metrics_speed  # noqa: E402
import nclib.train as nctrain  # noqa: E402
from nclib.data import TensorDataset, balanced_split  # noqa: E402
from nclib.datasets import fashion_mnist  # noqa: E402
from nclib.experiments import run_group  # noqa: E402
from nclib.files import atomic_write_json  # noqa: E402
from nclib.models import FixedHead, NCModel, build_backbone  # noqa: E402
from nclib.presets import PRESETS  # noqa: E402
from nclib.records import RunSpec, RunStore, cpu_model, provenance  # noqa: E402
from nclib.scheme import bench_record_name  # noqa: E402
from nclib.sweep import equivalent_classifiers, sweep_models, train_sweep  # noqa: E402
from nclib.train import TrainConfig, evaluate, evaluate_loss_accuracy, train  # noqa: E402

SIZES = {
    # GEMM n, images (MLP / CNN train, test), sweep models and epochs, schedule run (images/class, epochs),
    # chapter 7's sweep (images/class, epochs, seeds × 2 heads)
    "tiny": dict(gemm=256, mlp_train=400, cnn_train=200, test=100, models=2, sweep_epochs=1, sched=(20, 12),
                 metrics="tiny", repeats=1, ch7=(40, 6, 2), kinds=("mlp",)),
    "cpu": dict(gemm=2048, mlp_train=60_000, cnn_train=6_400, test=10_000, models=10, sweep_epochs=4,
                sched=(500, 60), metrics="full", repeats=3, ch7=(500, 40, 4), kinds=("mlp", "small_cnn")),
}
BACKBONES = {"mlp": dict(width=512), "small_cnn": dict(width=16)}
# The memory format and measurement batch the chapters use (measured here: for the CNN, NHWC halves
# the forward pass and a batch of 256 instead of 1000 halves it again; the MLP is indifferent to
# the format and a little faster with large batches). The bench also times the CNN's old setting.
LAYOUT = {"mlp": dict(channels_last=False, eval_batch=1000), "small_cnn": dict(channels_last=True, eval_batch=256)}
OLD_LAYOUT = dict(channels_last=False, eval_batch=1000)
D, BATCH = 32, 128


def best(fn, repeats=3):
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    return best_interleaved({"fn": fn}, repeats)["fn"]


def best_interleaved(fns: dict, repeats=3) -> dict:
    """Best wall time of each of ``fns`` ({name: callable}) over ``repeats`` rounds, the callables
    taking turns within each round (after one warm-up call each): a machine that slows down or
    speeds up during the measurement (another tenant, the clock) weighs on every callable alike
    instead of on whichever ran last."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def gemm_gflops(n: int, threads: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best(lambda: a @ b, repeats) / 1e9


def data(size: dict, kind: str) -> tuple[TensorDataset, TensorDataset]:
    """A class-balanced part of Fashion-MNIST (the full split for the MLP at cpu size)."""
    tr, te = fashion_mnist()
    n = size["mlp_train" if kind == "mlp" else "cnn_train"]
    return balanced_split(tr, te, n // 10 if n < len(tr) else None, size["test"] // 10 if size["test"] < len(te) else None, 0)


def model(kind: str, seed: int = 0, M=None, width: int | None = None, channels_last: bool = False) -> NCModel:
    """A model of the training rows (``width``: the backbone's, default BACKBONES'), NHWC if asked."""
    torch.manual_seed(seed)
    net = build_backbone(kind, (1, 28, 28), D, width or BACKBONES[kind]["width"])
    M = M if M is not None else equivalent_classifiers(10, D, 0, 0, seed=0)[1][0].M
    m = NCModel(net, FixedHead(M))
    return m.to(memory_format=torch.channels_last) if channels_last else m


def flops_per_image(m: NCModel, x: torch.Tensor, backward: bool) -> float:
    m = copy.deepcopy(m).train(backward)
    with FlopCounterMode(display=False) as counter:
        if backward:
            F.cross_entropy(m(x), torch.zeros(len(x), dtype=torch.long)).backward()
        else:
            with torch.no_grad():
                m.features(x)
    return counter.get_total_flops() / len(x)


def one_epoch(m: NCModel, tr: TensorDataset, channels_last: bool = False):
    """One epoch of SGD in the training loop's shape (no measurement)."""
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    m.train()
    order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(order), BATCH):
        idx = order[i : i + BATCH]
        x = tr.x[idx].contiguous(memory_format=torch.channels_last) if channels_last else tr.x[idx]
        loss = F.cross_entropy(m(x), tr.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def training_and_measurement(kind: str, size: dict) -> dict:
    """Rows 2 and 3: training rate, measurement pass against a training epoch, forward rate."""
    torch.set_num_threads(2)
    tr, te = data(size, kind)
    f_train = flops_per_image(model(kind), tr.x[:64], backward=True)
    f_fwd = flops_per_image(model(kind), tr.x[:64], backward=False)
    out = dict(images=len(tr))
    for name, lay in (("", LAYOUT[kind]), ("old_", OLD_LAYOUT)):
        if name and lay == LAYOUT[kind]:
            continue
        cl, bs = lay["channels_last"], lay["eval_batch"]
        m = model(kind, channels_last=cl)
        t_epoch = best(lambda: one_epoch(m, tr, cl), size["repeats"])
        t_eval = best(lambda: (evaluate(m, tr, bs, cl), evaluate_loss_accuracy(m, te, bs, cl)), size["repeats"])
        t_fwd = best(lambda: evaluate(m, tr, bs, cl), size["repeats"])
        out.update({f"{name}layout": lay, f"{name}epoch_s": t_epoch, f"{name}measure_s": t_eval,
                    f"{name}train_img_s": len(tr) / t_epoch, f"{name}train_gflops": f_train * len(tr) / t_epoch / 1e9,
                    f"{name}forward_gflops": f_fwd * len(tr) / t_fwd / 1e9,
                    f"{name}measure_share_every_epoch": t_eval / t_epoch})
    return out


def schedule_share(kind: str, size: dict) -> dict:
    """Row 4: a real run; the time inside the measurement functions against the rest."""
    torch.set_num_threads(2)
    per_class, epochs = size["sched"]
    full_tr, full_te = fashion_mnist()
    tr, te = balanced_split(full_tr, full_te, per_class, 100 if size["test"] >= 1000 else 10, 0)
    spent = {"t": 0.0}
    real = (nctrain.evaluate, nctrain.evaluate_loss_accuracy)

    def timed(fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            spent["t"] += time.perf_counter() - t
            return out
        return wrapper

    out = {}
    nctrain.evaluate, nctrain.evaluate_loss_accuracy = timed(real[0]), timed(real[1])
    try:
        for mode in ("auto", "every"):
            spent["t"] = 0.0
            cfg = TrainConfig(epochs=epochs, batch_size=BATCH if kind == "mlp" else 64, lr=0.02,
                              milestones=(2 * epochs // 3,), measure=mode,
                              channels_last=LAYOUT[kind]["channels_last"],
                              eval_batch_size=LAYOUT[kind]["eval_batch"])
            t = time.perf_counter()
            h = train(model(kind), tr, te, cfg, progress=False)
            wall = time.perf_counter() - t
            out[mode] = dict(measured_epochs=len(h.records), epochs=h.epochs_trained, wall_s=wall,
                             measure_s=spent["t"], share=spent["t"] / (wall - spent["t"]),
                             terminal_epoch=h.terminal_epoch, terminal_after=h.terminal_after)
    finally:
        nctrain.evaluate, nctrain.evaluate_loss_accuracy = real
    return out


# The sweep row's models: the reference scale's MLP (chapters 7, 8 and 10; the runner's long CPU
# sweeps) and chapter 7's small_cnn, in their chapters' layouts (LAYOUT).
SWEEP_WIDTHS = {"mlp": PRESETS["non_conservative"]["reference"]["widths"]["mlp"], "small_cnn": 16}


def sweep_specs(kind: str, K: int):
    _, heads = equivalent_classifiers(10, D, K - 1, 0, seed=0)
    heads = heads[:K]
    specs = [RunSpec(f"bench-{kind}-{h.label}", {"kind": kind, "head": h.label, "bench": "cpu_speed"}, h.M)
             for h in heads]
    return specs, heads


def sweep_config(kind: str, size: dict) -> TrainConfig:
    """Several epochs measured every epoch: measurement is about a quarter of the run (in a
    reference run of 61 epochs, auto-measured at 26 of them, about a tenth), where one epoch
    measured twice made it half and weighed the processes' start and measurement too much."""
    return TrainConfig(epochs=size["sweep_epochs"], batch_size=BATCH, lr=0.01, momentum=0.9, weight_decay=5e-4,
                       measure="every", channels_last=LAYOUT[kind]["channels_last"],
                       eval_batch_size=LAYOUT[kind]["eval_batch"])


def sweep_backbone(kind: str):
    return build_backbone(kind, (1, 28, 28), D, SWEEP_WIDTHS[kind])


def build(kind: str):
    return lambda pending: sweep_models(lambda: sweep_backbone(kind), [s.head for s in pending], 0)


def thread_speedup(kind: str, tr: TensorDataset, repeats: int) -> dict:
    """One training epoch of a sweep model at 1 and at 2 threads in this process: the speed-up s
    bounds what two one-thread processes can gain over the two-thread loop (2 / s)."""
    cl = LAYOUT[kind]["channels_last"]
    m = model(kind, width=SWEEP_WIDTHS[kind], channels_last=cl)
    out = {}
    for t in (1, 2):
        torch.set_num_threads(t)
        out[f"epoch_{t}_thread_s"] = best(lambda: one_epoch(m, tr, cl), repeats)
    out["thread_speedup"] = out["epoch_1_thread_s"] / out["epoch_2_thread_s"]
    out["processes_ceiling"] = 2 / out["thread_speedup"]
    return out


def worker(kind: str, size_name: str, store: str) -> None:
    """One of the worker processes of scheme (c): the same specs, the same folder, claims."""
    torch.set_num_threads(1)
    size = SIZES[size_name]
    tr, te = data(size, kind)
    specs, _ = sweep_specs(kind, size["models"])
    run_group(specs, build(kind), tr, te, sweep_config(kind, size), store=RunStore(store), batched=False)
    from nclib.experiments import wait_for_others
    wait_for_others()


def sweep_schemes(kind: str, size_name: str) -> dict:
    """Row 5: loop (2 threads), batched (2 threads), 2 processes × 1 thread via claims."""
    size = SIZES[size_name]
    tr, te = data(size, kind)
    specs, heads = sweep_specs(kind, size["models"])
    out = dict(width=SWEEP_WIDTHS[kind], epochs=size["sweep_epochs"], **thread_speedup(kind, tr, size["repeats"]))
    torch.set_num_threads(2)
    for name, batched in (("loop", False), ("batched", True)):
        models = build(kind)(specs)
        t = time.perf_counter()
        train_sweep(models, tr, te, sweep_config(kind, size), batched=batched)
        out[f"{name}_s"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="nclib-bench-") as store:
        cmd = [sys.executable, __file__, "--worker", kind, "--size", size_name, "--store", store]
        t = time.perf_counter()
        procs = [subprocess.Popen(cmd) for _ in range(2)]
        codes = [p.wait() for p in procs]
        out["processes_s"] = time.perf_counter() - t
        if any(codes):
            raise RuntimeError(f"a bench worker failed (exit codes {codes})")
        records = [json.loads(p.read_text()) for p in Path(store, "runs").glob("*.json")]
    # Training time per worker: the sum of its runs' wall times. The slower worker's sum is the
    # sweep's steady-state wall time; the rest of processes_s is the one-off cost of starting a
    # worker (importing torch, loading the data), paid once per worker however long the sweep.
    per_worker: dict[int, float] = {}
    for r in records:
        pid = r["extra"]["trained_by"]["pid"]
        per_worker[pid] = per_worker.get(pid, 0.0) + r["wall_time_s"]
    out.update(records=len(records), workers_that_trained=len(per_worker), models=len(specs),
               processes_steady_s=max(per_worker.values()))
    out["processes_start_s"] = out["processes_s"] - out["processes_steady_s"]
    out["batched_ratio"] = out["loop_s"] / out["batched_s"]
    out["processes_ratio"] = out["loop_s"] / out["processes_s"]
    out["processes_steady_ratio"] = out["loop_s"] / out["processes_steady_s"]
    return out


def near_limit(size: dict, sweep: dict, g1: float) -> dict:
    """Row 5b, the reference sweep against the machine's limit: useful training FLOPs per second
    (forward and backward of every training image of every epoch of every model; the measurement
    passes and the start of the processes count as time, not as work) of the scheme the runner
    picks for this CPU (nclib.scheme: the processes where their steady ratio beat the loop), over
    the limit 2 × the 1-thread GEMM rate. Its ceiling, measured beside it: a minimal torch loop
    of the same model on one thread (no measurement) over the 1-thread GEMM rate. And the loop
    itself: nclib's ``train`` (every epoch measured) against the minimal loop plus the same
    measurement passes, both on one thread."""
    kind = "mlp"
    tr, te = data(size, kind)
    m = model(kind, width=SWEEP_WIDTHS[kind])
    f_train = flops_per_image(m, tr.x[:64], backward=True)
    useful = sweep["models"] * sweep["epochs"] * len(tr) * f_train
    processes = sweep["processes_steady_ratio"] > 1.0
    seconds = sweep["processes_s"] if processes else sweep["loop_s"]
    out = dict(scheme="2 processes × 1 thread" if processes else "1 process × 2 threads", gflop_per_image=f_train / 1e9,
               sweep_gflops=useful / seconds / 1e9, limit_gflops=2 * g1)
    out["share"] = out["sweep_gflops"] / out["limit_gflops"]
    out["ceiling_share"] = len(tr) * f_train / sweep["epoch_1_thread_s"] / 1e9 / g1
    torch.set_num_threads(1)
    epochs = size["sweep_epochs"]
    config = dataclasses.replace(sweep_config(kind, size), epochs=epochs)
    lay = LAYOUT[kind]

    def minimal():
        mm = model(kind, width=SWEEP_WIDTHS[kind])
        for _ in range(epochs):
            one_epoch(mm, tr)
        for _ in range(epochs + 1):  # what nclib measures: epoch 0 and every epoch after it
            evaluate(mm, tr, lay["eval_batch"]), evaluate_loss_accuracy(mm, te, lay["eval_batch"])

    timed = best_interleaved({
        "minimal_s": minimal,
        "nclib_s": lambda: train(model(kind, width=SWEEP_WIDTHS[kind]), tr, te, config, progress=False),
    }, size["repeats"])
    out.update(timed)
    out["nclib_over_minimal"] = out["nclib_s"] / out["minimal_s"]
    return out


def chapter7_workers(size_name: str) -> dict:
    """Row 6: chapter 7's sweep under the runner with 1 and with 2 workers (one thread each), each
    into a fresh results folder; wall times of the whole command. The test's tiny size runs only
    the 2 workers (do both train?): its runs are so short that start-up is the whole time, and a
    ratio of start-ups says nothing about the chapter."""
    per_class, epochs, seeds = SIZES[size_name]["ch7"]
    params = dict(backbones=["mlp"], heads=["etf", "learnable"], seeds_per_backbone={"mlp": seeds},
                  per_class_train=per_class, per_class_test=100, widths={"mlp": 256}, feature_dim=D,
                  epochs=epochs, milestones=[epochs // 2], fit_until=0, terminal_epochs=0, batch_size=BATCH,
                  eval_batch_size=1000, cpu_threads=1)
    out = dict(runs=2 * seeds, epochs=epochs, images=10 * per_class)
    for workers in (2,) if size_name == "tiny" else (1, 2):
        with tempfile.TemporaryDirectory(prefix="nclib-bench-ch7-") as results:
            cmd = [sys.executable, "-m", "nclib.experiments", "run", "--experiment", "margins_tpt", "--scale", "tiny",
                   "--device", "cpu", "--results", results, "--workers", str(workers)]
            # the recorded sweeps run under papermill; the test's tiny size, as plain scripts (faster start)
            cmd += ["--runner", "script"] if size_name == "tiny" else []
            cmd += [f"--param={k}={json.dumps(v)}" for k, v in params.items()]
            t = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            out[f"workers_{workers}_s"] = time.perf_counter() - t
            if done.returncode:
                raise RuntimeError(f"chapter 7 with {workers} worker(s) failed: {done.stderr[-2000:]}")
            trainers = {json.loads(p.read_text())["extra"]["trained_by"]["pid"]
                        for p in Path(results, "margins_tpt", "tiny", "runs").glob("*.json")}
            out[f"workers_{workers}_trainers"] = len(trainers)
    if "workers_1_s" in out:
        out["ratio"] = out["workers_2_s"] / out["workers_1_s"]
    return out


def table(res: dict) -> str:
    g1, g2 = res["gemm_gflops"]["1"], res["gemm_gflops"]["2"]
    rows = [("GEMM limit, torch.mm, 1 / 2 threads", f"{g1:.0f} / {g2:.0f} GFLOP/s")]
    for kind, r in res["training"].items():
        rows += [(f"{kind} training, 2 threads", f"{r['train_img_s']:.0f} img/s = {r['train_gflops']:.0f} GFLOP/s "
                                                 f"= {100 * r['train_gflops'] / g2:.0f}% of the limit"),
                 (f"{kind} measurement pass / training epoch", f"{r['measure_s']:.2f} s / {r['epoch_s']:.2f} s "
                                                               f"= {100 * r['measure_share_every_epoch']:.0f}%"),
                 (f"{kind} forward-pass rate / training rate", f"{r['forward_gflops']:.0f} / {r['train_gflops']:.0f} "
                                                               f"GFLOP/s = {r['forward_gflops'] / r['train_gflops']:.2f}×")]
        if "old_forward_gflops" in r:
            rows.append((f"{kind} before (NCHW, eval batch 1000): measurement / epoch, forward / training",
                         f"{100 * r['old_measure_share_every_epoch']:.0f}%, "
                         f"{r['old_forward_gflops']:.0f} / {r['old_train_gflops']:.0f} GFLOP/s = "
                         f"{r['old_forward_gflops'] / r['old_train_gflops']:.2f}×; measurement pass "
                         f"{r['old_measure_s'] / r['measure_s']:.2f}× faster now"))
    for kind, r in res["schedule"].items():
        a, e = r["auto"], r["every"]
        rows.append((f"{kind} run, metric time / training time",
                     f"auto {100 * a['share']:.0f}% ({a['measured_epochs']} of {a['epochs'] + 1} epochs measured) · "
                     f"every {100 * e['share']:.0f}%"))
    for kind, r in res["sweep"].items():
        rows.append((f"{kind} (width {r['width']}) epoch, 1 thread / 2 threads: ceiling of 2 processes",
                     f"{r['epoch_1_thread_s']:.2f} / {r['epoch_2_thread_s']:.2f} s = {r['thread_speedup']:.2f}× "
                     f"→ at most {r['processes_ceiling']:.2f}× the loop"))
        rows.append((f"{r['models']} {kind}s × {r['epochs']} epoch{'s' * (r['epochs'] != 1)}: loop / batched / 2 processes",
                     f"{r['loop_s']:.1f} / {r['batched_s']:.1f} s ({r['batched_ratio']:.2f}×) / "
                     f"{r['processes_s']:.1f} s ({r['processes_ratio']:.2f}×, {r['workers_that_trained']} workers trained)"))
        rows.append((f"  2 processes, steady state (start {r['processes_start_s']:.1f} s per sweep left out)",
                     f"{r['processes_steady_s']:.1f} s ({r['processes_steady_ratio']:.2f}× the loop)"))
    n = res["near_limit"]
    rows.append((f"reference sweep ({n['scheme']}, measurement and start included) / machine limit",
                 f"{n['sweep_gflops']:.0f} / {n['limit_gflops']:.0f} GFLOP/s = {100 * n['share']:.0f}% "
                 f"(ceiling: a minimal 1-thread loop reaches {100 * n['ceiling_share']:.0f}% of the 1-thread GEMM)"))
    rows.append(("nclib train / minimal torch loop + the same measurement passes, 1 thread",
                 f"{n['nclib_s']:.2f} / {n['minimal_s']:.2f} s = {n['nclib_over_minimal']:.2f}×"))
    c = res["chapter7"]
    what = f"chapter 7 sweep ({c['runs']} runs × {c['epochs']} epochs, {c['images']} images)"
    if "ratio" in c:
        rows.append((f"{what}: 1 / 2 workers", f"{c['workers_1_s']:.1f} / {c['workers_2_s']:.1f} s = "
                     f"{c['ratio']:.2f}× the wall time ({c['workers_2_trainers']} workers trained)"))
    else:
        rows.append((f"{what}: 2 workers", f"{c['workers_2_s']:.1f} s ({c['workers_2_trainers']} workers trained; "
                     "no ratio at this size: start-up is the whole time)"))
    m = res["metrics"]
    rows.append((f"nc_metrics / accumulator vs reference float64, N = {m['N']}, d = {m['d']}, 1 thread",
                 f"{m['nclib_nc_metrics_s']:.2f} / {m['nclib_accumulator_s']:.2f} s vs {m['reference_s']:.2f} s "
                 f"({m['reference_s'] / m['nclib_nc_metrics_s']:.2f}× / {m['reference_s'] / m['nclib_accumulator_s']:.2f}×)"))
    w = max(len(a) for a, _ in rows)
    return "\n".join([f"{'measurement':{w}s}  result", "-" * (w + 60)] + [f"{a:{w}s}  {b}" for a, b in rows])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="cpu")
    p.add_argument("--record", default="", help="folder for cpu_speed-<size>-<cpu model>.json (e.g. results/bench)")
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--store", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.size, args.store)
        return {}
    size = SIZES[args.size]
    t0 = time.perf_counter()
    res = {"size": args.size,
           "gemm_gflops": {str(t): gemm_gflops(size["gemm"], t, size["repeats"]) for t in (1, 2)},
           # the tiny size (the test's smoke run) measures the MLP only; make bench both backbones
           "training": {k: training_and_measurement(k, size) for k in size["kinds"]},
           "schedule": {k: schedule_share(k, size) for k in size["kinds"]},
           "sweep": {k: sweep_schemes(k, args.size) for k in size["kinds"]},
           "chapter7": chapter7_workers(args.size)}
    res["near_limit"] = near_limit(size, res["sweep"]["mlp"], res["gemm_gflops"]["1"])
    torch.set_num_threads(1)
    rec = metrics_speed.main(["--size", size["metrics"], "--repeats", str(size["repeats"])])
    t = {r["method"]: r["seconds"] for r in rec["rows"]}
    res["metrics"] = dict(N=rec["N"], d=rec["d"], C=rec["C"], agreement=rec["agreement"],
                          reference_s=t["reference float64 (re-implementation)"],
                          nclib_nc_metrics_s=t["nclib nc_metrics (in memory)"],
                          nclib_accumulator_s=t["nclib NCAccumulator (keeps features)"])
    res["wall_s"] = time.perf_counter() - t0
    res["sweep_processes"] = 2  # scheme (c) of row 5; nclib.scheme applies the record to 2-core machines
    res["provenance"] = {**provenance("cpu"), "cpu_model": cpu_model()}
    print(f"CPU: {res['provenance']['cpu_model']}, torch {torch.__version__}")
    print(table(res))
    if args.record:
        path = Path(args.record) / bench_record_name(args.size)  # one record per CPU model
        atomic_write_json(path, res)
        print(f"recorded: {path}")
    return res


if __name__ == "__main__":
    main()
