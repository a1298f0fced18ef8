"""Are the book's verdicts stable under the seed and the machine? Read them out of executed builds
and record them, one record per CPU model.

``make book-seeds`` builds the book again with every chapter's ``seed`` parameter set to 1 and to 2
(:mod:`nclib.chapters`). Every verdict a chapter computes is glued (MyST-NB) under
``verdict_<name>`` with its key number under ``key_<name>`` (:class:`nclib.verdicts.Verdict`), so the
build holds all of them: MyST-NB moves every glued value out of the executed notebook into a
``<page>.glue.json`` beside it in ``_build/jupyter_execute/``, and a notebook executed outside the
book (papermill) keeps them in its outputs; :func:`build_verdicts` reads either. :func:`record`
reads them from each build and
writes one JSON record per CPU model (``results/stability/<cpu model slug>.json``, since rounding
differs between CPU models and moves CPU-scale results as much as the seed does) with the
provenance of the machine and commit; the book's page on stability renders every record, and the
introduction's table says, per verdict, whether it came out the same at every seed on every
machine recorded (:func:`machine_agreement`). :func:`build_disagreements` compares the record of
the machine at hand with a build of it (a test, after the strict build)::

    python -m nclib.stability record --build 0=_build --build 1=_build/seed1/src/_build \\
        --build 2=_build/seed2/src/_build        # → results/stability/<cpu>.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

from pathlib import Path

from nclib.files import atomic_write_json
from nclib.records import cpu_model, cpu_slug, provenance, repo_root
from nclib.verdicts import SHORT

__all__ = ["glued_values", "glue_file_values", "build_verdicts", "record", "seed_rows", "record_folder",
           "record_path", "load_records", "verdict_row", "machine_agreement", "build_disagreements"]


def _plain(text) -> str:
    text = "".join(text) if isinstance(text, list) else str(text)
    return text[1:-1] if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0] else text


def glue_file_values(path) -> dict[str, str]:
    """``{name: text}`` from the ``<page>.glue.json`` that MyST-NB writes for each executed page
    (``{name: output}``, the output's ``data`` without its mime prefix)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: _plain(out["data"]["text/plain"]) for name, out in data.items()
            if "text/plain" in (out.get("data") or {})}


def glued_values(notebook) -> dict[str, str]:
    """``{name: text}`` of every value glued in an executed notebook (the ``text/plain`` of the
    outputs MyST-NB's ``glue`` marks with ``scrapbook`` metadata)."""
    out = {}
    for output in _outputs(notebook):
        meta = (output.get("metadata") or {}).get("scrapbook")
        if not meta:
            continue
        prefix = meta.get("mime_prefix", "")
        text = (output.get("data") or {}).get(prefix + "text/plain")
        if text is not None:
            out[meta["name"]] = _plain(text)
    return out


def _outputs(notebook):
    """Every output of every cell of an executed notebook (nbformat 4 JSON), in order: what the
    glued values and the printed commit are read from."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        yield from cell.get("outputs", [])


def build_verdicts(build_dir) -> dict[str, dict]:
    """``{chapter: {name: {"verdict": label, "key": key}}}`` from a Jupyter Book build folder
    (its ``jupyter_execute/`` holds the executed notebooks)."""
    root = Path(build_dir) / "jupyter_execute"
    if not root.is_dir():
        raise FileNotFoundError(f"{build_dir} holds no executed notebooks (no jupyter_execute/ folder): "
                                "build the book first (make book, or make book-seeds)")
    out = {}
    for nb in sorted(root.rglob("*.ipynb")):
        glue_file = nb.with_name(nb.stem + ".glue.json")
        values = glue_file_values(glue_file) if glue_file.is_file() else glued_values(nb)
        names = sorted(k[len("verdict_"):] for k in values if k.startswith("verdict_"))
        if names:
            out[nb.stem] = {n: {"verdict": values[f"verdict_{n}"], "key": values.get(f"key_{n}", "")} for n in names}
    return out


def seed_rows(per_seed: dict[str, dict]) -> list[dict]:
    """One row per verdict: its label at each seed and whether they all agree. A verdict still
    waiting for a sweep's runs ("incomplete: N runs … missing") agrees with itself whatever N: the
    builds of one record run minutes apart while the sweep commits runs."""
    names = sorted({(ch, n) for v in per_seed.values() for ch, d in v.items() for n in d})
    rows = []
    for ch, n in names:
        labels = {s: v.get(ch, {}).get(n, {}).get("verdict") for s, v in per_seed.items()}
        seen = [_waiting(x) for x in labels.values() if x is not None]
        rows.append({"chapter": ch, "name": n, "labels": labels,
                     "stable": len(seen) == len(labels) and len(set(seen)) == 1})
    return rows


def record_folder(root=None) -> Path:
    """Where the stability records live: ``results/stability/`` of the repository (or of ``root``)."""
    return Path(root or repo_root()) / "results" / "stability"


def record_path(cpu: str | None = None, root=None) -> Path:
    """The record of one CPU model (default: this machine's)."""
    return record_folder(root) / f"{cpu_slug(cpu)}.json"


def load_records(folder=None) -> dict[str, dict]:
    """``{cpu model: record}`` for every record in ``folder`` (default :func:`record_folder`), in
    the order of their names; records kept in an ``archive/`` subfolder are not read."""
    out = {}
    for path in sorted(Path(folder or record_folder()).glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        cpu = rec.get("provenance", {}).get("cpu_model") or path.stem
        out[cpu] = rec
    return out


def verdict_row(rec: dict, chapter: str, name: str) -> dict | None:
    """A record's summary row of one verdict (its label per seed), or None if it has none."""
    return next((r for r in rec.get("summary", []) if (r["chapter"], r["name"]) == (chapter, name)), None)


def machine_agreement(records: dict[str, dict], chapter: str, name: str) -> str:
    """The introduction's stability cell for one verdict over every machine's record: "same at
    seeds 0/1/2 on AMD EPYC" when every recorded label is one label; "differs: AMD EPYC holds /
    holds / violated; …" (short labels per seed, "—" where absent) when any differs; "not
    recorded" where no record holds the verdict (recorded before it existed)."""
    rows = {cpu: verdict_row(rec, chapter, name) for cpu, rec in records.items()}
    rows = {cpu: r for cpu, r in rows.items() if r is not None}
    if not rows:
        return "not recorded"
    labels = {_waiting(lab) for r in rows.values() for lab in r["labels"].values()}
    if all(r["stable"] for r in rows.values()) and len(labels) == 1:
        seeds = sorted({s for r in rows.values() for s in r["labels"]}, key=int)
        return f"same at seeds {'/'.join(seeds)} on {', '.join(rows)}"
    parts = []
    for cpu, r in rows.items():
        seeds = sorted(r["labels"], key=int)
        parts.append(f"{cpu} " + " / ".join(SHORT.get(r["labels"][s], r["labels"][s] or "—") for s in seeds))
    return "differs: " + "; ".join(parts)


def _waiting(label):
    return "incomplete" if isinstance(label, str) and label.startswith("incomplete") else label


def build_disagreements(rec: dict, build_dir, seed: str = "0") -> list[str]:
    """Where a record's label at ``seed`` differs from the label a build computed (the build of
    the same machine and seed): "chapter::name recorded R, built B" per verdict, either side
    missing included. Empty when the record describes the build. A verdict still waiting for
    recorded runs ("incomplete: N runs … missing") counts as one label whatever N, since N falls
    as a sweep's records are committed."""
    built = build_verdicts(build_dir)
    recorded = rec.get("verdicts", {}).get(seed, {})
    names = {(ch, n) for d in (built, recorded) for ch, v in d.items() for n in v}
    out = []
    for ch, n in sorted(names):
        a = recorded.get(ch, {}).get(n, {}).get("verdict")
        b = built.get(ch, {}).get(n, {}).get("verdict")
        if _waiting(a) != _waiting(b):
            out.append(f"{ch}::{n} recorded {a or 'nothing'}, built {b or 'nothing'}")
    return out


def _commit_of(folder) -> str | None:
    """The commit a build was made at, as its own "How this book was built" page printed it
    (``jupyter_execute/book/environment.ipynb``: the short hash of the checkout when that page
    ran); else the commit checked out where the build folder lives now, which may be later."""
    page = Path(folder) / "jupyter_execute" / "book" / "environment.ipynb"
    if page.is_file():
        try:
            outputs = list(_outputs(page))
        except (OSError, ValueError, AttributeError):
            outputs = []  # unreadable: fall back on the checkout's commit
        for out in outputs:
            text = out.get("text", "")
            found = re.search(r"^commit\s+([0-9a-f]{7,40})\s*$", "".join(text) if isinstance(text, list) else text,
                              flags=re.M)
            if found:
                return found[1]
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def record(builds: dict[str, str], out) -> dict:
    """Read the verdicts of each ``{seed: build folder}`` and write the record to ``out``."""

    per_seed = {str(s): build_verdicts(b) for s, b in builds.items()}
    rec = {"builds": {str(s): str(b) for s, b in builds.items()}, "verdicts": per_seed,
           "summary": seed_rows(per_seed), "provenance": {**provenance("cpu"), "cpu_model": cpu_model()},
           "build_commits": {str(s): _commit_of(b) for s, b in builds.items()}}
    atomic_write_json(out, rec)
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nclib.stability", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="read the verdicts of several builds and record them")
    r.add_argument("--build", action="append", required=True, metavar="SEED=FOLDER",
                   help="a build folder and the seed it was built with (repeatable)")
    r.add_argument("--out", default="", help="the record (default: results/stability/<this CPU model>.json)")
    args = p.parse_args(argv)
    builds = {}
    for item in args.build:
        seed, sep, folder = item.partition("=")
        if not sep or not seed.strip().isdigit():
            p.error(f"--build takes SEED=FOLDER with an integer seed, got {item!r}")
        if not Path(folder).is_dir():
            print(f"skipping seed {seed}: {folder} does not exist", file=sys.stderr)
            continue
        builds[seed.strip()] = folder
    if len(builds) < 2:
        p.error("need at least two existing builds to compare")
    out = args.out or record_path()
    rec = record(builds, out)
    unstable = [f"{r['chapter']}::{r['name']} {r['labels']}" for r in rec["summary"] if not r["stable"]]
    print(f"{out}: {len(rec['summary'])} verdicts at seeds {', '.join(builds)}; "
          f"{len(unstable)} differ between seeds" + ("".join(f"\n  {u}" for u in unstable)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
