"""nclib's layering, as ARCHITECTURE.md states it: its module table gives every module a layer; a
module imports only modules of its own layer or of layers below it, never a private name
(``_name``) of another module (the validation module ``nclib._checks`` is the one private module
that everyone imports, by its public names), and every module is in the table and in the README's."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("foundation", "maths", "training", "runs", "analysis", "figures")


def _table(path: Path) -> dict[str, str]:
    """``{module: layer}`` from the rows ``| `nclib/x.py` | layer | role |`` of a Markdown table."""
    rows = re.findall(r"^\|\s*`(nclib/[\w/]+\.py)`\s*\|\s*(\w+)\s*\|", path.read_text(encoding="utf-8"), re.M)
    return {p[:-3].replace("/", ".").removesuffix(".__init__"): layer for p, layer in rows}


def _modules() -> list[str]:
    return sorted(p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                  for p in (ROOT / "nclib").rglob("*.py"))


def _source(module: str) -> str:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    return path.read_text(encoding="utf-8")


def _imports(source: str):
    """(imported module, names, line) for every nclib import in a module's source, at any depth."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nclib"):
            names = [a.name for a in node.names]
            if node.module == "nclib":  # `from nclib import report`: the submodules themselves
                for n in names:
                    yield f"nclib.{n}", [], node.lineno
            else:
                yield node.module, names, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("nclib."):
                    yield a.name, [], node.lineno


def _problems(module: str, layer: str, source: str) -> list[str]:
    """What breaks the layering in ``module`` (of ``layer``), given its source."""
    mine, out = LAYERS.index(layer), []
    for target, names, line in _imports(source):
        owner = target if target in LAYER_OF else target.rsplit(".", 1)[0]
        if owner not in LAYER_OF:
            out.append(f"{module}:{line} imports {target}, which the table does not list")
            continue
        theirs = LAYERS.index(LAYER_OF[owner])
        if theirs > mine:
            out.append(f"{module} ({layer}) imports {target} ({LAYERS[theirs]}) at line {line}: a layer may "
                       "import only its own and the layers below")
        private = [n for n in names if n.startswith("_")]
        if private:
            out.append(f"{module}:{line} imports private name(s) {private} of {target}")
    return out


LAYER_OF = _table(ROOT / "ARCHITECTURE.md")


def test_every_module_has_a_layer_in_the_architecture_document_and_a_row_in_the_readme():
    modules = set(_modules())
    assert set(LAYER_OF) == modules, (f"missing from ARCHITECTURE.md: {sorted(modules - set(LAYER_OF))}; "
                                      f"no longer exist: {sorted(set(LAYER_OF) - modules)}")
    assert set(LAYER_OF.values()) <= set(LAYERS)
    readme = set(_table(ROOT / "README.md"))
    assert modules <= readme, f"missing from the README's module table: {sorted(modules - readme)}"


@pytest.mark.parametrize("module", _modules())
def test_no_module_imports_a_layer_above_it_or_a_private_name(module):
    if (ROOT / module.replace(".", "/") / "__init__.py").is_file():
        return  # a package's __init__ re-exports its own modules, whatever their layer
    assert _problems(module, LAYER_OF[module], _source(module)) == []


def test_the_layering_check_catches_an_upward_and_a_private_import():
    # the control: a module of the maths layer that breaks each rule once
    source = "from nclib.report import ALPHA\n\ndef f():\n    from nclib.metrics import _inputs\n"
    problems = _problems("nclib.probe", "maths", source)
    assert len(problems) == 2
    assert "imports nclib.report (analysis)" in problems[0] and "private name(s) ['_inputs']" in problems[1]
    assert _problems("nclib.probe", "analysis", "from nclib.report import ALPHA\n") == []


def test_the_api_reference_documents_every_public_module_from_its_docstrings():
    api = (ROOT / "book" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodule:: ([\w.]+)$", api, re.M))
    public = {m for m in _modules() if not any(part.startswith("_") for part in m.split(".")) and m != "nclib"}
    assert documented == public, (f"undocumented: {sorted(public - documented)}; "
                                  f"not modules: {sorted(documented - public)}")
    assert "- file: book/api" in (ROOT / "_toc.yml").read_text(encoding="utf-8")
