"""Sweeps over equivalent classifiers (Section 5.2 of Gao et al.), trained together.

The paper fixes the classifier to a simplex ETF M*, to permutations M* P_i or to rotations R_i M*
(Definition 4.7) and trains one network per classifier "with the same random seed", so the models
of a sweep share their initialisation, their mini-batches and their augmentation draws; only the
fixed head differs. That makes them trainable as one: :func:`train_batched` stacks the K models'
parameters and buffers along a new leading axis and runs a single ``torch.func.vmap`` of
``functional_call`` per step. The input batch is shared (not stacked), so the first layer runs as
one wide layer and the later ones as grouped layers. Batch norm is handled explicitly: its
running statistics are stacked buffers that the vmapped forward updates in place, one slice per
model, exactly as K separate modules would. SGD with momentum and weight decay acts elementwise,
so one optimizer over the stacked tensors is K independent optimizers.

:func:`train_sweep` chooses between that batched path and the plain sequential one
(:func:`nclib.train.train` per model); the tests check they give the same histories.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from nclib._checks import check_matrix, check_orthogonal
from nclib.accumulate import NCAccumulator
from nclib.data import TensorDataset
from nclib.etf import permute, random_permutation, random_rotation, rotate, simplex_etf, ufm_structure
from nclib.files import atomic_torch_save
from nclib.history import History
from nclib.models import FixedHead, LinearHead, NCModel
from nclib.train import TrainConfig, batch_input, data_generators, epoch_record, run_epochs, train

__all__ = [
    "HeadSpec",
    "equivalent_classifiers",
    "sweep_models",
    "rotation_between",
    "absorb_rotation",
    "StackedModels",
    "train_batched",
    "train_sweep",
]


# ----------------------------------------------------------------------------------------------
# The classifiers of a sweep
# ----------------------------------------------------------------------------------------------


@dataclass
class HeadSpec:
    """One fixed classifier of a sweep: ``kind`` is ``"base"`` (M*), ``"permutation"`` (M* P) or
    ``"rotation"`` (R M*); ``index`` numbers the transforms from 1; ``M`` is the d×C matrix and
    ``transform`` the P or R used (None for the base)."""

    kind: str
    index: int
    M: torch.Tensor
    transform: torch.Tensor | None = None

    @property
    def label(self) -> str:
        """A short name: ``base``, ``perm03``, ``rota07``."""
        return "base" if self.kind == "base" else f"{self.kind[:4]}{self.index:02d}"


def equivalent_classifiers(C: int, d: int, n_permutations: int = 10, n_rotations: int = 10,
                           seed: int = 0, ufm_steps: int = 3000) -> tuple[str, list[HeadSpec]]:
    """The classifiers of Section 5.2: a base structure M*, ``n_permutations`` random permutations
    M* P_i and ``n_rotations`` Haar rotations R_i M* (Definition 4.7), all drawn from ``seed``.

    M* is a unit-norm simplex ETF (Definition 3.1) when d ≥ C − 1; for C > d + 1, where no simplex
    ETF exists, it is the structure that minimizes cross-entropy on the unconstrained feature
    model (:func:`nclib.etf.ufm_structure` with ``ufm_steps`` projected-gradient steps, the
    paper's C > d case). Returns ``(structure, heads)``
    with structure ``"simplex_etf"`` or ``"ufm"`` and heads[0] the base.
    """
    if n_permutations < 0 or n_rotations < 0:
        raise ValueError(f"numbers of transforms must be ≥ 0, got {n_permutations}, {n_rotations}")
    g = torch.Generator().manual_seed(int(seed))
    if d >= C - 1:
        structure, base = "simplex_etf", simplex_etf(C, d, generator=g)
    else:
        structure, base = "ufm", ufm_structure(C, d, steps=ufm_steps, generator=g)
    heads = [HeadSpec("base", 0, base)]
    for i in range(n_permutations):
        P = random_permutation(C, g)
        heads.append(HeadSpec("permutation", i + 1, permute(base, P), P))
    for i in range(n_rotations):
        R = random_rotation(d, g)
        heads.append(HeadSpec("rotation", i + 1, rotate(base, R), R))
    return structure, heads


def sweep_models(backbone_fn, heads, seed: int, logit_scale: float = 1.0) -> list[NCModel]:
    """Models that differ only in their fixed head (the paper's "same random seed"): one backbone
    is built by ``backbone_fn()`` right after ``torch.manual_seed(seed)`` and copied under each
    head (a d×C matrix or a :class:`HeadSpec`)."""
    heads = list(heads)
    if not heads:
        raise ValueError("a sweep needs at least one head")
    torch.manual_seed(int(seed))
    backbone = backbone_fn()
    mats = [h.M if isinstance(h, HeadSpec) else torch.as_tensor(h) for h in heads]
    return [NCModel(copy.deepcopy(backbone), FixedHead(M, logit_scale)) for M in mats]


def rotation_between(A, B) -> tuple[torch.Tensor, float]:
    """The orthogonal Q minimizing ‖Q A − B‖_F (orthogonal Procrustes, Schönemann 1966) and the
    residual ‖Q A − B‖_F. For two simplex ETFs with the same scale the residual is zero: every
    permutation M* P of a simplex ETF is also a rotation Q M* (their Gram matrices coincide)."""
    A = check_matrix(A, "rotation_between: A")
    B = check_matrix(B, "rotation_between: B")
    if A.ndim != 2 or A.shape != B.shape:
        raise ValueError(f"A and B must be d×C matrices of the same shape, got {tuple(A.shape)}, {tuple(B.shape)}")
    U, _, Vh = torch.linalg.svd(B @ A.T)
    Q = U @ Vh
    return Q, (Q @ A - B).norm().item()


def absorb_rotation(backbone: nn.Module, R) -> nn.Module:
    """Rotate the output of a backbone's last ``nn.Linear`` layer by Rᵀ, in place: its weight W and
    bias b become RᵀW and Rᵀb (chapter 8's identity). ``R``: an orthogonal d×d matrix (d the
    layer's output width), checked.

    When that layer ends the backbone (:func:`nclib.models.mlp`), a network with head R M is then
    the same function as this one with head M, and since SGD with momentum and weight decay
    commutes with orthogonal maps of a layer's output, training with head R M from initialisation
    W equals training with head M from RᵀW: the rotation only changes the last layer's
    initialisation. When a nonlinearity follows the layer (``mlp_relu``: ReLU(RᵀWh + Rᵀb) is not
    Rᵀ ReLU(Wh + b)) the two are different networks; chapter 8 shows the identity failing there."""
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"absorb_rotation: the backbone has no nn.Linear layer to rotate ({type(backbone).__name__})")
    last = linears[-1]
    R = check_orthogonal(R, last.out_features, f"absorb_rotation: R (rotating the {last.out_features} outputs of "
                                               "the last linear layer)", tol=1e-6)
    with torch.no_grad():
        Rt = R.T.to(device=last.weight.device, dtype=last.weight.dtype)
        last.weight.copy_(Rt @ last.weight)
        if last.bias is not None:
            last.bias.copy_(Rt @ last.bias)
    return backbone


# ----------------------------------------------------------------------------------------------
# K models as one
# ----------------------------------------------------------------------------------------------


def _sub(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class StackedModels:
    """K :class:`~nclib.models.NCModel` s of identical architecture held as stacked tensors (a
    leading axis of size K for every parameter and buffer) and run with one vmapped forward.

    The head must be a :class:`~nclib.models.FixedHead` (with the same logit scale in all models)
    or a :class:`~nclib.models.LinearHead`.
    """

    def __init__(self, models, device=None):
        models = list(models)
        if not models:
            raise ValueError("need at least one model to stack")
        first = models[0]
        if not isinstance(first, NCModel):
            raise ValueError(f"models must be nclib.models.NCModel, got {type(first).__name__}")
        head_types = {type(m.head) for m in models}
        if len(head_types) != 1 or head_types.pop() not in (FixedHead, LinearHead):
            raise ValueError("all models need the same head type, FixedHead or LinearHead")
        if isinstance(first.head, FixedHead) and len({m.head.logit_scale for m in models}) != 1:
            raise ValueError("stacked fixed heads must share one logit_scale")
        shapes = lambda m: [(n, tuple(t.shape)) for n, t in (*m.named_parameters(), *m.named_buffers())]
        if any(shapes(m) != shapes(first) for m in models[1:]):
            raise ValueError("models to stack must have identical architectures (names and shapes)")
        if device is None:
            device = next(first.parameters()).device
        self.K = len(models)
        self.device = torch.device(device)
        self.base = copy.deepcopy(first).to("meta")
        self.params = {}
        for name, p in first.named_parameters():
            stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in models]).to(self.device)
            self.params[name] = stacked.requires_grad_(p.requires_grad)
        self.buffers = {
            name: torch.stack([dict(m.named_buffers())[name] for m in models]).to(self.device).clone()
            for name, _ in first.named_buffers()
        }

    def train(self, mode: bool = True):
        """Training mode (batch norm uses batch statistics and updates its stacked running ones)."""
        self.base.train(mode)
        return self

    def eval(self):
        """Evaluation mode (batch norm uses each model's running statistics)."""
        return self.train(False)

    def trainable(self) -> list[torch.Tensor]:
        """The stacked tensors an optimizer updates (those whose parameters require gradients)."""
        return [p for p in self.params.values() if p.requires_grad]

    def features(self, x, amp: bool = False) -> torch.Tensor:
        """K×B×d features of a shared input batch x (B×…), backbone under bf16 autocast on CUDA
        when ``amp`` is set."""
        bb = self.base.backbone

        def one(p, b, inp):
            return functional_call(bb, (p, b), (inp,))

        use_amp = amp and x.device.type == "cuda"
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_amp):
            z = vmap(one, in_dims=(0, 0, None))(_sub(self.params, "backbone."), _sub(self.buffers, "backbone."), x)
        return z.float() if use_amp else z

    def head(self, z) -> torch.Tensor:
        """K×B×C logits from K×B×d features, in fp32 outside autocast."""
        hd = self.base.head

        def one(p, b, feats):
            return functional_call(hd, (p, b), (feats,))

        with torch.autocast(device_type=z.device.type, enabled=False):
            return vmap(one, in_dims=(0, 0, 0))(_sub(self.params, "head."), _sub(self.buffers, "head."), z)

    def classifier_matrices(self) -> torch.Tensor:
        """K×d×C effective classifiers (s·M for fixed heads), as ``NCModel.classifier_matrix``."""
        if isinstance(self.base.head, FixedHead):
            return self.base.head.logit_scale * self.buffers["head.M"]
        return self.params["head.M"].detach()

    def state(self) -> dict:
        """CPU copies of the stacked parameters and buffers (for checkpoints)."""
        return {"params": {k: v.detach().cpu() for k, v in self.params.items()},
                "buffers": {k: v.cpu() for k, v in self.buffers.items()}}

    def load_state(self, state: dict) -> None:
        """Copy a :meth:`state` back into the stacked tensors (resuming from a checkpoint)."""
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
            for k, v in state["buffers"].items():
                self.buffers[k].copy_(v)

    def fingerprint(self) -> str:
        """A digest of the stacked initial state, so a checkpoint is only resumed for the same
        models (same initialisation and heads)."""
        h = hashlib.sha1()
        for name in sorted(self.params) + sorted(self.buffers):
            t = (self.params.get(name) if name in self.params else self.buffers[name]).detach()
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            flat = t.double().reshape(t.shape[0], -1)
            h.update(f"{flat.sum().item():.10e}{flat.pow(2).sum().item():.10e}".encode())
        return h.hexdigest()[:16]

    def unstack_into(self, models) -> None:
        """Copy slice k of every stacked tensor back into ``models[k]``."""
        with torch.no_grad():
            for k, m in enumerate(models):
                named = dict(m.named_parameters())
                for name, v in self.params.items():
                    named[name].copy_(v[k])
                named_b = dict(m.named_buffers())
                for name, v in self.buffers.items():
                    named_b[name].copy_(v[k])

    @torch.no_grad()
    def measure(self, data: TensorDataset, batch_size: int, full: bool = True) -> list[dict]:
        """One pass over ``data`` for all K models: with ``full``, what
        :func:`nclib.train.evaluate` returns per model; otherwise loss and accuracy only, as
        :func:`nclib.train.evaluate_loss_accuracy`."""
        self.eval()
        Ms = self.classifier_matrices()
        K, n = self.K, len(data)
        accs = [NCAccumulator(Ms[k], device=data.x.device) for k in range(K)] if full else None
        loss_sum = torch.zeros(K, dtype=torch.float64, device=data.x.device)
        sq = torch.zeros(K, dtype=torch.float64, device=data.x.device)
        correct = torch.zeros(K, dtype=torch.float64, device=data.x.device)
        for i in range(0, n, batch_size):
            x, y = data.x[i : i + batch_size], data.y[i : i + batch_size]
            z = self.features(x)
            logits = self.head(z).float()
            B = y.shape[0]
            loss_sum += F.cross_entropy(logits.flatten(0, 1), y.repeat(K), reduction="none").view(K, B).double().sum(1)
            if full:
                sq += z.double().pow(2).sum(dim=(1, 2))
                for k in range(K):
                    accs[k].update(z[k], y)
            else:
                correct += (logits.argmax(dim=2) == y).double().sum(1)
        out = []
        for k in range(K):
            if full:
                res = accs[k].compute()
                res["feature_rms"] = math.sqrt(sq[k].item() / n)
                res["classifier_norm"] = Ms[k].double().norm(dim=0).mean().item()
            else:
                res = {"accuracy": correct[k].item() / n}
            res["loss"] = loss_sum[k].item() / n
            out.append(res)
        return out


def train_batched(models, train_data: TensorDataset, test_data: TensorDataset, config: TrainConfig,
                  *, progress: bool = True, checkpoint=None, checkpoint_every: float = 300.0,
                  on_epoch_end=None) -> list[History]:
    """Train K models that share ``config`` (seed, data order, augmentation) in one vmapped step
    per mini-batch, measuring every model after every epoch as :func:`nclib.train.train` does.

    The models must differ only in their state (typically only in their fixed head, see
    :func:`sweep_models`). Their trained weights are written back into ``models`` at the end.
    ``checkpoint``: a file path; the state (weights, optimizer, schedule, generators, histories) is
    saved there atomically at the end of an epoch when ``checkpoint_every`` seconds have passed
    since the last save (0: every epoch), and a later call with the same models and config
    resumes from it. ``on_epoch_end(epoch, histories)`` is called after each epoch's measurement
    (and the checkpoint). Returns one :class:`~nclib.history.History` per model.
    """
    models = list(models)
    device = train_data.x.device
    stack = StackedModels(models, device)
    K = stack.K
    g, aug_gen = data_generators(config, device)
    opt = torch.optim.SGD(stack.trainable(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(config.milestones), config.lr_gamma)
    histories = [History() for _ in range(K)]
    key = json.dumps({"config": config.to_dict(), "K": K, "init": stack.fingerprint(),
                      "n_train": len(train_data), "n_test": len(test_data)}, sort_keys=True)

    def log(epoch):
        trs = stack.measure(train_data, config.eval_batch_size, full=True)
        tes = stack.measure(test_data, config.eval_batch_size, full=False)
        lr = opt.param_groups[0]["lr"]
        for h, tr, te in zip(histories, trs, tes):
            h.observe(epoch_record(epoch, lr, tr, te), tr["margins"].pairwise.nan_to_num(0.0).tolist())
        return trs

    start, trs = 1, None
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        try:
            saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception:  # a damaged checkpoint is only a lost head start: train from scratch
            saved = None
        if saved is not None and saved.get("key") == key:
            stack.load_state(saved["state"])
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
            g.set_state(saved["g"])
            aug_gen.set_state(saved["aug"])
            histories = [History.from_dict(h) for h in saved["histories"]]
            start = int(saved["epoch"]) + 1
            # the resumed histories hold the last measurement, which is all keep_training reads
            trs = [{"accuracy": h.records[-1]["train_accuracy"], "loss": h.records[-1]["train_loss"]}
                   for h in histories]
    n = len(train_data)

    def train_epoch(epoch):
        stack.train()
        bad = torch.zeros(K, dtype=torch.bool, device=device)
        run_loss = torch.zeros(K, dtype=torch.float64, device=device)
        run_errors = torch.zeros(K, dtype=torch.int64, device=device)
        order = torch.randperm(n, generator=g).to(device)
        for i in range(0, n, config.batch_size):
            idx = order[i : i + config.batch_size]
            x = batch_input(train_data.x[idx], config, aug_gen)
            y = train_data.y[idx]
            logits = stack.head(stack.features(x, config.amp)).float()
            losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(K), reduction="none").view(K, -1).mean(1)
            bad |= ~torch.isfinite(losses)
            run_loss += losses.detach().double() * len(idx)
            run_errors += (logits.detach().argmax(dim=2) != y).sum(dim=1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # models are independent: d(Σ_k L_k)/dθ_k = dL_k/dθ_k
            opt.step()
        if bad.any():  # one host sync per epoch instead of one per step
            raise FloatingPointError(
                f"training diverged in epoch {epoch} for model(s) {bad.nonzero().flatten().tolist()}; "
                "lower config.lr"
            )
        return (run_loss / n).tolist(), run_errors.tolist()

    last_save = time.monotonic()

    def after_epoch(epoch):
        nonlocal last_save
        if ckpt is not None and (time.monotonic() - last_save >= checkpoint_every or epoch >= config.epochs):
            atomic_torch_save({
                "key": key, "epoch": epoch, "state": stack.state(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "g": g.get_state(), "aug": aug_gen.get_state(),
                "histories": [h.to_dict() for h in histories],
            }, ckpt)
            last_save = time.monotonic()
        if on_epoch_end is not None:
            on_epoch_end(epoch, histories)

    run_epochs(config, n, histories, log, train_epoch, opt, sched, trs=trs, start=start, label=f"{K} models",
               progress=progress, after_epoch=after_epoch)
    stack.unstack_into(models)
    return histories


def train_sweep(models, train_data: TensorDataset, test_data: TensorDataset, config: TrainConfig, *,
                batched: bool | None = None, max_models: int | None = None, progress: bool = False,
                checkpoint=None, checkpoint_every: float = 300.0) -> list[History]:
    """Train the models of a sweep (shared seed and data order) either together
    (:func:`train_batched`, in chunks of at most ``max_models`` to bound memory; chunks give the
    same result as one batch) or one after the other with the plain loop
    :func:`nclib.train.train`. Returns one history per model, in order.

    ``batched=None`` picks what ``make bench`` measured faster on the data's device: the plain loop
    on a CPU (the vmapped step ran 0.30× (small CNN) to 1.02× (MLP) as fast as the loop on these
    CPUs, ``results/bench/cpu_speed-*.json``), the batched step on an accelerator. ``progress``: a bar
    over the models with an ETA (and each model's epochs)."""
    models = list(models)
    if not models:
        raise ValueError("a sweep needs at least one model")
    if max_models is not None and max_models < 1:
        raise ValueError(f"max_models must be ≥ 1 or None, got {max_models}")
    device = train_data.x.device
    if batched is None:
        batched = device.type != "cpu"
    if not batched:
        out = []
        for m in tqdm(models, desc="models", disable=not progress or len(models) == 1):
            out.append(train(m.to(device), train_data, test_data, config, progress=progress))
        return out
    size = max_models or len(models)
    out: list[History] = []
    for c, start in enumerate(range(0, len(models), size)):
        chunk_ckpt = None
        if checkpoint is not None:
            p = Path(checkpoint)
            chunk_ckpt = p if len(models) <= size else p.with_name(f"{p.stem}.chunk{c}{p.suffix}")
        out += train_batched(models[start : start + size], train_data, test_data, config,
                             progress=progress, checkpoint=chunk_ckpt, checkpoint_every=checkpoint_every)
    return out
