# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Do the verdicts depend on the seed or the machine?
#
# Every chapter that trains draws its data subsets, initializations and data order from one
# `seed` parameter, and the book build runs each at seed 0. A verdict that holds at seed 0 only is a
# lucky run, not a finding. Nor is one that holds on one CPU model only: floating-point rounding
# differs between CPU models, and a training run lands in a slightly different place on another
# machine. `make book-seeds` therefore rebuilds the whole book with every chapter's `seed` set to 1
# and then to 2 (the value is injected after the parameters cell, as papermill does) and records
# every verdict of the three builds, in one record per CPU model (`results/stability/<cpu>.json`).
# This page renders the records: they are read, not recomputed in this build, so each shows the
# commit and the machine it was made on. A test run after each strict build checks that the record
# of the machine at hand still describes the build (its seed-0 labels are the page's). A verdict
# whose label differs between seeds or machines is a finding about the claim at these sizes,
# stated in its chapter, not a failure of the build.

# %% tags=["parameters"]
record_dir = ""            # "" for the repository's results/stability/
seed = 0                   # unused: this page trains nothing (every page has a seed)

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import display
from myst_nb import glue

from nclib.stability import load_records, machine_agreement, record_folder, verdict_row
from nclib.tables import Table
from nclib.verdicts import BOOK_VERDICTS, SHORT

folder = Path(record_dir) if record_dir else record_folder()
records = load_records(folder)
# the introduction's stability column (glued below), one cell per verdict
cells = {(ch, n): machine_agreement(records, ch, n) for ch, n in BOOK_VERDICTS}


def label_at(cpu, s, chapter, name):
    """A record's short label for one verdict at one seed ("—" where absent)."""
    row = verdict_row(records[cpu], chapter, name)
    label = row["labels"].get(s) if row else None
    return SHORT.get(label, label or "—")


if not records:
    print(f"No stability record in {folder}: run `make book` (seed 0), "
          "then `make book-seeds`.")
    glue("stability_summary", "not recorded yet (run make book-seeds)", display=False)
else:
    columns = [(cpu, s) for cpu, rec in records.items()
               for s in sorted(rec["builds"], key=int)]
    rows = [[f"{chapter.split('_')[0]} {name}"]
            + [label_at(cpu, s, chapter, name) for cpu, s in columns]
            for chapter, name in BOOK_VERDICTS]
    caption = "Each verdict's label at every seed on every CPU model recorded"
    header = ["verdict"] + [f"{cpu}, seed {s}" for cpu, s in columns]
    display(Table(header, rows, caption))
    same = sum(cell.startswith("same") for cell in cells.values())
    summary = (f"{same} of {len(BOOK_VERDICTS)} verdicts identical at every seed on "
               f"{', '.join(records)}")
    glue("stability_summary", summary, display=False)
    for cpu, rec in records.items():
        prov = rec["provenance"]
        commits = {str(c)[:10] for c in rec.get("build_commits", {}).values() if c}
        built = ", ".join(sorted(commits)) or str(prov.get("git_commit"))[:10]
        print(f"{cpu}: built at commit {built}, torch {prov.get('torch')}, "
              f"recorded {prov.get('time_utc', '')}")
archived = sorted(p.name for p in (folder / "archive").glob("*.json")) if folder else []
# superseded records: kept as evidence, not compared (archive/README.md says why)
if archived:
    print("superseded, in results/stability/archive/: " + ", ".join(archived))

# %% tags=["hide-input"]
# The introduction's stability column: one cell per row of its verdict table.
for (chapter, name), cell in cells.items():
    glue(f"stable_{chapter}__{name}", cell, display=False)

# %% [markdown]
# Summary: {glue:text}`stability_summary`.
