"""Figures of chapters 2–6 (the theorem checks), sized for the book's ~800 px content column.

Every figure is at most 8 inches wide at 100 dpi with fonts of at least 10 points, so that it stays
legible when shown at the column's width: multi-panel views are stacked or laid out 2×2 rather
than four in a row. Each function draws one figure and returns it; the chapters show it and say,
in a caption sentence, what to look at.
"""

from __future__ import annotations

import numpy as np

from nclib.plots import FONT_SIZE, figure, shade_terminal_phase, style_axes

__all__ = [
    "collapse_figure",
    "margins_figure",
    "flow_figure",
    "svm_direction_figure",
    "bound_figure",
    "margin_heatmap",
    "permutation_figure",
    "hoeffding_size_scale_figure",
    "hoeffding_margin_figure",
    "bound_vs_accuracy_figure",
]


def collapse_figure(history):
    """NC1–NC4 of the training features against the epoch, 2×2 (Papyan et al. 2020, Figures 5–9);
    the terminal phase shaded."""
    ep = np.asarray(history.column("epoch"))
    panels = [
        ("NC1: tr(Σ_W Σ_B⁺)/C", [("train_nc1", None)], True),
        ("NC2: class means → simplex ETF", [("train_nc2_equinorm_means", "equinorm"),
                                           ("train_nc2_equiangular_means", "equiangular"),
                                           ("train_nc2_max_angle_means", "max-angle")], True),
        ("NC3: self-duality", [("train_nc3_self_duality", None)], True),
        ("NC4: NCC mismatch (fraction)", [("train_nc4_ncc_mismatch", None)], False),
    ]
    fig, axes = figure(2, 2, 5.8)
    for ax, (title, keys, log) in zip(axes.ravel(), panels):
        shade_terminal_phase(ax, history.terminal_epoch, ep[-1])
        for key, label in keys:
            ax.plot(ep, history.column(key), label=label)
        if log:
            ax.set_yscale("log")
        style_axes(ax, title, "epoch")
        if len(keys) > 1:
            ax.legend(fontsize=FONT_SIZE)
    return fig


def margins_figure(history):
    """Training CE and p_min (the paper's Figure 3 layout, stacked), and the scale-free margin."""
    ep = np.asarray(history.column("epoch"))
    fig, (ax, ax_sf) = figure(2, 1, 5.6, sharex=True)
    shade_terminal_phase(ax, history.terminal_epoch, ep[-1])
    ax.semilogy(ep, history.column("train_loss"), color="C0")
    style_axes(ax, "CE (left, blue) and p_min (right, red) on the training set", None, "train CE")
    right = ax.twinx()
    right.plot(ep, history.column("train_p_min"), color="C3")
    right.axhline(0, color="C3", lw=0.6, ls=":")
    right.set_ylabel(r"$p_{\min}$", color="C3", fontsize=FONT_SIZE)
    right.tick_params(labelsize=10)
    shade_terminal_phase(ax_sf, history.terminal_epoch, ep[-1])
    ax_sf.plot(ep, history.column("train_scale_free_margin"), color="C2")
    ax_sf.axhline(0, color="k", lw=0.6, ls=":")
    style_axes(ax_sf, r"scale-free margin $\min\,\gamma/(\Vert M_y - M_{y'}\Vert\,\bar\rho)$", "epoch")
    return fig


def flow_figure(path, seeds, controls, etf_value, slopes):
    """Theorem 4.1 on the UFM, 2×2: CE and p_min along the main path (the other initializations
    in grey), the weight-decay control's p_min, and the scale-free margin against the ETF's."""
    fig, axes = figure(2, 2, 6.0)
    (a, b), (c, e) = axes
    for s in seeds:
        a.loglog(s["t"][1:], s["loss"][1:], color="0.75", lw=0.8)
        b.semilogx(s["t"][1:], s["p_min"][1:], color="0.75", lw=0.8)
    a.loglog(path["t"][1:], path["loss"][1:], color="C0")
    style_axes(a, f"CE ∝ $t^{{{slopes['ce']:.2f}}}$ late", "flow time t", "CE (sum)")
    b.semilogx(path["t"][1:], path["p_min"][1:], color="C3")
    b.axhline(0, color="k", lw=0.5)
    style_axes(b, f"$p_{{\\min}}$ ≈ {slopes['pmin']:.2f}·log t late", "flow time t", r"$p_{\min}$")
    for k, s in enumerate(controls):
        c.semilogx(s["t"][1:], s["p_min"][1:], color="C1", lw=1, label="weight decay" if k == 0 else None)
    c.semilogx(path["t"][1:], path["p_min"][1:], color="C3", label="no weight decay")
    c.axhline(0, color="k", lw=0.5)
    c.legend(fontsize=FONT_SIZE)
    style_axes(c, "control: p_min with weight decay", "flow time t", "p_min")
    e.semilogx(path["t"][1:], path["scale_free"][1:], color="C2", label="scale-free margin")
    e.axhline(etf_value, color="k", ls="--", label="simplex ETF")
    e.legend(fontsize=FONT_SIZE)
    style_axes(e, "scale-free margin", "flow time t")
    return fig


def svm_direction_figure(t, one_minus_cos, control_gap):
    """1 − cos(M(t), M_SVM) on log axes, with the class-mean classifier's 1 − cos as the control."""
    fig, ax = figure(1, 1, 3.4)
    ax.loglog(t[1:], one_minus_cos[1:], label="gradient flow M(t)")
    ax.axhline(control_gap, color="C1", ls="--", label="class-mean classifier (control)")
    ax.legend(fontsize=FONT_SIZE)
    style_axes(ax, "direction of M(t) against the multiclass SVM", "flow time t", "1 − cos(M, M_SVM)")
    return fig


def bound_figure(runs, main_terms=None):
    """Theorem 4.4 along training: the bound of every seed (top; the main seed's terms (A), (B)
    and L01 dashed) and the test error of every seed (bottom); terminal phases shaded."""
    fig, (top, bot) = figure(2, 1, 6.0, sharex=True)
    for k, r in enumerate(runs):
        ep, b, err = r["epoch"], r["bound"], r["test_error"]
        if k == 0:
            shade_terminal_phase(top, r["terminal_epoch"], ep[-1])
            shade_terminal_phase(bot, r["terminal_epoch"], ep[-1])
        top.plot(ep, b, color=f"C{k}", lw=1.5 if k == 0 else 1, label=f"seed {r['seed']}")
        bot.plot(ep, 100 * err, color=f"C{k}", lw=1.5 if k == 0 else 1)
    if main_terms is not None:
        for name, ls in (("A", "--"), ("B", "-."), ("L01", ":")):
            top.plot(runs[0]["epoch"], main_terms[name], color="k", ls=ls, lw=1, label=f"({name})" if name != "L01" else "L01")
    top.set_yscale("log")
    top.axhline(1, color="r", lw=0.8)
    top.legend(fontsize=FONT_SIZE, ncol=3)
    style_axes(top, "Theorem 4.4: (A) + (B) + L01 (blank: not separated; red: 1)", None, "bound")
    style_axes(bot, "measured test error", "epoch", "test error (%)")
    return fig


def margin_heatmap(gamma_hat, classes):
    """The normalized pairwise margins γ_{y,y'}/‖M_y − M_{y'}‖ as a C×C heat map."""
    fig, ax = figure(1, 1, 6.6)
    im = ax.imshow(gamma_hat, cmap="viridis")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=FONT_SIZE)
    ax.set_yticks(range(len(classes)), classes, fontsize=FONT_SIZE)
    style_axes(ax, r"normalized pairwise margins $\gamma/\Vert M_y - M_{y'}\Vert$ (last epoch)")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.ax.tick_params(labelsize=10)
    return fig


def permutation_figure(perm_rhs, perm_acc, seed_acc, labels, title):
    """Remark 4.9: accuracy against the bound's right-hand side, one point per permutation (left),
    and the spread of accuracy across permutations and across seeds (right)."""
    fig, (a, b) = figure(1, 2, 3.6)
    a.scatter(perm_rhs, 100 * np.asarray(perm_acc))
    for lab, x, y in zip(labels, perm_rhs, perm_acc):
        a.annotate(lab, (x, 100 * y), fontsize=FONT_SIZE, xytext=(3, 3), textcoords="offset points")
    style_axes(a, title, "Theorem 4.8 right-hand side", "test accuracy (%)")
    b.boxplot([100 * np.asarray(perm_acc), 100 * np.asarray(seed_acc)],
              tick_labels=["permutations\n(seed fixed)", "seeds\n(ETF fixed)"])
    style_axes(b, "spread of test accuracy", None, "test accuracy (%)")
    return fig


def hoeffding_size_scale_figure(sizes, by_size, scales, by_scale, accuracy, rho, fixed_n):
    """Theorem 4.10 with exact norms: the bound against the sample size (top) and against a
    rescaling of the features that changes no prediction (bottom)."""
    fig, (a, b) = figure(2, 1, 5.8)
    a.semilogx(sizes, by_size, "o-", ms=3, label="Theorem 4.10 (as printed)")
    b.semilogx(scales, by_scale, "o-", ms=3, label="Theorem 4.10 (as printed)")
    for ax in (a, b):
        ax.axhline(accuracy, color="k", ls="--", lw=1, label=f"test accuracy ({accuracy:.3f})")
        ax.axhline(0, color="r", lw=0.8)
        ax.set_ylim(-1, 1.05)
        ax.legend(fontsize=FONT_SIZE, loc="lower left")
    style_axes(a, f"bound against samples per class ($\\rho_y$ = {rho:g})", "samples per class N/C", "accuracy bound")
    style_axes(b, f"the same classifier, features × a (N/C = {fixed_n})", "feature scale a", "accuracy bound")
    return fig


def hoeffding_margin_figure(gamma_hat, values, marks, sqrt_n):
    """Theorem 4.10 as printed against a common normalized margin γ̂: it falls until γ̂ = √(N/C)."""
    fig, ax = figure(1, 1, 3.4)
    ax.plot(gamma_hat, values)
    for g, v in marks:
        ax.plot([g], [v], "o", color="C3")
        ax.annotate(f"{v:.2f}", (g, v), xytext=(4, 6), textcoords="offset points", fontsize=FONT_SIZE)
    ax.axvline(sqrt_n, color="k", ls=":", lw=1, label="γ̂ = √(N/C)")
    ax.margins(y=0.15)
    ax.legend(fontsize=FONT_SIZE)
    style_axes(ax, "a larger margin gives a worse bound while γ̂ < √(N/C)", "normalized margin γ̂ (all classes)",
           "accuracy bound")
    return fig


def bound_vs_accuracy_figure(names, bounds, accs, lows, highs, chance=None):
    """Bars: each classifier's measured test accuracy (with its interval) beside the accuracy the
    bound promises."""
    fig, ax = figure(1, 1, 3.6)
    x = np.arange(len(names))
    accs, lows, highs = (np.asarray(v) for v in (accs, lows, highs))
    ax.bar(x - 0.2, accs, 0.4, yerr=[accs - lows, highs - accs], capsize=3, label="measured test accuracy")
    ax.bar(x + 0.2, np.clip(bounds, 0, None), 0.4, label="Theorem 4.10 (clipped at 0)")
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(x, names, fontsize=FONT_SIZE)
    ax.set_ylim(0, 1.32)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(fontsize=FONT_SIZE, loc="upper center", ncol=3)
    style_axes(ax, "the bound's promise against what each classifier does", None, "accuracy")
    return fig
