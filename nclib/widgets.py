"""Interactive controls for the chapters (ipywidgets; live in Jupyter)."""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from nclib.etf import random_rotation, simplex_etf
from nclib.plots import draw_etf

__all__ = ["plane_rotation", "etf_explorer", "margin_bound_explorer", "covering_explorer", "hoeffding_explorer"]


def plane_rotation(d: int, angle: float) -> torch.Tensor:
    """The d×d rotation by ``angle`` (radians) in the plane of the first two coordinates."""
    R = torch.eye(d, dtype=torch.float64)
    if d >= 2:
        c, s = math.cos(angle), math.sin(angle)
        R[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return R


def etf_explorer(C: int = 4, d: int = 3, seed: int = 0):
    """Sliders for C, d, a Haar-random rotation (its seed) and a rotation angle in the first
    coordinate plane; draws the simplex ETF R·M* (Definition 3.1, Definition 4.7) and prints its
    norms and cosines. d < C − 1 shows the error that simplex_etf raises."""
    c_slider = widgets.IntSlider(value=C, min=2, max=10, description="C")
    d_slider = widgets.IntSlider(value=d, min=1, max=12, description="d")
    seed_box = widgets.IntSlider(value=seed, min=0, max=50, description="R seed")
    angle = widgets.FloatSlider(value=0.0, min=0.0, max=2 * math.pi, step=0.05, description="angle")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            try:
                M = simplex_etf(c_slider.value, d_slider.value, generator=0)
            except ValueError as err:
                print(err)
                return
            R = plane_rotation(d_slider.value, angle.value) @ random_rotation(d_slider.value, seed_box.value)
            RM = R @ M
            draw_etf(RM)
            plt.show()
            gram = RM.T @ RM
            off = gram[~torch.eye(c_slider.value, dtype=torch.bool)]
            print(f"norms: {RM.norm(dim=0).min():.6f}–{RM.norm(dim=0).max():.6f}; "
                  f"cosines: {off.min():.6f}–{off.max():.6f} (−1/(C−1) = {-1 / (c_slider.value - 1):.6f})")

    for w in (c_slider, d_slider, seed_box, angle):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([c_slider, d_slider]), widgets.HBox([seed_box, angle]), out])
    display(box)
    return box


def margin_bound_explorer(gamma, K: float, weight_norm: float, rms_feature_norm: float, N: int):
    """Remark 4.6: sliders for a margin scale s (all γ_{y,y'} multiplied by s) and the training-set
    size N; shows Corollary 4.5's terms (A) and (B) with the linear-class Rademacher estimate
    R_{N/C} = B ρ̄ / √(N/C) (see nclib.bounds.margin_bound). ``gamma`` is a C×C margin matrix."""
    from nclib.bounds import corollary_45

    gamma = torch.as_tensor(gamma, dtype=torch.float64).nan_to_num(1.0)
    C = gamma.shape[0]
    scale = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="margin ×")
    size = widgets.IntSlider(value=N, min=10 * C, max=100 * N, step=10 * C, description="N")
    out = widgets.Output()

    def show(*_):
        with out:
            out.clear_output(wait=True)
            n = size.value
            R = weight_norm * rms_feature_norm / math.sqrt(n / C)
            try:
                t = corollary_45(R, scale.value * gamma, K, n)
            except ValueError as err:
                print(f"not applicable: {err}")
                return
            print(f"(A) = {t['A']:.4f}   (B) = {t['B']:.4f}   (A) + (B) = {t['A'] + t['B']:.4f}")

    for w in (scale, size):
        w.observe(show, names="value")
    show()
    box = widgets.VBox([widgets.HBox([scale, size]), out])
    display(box)
    return box


def covering_explorer(supports, radii_by_config: dict, class_names=None):
    """Figure 2 / Remark 4.9: pick a configuration (e.g. a permutation of the ETF), a class y and a
    radius multiplier; draws the class supports and the greedy ε-net covering M_y at radius
    ε = multiplier × min_{y'} γ̂_{y,y'}/L, with the covering number."""
    from matplotlib.patches import Circle

    from nclib.bounds import greedy_cover

    C = len(supports)
    names = class_names or [f"class {c}" for c in range(C)]
    config = widgets.Dropdown(options=list(radii_by_config), description="ETF")
    cls = widgets.Dropdown(options=[(n, c) for c, n in enumerate(names)], description="class")
    mult = widgets.FloatLogSlider(value=1.0, base=10, min=-0.5, max=1.0, step=0.05, description="ε ×")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            radii = torch.as_tensor(radii_by_config[config.value], dtype=torch.float64)
            y = cls.value
            eps = mult.value * radii[y][torch.arange(C) != y].min().item()
            pts = torch.as_tensor(supports[y], dtype=torch.float64)
            centres = greedy_cover(pts, eps)
            fig, ax = plt.subplots(figsize=(5, 5))
            for c, s in enumerate(supports):
                s = torch.as_tensor(s)
                ax.plot(s[:, 0], s[:, 1], lw=2 if c == y else 1, alpha=1 if c == y else 0.4, label=names[c])
            for i in centres.tolist():
                ax.add_patch(Circle(pts[i].tolist(), eps, fill=False, color="k", lw=0.6))
            ax.set_aspect("equal")
            ax.set_title(f"{names[y]}: N(ε = {eps:.3g}) = {len(centres)} balls")
            ax.legend(fontsize=7, loc="lower right")
            plt.show()

    for w in (config, cls, mult):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([config, cls]), mult, out])
    display(box)
    return box


def hoeffding_explorer(gamma_hat_min, rho, d: int, N: int):
    """Remark 4.11: sliders for a feature scale a (every feature multiplied by a, so ρ_y → aρ_y and
    γ̂ → aγ̂ while predictions do not change) and the number of samples per class; shows Theorem
    4.10's two H terms and the bound as printed (nclib.bounds.hoeffding_bound)."""
    from nclib.bounds import hoeffding_bound

    g = torch.as_tensor(gamma_hat_min, dtype=torch.float64)
    r = torch.as_tensor(rho, dtype=torch.float64)
    C = g.numel()
    scale = widgets.FloatLogSlider(value=1.0, base=10, min=-4, max=1, step=0.05, description="feature ×")
    per_class = widgets.IntSlider(value=N // C, min=1, max=100 * max(N // C, 10), step=1, description="N/C")
    out = widgets.Output()

    def show(*_):
        with out:
            out.clear_output(wait=True)
            a, n = scale.value, per_class.value
            b = hoeffding_bound(a * g, a * r, d, n * C, C)
            h1, h2 = sum(b.terms["H1"]), sum(b.terms["H2"])
            print(f"ρ_y = {', '.join(f'{v:.3g}' for v in (a * r).tolist())}")
            print(f"Σ H(1, d, ρ_y, N/C) = {h1:.4g}   Σ H(γ̂_min − √(N/C), d, ρ_y, N/C) = {h2:.4g}")
            print(f"accuracy ≥ {b.value:.4g}" + ("   (vacuous: ≤ 0)" if b.vacuous else ""))

    for w in (scale, per_class):
        w.observe(show, names="value")
    show()
    box = widgets.VBox([widgets.HBox([scale, per_class]), out])
    display(box)
    return box
