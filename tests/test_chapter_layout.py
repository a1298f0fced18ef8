"""The chapters read as prose, figures and short calls: every code cell a reader sees unfolded is
at most 25 lines (the parameters cell excepted: it is the chapter's list of settings) and no line
is wider than the theme's code column (about 90 characters), so nothing scrolls sideways. Cells
that only plot or glue carry MyST-NB's ``hide-input`` tag and are folded, still one click away."""

from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "book").glob("*.py"))
MAX_LINES, MAX_WIDTH = 25, 90
FOLDED = {"hide-input", "remove-input", "remove-cell", "hide-cell"}


def shown_code_cells(path):
    for i, cell in enumerate(jupytext.read(path).cells):
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type == "code" and not tags & FOLDED:
            yield i, tags, cell.source.splitlines()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_shown_code_cells_are_short_and_narrow(page):
    problems = []
    for i, tags, lines in shown_code_cells(page):
        if "parameters" not in tags and len(lines) > MAX_LINES:
            problems.append(f"cell {i} ({lines[0][:40]!r}…) has {len(lines)} lines > {MAX_LINES}: "
                            "move its analysis into nclib, split it, or fold it if it only plots/glues")
        problems += [f"cell {i}: a {len(line)}-character line > {MAX_WIDTH}: {line[:60]!r}…"
                     for line in lines if len(line) > MAX_WIDTH]
    assert not problems, f"{page.name}:\n  " + "\n  ".join(problems)


def test_the_check_sees_cells_it_should_refuse(tmp_path):
    page = tmp_path / "ch.py"
    page.write_text("# %%\n" + "x = 1\n" * 26 + '\n# %% tags=["hide-input"]\n' + "y = 2\n" * 40)
    [(i, tags, lines)] = list(shown_code_cells(page))
    assert len(lines) == 26 and not tags


def test_theorem_boxes_carry_the_papers_numbers_not_their_own():
    """sphinx-proof numbers its boxes in order ("Theorem 2" for the paper's Theorem 4.4): every box
    is unnumbered, and a result of Gao et al. names its number in its title ("…, Gao et al. 4.4")."""
    import re

    problems = []
    for page in PAGES + sorted((ROOT / "book").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"```\{prf:(\w+)\}([^\n]*)\n((?:#? ?:\w+:[^\n]*\n)*)", text):
            kind, title, options = m[1], m[2], m[3]
            if kind == "proof":
                continue
            if ":nonumber:" not in options:
                problems.append(f"{page.name}: {kind} '{title.strip()}' is numbered by sphinx-proof")
            if "Gao et al" in title and not re.search(r"Gao et al\. \d+\.\d+$", title.strip()):
                problems.append(f"{page.name}: {kind} '{title.strip()}' does not end with the paper's number")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_folded_code_is_as_narrow_as_shown_code(page):
    """A folded cell opens into the same column (the browser test opens them all): its lines too
    stay within the column's characters."""
    wide = [(i, len(line), line[:50]) for i, cell in enumerate(jupytext.read(page).cells)
            if cell.cell_type == "code" for line in cell.source.splitlines() if len(line) > MAX_WIDTH]
    assert not wide, f"{page.name}: folded or shown code lines over {MAX_WIDTH} characters: {wide}"
