"""The figures of chapter 9, drawn in the book's one style (:func:`nclib.plots.figure`,
:func:`nclib.plots.style_axes`): at most ``WIDTH`` = 8 in wide, text of at least ``FONT_SIZE`` points.

One function per figure of the chapter: the UFM landscape and the saddle at the origin (Zhu et al.
2021), the fixed-ETF classifier's memory and accuracy (Zhu et al. 2021), the width × weight-decay
sweep and the balance law (Jacot et al. 2024), and NC1 against loss, gradient norm and time (Wu &
Mondelli 2025).
"""

from __future__ import annotations

import numpy as np

from nclib.plots import FONT_SIZE, cell_text_color, figure, style_axes
from nclib.related.zhu import SaddleCheck

__all__ = [
    "plot_ufm_landscape",
    "plot_saddle",
    "plot_fixed_etf",
    "plot_jacot_grid",
    "plot_balance_law",
    "plot_wu",
]


def plot_ufm_landscape(curves: dict, tol: float):
    """f − f* along gradient descent for every start, one colour per feature dimension (Zhu et al.
    2021, Theorems 3.1–3.2: every start reaches the ETF minimum): ``curves`` maps a label to
    (steps, S×R excess values)."""
    fig, ax = figure(1, 1, 3.4)
    for j, (label, (steps, excess)) in enumerate(curves.items()):
        lines = ax.loglog(np.maximum(steps, 1), np.maximum(excess, 1e-17), color=f"C{j}", alpha=0.45, lw=1)
        lines[0].set_label(label)
    ax.axhline(tol, color="k", ls=":", lw=1, label=f"tolerance {tol:g}")
    style_axes(ax, xlabel="gradient-descent step", ylabel="f − f*  (f* in closed form)")
    ax.legend(loc="lower left")
    return fig


def plot_saddle(check: SaddleCheck):
    """The origin of the UFM as a strict saddle (Zhu et al. 2021, Theorem 3.2). Left: the loss
    along the most negative Hessian direction at the origin against the quadratic prediction.
    Right: gradient descent started a small step along it."""
    fig, axes = figure(1, 2, 3.2)
    axes[0].plot(check.eps, check.drop, label="f(εv) − f(0)")
    axes[0].plot(check.eps, 0.5 * check.lam_min * check.eps**2, "--", label="½ λ_min ε²")
    axes[0].axhline(0, color="k", lw=0.5)
    style_axes(axes[0], "the origin: a strict saddle", "ε (unit eigenvector v of λ_min)")
    axes[0].legend()
    excess = np.maximum(check.escape.loss_history[:, 0] - check.optimum.value, 1e-17)
    axes[1].semilogy(np.maximum(check.escape.steps, 1), excess)
    style_axes(axes[1], "descent from 10⁻³·v", "gradient-descent step", "f − f*")
    return fig


def plot_fixed_etf(memory: dict, accuracy: dict):
    """The fixed simplex-ETF classifier with d = C against a learnable one (Zhu et al. 2021). Top:
    the bytes alive at the start of the backward pass, by category, per network. Bottom: test
    accuracy per seed, on a ±2-point axis so that differences are not magnified."""
    fig, axes = figure(2, 1, 5.2)
    kinds = list(memory)
    cats = [c for c in memory[kinds[0]].as_dict() if c != "total"]
    left = np.zeros(len(kinds))
    for i, cat in enumerate(cats):
        vals = np.array([memory[k].as_dict()[cat] for k in kinds]) / 2**20
        axes[0].barh(kinds, vals, left=left, label=cat, color=f"C{i}")
        left += vals
    style_axes(axes[0], xlabel="MiB alive at the start of the backward pass (batch 64)")
    axes[0].legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    arms = list(accuracy)
    for i, arm in enumerate(arms):
        axes[1].scatter(100 * np.asarray(accuracy[arm]), [i] * len(accuracy[arm]), s=40, color=f"C{i}")
    axes[1].set_yticks(range(len(arms)), arms)
    centre = 100 * np.mean([np.mean(v) for v in accuracy.values()])
    axes[1].set(xlim=(centre - 2, centre + 2), ylim=(-0.7, len(arms) - 0.3))
    style_axes(axes[1], xlabel="test accuracy (%), one dot per seed")
    return fig


def plot_jacot_grid(sweep: dict, widths, weight_decays):
    """Four heat maps over (first-layer width, weight decay) for the networks of Jacot et al.
    (2024): NC1, the orthogonal-frame error (NC2), the unbalancedness of the worse pair, and κ of
    the features entering the linear part."""
    panels = [("NC1 (penultimate)", lambda m: m["nc1_penultimate"], True),
              ("NC2: orthogonal-frame error", lambda m: m["nc2_orthogonal_error"], False),
              ("unbalancedness (worse pair)", lambda m: max(m["balancedness"]), True),
              ("κ entering the linear part", lambda m: m["kappa"], True)]
    fig, axes = figure(2, 2, 5.6)
    for ax, (title, get, logscale) in zip(axes.flat, panels):
        grid = np.array([[get(sweep[w, wd]) for wd in weight_decays] for w in widths])
        shown = np.log10(grid) if logscale else grid
        im = ax.imshow(shown, cmap="viridis", aspect="auto")
        for i in range(len(widths)):
            for j in range(len(weight_decays)):
                ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=FONT_SIZE,
                        color=cell_text_color(im, shown[i, j]))
        ax.set_xticks(range(len(weight_decays)), [f"{wd:g}" for wd in weight_decays])
        ax.set_yticks(range(len(widths)), [str(w) for w in widths])
        style_axes(ax, title, "weight decay λ", "width w")
    return fig


def plot_balance_law(logs: dict, lr: float, momentum: float):
    """‖W_{l+1}ᵀW_{l+1} − W_lW_lᵀ‖_F along training, one colour per weight decay (``logs`` maps λ
    to a log of :func:`nclib.related.jacot.train_linear_tail`), dashed: the gradient-flow law
    e^{−2λt} by which weight decay balances the linear layers (Jacot et al. 2024)."""
    n_pairs = len(next(iter(logs.values()))[0]["unbalance_norm"])
    fig, axes = figure(1, n_pairs, 3.2, sharey=True)
    axes = np.atleast_1d(axes)
    for pair, ax in enumerate(axes):
        for j, (wd, log) in enumerate(logs.items()):
            steps = np.array([r["step"] for r in log])
            D = np.array([r["unbalance_norm"][pair] for r in log])
            ax.semilogy(steps, D, color=f"C{j}", label=f"λ = {wd:g}")
            ax.semilogy(steps, D[0] * np.exp(-2 * wd * lr / (1 - momentum) * steps), color=f"C{j}", ls="--", lw=1)
        style_axes(ax, f"pair {pair + 1}–{pair + 2}", "step")
    style_axes(axes[0], ylabel=r"$\Vert W_+^\top W_+ - W W^\top\Vert_F$")
    axes[-1].legend(loc="lower left")
    return fig


def plot_wu(histories: dict):
    """NC1 of the features h of Wu & Mondelli (2025) along training. Top: against training MSE
    and against the gradient norm. Bottom: NC1 (solid) and test error (dashed, 0 drawn at 10⁻⁴)
    against time. ``histories`` maps a label (one colour) to a list of
    :func:`nclib.related.wu_mondelli.train_mean_field` records (one line each)."""
    fig, axes = figure(2, 2, 6.4)
    ax_mse, ax_grad = axes[0]
    grid = axes[1, 0].get_gridspec()
    for ax in axes[1]:  # the bottom row is one axes across both columns
        ax.remove()
    ax_time = style_axes(fig.add_subplot(grid[1, :]))
    for j, (label, runs) in enumerate(histories.items()):
        for k, h in enumerate(runs):
            lab = label if k == 0 else None
            ax_mse.loglog(h["mse"], h["nc1"], color=f"C{j}", lw=1, label=lab)
            ax_grad.loglog(h["grad_norm"], h["nc1"], color=f"C{j}", lw=1, label=lab)
            ax_time.loglog(h["time"][1:], h["nc1"][1:], color=f"C{j}", lw=1,
                           label=f"NC1, {label}" if k == 0 else None)
            ax_time.loglog(h["time"][1:], np.maximum(h["test_error"][1:], 1e-4), color=f"C{j}", ls="--", lw=1,
                           label=f"test error, {label}" if k == 0 else None)
    style_axes(ax_mse, xlabel="training MSE", ylabel="NC1 of h")
    style_axes(ax_grad, xlabel="gradient norm (mean-field)")
    style_axes(ax_time, xlabel="time (step × η)", ylabel="NC1 / test error")
    ax_mse.legend()
    ax_time.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    return fig
