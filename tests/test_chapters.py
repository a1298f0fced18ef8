"""nclib.chapters: reading the parameters cells and injecting new values (papermill's way)."""

from pathlib import Path

import pytest

from nclib.chapters import PARAMETERS_MARKER, parameters_cell, copy_book, inject_parameters

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
    assert parameters_cell(p) == {"epochs": 3, "widths": {"mlp": 32}, "seed": 0}


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
        parameters_cell(p)
    with pytest.raises(ValueError, match="has no parameters cell"):
        inject_parameters("# %%\nx = 1\n", {"x": 2})


def test_every_chapter_has_a_seed_and_literal_parameters():
    chapters = sorted((ROOT / "book").glob("ch*.py"))
    assert chapters
    for ch in chapters:
        params = parameters_cell(ch)
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
        assert set(parameters_cell(ch)) <= seen, (ch.name, set(parameters_cell(ch)) - seen)


def test_book_copy_sets_the_seed_only_where_a_chapter_has_one(tmp_path):
    changed = copy_book(ROOT, tmp_path / "copy", {"seed": 7, "epochs": 3})
    with_seed = {p.name for p in (ROOT / "book").glob("*.py")
                 if PARAMETERS_MARKER in p.read_text() and "seed" in parameters_cell(p)}
    assert {p.name for p in changed} == with_seed and len(with_seed) >= 8
    for p in changed:
        text = p.read_text()
        assert "seed = 7" in text
        assert ("epochs = 3" in text) == ("epochs" in parameters_cell(ROOT / "book" / p.name))
    assert (tmp_path / "copy" / "_toc.yml").is_file()
    with pytest.raises(ValueError, match="no chapter has such a parameter"):
        copy_book(ROOT, tmp_path / "copy2", {"seed": 1, "not_a_parameter": 1})
    assert not (tmp_path / "copy2").exists()


def _checkout(tmp_path):
    """A small checkout: the config files, book/ with one chapter, and files that must survive."""
    root = tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    (root / "nclib").mkdir()
    (root / ".git").mkdir()
    for name in ("_config.yml", "_toc.yml"):
        (root / name).write_text("x: 1\n")
    (root / "book" / "ch.py").write_text(CHAPTER)
    (root / "nclib" / "keep.py").write_text("# mine\n")
    (root / ".git" / "HEAD").write_text("ref\n")
    return root


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("target", [".", "book", "nclib", "nclib/sub", ".git", "..", "_config.yml"])
def test_book_copy_never_deletes_what_it_did_not_create(tmp_path, target):
    """Probes of the copy's target: the checkout, a folder holding it, a source folder inside it,
    a file. Each is refused with a message naming --out, and nothing is touched."""
    root = _checkout(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="--out"):
        copy_book(root, root / target, {"seed": 1})
    assert _files(tmp_path) == before


def test_book_copy_replaces_only_its_own_earlier_copy(tmp_path):
    root = _checkout(tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me\n")
    with pytest.raises(ValueError, match="not made by this command"):
        copy_book(root, foreign, {"seed": 1})
    assert (foreign / "notes.txt").read_text() == "keep me\n"
    out = root / "_build" / "seed1" / "src"
    copy_book(root, out, {"seed": 1})
    (out / "stale.txt").write_text("from the last copy\n")
    copy_book(root, out, {"seed": 2})  # an earlier copy (marked): replaced
    assert not (out / "stale.txt").exists() and "seed = 2" in (out / "book" / "ch.py").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    copy_book(root, empty, {"seed": 3})  # an empty folder is fine


def test_the_copy_cli_exits_2_with_one_line_and_touches_nothing(tmp_path, capsys):
    from nclib.chapters import main

    root = _checkout(tmp_path)
    before = _files(tmp_path)
    assert main(["copy", "--root", str(root), "--out", str(root), "--set", "seed=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and len(err.strip().splitlines()) == 1
    assert _files(tmp_path) == before


def test_a_statement_other_than_name_equals_literal_is_refused(tmp_path):
    p = tmp_path / "ch.py"
    for line in ("a, b = 1, 2", "import math", "x: int = 3"):
        p.write_text(CHAPTER.replace("seed = 0", f"seed = 0\n{line}"))
        with pytest.raises(ValueError, match="`name = literal` lines only"):
            parameters_cell(p)
