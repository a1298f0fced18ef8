"""The chapters' parameters cells: read them, and inject new values the way papermill does.

Every chapter is a jupytext percent-format file whose cell tagged ``parameters`` holds its CPU-scale
defaults as plain assignments. :func:`parameters_cell` reads them (literal values only, with
``ast``, so nothing is executed); :func:`inject_parameters` returns the source with a cell of new
assignments right after that cell, which is what papermill does to a notebook. The CLI builds a
copy of the book with new values, for the robustness check that no chapter depends on its seed::

    python -m nclib.chapters copy --out _build/seed1/src --set seed=1
    jupyter-book build _build/seed1/src -W -n --keep-going      # (make book-seeds does both)
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import sys
from pathlib import Path

__all__ = ["PARAMETERS_MARKER", "COPY_MARKER", "parameters_span", "parameters_cell", "inject_parameters",
           "copy_book"]

PARAMETERS_MARKER = '# %% tags=["parameters"]'


def parameters_span(source: str, name: str = "chapter") -> tuple[int, int]:
    """Character offsets ``(start, end)`` of the body of the parameters cell in ``source``."""
    if PARAMETERS_MARKER not in source:
        raise ValueError(f"{name} has no parameters cell (a line {PARAMETERS_MARKER!r})")
    start = source.index(PARAMETERS_MARKER) + len(PARAMETERS_MARKER)
    end = source.find("\n# %%", start)
    return start, (len(source) if end < 0 else end)


def parameters_cell(path) -> dict:
    """The defaults of a chapter's parameters cell: ``{name: value}`` for every assignment of a
    literal (numbers, strings, booleans, None, lists, tuples, dicts of those)."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    start, end = parameters_span(source, str(path))
    out = {}
    for node in ast.parse(source[start:end]).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            # papermill and the runner see only `name = literal` lines: anything else (a, b = 1, 2;
            # an import; a call) would be a parameter nobody can set, so it is refused
            raise ValueError(f"{path}: the parameters cell holds `name = literal` lines only, got "
                             f"{ast.unparse(node)!r} (line {node.lineno} of the cell): move it below")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ValueError(f"{path}: parameter {node.targets[0].id!r} is not a literal "
                             f"({ast.unparse(node.value)}); the parameters cell holds literals only") from exc
    return out


def inject_parameters(source: str, params: dict, name: str = "chapter") -> str:
    """``source`` with a cell assigning ``params`` right after its parameters cell (papermill's
    ``injected-parameters`` cell), so later cells see the new values."""
    _, end = parameters_span(source, name)
    cell = '\n# %% tags=["injected-parameters"]\n' + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    return source[:end] + cell + source[end:]


#: The file that marks a folder as a copy made by :func:`copy_book`, the only kind it replaces.
COPY_MARKER = ".nclib-book-copy"


def _check_copy_target(root: Path, out: Path) -> None:
    """Refuse an ``out`` that is not ours to replace: the checkout or a folder holding it, a folder
    inside the checkout other than under ``_build/``, a file, and any existing non-empty folder
    that no earlier copy made (no :data:`COPY_MARKER`)."""
    if not (root / "book").is_dir():
        raise ValueError(f"--root {root}: not a checkout of the book (no book/ folder)")
    if out == root or out in root.parents:
        raise ValueError(f"--out {out}: that folder holds the book itself; choose a new folder, e.g. _build/seed1/src")
    if out.is_relative_to(root) and not out.is_relative_to(root / "_build"):
        raise ValueError(f"--out {out}: inside the checkout only a folder under _build/ may be used "
                         "(e.g. _build/seed1/src), so that no source file is ever replaced")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file is there; choose a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / COPY_MARKER).is_file():
        raise ValueError(f"--out {out}: the folder exists and was not made by this command (no {COPY_MARKER}); "
                         "it is left alone: choose a new or empty folder")


def _known_parameters(root: Path) -> set:
    known = set()
    for chapter in sorted((root / "book").glob("*.py")):
        if PARAMETERS_MARKER in chapter.read_text(encoding="utf-8"):
            known |= set(parameters_cell(chapter))
    return known


def copy_book(root, out, params: dict, only_existing: bool = True) -> list[Path]:
    """Copy the book (``_config.yml``, ``_toc.yml``, ``book/``, ``_vendor/``) from ``root`` to ``out``
    with ``params`` injected into every chapter that has a parameters cell. With
    ``only_existing``, a chapter gets only the keys its parameters cell defines (``seed`` goes to
    the chapters that have a seed); a key that no chapter defines is an error. Returns the chapters
    that were changed.

    ``out`` is replaced only when it is new, empty, or an earlier copy (marked by
    :data:`COPY_MARKER`): nothing this function did not create is ever deleted."""
    root, out = Path(root).resolve(), Path(out).resolve()
    _check_copy_target(root, out)
    unknown = sorted(set(params) - _known_parameters(root)) if only_existing else []
    if unknown:
        raise ValueError(f"--set {', '.join(unknown)}: no chapter has such a parameter; known: "
                         f"{', '.join(sorted(_known_parameters(root)))}")
    if out.exists():
        shutil.rmtree(out)  # a copy this function made before (it carries the marker)
    out.mkdir(parents=True)
    (out / COPY_MARKER).write_text("made by nclib.chapters.copy_book; the next copy here replaces it\n")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, out / name)
    shutil.copytree(root / "book", out / "book", ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    if (root / "_vendor").is_dir():
        shutil.copytree(root / "_vendor", out / "_vendor")
    changed = []
    for chapter in sorted((out / "book").glob("*.py")):
        source = chapter.read_text(encoding="utf-8")
        if PARAMETERS_MARKER not in source:
            continue
        defaults = parameters_cell(chapter)
        mine = {k: v for k, v in params.items() if k in defaults or not only_existing}
        if mine:
            chapter.write_text(inject_parameters(source, mine, chapter.name), encoding="utf-8")
            changed.append(chapter)
    return changed


def _parse_setting(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes name=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nclib.chapters", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cp = sub.add_parser("copy", help="copy the book with parameters injected into its chapters")
    cp.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    cp.add_argument("--out", required=True)
    cp.add_argument("--set", action="append", type=_parse_setting, default=[], dest="settings",
                    help="name=JSON value, injected where the chapter defines that parameter (repeatable)")
    args = parser.parse_args(argv)
    if not args.settings:
        parser.error("give at least one --set name=value")
    try:
        changed = copy_book(args.root, args.out, dict(args.settings))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {', '.join(dict(args.settings))} set in {len(changed)} chapters: "
          + ", ".join(p.name for p in changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
