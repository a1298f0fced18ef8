"""Every widget of the book reacts to its controls: moving a slider recomputes what it shows
(run headless; in Jupyter the same callbacks draw into the output area)."""

import base64
import json
import re
import struct

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from nclib import widgets  # noqa: E402
from nclib.bounds import hoeffding_bound  # noqa: E402
from nclib.etf import simplex_etf  # noqa: E402
from nclib.plots import FONT_SIZE, WIDTH  # noqa: E402
from nclib.synthetic import spiral_arm  # noqa: E402


def controls(box):
    """All value widgets inside a VBox/HBox tree, in display order."""
    found = []
    for child in box.children:
        if hasattr(child, "children"):
            found += controls(child)
        elif hasattr(child, "value"):
            found.append(child)
    return found


def test_plane_rotation_is_a_rotation():
    R = widgets.plane_rotation(4, 0.3)
    assert torch.allclose(R @ R.T, torch.eye(4, dtype=torch.float64))
    assert torch.det(R).item() == pytest.approx(1.0)


def test_etf_explorer_prints_etf_cosines_and_reports_small_d(capsys):
    box = widgets.etf_explorer(C=4, d=3, static=False)
    c, d, seed, angle = controls(box)
    angle.value = 1.0
    assert "Figure" in capsys.readouterr().out
    c.value, d.value = 6, 2
    shown = capsys.readouterr().out
    assert "Pick d ≥ 5, or at most C = 3 classes" in shown  # what to pick, in words
    assert raw_etf_error(6, 2) not in shown and "Error" not in shown  # not simplex_etf's message


def test_margin_bound_explorer_terms_fall_as_margins_grow(capsys):
    gamma = torch.full((3, 3), 1.0, dtype=torch.float64)
    box = widgets.margin_bound_explorer(gamma, K=2.0, weight_norm=1.0, rms_feature_norm=1.0, N=300, static=False)
    scale, size = controls(box)

    def total():
        line = [s for s in capsys.readouterr().out.splitlines() if "(A) =" in s][-1]
        return float(line.split("=")[-1])

    before = total()
    scale.value = 1.5
    assert total() < before
    scale.value = 10.0  # 4K/γ ≤ 2: the widget says why instead of failing
    assert "not applicable" in capsys.readouterr().out


def test_covering_explorer_draws_more_balls_for_a_smaller_radius(monkeypatch):
    supports = [spiral_arm(c, 3, torch.linspace(0, 1, 500, dtype=torch.float64)) for c in range(3)]
    radii = {"id": torch.full((3, 3), 0.2, dtype=torch.float64)}
    titles = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, *a, **k: titles.append(t))
    box = widgets.covering_explorer(supports, radii, static=False)
    config, cls, mult = controls(box)
    mult.value = 0.5
    counts = [int(t.rsplit("=", 1)[1].split()[0]) for t in titles]  # "...: N(ε = r) = k balls"
    assert counts[-1] > counts[0]


def test_hoeffding_explorer_matches_the_bound_and_moves_with_scale(capsys):
    g, rho = torch.tensor([0.5, 0.4, 0.6]), torch.tensor([2.0, 2.0, 2.0])
    box = widgets.hoeffding_explorer(g, rho, d=4, N=300, static=False)
    scale, per_class = controls(box)

    def shown():
        line = [s for s in capsys.readouterr().out.splitlines() if "accuracy ≥" in s][-1]
        return float(line.split("≥")[1].split()[0])

    assert shown() == pytest.approx(hoeffding_bound(g, rho, 4, 300, 3).value, rel=1e-3)
    scale.value = 1e-3
    assert shown() == pytest.approx(1.0, abs=1e-3)


def frames_of(page):
    """The precomputed frames embedded in a static explorer's HTML."""
    payload = page.split('<script type="application/json" class="nclib-data">', 1)[1].split("</script>", 1)[0]
    return json.loads(payload.replace("<\\/", "</"))


def test_static_explorer_embeds_every_combination_and_nothing_external():
    calls = []

    def render(a, b):
        calls.append((a, b))
        return f"a={a} b={b}"

    page = widgets.static_explorer(render, [("a", [1, 2, 3], 0), ("b", ["x", "y"], 1)], title="t")
    data = frames_of(page)
    assert len(calls) == 6 and sorted(data["frames"]) == ["0-0", "0-1", "1-0", "1-1", "2-0", "2-1"]
    assert "a=3 b=y" in data["frames"]["2-1"] and data["labels"] == [["1", "2", "3"], ["x", "y"]]
    assert 'type="range"' in page and "<select" in page and "http" not in page
    with pytest.raises(ValueError, match="at least one value"):
        widgets.static_explorer(render, [("a", [], 0)])


def test_static_etf_frame_shows_the_etf_cosine_and_figures_become_images():
    fig = widgets.render_etf(4, 3, 0, 0.5)
    assert "−1/(C−1) = -0.333333" in fig._suptitle.get_text()
    assert widgets._as_html(fig).startswith('<img alt="precomputed frame" ')
    assert "Pick d ≥ 5" in widgets.render_etf(6, 2, 0, 0.0)  # words, not a figure


def raw_etf_error(C, d):
    """The message simplex_etf raises for d < C − 1, which no explorer may show."""
    with pytest.raises(ValueError) as err:
        simplex_etf(C, d)
    return str(err.value)


def test_no_static_etf_state_shows_a_raw_error_and_impossible_ones_say_what_to_pick(monkeypatch):
    figures = []

    def as_html(result, real=widgets._as_html):  # figures stubbed: only the text frames matter here
        if isinstance(result, matplotlib.figure.Figure):
            figures.append(result)
            matplotlib.pyplot.close(result)
            return "<figure>"
        return real(result)

    monkeypatch.setattr(widgets, "_as_html", as_html)
    monkeypatch.setattr(widgets, "draw_etf", lambda M, axes: None)
    shown = []
    monkeypatch.setattr(widgets, "display", lambda obj, raw=False: shown.append(obj))
    widgets.etf_explorer(C=4, d=3)
    data = frames_of(shown[-1]["text/html"])
    Cs, ds, angles = data["labels"]
    impossible = {}
    for key, frame in data["frames"].items():
        i, j, _ = map(int, key.split("-"))
        c, d = int(Cs[i]), int(ds[j])
        assert "Error" not in frame and "Traceback" not in frame
        if d < c - 1:
            assert raw_etf_error(c, d) not in frame and "ufm_structure" not in frame
            assert f"C = {c} classes need d ≥ C − 1 = {c - 1} dimensions" in frame
            assert f"Pick d ≥ {c - 1}, or at most C = {d + 1} classes." in frame
            assert "pre-wrap" in frame  # wrapped to the frame's width, not cut at its edge
            impossible[key] = frame
        else:
            assert frame == "<figure>"
    assert len(impossible) == 3 * len(angles) == 24 and len(figures) == 72 - 24


def embedded_png_width(uri):
    png = base64.b64decode(uri.split(",", 1)[1])
    assert png.startswith(b"\x89PNG")
    return struct.unpack(">I", png[16:20])[0]  # IHDR width


def test_etf_frame_is_drawn_at_the_page_resolution_with_readable_text():
    page = widgets._as_html(widgets.render_etf(5, 5, 0, 0.5))
    css_width = int(re.search(r' width="(\d+)"', page).group(1))
    assert css_width == round(WIDTH * widgets.PAGE_DPI) == 800  # the column's width at 100 dpi
    assert "max-width:100%" in page
    svg = base64.b64decode(page.split("data:image/svg+xml;base64,", 1)[1].split('"', 1)[0]).decode()
    width_pt = float(re.search(r'<svg[^>]* width="([\d.]+)pt"', svg).group(1))
    assert width_pt == WIDTH * 72
    px_per_pt = css_width / width_pt  # CSS pixels per SVG unit (a point) as the page shows it
    images = re.findall(r'<image xlink:href="(data:image/png;base64,[^"]*)"[^>]*? width="([\d.]+)"',
                        svg, re.S)
    assert images  # the Gram matrix and the colour bar are the raster parts; the rest is vector
    for uri, width in images:  # at least two device pixels per CSS pixel
        assert embedded_png_width(uri) >= 2 * float(width) * px_per_pt - 1
    sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", svg)]
    assert sizes and min(sizes) >= FONT_SIZE  # suptitle included (it was 9 pt)
    assert len(page) < 60_000  # one frame; the explorer embeds 48 of them


@pytest.mark.parametrize("C", [3, 5])
def test_etf_gram_ticks_are_class_indices(C):
    fig = widgets.render_etf(C, C, 0, 0.0)
    gram = fig.axes[1]
    assert list(gram.get_xticks()) == list(range(C)) == list(gram.get_yticks())
    assert all(t.get_fontsize() >= FONT_SIZE for t in gram.get_xticklabels() + gram.get_yticklabels())
    matplotlib.pyplot.close(fig)


def test_covering_frame_spans_the_column_with_a_readable_legend():
    supports = [spiral_arm(c, 3, torch.linspace(0, 1, 100, dtype=torch.float64)) for c in range(3)]
    radii = torch.full((3, 3), 0.2, dtype=torch.float64)
    fig = widgets.render_cover(supports, radii, 1, 1.0, ["a", "b", "c"])
    assert fig.get_figwidth() == WIDTH
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c"]
    assert all(t.get_fontsize() >= FONT_SIZE for t in legend.get_texts())
    assert fig.axes[0].title.get_fontsize() >= FONT_SIZE
    matplotlib.pyplot.close(fig)


def test_static_explorer_sets_no_colours_and_follows_a_dark_page():
    page = widgets.static_explorer(lambda a: f"a={a}", [("a", [1, 2], 0)], title="t")
    declarations = re.findall(r"(?:^|[;{\s\"])((?:background(?:-color)?|color)\s*:\s*[^;}\"]+)", page)
    assert declarations and all(v.split(":")[1].strip() in ("inherit", "transparent") for v in declarations)
    # pydata-sphinx-theme paints HTML outputs light in dark mode; the explorer's own rule undoes it
    rule = re.search(r"<style>(.*?)</style>", page).group(1)
    assert rule.startswith('html[data-theme="dark"]') and ".nclib-static-explorer" in rule


def test_hoeffding_explorer_publishes_live_and_precomputed_views_in_one_output(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets, "display", lambda obj, raw=False: shown.append((obj, raw)))
    g, rho = torch.tensor([0.5, 0.4, 0.6]), torch.tensor([2.0, 2.0, 2.0])
    widgets.hoeffding_explorer(g, rho, d=4, N=300, static=True)
    bundle, raw = shown[-1]
    assert raw and "application/vnd.jupyter.widget-view+json" in bundle  # Jupyter: the live widget
    data = frames_of(bundle["text/html"])  # the HTML book: precomputed frames
    assert len(set(data["frames"].values())) == len(data["frames"]) == 29 * 7
    assert data["frames"]["24-2"].count("accuracy ≥") == 1  # feature × 1, N/C = 100


def test_the_book_build_shows_only_the_precomputed_explorer_and_creates_no_widget(monkeypatch):
    """Under NCLIB_STATIC_EXPLORERS=1 (set by the book's build) an explorer publishes only its
    precomputed HTML: no widget is created, so the kernel sends no comm message; without it (the
    lab) the same call builds the live widget beside it."""
    import ipywidgets

    shown = []
    monkeypatch.setattr(widgets, "display", lambda obj, raw=False: shown.append((obj, raw)))
    g, rho = torch.tensor([0.5, 0.4, 0.6]), torch.tensor([2.0, 2.0, 2.0])
    monkeypatch.setenv(widgets.STATIC_ONLY_ENV, "1")
    before = len(ipywidgets.Widget.widgets)
    assert widgets.hoeffding_explorer(g, rho, d=4, N=300) is None
    assert len(ipywidgets.Widget.widgets) == before  # no widget made
    (bundle, raw), = shown
    assert raw and set(bundle) == {"text/html"} and frames_of(bundle["text/html"])["frames"]
    # without a precomputed version there is nothing static to show: the live widget it is
    assert widgets.hoeffding_explorer(g, rho, d=4, N=300, static=False) is not None
    monkeypatch.delenv(widgets.STATIC_ONLY_ENV)
    box = widgets.hoeffding_explorer(g, rho, d=4, N=300)
    assert box is not None and "application/vnd.jupyter.widget-view+json" in shown[-1][0]
