"""Two checks of the training machinery that chapter 8 runs before it reads any accuracy
difference as an effect of the classifier:

* :func:`batched_check` / :func:`decide_batched`: the batched (vmapped) trainer of
  :mod:`nclib.sweep` against the plain loop of :mod:`nclib.train`;
* :func:`identity_check` / :func:`decide_identity`: a network trained with a rotated fixed head
  against the same network with the rotation absorbed into its last linear layer (Definition 4.7:
  on a backbone ending in a linear layer the two are one model).

Both train in float64, where a fault survives and amplified rounding does not; a rounding-level
perturbation of the inputs is the control.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from nclib.data import TensorDataset
from nclib.history import final
from nclib.models import FixedHead, NCModel
from nclib.sweep import absorb_rotation, sweep_models, train_sweep
from nclib.train import train
from nclib.verdicts import Verdict

__all__ = ["GAP_KEYS", "history_gap", "logit_gap", "batched_check", "identity_check", "decide_batched",
           "decide_identity"]


GAP_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "train_p_min")


def history_gap(ha, hb, keys=GAP_KEYS) -> float:
    """The largest absolute difference between two histories in any of ``keys`` (losses in nats,
    accuracies as fractions, p_min) over the epochs both measured."""
    eb = {r["epoch"]: r for r in hb.records}
    common = [(r, eb[r["epoch"]]) for r in ha.records if r["epoch"] in eb]
    if not common:
        raise ValueError("the two histories share no measured epoch")
    return max(abs(float(x[k]) - float(y[k])) for x, y in common for k in keys)


def logit_gap(model_a, model_b, x) -> float:
    """max abs(logits_a(x) − logits_b(x)) / max abs(logits_a(x)) of two trained models on inputs ``x``,
    in the models' own precision: how far apart two trainings ended, free of the rounding of the
    history's float32 losses."""
    with torch.no_grad():
        model_a.eval(), model_b.eval()
        la, lb = model_a(x).double(), model_b(x).double()
    scale = la.abs().max().item()
    return (la - lb).abs().max().item() / scale if scale > 0 else (la - lb).abs().max().item()


def _as_dtype(data, dtype, noise: float = 0.0, seed: int = 0):
    """``data`` with its inputs cast to ``dtype`` and, with ``noise``, perturbed by that much Gaussian
    noise (the rounding-level control of the checks)."""
    x = data.x.to(dtype)
    if noise:
        g = torch.Generator(device="cpu").manual_seed(seed)
        x = x + noise * torch.randn(x.shape, generator=g, dtype=dtype).to(x.device)
    return TensorDataset(x, data.y, data.classes)


def batched_check(backbone_fn, heads, seed: int, train_data, test_data, config, *, logit_scale: float = 1.0,
                  noise: float = 1e-7, max_models: int | None = None) -> dict:
    """Train the models of one sweep (:func:`nclib.sweep.sweep_models`: ``heads`` on the backbone
    ``backbone_fn()`` built at ``seed``) for ``config`` batched (vmapped) and sequentially, in
    float32 and in float64, and sequentially once more in float32 on training inputs perturbed by
    ``noise`` (the rounding-level control). Returns per-model relative logit gaps on the test
    inputs (:func:`logit_gap`) ``batched32``, ``noise32``, ``batched64``; per-model gaps in final
    test accuracy (points) ``acc32`` (batched vs sequential) and ``acc_noise32``; and the float32
    wall times ``seconds`` = {"batched": …, "sequential": …}."""
    out = {"seconds": {}}
    trained = {}
    for name, dtype, batched, noisy in (("b32", torch.float32, True, False), ("s32", torch.float32, False, False),
                                        ("n32", torch.float32, False, True), ("b64", torch.float64, True, False),
                                        ("s64", torch.float64, False, False)):
        tr = _as_dtype(train_data, dtype, noise if noisy else 0.0, seed)
        te = _as_dtype(test_data, dtype)
        models = [m.to(dtype) for m in sweep_models(backbone_fn, heads, seed, logit_scale)]
        t0 = time.perf_counter()
        hists = train_sweep(models, tr, te, config, batched=batched, max_models=max_models)
        if dtype == torch.float32 and not noisy:
            out["seconds"]["batched" if batched else "sequential"] = time.perf_counter() - t0
        trained[name] = (models, hists, te.x)
    gaps = lambda a, b: [logit_gap(ma, mb, trained[a][2]) for ma, mb in zip(trained[a][0], trained[b][0])]
    acc = lambda a, b: [100 * abs(final(ha, "test_accuracy") - final(hb, "test_accuracy"))
                        for ha, hb in zip(trained[a][1], trained[b][1])]
    out.update(batched32=gaps("b32", "s32"), noise32=gaps("n32", "s32"), batched64=gaps("b64", "s64"),
               acc32=acc("b32", "s32"), acc_noise32=acc("n32", "s32"))
    return out


def identity_check(backbone_fn, M, R, seed: int, train_data, test_data, config) -> dict:
    """Train three float64 models for ``config`` from one backbone initialisation (built by
    ``backbone_fn()`` at ``seed``; its last layer must be ``nn.Linear``): head R M from (W, b),
    head M from the rotated last layer (RᵀW, Rᵀb) (:func:`nclib.sweep.absorb_rotation`), and head
    M from (W, b) (the control). Returns the relative logit gaps (:func:`logit_gap`) on the test
    inputs: ``identity`` (first two) and ``control`` (first and third)."""



    M = torch.as_tensor(M, dtype=torch.float64)
    R = torch.as_tensor(R, dtype=torch.float64)
    torch.manual_seed(int(seed))
    net = backbone_fn().double()

    def model(backbone, head):
        m = NCModel(backbone, FixedHead(head)).double()
        m.head.M = head.clone()  # the exact float64 matrix, not its float32 rounding
        return m

    rotated_head = model(copy.deepcopy(net), R @ M)
    rotated_init = model(absorb_rotation(copy.deepcopy(net), R), M)
    plain = model(copy.deepcopy(net), M)
    tr, te = _as_dtype(train_data, torch.float64), _as_dtype(test_data, torch.float64)
    for m in (rotated_head, rotated_init, plain):
        train(m, tr, te, config, progress=False)
    return {"identity": logit_gap(rotated_head, rotated_init, te.x), "control": logit_gap(rotated_head, plain, te.x)}


def decide_batched(batched32, noise32, batched64, *, tol64: float = 1e-6, big: float = 1e-3) -> Verdict:
    """Are the batched (vmapped) and the sequential training paths the same computation?

    Per model, the relative logit gaps of :func:`batched_check`: ``batched32`` between batched
    and sequential training in float32; ``noise32`` between two sequential float32 runs whose
    training inputs differ by rounding-level noise (the control: what chaotic training alone makes
    of a rounding difference); ``batched64`` batched against sequential in float64. A fault in the
    batched path does not depend on the precision; a rounding difference amplified by chaos
    shrinks with it. Rule: the largest float64 gap ≤ ``tol64`` → holds (the float32 gaps are
    chaos); above → violated (a fault)."""
    b32, n32, b64 = (np.asarray(x, dtype=np.float64) for x in (batched32, noise32, batched64))
    rule = (f"the same models trained batched and sequentially in float64: largest relative gap of their "
            f"test logits ≤ {tol64:g} → the paths agree and float32 gaps are rounding amplified by chaotic "
            "training; above → a fault in the batched path")
    if b64.size == 0 or b32.size == 0 or n32.size == 0:
        return Verdict("untestable at this size", rule, "not run", "not run", "no models compared")
    control = (f"two sequential float32 runs whose inputs differ by rounding-level noise: largest gap "
               f"{n32.max():.1e}, {int((n32 > big).sum())} of {n32.size} models above {big:g}; batched vs "
               f"sequential in float32: largest {b32.max():.1e}, {int((b32 > big).sum())} of {b32.size} above {big:g}")
    sure = (f"float64 largest gap {b64.max():.1e} over {b64.size} models, against float32's {b32.max():.1e} "
            f"and a tolerance of {tol64:g}")
    key = f"float64 gap {b64.max():.0e}, float32 gap {b32.max():.0e} (rounding-noise control {n32.max():.0e})"
    label = "holds" if b64.max() <= tol64 else "violated"
    return Verdict(label, rule, control, sure, key)


def decide_identity(gap_identity: float, gap_control: float, *, tol: float = 1e-6) -> Verdict:
    """Does training with head R M* from initialisation (W, b) equal training with head M* from
    the rotated last layer (RᵀW, Rᵀb)? The relative logit gaps of :func:`identity_check`:
    ``gap_identity`` between those two float64 trainings, ``gap_control`` between head R M* and
    head M* from the *same* initialisation (no rotation absorbed), which must differ. Rule:
    identity gap ≤ ``tol`` → holds; above → violated; a control gap ≤ ``tol`` too → untestable at
    this size (the comparison could not tell different trainings apart)."""
    rule = (f"float64 training: head R M* from the last layer (W, b) against head M* from (RᵀW, Rᵀb); "
            f"largest relative gap of their test logits ≤ {tol:g} → holds, above → violated")
    control = f"head R M* against head M* from the same initialisation: gap {gap_control:.2g}"
    sure = f"largest gap {gap_identity:.1e}, against the tolerance {tol:g} and the control's {gap_control:.2g}"
    if not (np.isfinite(gap_identity) and np.isfinite(gap_control)):
        return Verdict("untestable at this size", rule, control, "not run", "not run")
    if gap_control <= tol:
        return Verdict("untestable at this size", rule, control, sure,
                       f"control gap {gap_control:.1e}: the check cannot tell trainings apart")
    label = "holds" if gap_identity <= tol else "violated"
    return Verdict(label, rule, control, sure, f"gap {gap_identity:.0e} vs control {gap_control:.2g}")
