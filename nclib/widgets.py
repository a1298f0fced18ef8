"""Interactive controls for the chapters.

Each explorer has one pure ``render`` function from control values to what the reader sees (text
or a matplotlib figure). It is used twice: by the live ipywidgets controls in Jupyter, and at build
time over a grid of control values, whose results are embedded in the page with a few lines of
inline JavaScript that switch between them (:func:`static_explorer`). Both travel in one output,
so Jupyter shows the live widget and the HTML book, where no Python callback can run, shows the
precomputed one (the book's ``nb_mime_priority_overrides`` drops the widget view for HTML).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import os
import uuid

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from nclib.bounds import corollary_45, greedy_cover, hoeffding_bound
from nclib.etf import random_rotation, simplex_etf
from nclib.plots import FONT_SIZE, STYLE, WIDTH, draw_etf, figure, style_axes

__all__ = [
    "plane_rotation",
    "static_explorer",
    "etf_explorer",
    "margin_bound_explorer",
    "covering_explorer",
    "hoeffding_explorer",
]


def plane_rotation(d: int, angle: float) -> torch.Tensor:
    """The d×d rotation by ``angle`` (radians) in the plane of the first two coordinates."""
    R = torch.eye(d, dtype=torch.float64)
    if d >= 2:
        c, s = math.cos(angle), math.sin(angle)
        R[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return R


# --- the two ways of showing a render ------------------------------------------------------------

PAGE_DPI = 100  # CSS pixels per figure inch: nclib.plots sizes figures for the ~800 px column at 100 dpi
RASTER_DPI = 2 * PAGE_DPI  # raster parts of a frame (an imshow) at twice the page's pixels

# Text frames wrap to the frame's width instead of running past its right edge.
_TEXT_STYLE = "white-space:pre-wrap;overflow-wrap:anywhere"
# pydata-sphinx-theme paints every HTML cell output light in dark mode (html[data-theme=dark] ...
# .text_html: a light background, dark text), which suits HTML that hard-codes dark text; the
# explorer sets no colours of its own, so it follows the page instead (more specific selector).
# Its figures keep the light backing the theme gives every figure.
_THEME_CSS = ('html[data-theme="dark"] body .bd-content div.cell_output div.output.text_html'
              ':has(> .nclib-static-explorer){background:transparent;color:inherit;padding:0}')


def _as_html(result) -> str:
    """A render result as HTML: a figure becomes an inline SVG image shown at the page's resolution
    (``PAGE_DPI`` CSS pixels per figure inch, as the book's other figures; vector, so sharp at any
    device pixel ratio, with raster parts at ``RASTER_DPI``) and is closed; text becomes a <pre>
    that wraps to the frame's width."""
    if isinstance(result, plt.Figure):
        width = round(result.get_figwidth() * PAGE_DPI)
        buf = io.BytesIO()
        # text as SVG text (the browser's sans-serif if DejaVu Sans is missing): a third the size
        # of glyph outlines; a fixed hash salt and no date keep the build reproducible
        with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "nclib-explorer"}):
            result.savefig(buf, format="svg", dpi=RASTER_DPI, metadata={"Date": None})
        plt.close(result)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return (f'<img alt="precomputed frame" width="{width}" style="max-width:100%;height:auto" '
                f'src="data:image/svg+xml;base64,{data}"/>')
    return f'<pre class="nclib-frame-text" style="{_TEXT_STYLE}">{html.escape(str(result))}</pre>'


def _show_live(out: widgets.Output, result) -> None:
    with out:
        out.clear_output(wait=True)
        if isinstance(result, plt.Figure):
            display(result)
            plt.close(result)
        else:
            print(result)


_SWITCHER_JS = """(function () {
  var root = document.getElementById("%(uid)s");
  var data = JSON.parse(root.querySelector("script.nclib-data").textContent);
  var inputs = root.querySelectorAll("[data-control]");
  function show() {
    var key = [];
    inputs.forEach(function (el, i) {
      key.push(el.value);
      el.parentNode.querySelector(".nclib-value").textContent = data.labels[i][+el.value];
    });
    root.querySelector(".nclib-frame").innerHTML = data.frames[key.join("-")];
  }
  inputs.forEach(function (el) {
    el.addEventListener("input", show);
    el.addEventListener("change", show);
  });
  show();
})();"""


def static_explorer(render, controls, title: str = "") -> str:
    """HTML that lets a reader without a kernel move the controls of an explorer: ``render`` is
    called at build time on every combination of ``controls`` (a list of ``(name, values,
    default_index)``), and inline JavaScript shows the matching precomputed frame. Numeric values
    get a range slider, others a drop-down. Figures are shown as SVG at the page's resolution and
    text wraps to the frame; the explorer sets no colours, so it follows the page's light or dark
    theme. No script or style is loaded from anywhere."""
    uid = f"nclib-{uuid.uuid4().hex[:12]}"
    names = [c[0] for c in controls]
    values = [list(c[1]) for c in controls]
    if any(len(v) == 0 for v in values):
        raise ValueError(f"every control needs at least one value, got {dict(zip(names, values))}")
    frames = {}
    for idx in itertools.product(*(range(len(v)) for v in values)):
        frames["-".join(map(str, idx))] = _as_html(render(*(v[i] for v, i in zip(values, idx))))
    labels = [[_label(x) for x in v] for v in values]
    parts = [f'<div class="nclib-static-explorer" id="{uid}"><style>{_THEME_CSS}</style>']
    if title:
        parts.append(f"<p><strong>{html.escape(title)}</strong> (precomputed: move the controls)</p>")
    parts.append('<div class="nclib-controls">')
    for k, (name, vals, default) in enumerate(controls):
        default = int(default) % len(vals)
        if all(isinstance(x, (int, float)) for x in vals):
            ctl = (f'<input type="range" data-control="{k}" min="0" max="{len(vals) - 1}" step="1" '
                   f'value="{default}" aria-label="{html.escape(name)}"/>')
        else:
            opts = "".join(f'<option value="{i}"{" selected" if i == default else ""}>{html.escape(lab)}</option>'
                           for i, lab in enumerate(labels[k]))
            ctl = f'<select data-control="{k}" aria-label="{html.escape(name)}">{opts}</select>'
        # one control with its name and value stays on one line when a narrow screen wraps them
        parts.append(f'<label style="margin-right:1.5em;display:inline-block;white-space:nowrap">'
                     f'{html.escape(name)} {ctl} '
                     f'<span class="nclib-value"></span></label>')
    parts.append('</div><div class="nclib-frame"></div>')
    payload = json.dumps({"labels": labels, "frames": frames}).replace("</", "<\\/")
    parts.append(f'<script type="application/json" class="nclib-data">{payload}</script>')
    parts.append(f"<script>{_SWITCHER_JS % {'uid': uid}}</script></div>")
    return "".join(parts)


def _label(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


#: Set (to "1") by the book's build (book/_ext/parallel_build.py): an explorer then shows only its
#: precomputed HTML and creates no live widget. The HTML book cannot run a widget's callbacks
#: anyway, and live widgets make the executing kernel send comm and Output-widget messages that
#: nbclient intermittently stops waiting for (jupyter/nbclient#312: a cell that never returns; seen
#: here once, a build stuck until its 900-second cell timeout). ``make lab`` leaves it unset.
STATIC_ONLY_ENV = "NCLIB_STATIC_EXPLORERS"


def _static_only() -> bool:
    return os.environ.get(STATIC_ONLY_ENV, "") == "1"


def _publish(live, static_html: str | None):
    """One output carrying the live widget that ``live()`` builds (for Jupyter) and, if given,
    the precomputed HTML version (for the HTML book). Under :data:`STATIC_ONLY_ENV` with a
    precomputed version, only that is shown and no widget is created (returns None)."""
    if static_html is not None and _static_only():
        display({"text/html": static_html}, raw=True)
        return None
    box = live()
    bundle = box._repr_mimebundle_() or {}
    if static_html is not None:
        bundle["text/html"] = static_html
    display(bundle, raw=True)
    return box


def _live_explorer(rows, render) -> widgets.VBox:
    """The live widget of an explorer: ``rows`` of controls (a list of controls side by side, or
    one control) above an output area that shows ``render(*values)``, the values of every control
    in row order, redrawn whenever one of them changes."""
    controls = [c for row in rows for c in (row if isinstance(row, list) else [row])]
    out = widgets.Output()

    def draw(*_):
        _show_live(out, render(*(c.value for c in controls)))

    for c in controls:
        c.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox(row) if isinstance(row, list) else row for row in rows] + [out])


# --- Definition 3.1 / 4.7: the ETF explorer --------------------------------------------------------

def _etf_needs(C: int, d: int) -> str | None:
    """Why no simplex ETF of ``C`` classes fits in dimension ``d``, in words with what to pick
    instead; None when it fits (d ≥ C − 1)."""
    if d >= C - 1:
        return None
    return (f"No simplex ETF here: C = {C} classes need d ≥ C − 1 = {C - 1} dimensions, and d = {d}. "
            f"Pick d ≥ {C - 1}, or at most C = {d + 1} classes.")


def render_etf(C: int, d: int, seed: int, angle: float):
    """The simplex ETF R·M* (Definition 3.1) for a Haar rotation drawn from ``seed`` composed with a
    rotation by ``angle`` in the first coordinate plane (Definition 4.7), with its norms and
    cosines in the title; when d < C − 1 (no simplex ETF fits), a sentence saying so and what to
    pick instead (``_etf_needs``). The figure is ``WIDTH`` wide in the book's style."""
    reason = _etf_needs(C, d)
    if reason is not None:
        return reason
    from matplotlib.ticker import MaxNLocator

    M = simplex_etf(C, d, generator=0)
    R = plane_rotation(d, angle) @ random_rotation(d, seed)
    RM = R @ M
    gram = RM.T @ RM
    off = gram[~torch.eye(C, dtype=torch.bool)]
    with plt.rc_context(STYLE):  # text drawn from here on gets the book's sizes
        fig = plt.figure(figsize=(WIDTH, 4.2), constrained_layout=True)
        ax3, axg = fig.add_subplot(1, 2, 1, projection="3d"), fig.add_subplot(1, 2, 2)
        draw_etf(RM, (ax3, axg))
        for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
            axis.set_major_locator(MaxNLocator(3))  # three ticks an axis: labels that do not collide
        style_axes(ax3)
        axg.set_xticks(range(C))  # class indices: integers only
        axg.set_yticks(range(C))
        style_axes(axg, xlabel="class", ylabel="class")
        fig.suptitle(f"norms {RM.norm(dim=0).min():.6f}–{RM.norm(dim=0).max():.6f}; cosines "
                     f"{off.min():.6f}–{off.max():.6f} (−1/(C−1) = {-1 / (C - 1):.6f})")
    return fig


def etf_explorer(C: int = 4, d: int = 3, seed: int = 0, static: bool = True):
    """Sliders for C, d, a Haar-random rotation (its seed) and a rotation angle in the first
    coordinate plane; draws the simplex ETF R·M* (Definition 3.1, Definition 4.7) and its
    norms and cosines. d < C − 1, where no simplex ETF fits, says so in words and what to pick.
    ``static``: also embed the precomputed version (C = 3–5, d = 2, 3, 5, eight angles) for the
    HTML book."""
    static_html = None
    if static:
        angles = [round(k * math.pi / 4, 4) for k in range(8)]
        static_html = static_explorer(
            lambda c, dd, a: render_etf(c, dd, seed, a),
            [("C", [3, 4, 5], [3, 4, 5].index(C) if C in (3, 4, 5) else 1),
             ("d", [2, 3, 5], [2, 3, 5].index(d) if d in (2, 3, 5) else 1),
             ("angle", angles, 0)],
            title="ETF explorer",
        )

    def live():
        c_slider = widgets.IntSlider(value=C, min=2, max=10, description="C")
        d_slider = widgets.IntSlider(value=d, min=1, max=12, description="d")
        seed_box = widgets.IntSlider(value=seed, min=0, max=50, description="R seed")
        angle = widgets.FloatSlider(value=0.0, min=0.0, max=2 * math.pi, step=0.05, description="angle")
        return _live_explorer([[c_slider, d_slider], [seed_box, angle]], render_etf)

    return _publish(live, static_html)


# --- Remark 4.6: margins and N → the terms of Corollary 4.5 -------------------------------------------

def render_margin_bound(gamma, K, weight_norm, rms_feature_norm, scale, N) -> str:
    """Corollary 4.5's terms (A) and (B) for margins ``scale``·γ and N samples, with the
    linear-class Rademacher estimate R_{N/C} = B ρ̄ / √(N/C), or why they do not apply."""

    C = gamma.shape[0]
    R = weight_norm * rms_feature_norm / math.sqrt(N / C)
    try:
        t = corollary_45(R, scale * gamma, K, N)
    except ValueError as err:
        return f"margin × {scale:.3g}, N = {N}: not applicable: {err}"
    return (f"margin × {scale:.3g}, N = {N}\n"
            f"(A) = {t['A']:.4f}   (B) = {t['B']:.4f}   (A) + (B) = {t['A'] + t['B']:.4f}")


def margin_bound_explorer(gamma, K: float, weight_norm: float, rms_feature_norm: float, N: int,
                          static: bool = True):
    """Remark 4.6: sliders for a margin scale s (all γ_{y,y'} multiplied by s) and the training-set
    size N; shows Corollary 4.5's terms (A) and (B) with the linear-class Rademacher estimate
    R_{N/C} = B ρ̄ / √(N/C) (see nclib.bounds.margin_bound). ``gamma`` is a C×C margin matrix."""
    gamma = torch.as_tensor(gamma, dtype=torch.float64).nan_to_num(1.0)
    C = gamma.shape[0]
    static_html = None
    if static:
        scales = [float(s) for s in np.round(np.logspace(-1, 1, 21), 4)]
        sizes = sorted({max(10 * C, int(N * f)) for f in (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 100)})
        static_html = static_explorer(
            lambda s, n: render_margin_bound(gamma, K, weight_norm, rms_feature_norm, s, n),
            [("margin ×", scales, 10), ("N", sizes, sizes.index(N) if N in sizes else 0)],
            title="Remark 4.6: margins and N against the bound's terms",
        )

    def live():
        scale = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="margin ×")
        size = widgets.IntSlider(value=N, min=10 * C, max=100 * N, step=10 * C, description="N")
        return _live_explorer([[scale, size]],
                              lambda s, n: render_margin_bound(gamma, K, weight_norm, rms_feature_norm, s, n))

    return _publish(live, static_html)


# --- Figure 2 / Remark 4.9: covering a class support -----------------------------------------------------

def render_cover(supports, radii, y: int, multiplier: float, names):
    """The supports and the greedy ε-net of class y at ε = multiplier × min_{y'} radii[y, y']."""
    from matplotlib.collections import EllipseCollection

    C = len(supports)
    radii = torch.as_tensor(radii, dtype=torch.float64)
    eps = multiplier * radii[y][torch.arange(C) != y].min().item()
    pts = torch.as_tensor(supports[y], dtype=torch.float64)
    centres = greedy_cover(pts, eps)
    fig, ax = figure(height=4.6)  # the column's width, the book's font sizes
    for c, s in enumerate(supports):
        s = torch.as_tensor(s)
        # drawn through at most ~300 of its points (a smooth curve looks the same; the SVG frame
        # grows with every vertex), the ε-net above is computed on all of them
        s = torch.cat([s[:: max(1, len(s) // 300)], s[-1:]])
        ax.plot(s[:, 0], s[:, 1], lw=2 if c == y else 1, alpha=1 if c == y else 0.4, label=names[c])
    # the balls as one collection of a single circle path moved to each centre: in SVG one path
    # and a short reference per ball (separate patches wrote ~300 bytes of curves each; unclipped,
    # as clipping wraps every reference in its own group)
    ax.add_collection(EllipseCollection(2 * eps, 2 * eps, 0.0, units="xy", offsets=pts[centres].numpy(),
                                        offset_transform=ax.transData, facecolors="none",
                                        edgecolors="k", linewidths=0.6, clip_on=False))
    ax.set_aspect("equal")
    style_axes(ax, title=f"{names[y]}: N(ε = {eps:.3g}) = {len(centres)} balls")
    # beside the plot, where the square data area leaves room, rather than over the arms
    ax.legend(fontsize=FONT_SIZE, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    return fig


def covering_explorer(supports, radii_by_config: dict, class_names=None, static: bool = True,
                      static_configs: int = 2):
    """Figure 2 / Remark 4.9: pick a configuration (e.g. a permutation of the ETF), a class y and a
    radius multiplier; draws the class supports and the greedy ε-net covering M_y at radius
    ε = multiplier × min_{y'} γ̂_{y,y'}/L, with the covering number. The precomputed version
    covers the first ``static_configs`` configurations, every class and five multipliers (each
    frame is SVG: its size grows with the curves' vertices, so they are drawn through ~300 points
    each, and with the balls drawn)."""
    C = len(supports)
    names = class_names or [f"class {c}" for c in range(C)]
    static_html = None
    if static:
        keys = list(radii_by_config)[:static_configs]
        mults = [0.5, 1.0, 2.0, 4.0, 8.0]
        static_html = static_explorer(
            lambda k, name, m: render_cover(supports, radii_by_config[k], names.index(name), m, names),
            [("ETF", keys, 0), ("class", names, 0), ("ε ×", mults, 1)],
            title="Figure 2: balls that cover a class",
        )

    def live():
        config = widgets.Dropdown(options=list(radii_by_config), description="ETF")
        cls = widgets.Dropdown(options=[(n, c) for c, n in enumerate(names)], description="class")
        mult = widgets.FloatLogSlider(value=1.0, base=10, min=-0.5, max=1.0, step=0.05, description="ε ×")
        return _live_explorer([[config, cls], mult],
                              lambda k, c, m: render_cover(supports, radii_by_config[k], c, m, names))

    return _publish(live, static_html)


# --- Remark 4.11: feature scale and N → Theorem 4.10 --------------------------------------------

def render_hoeffding(g, r, d: int, scale: float, per_class: int) -> str:
    """Theorem 4.10's two H sums and the bound as printed for features scaled by ``scale``."""

    C = g.numel()
    b = hoeffding_bound(scale * g, scale * r, d, per_class * C, C)
    h1, h2 = sum(b.terms["H1"]), sum(b.terms["H2"])
    return (f"feature × {scale:.3g}, N/C = {per_class}: ρ_y = {', '.join(f'{v:.3g}' for v in (scale * r).tolist())}\n"
            f"Σ H(1, d, ρ_y, N/C) = {h1:.4g}   Σ H(γ̂_min − √(N/C), d, ρ_y, N/C) = {h2:.4g}\n"
            f"accuracy ≥ {b.value:.4g}" + ("   (vacuous: ≤ 0)" if b.vacuous else ""))


def hoeffding_explorer(gamma_hat_min, rho, d: int, N: int, static: bool = True):
    """Remark 4.11: sliders for a feature scale a (every feature multiplied by a, so ρ_y → aρ_y and
    γ̂ → aγ̂ while predictions do not change) and the number of samples per class; shows Theorem
    4.10's two H terms and the bound as printed (nclib.bounds.hoeffding_bound)."""
    g = torch.as_tensor(gamma_hat_min, dtype=torch.float64)
    r = torch.as_tensor(rho, dtype=torch.float64)
    C = g.numel()
    static_html = None
    if static:
        scales = [float(s) for s in np.round(np.logspace(-6, 1, 29), 8)]
        base = max(N // C, 1)
        sizes = sorted({max(1, int(base * f)) for f in (0.1, 0.3, 1, 3, 10, 30, 100)})
        static_html = static_explorer(
            lambda s, n: render_hoeffding(g, r, d, s, n),
            [("feature ×", scales, scales.index(1.0)), ("N/C", sizes, sizes.index(base))],
            title="Remark 4.11: feature scale and N against Theorem 4.10",
        )

    def live():
        scale = widgets.FloatLogSlider(value=1.0, base=10, min=-4, max=1, step=0.05, description="feature ×")
        per_class = widgets.IntSlider(value=N // C, min=1, max=100 * max(N // C, 10), step=1, description="N/C")
        return _live_explorer([[scale, per_class]], lambda a, n: render_hoeffding(g, r, d, a, n))

    return _publish(live, static_html)
