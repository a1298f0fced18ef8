# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Do the verdicts depend on the seed?
#
# Every chapter that trains draws its data subsets, initializations and data order from one
# `seed` parameter, and the book build runs each at seed 0. A verdict that holds at seed 0 only is a
# lucky run, not a finding. `make book-seeds` therefore rebuilds the whole book with every chapter's
# `seed` set to 1 and then to 2 (the value is injected after the parameters cell, as papermill does)
# and records every verdict of the three builds. This page renders that record: it is read from
# `results/stability/verdicts.json`, not recomputed in this build, so it shows the commit and the
# machine it was made on. A verdict whose label differs between seeds is a finding about the claim
# at these sizes, stated in its chapter, not a failure of the build.

# %% tags=["parameters"]
record_path = ""           # "" for the repository's results/stability/verdicts.json
seed = 0                   # unused: this page trains nothing (every page has a seed)

# %% tags=["hide-input"]
import json
from pathlib import Path

from IPython.display import display
from myst_nb import glue

from nclib.tables import Table
from nclib.records import repo_root
from nclib.stability import seed_agreement
from nclib.verdicts import BOOK_VERDICTS

path = (
    Path(record_path)
    if record_path
    else repo_root() / "results" / "stability" / "verdicts.json"
)
rec = json.loads(path.read_text()) if path.is_file() else None
if rec is None:
    print(
        f"No stability record at {path}: run `make book` (seed 0), "
        "then `make book-seeds`."
    )
    glue("stability_summary", "not recorded yet (run make book-seeds)", display=False)
else:
    seeds = sorted(rec["builds"], key=int)
    rows = [
        [r["chapter"], r["name"]]
        + [r["labels"].get(s) or "—" for s in seeds]
        + ["yes" if r["stable"] else "no"]
        for r in rec["summary"]
    ]
    display(
        Table(
            ["chapter", "verdict"]
            + [f"seed {s}" for s in seeds]
            + ["same at every seed"],
            rows,
            caption="Each verdict's label at every seed",
        )
    )
    prov = rec["provenance"]
    n_stable = sum(r["stable"] for r in rec["summary"])
    summary = (f"{n_stable} of {len(rec['summary'])} verdicts identical at seeds "
               f"{', '.join(seeds)}")
    glue("stability_summary", summary, display=False)
    commits = sorted({str(c)[:10] for c in rec.get("build_commits", {}).values() if c})
    built = ", ".join(commits) or str(prov.get("git_commit"))[:10]
    cpu = prov.get("cpu_model") or prov.get("device_name")
    print(
        f"{summary}; built at commit {built} on {cpu}, torch {prov.get('torch')}, "
        f"recorded {prov.get('time_utc') or prov.get('timestamp') or ''}"
    )

# %% tags=["hide-input"]
# The introduction's stability column: one cell per row of its verdict table.
for chapter, name in BOOK_VERDICTS:
    glue(f"stable_{chapter}__{name}", seed_agreement(rec, chapter, name), display=False)

# %% [markdown]
# Summary: {glue:text}`stability_summary`.
