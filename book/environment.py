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
# # How this book was built
#
# Every number in this book was computed while the book was built, by the code in `nclib` and in
# the chapters, on the machine described below. The table is itself computed at build time: it
# reads the installed versions of the pinned requirements, the machine and the commit.
#
# The build: `make book` creates `.venv` from `requirements.txt`, obtains Fashion-MNIST, fetches
# MathJax from the npm registry into `_vendor/` (served with the book, so that it renders offline;
# the explorers are precomputed HTML and need no widget manager), executes every chapter at its default CPU scale
# (`execute_notebooks: force`, a 900-second limit per cell, any exception fails the build) and
# writes `_build/html`. `make test` runs the test suite, the same build with warnings as errors, and
# a browser test that loads every page in headless Chromium.

# %% tags=["hide-input"]
import datetime
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

root = Path.cwd()
while not (root / "requirements.txt").exists() and root != root.parent:
    root = root.parent
pins = [
    line.split("==")[0].strip()
    for line in (root / "requirements.txt").read_text().splitlines()
    if "==" in line and not line.startswith("#")
]


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def git_commit():
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "not a git checkout"
    except (OSError, subprocess.TimeoutExpired):
        return "git not available"


cpu = platform.processor() or platform.machine()
if Path("/proc/cpuinfo").exists():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        cpu,
    )
rows = [
    (
        "built (UTC)",
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    ),
    ("commit", git_commit()),
    ("Python", platform.python_version()),
    ("platform", platform.platform()),
    ("CPU", f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"),
    (
        "CUDA device",
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else "none (CPU build of the book)",
    ),
] + [(name, installed(name)) for name in pins]
width = max(len(k) for k, _ in rows)
for key, value in rows:
    print(f"{key:{width}s}  {value}")
