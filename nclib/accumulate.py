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
N Σ_W = Q − Σ_c S_c S_cᵀ/N_c cancels only ‖μ_c − k_c‖, about one within-class spread over the
first batch's class size. The raw moments Σ zzᵀ − Σ N_c μ_c μ_cᵀ cancel ‖μ_c‖²/σ² instead: with class
means at distance 1000 and spread 1e-6 they gave NC1 = −2.35e-11 for a true 7.94e-12.

For float32 (or lower-precision) features, the shift k_c is kept as a float32 number, so the
deviation z − k_c of two nearby float32 numbers is computed in float32 with an error of order
ε₃₂ = 6e-8 of the deviation itself (a common offset costs no precision); each batch's d×d product
and class sums of those deviations run in float32 and are accumulated across batches in float64.
What that adds is a relative error of order ε₃₂ of the within-class spread per entry, below the
rounding the float32 features already carry (ε₃₂ of their norm, which is at least that spread).
For float64 features every step is float64. Margins are computed in float64 either way. It halves the time of this path's dominant product (measured against the
reference library in ``bench/metrics_speed.py``); ``keep_features=True`` stays exact in float64.
"""

from __future__ import annotations

import torch

from nclib._checks import (
    as_float64,
    check_bias,
    check_bool,
    check_classifier,
    check_features,
    check_labels,
    pow2_scale,
)

from nclib.metrics import (margins_from_scaled_gaps, metrics_over_parts, nc_from_scaled_moments, scaled_classifier)

__all__ = ["NCAccumulator", "measure"]

_F64 = torch.float64
_LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


def _gram(D: torch.Tensor, blocks: int = 4) -> torch.Tensor:
    """DᵀD for a B×d batch, computing only the blocks on and above the diagonal and mirroring
    the rest: (blocks + 1)/(2·blocks) of the full product's work (measured 0.73× its time at d =
    512 on one CPU thread). Small d: the plain product."""
    d = D.shape[1]
    if d < 64 * blocks:
        return D.T @ D
    edges = [d * i // blocks for i in range(blocks + 1)]
    G = torch.empty(d, d, dtype=D.dtype, device=D.device)
    for i in range(blocks):
        rows = slice(edges[i], edges[i + 1])
        for j in range(i, blocks):
            cols = slice(edges[j], edges[j + 1])
            G[rows, cols] = D[:, rows].T @ D[:, cols]
            if j > i:
                G[cols, rows] = G[rows, cols].T
    return G


class NCAccumulator:
    """Streaming NC1–NC4 (Papyan et al. 2020), margins (Theorem 4.1, Definition 4.3) and accuracy for
    a fixed classifier ``M`` (d×C) and, for a head with one, its ``bias`` (C numbers; see
    :func:`nclib.metrics.nc_metrics`, and :func:`nclib.metrics.classifier_of` for a head module).

    Call :meth:`update` with each batch of features and labels, then :meth:`compute`. The result
    equals ``nc_metrics(Z, y, M)`` and ``margins(Z, y, M)`` on the concatenated batches up to
    float64 rounding (tested, also with class means far from the origin). Stored feature batches
    are references to the given tensors when they already live on the accumulator's device: do
    not modify them in place before :meth:`compute`.
    """

    def __init__(self, M, device=None, keep_features: bool = True, bias=None):
        M = as_float64(M, "classifier M")
        if M.ndim != 2 or M.shape[1] < 2:
            raise ValueError(f"classifier M must be a d×C matrix with C ≥ 2 classes, got shape "
                             f"{tuple(M.shape)}")
        d, C = M.shape
        self.device = torch.device(device) if device is not None else M.device
        self.M = check_classifier(M, d, C).to(self.device)
        self.C, self.d = C, d
        self.bias = None if bias is None else check_bias(bias, C).to(self.device)
        self.keep_features = check_bool(keep_features, "keep_features")
        f64 = dict(dtype=_F64, device=self.device)
        self.counts = torch.zeros(C, **f64)
        self._amax = 0.0
        self._features: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        # keep_features=False: shifted moments (module doc), in units of Z/s for a power of two s
        # fixed by the first batch, and the running margin and accuracy statistics.
        self._s = None
        self._Ms, self._sm = scaled_classifier(self.M)
        self._Ms32 = None
        self._low = False
        self._bs = None
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
        low = Z.dtype in _LOW_PRECISION
        if self._s is None:
            self._s, self._low = pow2_scale(amax), low
            # the bias in the units of the scaled logits (Z/s)·(M/sm)
            self._bs = None if self.bias is None else self.bias / (self._s * self._sm)
        elif low != self._low:
            raise ValueError(f"batch features are {Z.dtype}, earlier batches were "
                             f"{'float32 or lower' if self._low else 'float64'}: the statistics path keeps its "
                             "class shifts in the first batch's precision; pass every batch in one dtype")
        if low:
            self._update_low_precision(Z.to(torch.float32), y, present)
            return
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
        self._margins(c @ self._Ms if self._bs is None else torch.addmm(self._bs, c, self._Ms), y)

    def _update_low_precision(self, z, y, present) -> None:
        """:meth:`update` for float32 features (module doc): the shift k_c is stored as a float32
        number, so z − k_c is computed in float32 to the precision of the deviation itself, and the
        d×d product and class sums of the deviations run in float32, added to float64 totals."""
        if self._s != 1.0:
            z = z / self._s  # a power of two: exact
        new = (present > 0) & (self.counts == 0)
        if new.any():
            sums = torch.zeros(self.C, self.d, dtype=_F64, device=self.device).index_add_(0, y, z.to(_F64))
            self.shifts[new] = (sums[new] / present[new, None].to(_F64)).to(torch.float32).to(_F64)
            self._shifts32 = self.shifts.to(torch.float32)
        self.counts += present
        D = z - self._shifts32.index_select(0, y)
        self.shifted_sums += torch.zeros(self.C, self.d, dtype=torch.float32, device=self.device).index_add_(
            0, y, D).to(_F64)
        self.shifted_second_moment += _gram(D).to(_F64)
        # the margins from float32 logits: what that rounds is of the order of the rounding the
        # float32 features carry into them (ε₃₂ of |z|·|M|)
        # Σ‖z‖² is not summed here: compute() has it exactly from the statistics (_sq_norm_total)
        if self._Ms32 is None:
            self._Ms32 = self._Ms.to(torch.float32)
        self._margins(z @ self._Ms32 if self._bs is None else torch.addmm(self._bs.to(torch.float32), z, self._Ms32),
                      y)

    def _margins(self, logits, y) -> None:
        """The running margin and accuracy statistics of a batch's logits (in units of Z/s · M/sm)."""
        gaps = (logits.gather(1, y[:, None]) - logits).to(_F64)
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
            return metrics_over_parts(parts, self.C, self.d, self.M, self._amax, with_margins=True, bias=self.bias)
        if not torch.isfinite(self.shifted_second_moment).all():
            raise ValueError("the second moment overflowed float64: later batches were far larger "
                             "than the first; rescale the features (the metrics are scale invariant)")
        out = nc_from_scaled_moments(self.counts, self.shifted_sums, self.shifted_second_moment, self.shifts, self.M,
                                     exact_float64=not self._low)
        m = margins_from_scaled_gaps(self.min_gaps, self._Ms, self._s, self._sm, (self._sq_norm_total() / n).sqrt().item())
        out.update(accuracy=self.correct.item() / n, p_min=m.p_min, scale_free_margin=m.scale_free, margins=m)
        return out


    def _sq_norm_total(self) -> torch.Tensor:
        """Σ_i ‖z_i‖² (in units of Z/s): summed batch by batch for float64 features; for float32
        ones from the statistics, Σ‖(z − k_y) + k_y‖² = tr Q + 2 Σ_c ⟨k_c, S_c⟩ + Σ_c N_c ‖k_c‖², in
        float64 (a term of order one per batch less to compute)."""
        if not self._low:
            return self.sq_norm_total
        k, S = self.shifts, self.shifted_sums
        return (torch.trace(self.shifted_second_moment) + 2 * (k * S).sum()
                + (self.counts[:, None] * k * k).sum())


@torch.no_grad()
def measure(features_fn, loader, M, device=None, keep_features: bool = True, bias=None) -> dict:
    """Run ``features_fn`` (inputs → N×d features) over ``loader`` once and return every metric of
    :class:`NCAccumulator` (NC1–NC4 of Papyan et al. 2020, the margins of Gao et al. Theorem 4.1 and
    Definition 4.3). ``loader`` yields ``(inputs, labels)`` batches."""
    if not callable(features_fn):
        raise ValueError(f"features_fn must be callable (inputs → features), got {type(features_fn).__name__}")
    acc = NCAccumulator(M, device=device, keep_features=keep_features, bias=bias)
    for k, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"loader must yield (inputs, labels) pairs; batch {k} is a "
                             f"{type(batch).__name__}" + (f" of length {len(batch)}" if hasattr(batch, "__len__") else ""))
        inputs, labels = batch
        if device is not None:
            inputs = inputs.to(device, non_blocking=True)
        acc.update(features_fn(inputs), labels)
    return acc.compute()
