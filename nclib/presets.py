"""The experiments, their scales and presets, and the checks a run's parameters must pass.

A chapter's ``parameters`` cell (``# %% tags=["parameters"]``) is the single source of truth for
what can be set: :func:`chapter_parameters` reads its assignments with ``ast`` (literal values
only) and :func:`validate_parameters` holds presets and ``--param`` overrides against it, so a
typo (``epoch=50``) or a value the shell mangled (``backbones=[mlp]`` arrives as a string) is an
error before anything trains, not a run of the defaults that reports success.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nclib.chapters import parameters_cell
from nclib.models import BACKBONES

__all__ = [
    "EXPERIMENTS", "SCALES", "PRESETS", "DATASETS", "HEADS", "RUNNER_KEYS", "ParameterError",
    "chapter_parameters", "validate_parameters", "dataset_problem",
]

#: experiment name → the chapter (jupytext percent-format) that runs it.
EXPERIMENTS = {
    "margins_tpt": "book/ch07_margins_tpt.py",
    "non_conservative": "book/ch08_non_conservative.py",
    # Section 5.2's confirmatory design on collapsed networks (chapter 10): chapter 8's notebook
    # with the backbone whose features follow a ReLU and the rotation-invariant negative control.
    "confirmatory": "book/ch08_non_conservative.py",
    # its next part, run after the primary grid and the control are complete: the rotation grid on
    # the backbone of the test, in its own folder so that the primary design's plan stays as written
    "confirmatory_rotations": "book/ch08_non_conservative.py",
    # and the part after it: the C > d grid on the same backbone
    "confirmatory_small": "book/ch08_non_conservative.py",
    # and the last: Figure 3 (Section 5.1, chapter 7's notebook) on the same collapsed networks
    "confirmatory_tpt": "book/ch07_margins_tpt.py",
}
SCALES = ("tiny", "cpu", "reference", "paper")
DATASETS = ("fashion_mnist", "cifar10", "cifar100")
HEADS = ("etf", "learnable")  # chapter 7: the fixed simplex ETF and the learnable linear head
#: Parameters the runner sets itself (from --scale, --device, --results, --deterministic).
RUNNER_KEYS = {"scale": "--scale", "device": "--device", "results_dir": "--results", "deterministic": "--deterministic"}
# Parameters whose values (or list entries, or dict keys) must come from a fixed set of names.
_CHOICES = {"backbones": BACKBONES, "datasets": DATASETS, "heads": HEADS, "widths": BACKBONES,
            "seeds_per_backbone": BACKBONES,
            "augment": ("", "crop", "crop_flip"), "recorded_scale": SCALES, "reuse_from": tuple(EXPERIMENTS)}

_PAPER_TRAINING = dict(
    per_class_train=0, per_class_test=0, feature_dim=0, epochs=200, batch_size=128, lr=0.05,
    momentum=0.9, weight_decay=5e-4, milestones=[100, 150], augment="crop_flip", amp=True,
    channels_last=True, eval_batch_size=500,
)

# The reference scale (chapter 10): the full Fashion-MNIST split on 2-core CPUs, within 6 hours of
# such a machine (two workers, one thread each). Training as measured by bench/reference_pilot.py
# (results/bench/reference_pilot-*.json, AMD EPYC): the MLP of chapter 8 (width 256) fits all
# 60 000 training labels at epoch 60 in 4.2 min on one thread without weight decay; with chapter
# 8's 5e-4 it was still at 99.54% after 80 epochs, so the reference runs drop it. Budget: 150
# chapter-8 runs × 4.2 min + 6 chapter-7 runs × ~5.6 min ≈ 11 worker-hours = 5.5 h on 2 workers.
_REFERENCE_TRAINING = dict(
    per_class_train=0, per_class_test=0, backbones=["mlp"], datasets=["fashion_mnist"],
    widths={"mlp": 256}, feature_dim=32, batch_size=128, lr=0.05, momentum=0.9, weight_decay=0.0,
    epochs=60, milestones=[40], fit_until=1.0, max_epochs=200, eval_batch_size=1000, cpu_threads=1,
)

# The confirmatory design (chapter 10, written before its runs): networks trained deep into the
# terminal phase with weight decay, chosen by the collapse pilot (bench/reference_pilot.py,
# results/bench/reference_pilot-mlp_relu-*.json); fresh seeds (100 onwards, never used before) and a
# fresh head draw; the grid of M* and 10 permutations × 10 seeds on each backbone: `mlp_relu`
# (features after a ReLU: the test) and `mlp_gauss` (a linear last layer with a rotation-invariant
# initialisation: the negative control, where a permuted simplex ETF cannot matter in law). A
# fixed budget, so that every run is held to the collapse criterion (nclib.collapse) and a run that
# fails it is reported, not trained on until it passes.
_CONFIRMATORY_TRAINING = dict(
    per_class_train=3000, per_class_test=0, datasets=["fashion_mnist"], backbones=["mlp_relu", "mlp_gauss"],
    widths={"mlp_relu": 256, "mlp_gauss": 256}, feature_dim=32, batch_size=128, lr=0.05, momentum=0.9,
    weight_decay=2e-3, epochs=300, milestones=[30, 150], fit_until=0.0, eval_batch_size=1000, cpu_threads=1,
    measure_window=10,
)
_CONFIRMATORY_DESIGN = dict(
    seed=100, head_seed=100, small_dim=0, n_permutations=10, n_rotations=0, n_seeds=10, grid_permutations=10,
    grid_rotations=0, grid_seeds=10, batched=False, compare_epochs=0, identity_epochs=0,
)

# The further parts of the confirmatory design (chapter 10), in the written order, each in its own
# folder so that the primary design's plan stays as written, on the backbones of the test only
# (not the control `mlp_gauss`: for it a rotated head is a re-drawn last layer, the null that the
# primary control already checks), with the same training, seeds and head seed. Runs they share
# with the primary grid (the same parameters, hence run ids) are copied from its folder, not
# trained twice (reuse_from; nclib.records.RunStore.reuse).
def _on_test_backbones(preset: dict) -> dict:
    """``preset``'s backbones without the control, and their widths."""
    out = {"backbones": [b for b in preset["backbones"] if b != "mlp_gauss"]}
    if "widths" in preset:
        out["widths"] = {b: w for b, w in preset["widths"].items() if b in out["backbones"]}
    return out


def _further_part(preset: dict, **changes) -> dict:
    return dict(preset, reuse_from=["confirmatory"], **changes, **_on_test_backbones(preset))


def _rotation_grid(preset: dict) -> dict:
    """The rotation grid: M* and as many Haar rotations R_i M* as the primary grid has
    permutations, × the same seeds; its M* row is the primary grid's."""
    return _further_part(preset, n_permutations=0, grid_permutations=0, n_rotations=preset["n_permutations"],
                         grid_rotations=preset["grid_permutations"])


def _small_grid(preset: dict) -> dict:
    """The C > d grid: features of dimension d = 5 < C − 1, where M* is the unconstrained feature
    model's structure, and its grid of M* and the permutations × the seeds. The d = 32 runs the
    chapter also plans at those seeds (M* and the P_i at the main seed, M* at every seed) are the
    primary grid's."""
    return _further_part(preset, small_dim=5, control_small_dim=True, grid_permutations=0, grid_rotations=0,
                         small_grid_permutations=preset["grid_permutations"], small_grid_rotations=0)


#: Parameter overrides per experiment and scale; "cpu" is the notebooks' own defaults (the scale
#: the book build executes). Paper scale: the three backbones of Section 5 on full Fashion-MNIST
#: and on CIFAR-10/100 where their files are present (``data_root`` or ``NCLIB_CIFAR``); the
#: paper's Appendix A.1 (hyperparameters) is not available, so these are the usual CIFAR settings
#: (He et al. 2016): SGD 0.05, momentum 0.9, weight decay 5e-4, 200 epochs, ×0.1 at 100 and 150.
PRESETS: dict[str, dict[str, dict]] = {
    "margins_tpt": {
        "tiny": dict(backbones=["mlp"], heads=["etf", "learnable"], per_class_train=8, per_class_test=8,
                     feature_dim=16, widths={"mlp": 32}, epochs=3, batch_size=32,
                     seeds_per_backbone={"mlp": 1}),
        "cpu": {},
        # Figure 3 on the full split: both heads under three seeds, 20 epochs into the terminal phase.
        "reference": dict(_REFERENCE_TRAINING, heads=["etf", "learnable"],
                          seeds_per_backbone={"mlp": 3}, terminal_epochs=20),
        "paper": dict(backbones=["vgg11", "resnet32", "densenet121"],
                      datasets=["fashion_mnist", "cifar10", "cifar100"], heads=["etf", "learnable"],
                      **_PAPER_TRAINING),
    },
    "non_conservative": {
        "tiny": dict(per_class_train=8, per_class_test=8, feature_dim=16, small_dim=4, widths={"mlp": 32},
                     epochs=3, batch_size=32, n_permutations=3, n_rotations=3, n_seeds=3,
                     grid_permutations=2, grid_rotations=2, small_grid_permutations=2, grid_seeds=2,
                     compare_epochs=1, compare_models=3, identity_epochs=2, ufm_steps=200,
                     n_resamples=99),
        "cpu": {},
        # Section 5.2's boxes (10 permutations, 10 rotations at the main seed), M* under 10 seeds
        # and the 11 × 10 grid of M* and the permutations × seeds: power 0.85 against an effect
        # half the residual sd (nclib.stats.f_test_power(11, 10, 0.5)). No rotation grid (for a
        # backbone ending in a linear layer a rotated head is a re-drawn last layer: chapter 8's
        # identity), and the C > d case (d = 5) with its boxes and its own seed control, no grid.
        # The checks of the batched path and of the identity are CPU-scale checks (0: skipped).
        "reference": dict(_REFERENCE_TRAINING, small_dim=5, n_permutations=10, n_rotations=10,
                          n_seeds=10, grid_permutations=10, grid_rotations=0, grid_seeds=10,
                          small_grid_permutations=0, control_small_dim=True, batched=False,
                          compare_epochs=0, identity_epochs=0, measure_window=10),
        "paper": dict(backbones=["vgg11", "resnet32", "densenet121"],
                      datasets=["cifar10", "cifar100", "fashion_mnist"], small_dim=0, n_seeds=10,
                      compare_epochs=2, max_models=7, measure_window=10,
                      ufm_steps=3000, **_PAPER_TRAINING),
    },
    "confirmatory": {
        "tiny": dict(_CONFIRMATORY_DESIGN, backbones=["mlp_relu", "mlp_gauss"], per_class_train=8,
                     per_class_test=8, feature_dim=16, widths={"mlp_relu": 32, "mlp_gauss": 32}, epochs=3,
                     milestones=[2], fit_until=0.0, batch_size=32, n_permutations=2, n_seeds=2,
                     grid_permutations=2, grid_seeds=2, n_resamples=99),
        # the design at the book's CPU size (500 images, 60 epochs): a quick look, not a verdict
        "cpu": dict(_CONFIRMATORY_DESIGN, backbones=["mlp_relu", "mlp_gauss"],
                    widths={"mlp_relu": 128, "mlp_gauss": 128}, epochs=60, milestones=[10, 50], fit_until=0.0,
                    n_permutations=6, n_seeds=6, grid_permutations=6, grid_seeds=6),
        "reference": dict(_CONFIRMATORY_TRAINING, **_CONFIRMATORY_DESIGN),
        # the paper's backbones, trained 350 epochs as in Papyan et al. 2020 (×0.1 at ⅓ and ⅔)
        "paper": dict(_CONFIRMATORY_DESIGN, backbones=["vgg11", "resnet32", "densenet121"],
                      datasets=["cifar10", "cifar100", "fashion_mnist"],
                      **dict(_PAPER_TRAINING, epochs=350, milestones=[117, 233]), fit_until=0.0,
                      batched=False, measure_window=10),
    },
}


# Lists (or dicts) that must name at least one thing, counts with their least value, and numbers
# that must be positive: a value outside these plans nothing, or trains on nonsense, without an error.
_NONEMPTY = ("backbones", "datasets", "heads")
_COUNTS = {"seeds_per_backbone": 1, "epochs": 0, "max_epochs": 0, "batch_size": 1, "eval_batch_size": 1,
           "n_permutations": 0, "n_rotations": 0, "n_seeds": 0, "grid_permutations": 0, "grid_rotations": 0,
           "grid_seeds": 0, "small_grid_permutations": 0, "small_grid_rotations": 0, "per_class_train": 0,
           "per_class_test": 0, "feature_dim": 0, "small_dim": 0, "terminal_epochs": 0, "cpu_threads": 0,
           "seed": 0, "head_seed": 0, "n_resamples": 1, "ufm_steps": 1, "compare_epochs": 0,
           "compare_models": 0, "identity_epochs": 0, "max_models": 0}
_POSITIVE = ("lr", "logit_scale")


class ParameterError(ValueError):
    """A preset or ``--param`` override that the chapter's parameters cell does not accept."""


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _check_experiment(experiment: str) -> None:
    if experiment not in EXPERIMENTS:
        raise ParameterError(f"--experiment: unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")


def chapter_parameters(experiment: str) -> dict:
    """The defaults of ``experiment``'s parameters cell, ``{name: value}`` (read by
    :func:`nclib.chapters.parameters_cell`, the parser that also injects values)."""
    _check_experiment(experiment)
    try:
        return parameters_cell(_repo_root() / EXPERIMENTS[experiment])
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


def _type_name(v) -> str:
    return {bool: "a bool", int: "an int", float: "a float", str: "a string", list: "a list",
            dict: "a dict"}.get(type(v), f"a {type(v).__name__}")


def _type_ok(default, value) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def validate_parameters(experiment: str, params: dict, origin: str = "--param") -> None:
    """Check ``params`` against ``experiment``'s parameters cell: every key exists there, every
    value has the default's type (an int where a float is expected is fine; a None default takes
    anything), and names of backbones, datasets and heads are known. ``origin`` names where the
    values came from in the error. Raises :class:`ParameterError` saying what to change."""
    defaults = chapter_parameters(experiment)
    for key, value in params.items():
        if key not in defaults:
            raise ParameterError(f"{origin} {key}: {experiment} has no parameter {key!r}; valid keys: "
                                 f"{', '.join(sorted(defaults))}")
        default = defaults[key]
        if not _type_ok(default, value):
            hint = ""
            if isinstance(value, str) and isinstance(default, (list, dict)):
                hint = f" (did the shell strip its quotes? write --param '{key}={json.dumps(default)}')"
            raise ParameterError(f"{origin} {key}: expected {_type_name(default)} like the default "
                                 f"{default!r}, got {_type_name(value)} {value!r}{hint}")
        if key in _NONEMPTY and isinstance(value, (list, dict)) and not value:
            raise ParameterError(f"{origin} {key}: must name at least one; an empty {key} would plan no runs")
        if key in _COUNTS:
            counts = value.values() if isinstance(value, dict) else [value]
            bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, int) or c < _COUNTS[key]]
            if bad:
                raise ParameterError(f"{origin} {key}: must be a whole number ≥ {_COUNTS[key]}, got {bad[0]!r}")
        if key in _POSITIVE and isinstance(value, (int, float)) and not isinstance(value, bool) and not value > 0:
            raise ParameterError(f"{origin} {key}: must be > 0, got {value!r}")
        if key in _CHOICES:
            names = list(value) if isinstance(value, (list, dict)) else [value]
            unknown = [n for n in names if n not in _CHOICES[key]]
            if unknown:
                raise ParameterError(f"{origin} {key}: unknown {'name' if len(unknown) == 1 else 'names'} "
                                     f"{', '.join(map(repr, unknown))}; choose from {list(_CHOICES[key])}")


def dataset_problem(name: str, data_root: str | None = None) -> str | None:
    """Why the sweep could not load dataset ``name`` (one line), or None when it looks loadable.

    A cheap check before hours of training: for CIFAR that its root (``data_root``, else
    ``$NCLIB_CIFAR``, else ``<repo>/data/cifar``, as :func:`nclib.experiments.load_dataset`
    looks) holds torchvision's folder. Fashion-MNIST is found or downloaded by nclib.datasets, so it is
    left to the run (which records a failure, see :func:`nclib.experiments.load_dataset`)."""
    if name not in DATASETS:
        return f"unknown dataset {name!r}; choose from {list(DATASETS)}"
    if name == "fashion_mnist":
        return None
    root = data_root or os.environ.get("NCLIB_CIFAR") or str(_repo_root() / "data" / "cifar")
    folder = Path(root) / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if not folder.is_dir():
        origin = "data_root" if data_root else "$NCLIB_CIFAR" if os.environ.get("NCLIB_CIFAR") else "the default"
        return (f"{name} cannot be loaded: {folder} does not exist (root from {origin}); set NCLIB_CIFAR or "
                f"--param data_root=DIR to a folder holding it, or leave the dataset out with --param 'datasets=[...]'")
    return None


# The training settings of a confirmatory preset that chapter 7 takes too.
_TRAINING_KEYS = ("per_class_train", "per_class_test", "datasets", "feature_dim", "batch_size", "lr", "momentum",
                  "weight_decay", "epochs", "milestones", "fit_until", "eval_batch_size", "cpu_threads", "augment",
                  "amp", "channels_last", "seed")


def _figure3(preset: dict) -> dict:
    """Figure 3 on the confirmatory networks: chapter 7's fixed simplex ETF and learnable heads on
    the test backbones, with the confirmatory training (the fixed budget: no epochs past it), under
    as many seeds as the grids have (from the same first seed)."""
    out = {k: preset[k] for k in _TRAINING_KEYS if k in preset} | _on_test_backbones(preset)
    out.update(heads=["etf", "learnable"], terminal_epochs=0,
               seeds_per_backbone={b: preset["n_seeds"] for b in out["backbones"]})
    return out


PRESETS["confirmatory_rotations"] = {scale: _rotation_grid(p) for scale, p in PRESETS["confirmatory"].items()}
PRESETS["confirmatory_tpt"] = {scale: _figure3(p) for scale, p in PRESETS["confirmatory"].items()}
PRESETS["confirmatory_small"] = {scale: _small_grid(p) for scale, p in PRESETS["confirmatory"].items()}
