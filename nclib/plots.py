"""Figures shared by the chapters. Each function draws on axes it is given (or makes its own) and
returns the figure, so chapters stay one call per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["shade_terminal_phase", "plot_collapse", "plot_margins", "draw_etf"]


def shade_terminal_phase(ax, terminal_epoch, last_epoch):
    """Shade the terminal phase of training (from the first epoch with 100% train accuracy)."""
    if terminal_epoch is not None:
        ax.axvspan(terminal_epoch, last_epoch, color="0.9", zorder=0, label="terminal phase")


def plot_collapse(history, title=None):
    """NC1–NC4 of the training features per epoch on log axes (Papyan et al. 2020, Figures 5–9)."""
    epochs = history.column("epoch")
    panels = [
        ("NC1: tr(Σ_W Σ_B⁺)/C", ["train_nc1"]),
        ("NC2: class means", ["train_nc2_equinorm_means", "train_nc2_equiangular_means", "train_nc2_max_angle_means"]),
        ("NC3: self-duality ‖M/‖M‖ − M̄/‖M̄‖‖²", ["train_nc3_self_duality"]),
        ("NC4: NCC mismatch", ["train_nc4_ncc_mismatch"]),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), constrained_layout=True)
    for ax, (label, keys) in zip(axes, panels):
        shade_terminal_phase(ax, history.terminal_epoch, epochs[-1])
        for key in keys:
            values = np.asarray(history.column(key), dtype=float)
            # NC4 is exactly 0 once collapsed; plot it on a linear axis, the others on log axes.
            short = key.replace("train_nc2_", "").replace("_means", "")
            ax.plot(epochs, values, label=short if len(keys) > 1 else None)
        if "nc4" not in keys[0]:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        if len(keys) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_margins(history, title=None):
    """Cross-entropy and p_min (Theorem 4.1, the paper's Figure 3 layout: CE on the left axis, p_min
    on the right), and the scale-free margin beside them."""
    epochs = history.column("epoch")
    fig, (ax, ax_sf) = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True)
    shade_terminal_phase(ax, history.terminal_epoch, epochs[-1])
    ax.semilogy(epochs, history.column("train_loss"), color="C0", label="train CE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train cross-entropy", color="C0")
    right = ax.twinx()
    right.plot(epochs, history.column("train_p_min"), color="C3", label="p_min")
    right.axhline(0, color="C3", lw=0.5, ls=":")
    right.set_ylabel("p_min (train)", color="C3")
    ax.set_title("CE and p_min on the training set")
    shade_terminal_phase(ax_sf, history.terminal_epoch, epochs[-1])
    ax_sf.plot(epochs, history.column("train_scale_free_margin"), color="C2")
    ax_sf.axhline(0, color="k", lw=0.5, ls=":")
    ax_sf.set_xlabel("epoch")
    ax_sf.set_title("scale-free margin  min γ/(‖M_y − M_y'‖ ρ̄)")
    if title:
        fig.suptitle(title)
    return fig


def draw_etf(M, axes=None):
    """Draw the columns of a d×C classifier: their first three coordinates as arrows (what a
    rotation changes) and their Gram matrix (what it does not)."""
    M = torch.as_tensor(M, dtype=torch.float64).numpy()
    d, C = M.shape
    if axes is None:
        fig = plt.figure(figsize=(9, 4), constrained_layout=True)
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
