"""Pilot for the reference scale: what one Section 5.2 run costs on the full Fashion-MNIST split.

The reference-scale budget (at most 6 hours of a 2-core machine, two worker processes with one
thread each) is spent on many runs of one design, so the design is chosen from a measured cost
per run, not a guess. This trains chapter 8's model (the MLP backbone with a fixed simplex ETF
head, d = 32) on all 60 000 training images, one thread, with chapter 8's optimizer, *until* every
training label fits (capped), and records the wall time and, at every epoch the metric schedule
measured, the training accuracy and cross-entropy and the test accuracy.

    python bench/reference_pilot.py --width 256 --weight-decay 0 --record results/bench
    python bench/reference_pilot.py --backbone small_cnn --width 16 --max-epochs 3

The collapse pilot (a fixed budget deep into the terminal phase, with weight decay; the record
then holds training NC1 at every measured epoch and the collapse criterion of chapter 10):

    python bench/reference_pilot.py --backbone mlp_relu --fixed --epochs 300 --milestones 100 200 \
        --weight-decay 5e-4 --record results/bench

The record (``results/bench/reference_pilot-<backbone>-w<width>-n<images>-lr<lr>-wd<wd>.json``)
holds the provenance of the machine, so chapter 10 can show where its budget arithmetic came from.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nclib.data import balanced_split  # noqa: E402
from nclib.datasets import fashion_mnist  # noqa: E402
from nclib.etf import simplex_etf  # noqa: E402
from nclib.files import atomic_write_json  # noqa: E402
from nclib.models import FixedHead, NCModel, build_backbone  # noqa: E402
from nclib.records import provenance  # noqa: E402
from nclib.train import TrainConfig, TrainingDidNotConverge, train  # noqa: E402


def pilot(width: int, lr: float, batch_size: int, epochs: int, max_epochs: int,
          milestones: tuple[int, ...], weight_decay: float = 5e-4, backbone: str = "mlp",
          per_class_train: int = 0, seed: int = 0, threads: int = 1, fixed: bool = False) -> dict:
    """One run as chapter 8 would train it at reference scale; returns its timeline."""
    torch.set_num_threads(threads)
    train_set, test_set = fashion_mnist()
    if per_class_train:
        train_set, test_set = balanced_split(train_set, test_set, per_class_train, None, seed)
    torch.manual_seed(seed)
    net = build_backbone(backbone, tuple(train_set.x.shape[1:]), 32, width)
    model = NCModel(net, FixedHead(simplex_etf(10, 32, generator=0), 1.0))
    until = dict(until_accuracy=1.0, max_epochs=max_epochs) if not fixed else {}
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9,
                         weight_decay=weight_decay, milestones=milestones, seed=seed, **until)
    timeline = []  # the measured epochs (nclib.schedule's "auto": dense near the fit)
    start = time.perf_counter()

    def on_epoch(epoch, model, tr, te):
        timeline.append(dict(epoch=epoch, seconds=round(time.perf_counter() - start, 2),
                             train_accuracy=tr["accuracy"], train_loss=tr["loss"],
                             train_nc1=tr["nc1"], test_accuracy=te["accuracy"]))

    status, terminal_epoch = "fitted", None
    try:
        history = train(model, train_set, test_set, config, progress=True, on_epoch=on_epoch)
        terminal_epoch = history.terminal_epoch
        if terminal_epoch is None:
            status = f"not fitted within the fixed budget of {epochs} epochs"
    except TrainingDidNotConverge as exc:
        status = f"not fitted: {exc}"
    seconds = time.perf_counter() - start
    epochs_run = timeline[-1]["epoch"]
    collapse = None
    if terminal_epoch is not None:
        from nclib.collapse import collapse_status
        collapse = collapse_status(history).as_dict()
    return dict(backbone=backbone, n_train=len(train_set), width=width, lr=lr, fixed_budget=fixed,
                collapse=collapse,
                weight_decay=weight_decay, batch_size=batch_size, epochs=epochs, max_epochs=max_epochs,
                milestones=list(milestones), threads=threads, status=status,
                terminal_epoch=terminal_epoch, epochs_trained=epochs_run,
                seconds=round(seconds, 1), seconds_per_epoch=round(seconds / max(1, epochs_run), 2),
                timeline=timeline)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="mlp", choices=["mlp", "mlp_relu", "mlp_gauss", "small_cnn"])
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--per-class-train", type=int, default=0, help="0: the full split")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=30, help="the schedule; then on until fit")
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--milestones", type=int, nargs="*", default=[20])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fixed", action="store_true", help="train exactly --epochs (no training on until fit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", help="folder for the JSON record (results/bench)")
    args = p.parse_args(argv)
    out = pilot(args.width, args.lr, args.batch_size, args.epochs, args.max_epochs,
                tuple(args.milestones), args.weight_decay, args.backbone, args.per_class_train,
                seed=args.seed, threads=args.threads, fixed=args.fixed)
    print(f"{out['backbone']} width {out['width']}, lr {out['lr']}, weight decay "
          f"{out['weight_decay']:g}, {out['n_train']} images: {out['status']}; terminal phase from epoch "
          f"{out['terminal_epoch']}, {out['epochs_trained']} epochs in {out['seconds']:.0f} s "
          f"({out['seconds_per_epoch']:.1f} s per epoch, {out['threads']} thread)")
    if args.record:
        out["provenance"] = provenance("cpu")
        name = (f"reference_pilot-{args.backbone}-w{args.width}-n{out['n_train']}-lr{args.lr:g}"
                f"-wd{args.weight_decay:g}" + (f"-e{args.epochs}-m{'-'.join(map(str, args.milestones))}"
                                               if args.fixed else "") + ".json")
        path = Path(args.record) / name
        atomic_write_json(path, out)
        print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
