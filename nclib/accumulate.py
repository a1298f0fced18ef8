"""One pass over a data loader for every metric of :mod:`nclib.metrics`.

The accumulator keeps sufficient statistics in float64 on the model's device: per-class counts and
sums, the d×d second moment Σ z zᵀ, the C×C matrix of smallest logit gaps per class (which gives
p_min and every γ_{y,y'}), the squared-norm total and the number of correct decisions. NC4 compares
each sample's decision with the nearest class centre, which needs the final class means, so the
features are also kept (float32, N×d: 200 MB for 50 000 × 1024) unless ``keep_features=False``,
in which case NC4 is skipped.
"""

from __future__ import annotations

import torch

from nclib._checks import check_classifier
from nclib.metrics import margins_from_min_gaps, nc_from_statistics, ncc_mismatch

__all__ = ["NCAccumulator", "measure"]


class NCAccumulator:
    """Streaming NC1–NC4, margins and accuracy for a fixed classifier ``M`` (d×C).

    Call :meth:`update` with each batch of features and labels, then :meth:`compute`. The result
    equals ``nc_metrics(Z, y, M)`` and ``margins(Z, y, M)`` on the concatenated batches up to
    float64 rounding (tested).
    """

    def __init__(self, M, device=None, keep_features: bool = True):
        M = torch.as_tensor(M)
        d, C = M.shape
        self.device = torch.device(device) if device is not None else M.device
        self.M = check_classifier(M, d, C).to(self.device)
        self.C, self.d = C, d
        f64 = dict(dtype=torch.float64, device=self.device)
        self.counts = torch.zeros(C, **f64)
        self.sums = torch.zeros(C, d, **f64)
        self.second_moment = torch.zeros(d, d, **f64)
        self.min_gaps = torch.full((C, C), float("inf"), **f64)
        self.sq_norm_total = torch.zeros((), **f64)
        self.correct = torch.zeros((), **f64)
        self.keep_features = keep_features
        self._features: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, Z: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: features Z (B×d, any float dtype) and labels y (B,)."""
        if Z.ndim != 2 or Z.shape[1] != self.d:
            raise ValueError(f"batch features must be B×{self.d}, got shape {tuple(Z.shape)}")
        if y.shape != (Z.shape[0],):
            raise ValueError(f"batch labels must have shape ({Z.shape[0]},), got {tuple(y.shape)}")
        Z = Z.to(self.device, torch.float64)
        y = y.to(self.device, torch.int64)
        if not torch.isfinite(Z).all():
            raise ValueError("batch features contain NaN or infinite values (a diverged model?)")
        if y.numel() and (y.min() < 0 or y.max() >= self.C):
            raise ValueError(f"labels out of range [0, {self.C}): min {y.min()}, max {y.max()}")
        self.counts += torch.bincount(y, minlength=self.C)
        self.sums.index_add_(0, y, Z)
        self.second_moment += Z.T @ Z
        logits = Z @ self.M
        gaps = logits.gather(1, y[:, None]) - logits
        self.min_gaps.scatter_reduce_(0, y[:, None].expand(-1, self.C), gaps, reduce="amin")
        self.sq_norm_total += Z.pow(2).sum()
        self.correct += (logits.argmax(dim=1) == y).sum()
        if self.keep_features:
            self._features.append(Z.float())
            self._labels.append(y)

    def compute(self) -> dict:
        """Every metric: the keys of ``nc_metrics`` plus ``accuracy``, ``p_min``, ``scale_free_margin``
        and ``margins`` (the :class:`~nclib.metrics.Margins` object with the pairwise matrices)."""
        n = self.counts.sum().item()
        if n == 0:
            raise ValueError("no batches were added: call update() before compute()")
        out = nc_from_statistics(self.counts, self.sums, self.second_moment, self.M)
        if self.keep_features:
            means = self.sums / self.counts[:, None]
            Z = torch.cat(self._features).double()
            out["nc4_ncc_mismatch"] = ncc_mismatch(Z, torch.cat(self._labels), self.M, means)
        m = margins_from_min_gaps(self.min_gaps, self.M, (self.sq_norm_total / n).sqrt().item())
        out.update(accuracy=self.correct.item() / n, p_min=m.p_min, scale_free_margin=m.scale_free, margins=m)
        return out


@torch.no_grad()
def measure(features_fn, loader, M, device=None, keep_features: bool = True) -> dict:
    """Run ``features_fn`` (inputs → N×d features) over ``loader`` once and return every metric of
    :class:`NCAccumulator`. ``loader`` yields ``(inputs, labels)`` batches."""
    acc = NCAccumulator(M, device=device, keep_features=keep_features)
    for inputs, labels in loader:
        if device is not None:
            inputs = inputs.to(device, non_blocking=True)
        acc.update(features_fn(inputs), labels)
    return acc.compute()
