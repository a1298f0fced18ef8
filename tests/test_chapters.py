"""nclib.chapters: reading the parameters cells and injecting new values (papermill's way)."""

from pathlib import Path

import pytest

from nclib.chapters import PARAMETERS_MARKER, chapter_parameters, copy_book, inject_parameters

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = '''# %% [markdown]
# text

# %% tags=["parameters"]
epochs = 3          # a comment
widths = {"mlp": 32}
seed = 0

# %%
print(epochs, seed)
'''


def test_reads_the_literal_defaults(tmp_path):
    p = tmp_path / "ch.py"
    p.write_text(CHAPTER)
    assert chapter_parameters(p) == {"epochs": 3, "widths": {"mlp": 32}, "seed": 0}


def test_injected_values_follow_the_parameters_cell(tmp_path):
    src = inject_parameters(CHAPTER, {"seed": 2})
    assert src.index('tags=["parameters"]') < src.index("seed = 2") < src.index("print(epochs")
    namespace = {}
    exec(compile(src, "ch.py", "exec"), namespace)
    assert namespace["seed"] == 2 and namespace["epochs"] == 3


def test_a_computed_default_or_a_missing_cell_is_refused(tmp_path):
    p = tmp_path / "ch.py"
    p.write_text(CHAPTER.replace("seed = 0", "seed = len('ab')"))
    with pytest.raises(ValueError, match="'seed' is not a literal"):
        chapter_parameters(p)
    with pytest.raises(ValueError, match="has no parameters cell"):
        inject_parameters("# %%\nx = 1\n", {"x": 2})


def test_every_chapter_has_a_seed_and_literal_parameters():
    chapters = sorted((ROOT / "book").glob("ch*.py"))
    assert chapters
    for ch in chapters:
        params = chapter_parameters(ch)
        assert "seed" in params, ch.name


def test_papermill_reads_every_parameter_of_every_chapter():
    """`make experiments` runs chapters under papermill, and `papermill --help-notebook` lists a
    chapter's parameters with papermill's own parser, which gives up on a line whose comment
    holds "=": every parameter our parser reads, papermill must read too."""
    import jupytext
    from papermill.translators import PythonTranslator

    for ch in sorted((ROOT / "book").glob("*.py")):
        if PARAMETERS_MARKER not in ch.read_text():
            continue
        cell = next(c for c in jupytext.read(ch).cells if "parameters" in c.metadata.get("tags", []))
        seen = {p.name for p in PythonTranslator.inspect(cell)}
        assert set(chapter_parameters(ch)) <= seen, (ch.name, set(chapter_parameters(ch)) - seen)


def test_book_copy_sets_the_seed_only_where_a_chapter_has_one(tmp_path):
    changed = copy_book(ROOT, tmp_path / "copy", {"seed": 7, "not_a_parameter": 1})
    with_seed = {p.name for p in (ROOT / "book").glob("*.py")
                 if PARAMETERS_MARKER in p.read_text() and "seed" in chapter_parameters(p)}
    assert {p.name for p in changed} == with_seed and len(with_seed) >= 8
    for p in changed:
        text = p.read_text()
        assert "seed = 7" in text and "not_a_parameter" not in text
    assert (tmp_path / "copy" / "_toc.yml").is_file()


def test_a_statement_other_than_name_equals_literal_is_refused(tmp_path):
    p = tmp_path / "ch.py"
    for line in ("a, b = 1, 2", "import math", "x: int = 3"):
        p.write_text(CHAPTER.replace("seed = 0", f"seed = 0\n{line}"))
        with pytest.raises(ValueError, match="`name = literal` lines only"):
            chapter_parameters(p)
