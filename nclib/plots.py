"""Drawing pieces shared by the figure modules (:mod:`nclib.theory_plots` for chapters 2–6,
:mod:`nclib.report_plots` for the experiments) and the explorers (:mod:`nclib.widgets`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["shade_terminal_phase", "draw_etf"]


def shade_terminal_phase(ax, terminal_epoch, last_epoch):
    """Shade the terminal phase of training (from the first epoch with 100% train accuracy)."""
    if terminal_epoch is not None:
        ax.axvspan(terminal_epoch, last_epoch, color="0.9", zorder=0, label="terminal phase")


def draw_etf(M, axes=None):
    """Draw the columns of a d×C classifier: their first three coordinates as arrows (what a
    rotation changes) and their Gram matrix (what it does not)."""
    M = torch.as_tensor(M, dtype=torch.float64).numpy()
    d, C = M.shape
    if axes is None:
        fig = plt.figure(figsize=(8, 4), constrained_layout=True)
        axes = (fig.add_subplot(1, 2, 1, projection="3d"), fig.add_subplot(1, 2, 2))
    ax3, axg = axes
    coords = np.zeros((3, C))
    coords[: min(d, 3)] = M[: min(d, 3)]
    colors = plt.cm.tab10(np.arange(C) % 10)
    for c in range(C):
        ax3.quiver(0, 0, 0, *coords[:, c], color=colors[c], arrow_length_ratio=0.08)
        ax3.text(*(1.08 * coords[:, c]), str(c), color=colors[c])
    lim = max(1e-9, np.abs(M).max())
    for setter in (ax3.set_xlim, ax3.set_ylim, ax3.set_zlim):
        setter(-lim, lim)
    ax3.set_title(f"columns of M, coordinates 1–{min(d, 3)} of d = {d}")
    gram = M.T @ M
    im = axg.imshow(gram, cmap="RdBu_r", vmin=-np.abs(gram).max(), vmax=np.abs(gram).max())
    axg.set_title("Gram matrix MᵀM (rotation-invariant)")
    axg.figure.colorbar(im, ax=axg, shrink=0.8)
    return axg.figure
