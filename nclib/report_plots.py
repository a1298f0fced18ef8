"""Figures of the experiment chapters (7, 8 and 10), drawn from the analysis in :mod:`nclib.report`.

Every figure is sized for the book's content column (about 800 px, i.e. 8 inches at 100 dpi)
with fonts of at least 10 points; multi-panel figures put at most two panels in a row. Each
function returns the figure; the chapter shows it and writes the caption.
"""

from __future__ import annotations

import math

import numpy as np

from nclib.history import final
from nclib.plots import FONT_SIZE, WIDTH, cell_text_color, figure, shade_terminal_phase, style_axes
from nclib.report import BOX_NAMES
from nclib.stats import clustered_t_interval
from nclib.tpt_margins import run_label, seed_clusters
from nclib.verdicts import confidence

__all__ = ["plot_figure3", "plot_scales", "plot_growth", "plot_boxes", "plot_grids", "plot_power",
           "plot_gaps"]



def plot_figure3(runs, title: str | None = None, max_panels: int = 6):
    """The paper's Figure 3 layout, one panel per run (at most ``max_panels``, two per row):
    training cross-entropy on a log scale (left axis, blue) and p_min (right axis, red), the
    terminal phase shaded."""
    runs = list(runs)[:max_panels]
    n = max(1, len(runs))
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = figure(rows, cols, 2.9 * rows, squeeze=False)
    for ax, (p, h) in zip(axes.flat, runs):
        ep = np.array(h.column("epoch"))
        shade_terminal_phase(ax, h.terminal_epoch, ep[-1])
        ax.semilogy(ep, h.column("train_loss"), color="C0")
        ax.set_ylabel("train CE", color="C0")
        ax.set_xlabel("epoch")
        right = ax.twinx()
        right.plot(ep, h.column("train_p_min"), color="C3")
        right.axhline(0, color="C3", lw=0.6, ls=":")
        right.set_ylabel(r"$p_{\min}$", color="C3", fontsize=FONT_SIZE)
        right.tick_params(labelsize=FONT_SIZE)
        ax.set_title(run_label(p).replace(" · fashion_mnist", ""))
        style_axes(ax)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def plot_scales(runs, title: str | None = None):
    """Two panels stacked: the scale-free margin p̂ and the RMS feature norm ρ̄ along training,
    one line per run (solid: fixed ETF head, dashed: learnable head; one colour per backbone)."""
    fig, (a1, a2) = figure(2, 1, 5.6, sharex=True)
    backbones = sorted({p.get("backbone") for p, _ in runs})
    seen = set()
    for p, h in runs:
        ep = h.column("epoch")
        c = f"C{backbones.index(p.get('backbone')) % 10}"
        ls = "-" if p.get("head") == "etf" else "--"
        name = run_label(p).replace(" · fashion_mnist", "")
        label = name if name not in seen else None
        seen.add(name)
        a1.plot(ep, h.column("train_scale_free_margin"), color=c, ls=ls, lw=1.2, label=label)
        a2.semilogy(ep, h.column("train_feature_rms"), color=c, ls=ls, lw=1.2)
    a1.axhline(0, color="k", lw=0.5, ls=":")
    a1.set_ylabel("scale-free margin p̂")
    a2.set_ylabel("RMS feature norm ρ̄")
    a2.set_xlabel("epoch")
    a1.legend(fontsize=FONT_SIZE, loc="lower right")
    for a in (a1, a2):
        style_axes(a)
    if title:
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def plot_growth(rows, control=None, title: str | None = None, alpha: float = 0.05):
    """Per run (one row each), the change of p_min (in units of the run's scale, black dots) and of
    the scale-free margin p̂ (green squares) over the second half of the terminal phase
    (:meth:`nclib.tpt_margins.MarginGrowth.change`); the top row is their mean over runs with its
    t interval over seeds at level 1 − ``alpha`` (pass the level the verdict reads: 0.05 alone,
    α/k in a family of k); the rescaled copies (``control``) are drawn below a line, hollow."""
    done = [r for r in rows if r.reached]
    ctrl = list(control or [])
    items = done + ctrl
    n = len(items) + 1
    fig, ax = figure(1, 1, 0.34 * n + 1.5)
    for i, r in enumerate(items):
        y = n - 2 - i
        hollow = r in ctrl
        ax.plot(r.change("p_min"), y, "o", ms=6, mfc="none" if hollow else "k", mec="k",
                label="p_min (in units of the scale)" if i == 0 else None)
        ax.plot(r.change("scale_free"), y, "s", ms=5, mfc="none" if hollow else "C2", mec="C2",
                label="scale-free margin p̂" if i == 0 else None)
    clusters = seed_clusters(done)
    if len(set(clusters)) >= 2:
        for q, c, dy in (("p_min", "k", 0.12), ("scale_free", "C2", -0.12)):
            m, lo, hi = clustered_t_interval([r.change(q) for r in done], clusters, 1 - alpha)
            ax.errorbar(m, n - 1 + dy, xerr=[[m - lo], [hi - m]], fmt="o" if q == "p_min" else "s", color=c,
                        capsize=4)
    labels = [f"mean over runs ({confidence(alpha)} interval)"] + [
        r.label.replace(" · fashion_mnist", "").replace(" head", "") + (f" · s{r.seed}" if r.seed is not None else "")
        for r in items]
    ax.set_yticks(range(n), labels[::-1], fontsize=FONT_SIZE)
    if ctrl:
        ax.axhline(len(ctrl) - 0.5, color="0.5", lw=0.8)
    ax.axhline(n - 1.5, color="0.5", lw=0.8)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("change over the second half of the terminal phase")
    ax.legend(fontsize=FONT_SIZE, loc="lower right")
    style_axes(ax)
    if title:
        ax.set_title(title)
    return fig


def plot_boxes(summary, title: str | None = None):
    """Figures 4–5 with the seed box: final test accuracy, test CE, train accuracy and train CE in
    a 2 × 2 grid, one box per sample (permutations, rotations at one seed; M* across seeds), the
    runs as dots."""
    groups = summary.groups
    panels = [("test_accuracy", "test accuracy (%)", 100), ("test_loss", "test CE", 1),
              ("train_accuracy", "train accuracy (%)", 100), ("train_loss", "train CE (log)", 1)]
    fig, axes = figure(2, 2, 6.2)
    rng = np.random.default_rng(0)
    names = [g for g in BOX_NAMES if g in groups]
    short = {"permutations": "perm.", "rotations": "rot.", "seeds (M* fixed)": "seeds"}
    for ax, (key, label, mult) in zip(axes.flat, panels):
        vals = [[mult * final(h, key) for _, h in groups[g]] for g in names]
        if vals:
            ax.boxplot(vals, showfliers=False)
            for j, v in enumerate(vals):
                # clip_on=False: a run at 100% sits on the top edge, not above it
                ax.scatter(j + 1 + rng.uniform(-0.12, 0.12, len(v)), v, s=12, color="C3", zorder=3, clip_on=False)
            ax.set_xticks(range(1, len(vals) + 1), [short[g] for g in names])
        ax.set_title(label)
        if key == "train_loss":
            ax.set_yscale("log")
        if mult == 100 and vals:  # an accuracy: the axis ends at 100%
            ax.set_ylim(min(ax.get_ylim()[0], min(min(v) for v in vals) - 1), min(100.0, ax.get_ylim()[1]))
        style_axes(ax)
    if title:
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def plot_grids(summary, title: str | None = None):
    """The classifiers × seeds grids of test accuracy (points) side by side, each cell labelled,
    one colour scale for both."""
    gas = [summary.grids[k] for k in ("permutation", "rotation") if k in summary.grids]
    if not gas:
        return None
    vmin = min(ga.grid.values.min() for ga in gas)
    vmax = max(ga.grid.values.max() for ga in gas)
    rows = max(ga.grid.shape[0] for ga in gas)
    fig, axes = figure(1, len(gas), 0.45 * rows + 1.6, width=WIDTH if len(gas) > 1 else WIDTH / 1.6, squeeze=False)
    for ax, ga in zip(axes.flat, gas):
        g = ga.grid
        im = ax.imshow(g.values, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                ax.text(j, i, f"{g.values[i, j]:.1f}", ha="center", va="center", fontsize=FONT_SIZE,
                        color=cell_text_color(im, g.values[i, j]))
        ax.set_xticks(range(g.shape[1]), [f"s{s}" for s in g.seeds])
        ax.set_yticks(range(g.shape[0]), g.row_labels())
        ax.set_xlabel("seed")
        ax.set_title(f"{g.kind}s: permutation test p = {ga.p:.2g}")
        style_axes(ax)
    fig.colorbar(im, ax=list(axes.flat), shrink=0.85, label="test accuracy (%)")
    if title:
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def plot_power(summary, title: str | None = None):
    """Power of the permutation test against the sd of the classifier effect (points), per grid,
    from the simulation (:func:`nclib.stats.detectable_effect`), with the seed sd (dotted) and the
    power target (dashed) marked."""
    gas = [summary.grids[k] for k in ("permutation", "rotation") if k in summary.grids]
    if not gas:
        return None
    fig, ax = figure(1, 1, 3.2)
    for i, ga in enumerate(gas):
        det = ga.detectable
        x = np.asarray(det.ratios) * ga.sigma
        a, b = ga.grid.shape
        ax.plot(x, det.powers, color=f"C{i}", marker="o", ms=3, label=f"{ga.grid.kind} grid {a} × {b}")
        if np.isfinite(ga.tau80):
            ax.plot([ga.tau80], [det.power], "v", color=f"C{i}", ms=8)
    ax.axhline(gas[0].detectable.power, color="k", ls="--", lw=0.8)
    ax.axhline(gas[0].alpha, color="k", ls=":", lw=0.6)
    if np.isfinite(summary.seed_sd):
        ax.axvline(summary.seed_sd, color="C3", ls=":", lw=1.2, label="seed sd")
    ax.set_xlabel("sd of the classifier effect (test-accuracy points)")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=FONT_SIZE, loc="lower right")
    style_axes(ax)
    if title:
        ax.set_title(title)
    return fig


def plot_gaps(check: dict, title: str | None = None):
    """The per-model relative logit gaps of :func:`nclib.training_checks.batched_check` on a log axis:
    batched vs sequential in float32, the rounding-noise control in float32, batched vs
    sequential in float64."""
    series = [("batched vs sequential\nfloat32", check["batched32"], "C0"),
              ("rounding-noise control\nfloat32", check["noise32"], "C1"),
              ("batched vs sequential\nfloat64", check["batched64"], "C2")]
    fig, ax = figure(1, 1, 3.0)
    rng = np.random.default_rng(0)
    for j, (_, v, c) in enumerate(series):
        v = np.maximum(np.asarray(v, dtype=float), 1e-18)
        ax.scatter(j + rng.uniform(-0.15, 0.15, v.size), v, s=16, color=c)
    ax.set_yscale("log")
    ax.set_xticks(range(len(series)), [s[0] for s in series])
    ax.set_ylabel("relative gap of test logits")
    style_axes(ax)
    if title:
        ax.set_title(title)
    return fig
