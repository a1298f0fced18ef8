"""nclib as a library: a license, declared dependencies, and a core that imports nothing else.

The check of the core's imports runs each core module in a fresh interpreter whose import system
refuses every top-level package that is neither the standard library nor a declared dependency
(pyproject.toml's ``dependencies``, with their own dependencies), so an undeclared import fails here,
not on a user's machine (a package the declared ones import only optionally, as torch does pydot,
is refused the same way and they carry on without it). The wheel is built as ``pip install .`` builds it, and must hold the
modules and the license."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ["accumulate", "bounds", "collapse", "etf", "metrics", "models", "schedule", "stats", "synthetic", "train",
        "ufm", "sweep", "data", "datasets", "verdicts", "tracking", "tables", "history", "files"]
# top-level modules that the declared packages import themselves (torch's and scipy's own
# dependencies), found by pip, so they are present wherever the declared ones are
TRANSITIVE = {"typing_extensions", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock", "fsspec",
              "triton", "nvidia", "setuptools", "pkg_resources", "_distutils_hack", "colorama", "opt_einsum",
              "optree", "functorch", "torchgen", "mkl", "packaging", "importlib_metadata"}

GUARD = """
import importlib, importlib.abc, importlib.util, sys
allowed = set({allowed!r}) | set(sys.stdlib_module_names) | {{"nclib"}}
def undeclared(name):
    top = name.split(".")[0]
    return top not in allowed and not top.startswith("_")
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if undeclared(name):
            # as if it were not installed: packages that import it optionally carry on without it
            raise ModuleNotFoundError(f"undeclared dependency {{name!r}} (not installed with nclib's core)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
# a probe for an optional package (importlib.util.find_spec) answers None, as in a clean environment
probe = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if undeclared(name) else probe(name, package)
for module in {modules!r}:
    importlib.import_module("nclib." + module)
"""


def _declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip() for d in meta["dependencies"]}
    return names, meta


def test_the_package_declares_a_license_and_its_core_dependencies():
    names, meta = _declared()
    assert (ROOT / "LICENSE").is_file() and "MIT" in (ROOT / "LICENSE").read_text()
    assert meta["license"] == {"text": "MIT"}
    assert {"torch", "numpy", "scipy", "tqdm"} <= names
    for extra in ("plots", "data", "experiments", "book", "test", "lab"):
        assert meta["optional-dependencies"][extra], extra


def test_the_core_imports_only_declared_packages():
    names, _ = _declared()
    code = GUARD.format(allowed=sorted(names | TRANSITIVE), modules=CORE)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_wheel_holds_every_module_and_the_license(tmp_path):
    import shutil

    src = tmp_path / "src"  # setuptools builds in the source folder: a copy, so the checkout stays clean
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "nclib", src / "nclib", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("nclib-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nclib").rglob("*.py")}
    assert shipped - set(names) == set(), "modules missing from the wheel"  # subpackages included
    assert any(n.endswith("LICENSE") for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Dist: torch>=2.1" in text and "Provides-Extra: book" in text


def test_the_own_model_page_runs_with_the_core_dependencies_only():
    """book/own_model.py's code (its glue calls made no-ops, two epochs instead of fifty) in a
    process where every package nclib's core does not declare is refused."""
    import re

    import jupytext

    from nclib.datasets import DatasetNotFoundError, fashion_mnist

    try:
        fashion_mnist(download=False)
    except DatasetNotFoundError as err:
        pytest.skip(f"Fashion-MNIST not available: {err}")
    cells = jupytext.read(ROOT / "book" / "own_model.py").cells
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "from myst_nb import glue" in code and re.search(r"epochs=\d+", code)
    code = code.replace("from myst_nb import glue", "glue = lambda *args, **kwargs: None")
    code = re.sub(r"epochs=\d+", "epochs=2", code)
    names, _ = _declared()
    script = GUARD.format(allowed=sorted(names | TRANSITIVE), modules=["tracking"]) + code
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT / "book",
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Theorem 4.4 (error ≲)" in proc.stdout and "Theorem 4.10 (accuracy ≥)" in proc.stdout


def test_gluing_a_value_builds_no_iri_grammar():
    """Every chapter kernel imports myst_nb's glue, hence nbformat and jsonschema; jsonschema 4.25+
    imports rfc3987-syntax, which builds ~38 lark parsers (1.7-2 s a process) for IRI formats no
    notebook schema uses. requirements.txt pins the release before that; this guards the pin."""
    code = ("import sys; from myst_nb import glue; import nbformat, papermill, jupytext; "
            "print(sorted(m for m in ('rfc3987_syntax', 'lark') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", f"imported: {out.stdout.strip()} (see jsonschema in requirements.txt)"
