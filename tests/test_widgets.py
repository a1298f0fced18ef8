"""Every widget of the book reacts to its controls: moving a slider recomputes what it shows
(run headless; in Jupyter the same callbacks draw into the output area)."""

import json

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from nclib import widgets  # noqa: E402
from nclib.bounds import hoeffding_bound  # noqa: E402
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
    assert "d" in capsys.readouterr().out  # simplex_etf's error, shown instead of a plot


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
    assert widgets._as_html(fig).startswith('<img alt="precomputed frame" src="data:image/png;base64,')
    assert "d" in widgets.render_etf(6, 2, 0, 0.0)  # the error text, not a figure


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
