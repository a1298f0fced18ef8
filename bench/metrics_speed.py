"""Speed of the neural-collapse metrics: nclib against the reference library
rhubarbwu/neural-collapse, measured in the same run, on one thread.

The reference here is a *re-implementation of that library's published formulas*, not its code
(its NC4 accumulator can use faiss, an optional dependency, and it computes one metric per call),
in its two pipelines:

* **float32, its default**: the features in the dtype the model hands them over, two passes over
  batches of 1000 as its accumulators do: class means (a one-hot (K×B) matrix times the batch,
  ``MeanAccumulator``) and the within-class covariance (per batch Σ (x − μ_y)(x − μ_y)ᵀ, a d×d
  product, ``CovarAccumulator``), then NC1 and NC2 from them: the *statistics* a metric of
  variability needs, which is what nclib's statistics-only accumulator computes too;
* **float64, everything**: the same two passes plus NC4 (per batch the nearest-class-centre
  decision from ‖x‖² + ‖μ‖² − 2⟨x, μ⟩ against the classifier's argmax, ``DecAccumulator``, its
  branch without faiss), all in float64: what nclib's full paths compute.

Both finish with NC1 = tr(Σ_W Σ_B⁺)/C, ``torch.linalg.pinv`` of the d×d Σ_B (``variability_pinv``;
since November 2024 the library divides Σ_B by C, as Papyan et al. and nclib do), NC2 equinorm
(coefficient of variation of the centred mean norms, ``mean_norms``) and equiangularity (std of the
off-diagonal cosines, ``interference_grid``); the float64 pipeline adds the simplex-ETF and
self-duality errors (``simplex_etf_error``, ``self_duality_error``) and the NCC agreement
(``clf_ncc_agreement``).

nclib is timed three ways: ``nc_metrics`` on the whole matrix and ``NCAccumulator`` over the same
batches (it keeps the features, as NC4 needs), both against the float64 reference; and
``NCAccumulator(keep_features=False)`` (statistics only, no NC4) against the float32 default.
Each time is the best of ``--repeats`` runs. The printed ratios are reference time / nclib time
(> 1: nclib is faster). No timing is asserted anywhere.

    python bench/metrics_speed.py                       # N = 60 000, d = 512, C = 10
    python bench/metrics_speed.py --size tiny           # seconds, for the test
    python bench/metrics_speed.py --record results/bench
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nclib.accumulate import NCAccumulator  # noqa: E402
from nclib.metrics import nc_metrics  # noqa: E402
from nclib.records import cpu_model  # noqa: E402

SIZES = {"full": dict(N=60_000, d=512, C=10), "tiny": dict(N=600, d=16, C=4)}
BATCH = 1000


# --- the reference pipeline (re-implemented from rhubarbwu/neural-collapse's formulas) ----------

def reference_metrics(batches, W: torch.Tensor, C: int, d: int) -> dict:
    """``W`` is the C×d classifier (the library's convention); batches are (X, Y) pairs."""
    f64 = torch.float64
    ns = torch.zeros(C, dtype=f64)
    totals = torch.zeros(C, d, dtype=f64)
    for X, Y in batches:  # MeanAccumulator
        onehot = (Y[:, None] == torch.arange(C)).to(f64)
        ns += onehot.sum(0)
        totals += onehot.T @ X.to(f64)
    means = totals / ns[:, None]
    cov = torch.zeros(d, d, dtype=f64)
    for X, Y in batches:  # CovarAccumulator
        diff = X.to(f64) - means[Y]
        cov += diff.T @ diff
    V_intra = cov / ns.sum()
    W = W.to(f64)
    hits = torch.zeros((), dtype=f64)
    for X, Y in batches:  # DecAccumulator, without faiss
        X = X.to(f64)
        dists = X.pow(2).sum(1, keepdim=True) + means.pow(2).sum(1) - 2 * X @ means.T
        hits += (dists.argmin(1) == (X @ W.T).argmax(1)).sum()
    m_G = means.mean(0)
    centred = means - m_G
    V_inter = centred.T @ centred / C  # Σ_B / C, as the library since November 2024
    nc1 = torch.trace(torch.linalg.pinv(V_inter) @ V_intra).item() / C
    norms = centred.norm(dim=1)
    unit = centred / norms[:, None]
    off = (unit @ unit.T)[~torch.eye(C, dtype=torch.bool)]

    def structure_error(A, B):
        s = B @ A.T
        s = s / torch.linalg.matrix_norm(s)
        ideal = (torch.eye(C, dtype=f64) - 1.0 / C) / math.sqrt(C - 1)
        return torch.linalg.matrix_norm(s - ideal).item()

    # population std (unbiased=False), as nclib: the library leaves the choice to its caller
    return {"nc1": nc1, "nc2_equinorm": (norms.std(unbiased=False) / norms.mean()).item(),
            "nc2_equiangular": off.std(unbiased=False).item(), "nc2_etf_error": structure_error(centred, centred),
            "nc3_self_duality_error": structure_error(centred, W),
            "nc4_agreement": hits.item() / ns.sum().item()}


def reference_statistics_float32(batches, C: int, d: int) -> dict:
    """The library's default pipeline: its two accumulators in the features' float32, then NC1
    and NC2 (the pseudo-inverse in float32 too)."""
    ns = torch.zeros(C)
    totals = torch.zeros(C, d)
    for X, Y in batches:  # MeanAccumulator
        onehot = (Y[:, None] == torch.arange(C)).to(X.dtype)
        ns += onehot.sum(0)
        totals += onehot.T @ X
    means = totals / ns[:, None]
    cov = torch.zeros(d, d)
    for X, Y in batches:  # CovarAccumulator
        diff = X - means[Y]
        cov += diff.T @ diff
    V_intra = cov / ns.sum()
    centred = means - means.mean(0)
    V_inter = centred.T @ centred / C
    nc1 = torch.trace(torch.linalg.pinv(V_inter) @ V_intra).item() / C
    norms = centred.norm(dim=1)
    unit = centred / norms[:, None]
    off = (unit @ unit.T)[~torch.eye(C, dtype=torch.bool)]
    return {"nc1": nc1, "nc2_equinorm": (norms.std(unbiased=False) / norms.mean()).item(),
            "nc2_equiangular": off.std(unbiased=False).item()}


# --- timing ------------------------------------------------------------------------------------

def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def nclib_accumulator(batches, M, keep_features: bool) -> dict:
    acc = NCAccumulator(M, keep_features=keep_features)
    for X, Y in batches:
        acc.update(X, Y)
    return acc.compute()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", metavar="DIR", help="write metrics_speed-<size>.json with provenance")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    torch.set_num_threads(1)
    N, d, C = (SIZES[args.size][k] for k in ("N", "d", "C"))

    # Features as a model hands them over (float32), clustered by class, and a linear classifier.
    g = torch.Generator().manual_seed(args.seed)
    y = torch.arange(C).repeat(N // C + 1)[:N][torch.randperm(N, generator=g)]
    Z = 2.0 * torch.randn(C, d, generator=g)[y] + torch.randn(N, d, generator=g)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    batches = [(Z[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N, BATCH)]

    rows = []
    t_ref, ref = best_of(lambda: reference_metrics(batches, M.T, C, d), args.repeats)
    rows.append(("reference float64 (re-implementation)", t_ref))
    t_mem, mem = best_of(lambda: nc_metrics(Z, y, M), args.repeats)
    rows.append(("nclib nc_metrics (in memory)", t_mem))
    t_acc, _ = best_of(lambda: nclib_accumulator(batches, M, True), args.repeats)
    rows.append(("nclib NCAccumulator (keeps features)", t_acc))
    t_ref32, ref32 = best_of(lambda: reference_statistics_float32(batches, C, d), args.repeats)
    rows.append(("reference float32 default (statistics: means, covariance)", t_ref32))
    t_stat, stat = best_of(lambda: nclib_accumulator(batches, M, False), args.repeats)
    rows.append(("nclib NCAccumulator (statistics only, no NC4)", t_stat))

    # The two implementations must compute the same quantities for the ratio to mean anything.
    agree = {
        "nc1": abs(mem["nc1"] - ref["nc1"]) / abs(ref["nc1"]),
        "nc2_equinorm": abs(mem["nc2_equinorm_means"] - ref["nc2_equinorm"]) / abs(ref["nc2_equinorm"]),
        "nc2_etf_error": abs(mem["nc2_etf_error_means"] - ref["nc2_etf_error"]) / abs(ref["nc2_etf_error"]),
        "nc4": abs(mem["nc4_ncc_mismatch"] - (1.0 - ref["nc4_agreement"])),
        "statistics_nc1_vs_float64": abs(stat["nc1"] - ref["nc1"]) / abs(ref["nc1"]),
        "reference_float32_nc1_vs_float64": abs(ref32["nc1"] - ref["nc1"]) / abs(ref["nc1"]),
    }
    cpu = cpu_model()
    print(f"metrics speed: N = {N}, d = {d}, C = {C}, batches of {BATCH}, "
          f"{torch.get_num_threads()} thread, best of {args.repeats}; CPU: {cpu}; torch {torch.__version__}")
    print(f"{'method':58s} {'seconds':>9s}")
    for name, t in rows:
        print(f"{name:58s} {t:9.3f}")
    print(f"ratio reference float64 / nclib: nc_metrics {t_ref / t_mem:.2f}×, NCAccumulator {t_ref / t_acc:.2f}×; "
          f"reference float32 default / nclib statistics only {t_ref32 / t_stat:.2f}×")
    print("agreement with the reference (relative; NC4 absolute): "
          + ", ".join(f"{k} {v:.1e}" for k, v in agree.items()))

    record = {
        "benchmark": "metrics_speed", "size": args.size, "N": N, "d": d, "C": C, "batch": BATCH,
        "repeats": args.repeats,
        "rows": [{"method": name, "seconds": t, "ratio_reference_over_this": t_ref / t} for name, t in rows],
        "statistics_ratio_float32_reference_over_nclib": t_ref32 / t_stat,
        "agreement": agree,
        "provenance": {
            "cpu_model": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "git_commit": git_commit(),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    if args.record:
        out = Path(args.record)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"metrics_speed-{args.size}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, path)  # atomic: a reader never sees half a record
        print(f"recorded {path}")
    return record


if __name__ == "__main__":
    main()
