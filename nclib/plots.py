"""The book's one figure style and the drawing pieces shared by the figure modules
(:mod:`nclib.theory_plots` for chapters 2–6, :mod:`nclib.report_plots` for the experiments,
:mod:`nclib.related.figures` for chapter 9) and the explorers (:mod:`nclib.widgets`).

Every figure is at most ``WIDTH`` inches wide at 100 dpi (the book's ~800 px content column) with
text of at least ``FONT_SIZE`` points, so that it stays legible at the width it is shown; the
figure modules draw through :func:`figure` and :func:`style_axes` rather than setting sizes of their
own."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["WIDTH", "FONT_SIZE", "STYLE", "figure", "style_axes", "cell_text_color", "shade_terminal_phase",
           "draw_etf"]

WIDTH = 8.0  # inches: the content column at 100 dpi
FONT_SIZE = 10  # points: ticks, labels and legends; titles one point larger
STYLE = {"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1, "axes.labelsize": FONT_SIZE,
         "xtick.labelsize": FONT_SIZE, "ytick.labelsize": FONT_SIZE, "legend.fontsize": FONT_SIZE,
         "figure.titlesize": FONT_SIZE + 1}


def figure(rows: int = 1, cols: int = 1, height: float = 3.4, *, width: float = WIDTH, **subplots_kw):
    """A new figure in the book's style: ``rows × cols`` axes (``plt.subplots`` arguments such as
    ``sharex`` or ``squeeze`` pass through), ``width`` × ``height`` inches, constrained layout.
    Returns ``(fig, axes)`` as ``plt.subplots`` does."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), constrained_layout=True, **subplots_kw)
    for ax in np.atleast_1d(axes).ravel():
        style_axes(ax)
    return fig, axes


def style_axes(ax, title: str | None = None, xlabel: str | None = None, ylabel: str | None = None):
    """Set an axes' title and labels (those given) and bring its text to the book's sizes; call it
    again after adding text, since axes created outside :func:`figure` (a twin axis) start at
    matplotlib's defaults."""
    if title is not None:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.xaxis.label.set_size(FONT_SIZE)
    ax.yaxis.label.set_size(FONT_SIZE)
    ax.title.set_size(FONT_SIZE + 1)
    return ax


def _relative_luminance(rgb) -> float:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def cell_text_color(image, value) -> str:
    """Black or white for a label written on a heat-map cell of ``value`` in ``image`` (what
    ``imshow`` returned), whichever contrasts more with the cell's colour: the WCAG 2 contrast
    ratio (L₁ + 0.05)/(L₂ + 0.05) of relative luminances. White on the bright end of viridis
    (yellow) reads poorly; black on its dark end too."""
    luminance = _relative_luminance(image.cmap(image.norm(value)))
    return "k" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "w"


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
