"""One pass over a data loader for every metric of :mod:`nclib.metrics`.

With ``keep_features=True`` (the default) the accumulator keeps each batch of features as it
arrives (same dtype, on the accumulator's device: 120 MB for 60 000 × 512 float32) and
:meth:`NCAccumulator.compute` runs the exact in-memory computation of :func:`nclib.metrics.nc_metrics`
over the stored batches, without concatenating them. NC4 needs the final class means before any
sample can be judged, so something of size N×d has to be kept anyway; keeping the features
themselves makes the streaming result identical to the in-memory one and is the fastest path.

With ``keep_features=False`` it keeps sufficient statistics only (float64, O(C·d + d²)), and NC4 is
skipped. The second moment is accumulated around a per-class shift k_c, the first batch's mean of
class c: Q = Σ (z − k_y)(z − k_y)ᵀ and S_c = Σ_{i∈c} (z_i − k_c), so that
N Σ_W = Q − Σ_c S_c S_cᵀ/N_c cancels only |μ_c − k_c|, about one within-class spread over the
first batch's class size. The raw moments Σ zzᵀ − Σ N_c μ_c μ_cᵀ cancel |μ_c|²/σ² instead: with class
means at distance 1000 and spread 1e-6 they gave NC1 = −2.35e-11 for a true 7.94e-12.
"""

from __future__ import annotations

import torch

from nclib._checks import (
    as_float64,
    check_bool,
    check_classifier,
    check_features,
    check_labels,
    pow2_scale,
)
from nclib.metrics import _all_metrics, _from_moments, _margins_scaled, _scaled_classifier

__all__ = ["NCAccumulator", "measure"]

_F64 = torch.float64


class NCAccumulator:
    """Streaming NC1–NC4 (Papyan et al. 2020), margins (Theorem 4.1, Definition 4.3) and accuracy for
    a fixed classifier ``M`` (d×C).

    Call :meth:`update` with each batch of features and labels, then :meth:`compute`. The result
    equals ``nc_metrics(Z, y, M)`` and ``margins(Z, y, M)`` on the concatenated batches up to
    float64 rounding (tested, also with class means far from the origin). Stored feature batches
    are references to the given tensors when they already live on the accumulator's device: do
    not modify them in place before :meth:`compute`.
    """

    def __init__(self, M, device=None, keep_features: bool = True):
        M = as_float64(M, "classifier M")
        if M.ndim != 2 or M.shape[1] < 2:
            raise ValueError(f"classifier M must be a d×C matrix with C ≥ 2 classes, got shape "
                             f"{tuple(M.shape)}")
        d, C = M.shape
        self.device = torch.device(device) if device is not None else M.device
        self.M = check_classifier(M, d, C).to(self.device)
        self.C, self.d = C, d
        self.keep_features = check_bool(keep_features, "keep_features")
        f64 = dict(dtype=_F64, device=self.device)
        self.counts = torch.zeros(C, **f64)
        self._amax = 0.0
        self._features: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        # keep_features=False: shifted moments (module doc), in units of Z/s for a power of two s
        # fixed by the first batch, and the running margin and accuracy statistics.
        self._s = None
        self._Ms, self._sm = _scaled_classifier(self.M)
        self.shifts = torch.zeros(C, d, **f64)
        self.shifted_sums = torch.zeros(C, d, **f64)
        self.shifted_second_moment = torch.zeros(d, d, **f64)
        self.min_gaps = torch.full((C, C), float("inf"), **f64)
        self.sq_norm_total = torch.zeros((), **f64)
        self.correct = torch.zeros((), **f64)

    @torch.no_grad()
    def update(self, Z, y) -> None:
        """Add a batch: features Z (B×d, any real dtype) and integer labels y (B,) in [0, C)."""
        Z, amax = check_features(Z, f"batch features (B×{self.d})", d=self.d)
        y, _ = check_labels(y, Z.shape[0], self.C, require_all=False, name="batch labels y")
        Z, y = Z.detach().to(self.device), y.to(self.device)
        self._amax = max(self._amax, amax)
        present = torch.bincount(y, minlength=self.C)
        if self.keep_features:
            self.counts += present
            self._features.append(Z)
            self._labels.append(y)
            return
        if self._s is None:
            self._s = pow2_scale(amax)
        c = Z.to(_F64) / self._s if self._s != 1.0 else Z.to(_F64)
        new = (present > 0) & (self.counts == 0)
        if new.any():  # first sight of a class: its batch mean becomes the class's shift k_c
            sums = torch.zeros(self.C, self.d, dtype=_F64, device=self.device).index_add_(0, y, c)
            self.shifts[new] = sums[new] / present[new, None].to(_F64)
        self.counts += present
        D = c - self.shifts.index_select(0, y)
        self.shifted_sums.index_add_(0, y, D)
        self.shifted_second_moment += D.T @ D
        flat = c.reshape(-1)
        self.sq_norm_total += torch.dot(flat, flat)
        logits = c @ self._Ms
        gaps = logits.gather(1, y[:, None]) - logits
        self.min_gaps.scatter_reduce_(0, y[:, None].expand(-1, self.C), gaps, reduce="amin")
        self.correct += (logits.argmax(dim=1) == y).sum()

    def compute(self) -> dict:
        """Every metric: the keys of ``nc_metrics`` (without NC4 when features are not kept) plus
        ``accuracy``, ``p_min``, ``scale_free_margin`` and ``margins`` (the
        :class:`~nclib.metrics.Margins` object with the pairwise matrices). Raises
        :class:`~nclib._checks.UndefinedMetricError` where a metric is undefined (see nc_metrics)."""
        n = self.counts.sum().item()
        if n == 0:
            raise ValueError("no batches were added: call update() before compute()")
        if (self.counts == 0).any():
            empty = (self.counts == 0).nonzero().flatten().tolist()
            raise ValueError(f"class(es) {empty} have no samples in the batches added; every class "
                             "needs at least one (use a class-balanced subset or a larger one)")
        if self.keep_features:
            parts = list(zip(self._features, self._labels))
            return _all_metrics(parts, self.C, self.d, self.M, self._amax, with_margins=True)
        if not torch.isfinite(self.shifted_second_moment).all():
            raise ValueError("the second moment overflowed float64: later batches were far larger "
                             "than the first; rescale the features (the metrics are scale invariant)")
        out = _from_moments(self.counts, self.shifted_sums, self.shifted_second_moment, self.shifts, self.M)
        m = _margins_scaled(self.min_gaps, self._Ms, self._s, self._sm, (self.sq_norm_total / n).sqrt().item())
        out.update(accuracy=self.correct.item() / n, p_min=m.p_min, scale_free_margin=m.scale_free, margins=m)
        return out


@torch.no_grad()
def measure(features_fn, loader, M, device=None, keep_features: bool = True) -> dict:
    """Run ``features_fn`` (inputs → N×d features) over ``loader`` once and return every metric of
    :class:`NCAccumulator` (NC1–NC4 of Papyan et al. 2020, the margins of Gao et al. Theorem 4.1 and
    Definition 4.3). ``loader`` yields ``(inputs, labels)`` batches."""
    if not callable(features_fn):
        raise ValueError(f"features_fn must be callable (inputs → features), got {type(features_fn).__name__}")
    acc = NCAccumulator(M, device=device, keep_features=keep_features)
    for k, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"loader must yield (inputs, labels) pairs; batch {k} is a "
                             f"{type(batch).__name__}" + (f" of length {len(batch)}" if hasattr(batch, "__len__") else ""))
        inputs, labels = batch
        if device is not None:
            inputs = inputs.to(device, non_blocking=True)
        acc.update(features_fn(inputs), labels)
    return acc.compute()
