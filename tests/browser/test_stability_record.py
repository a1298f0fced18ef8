"""The stability record of this machine's CPU model describes the book just built: its seed-0
labels are the build's (run after the strict build, like the browser test). A record made at an
older commit whose rules have changed since fails here until `make book-seeds` records it anew."""

from pathlib import Path

import pytest

from nclib.records import cpu_model
from nclib.stability import build_disagreements, load_records

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "_build"


def test_this_machines_record_matches_the_build():
    if not (BUILD / "jupyter_execute").is_dir():
        pytest.skip("no build: run make book-strict first")
    records = load_records()
    rec = records.get(cpu_model())
    if rec is None:
        pytest.skip(f"no stability record for {cpu_model()} (recorded: {', '.join(records) or 'none'}); "
                    "make book-seeds records one")
    problems = build_disagreements(rec, BUILD)
    assert not problems, ("results/stability's record for this CPU model differs from this build at seed 0 "
                          "(rerun make book-seeds and commit the record):\n  " + "\n  ".join(problems))
