"""nclib.stability: verdicts read back from executed notebooks, compared across seeds."""

import json

import pytest

from nclib.stability import build_verdicts, glued_values, main, seed_rows


def _glue_output(name, text):
    return {"output_type": "display_data", "data": {"text/plain": text},
            "metadata": {"scrapbook": {"name": name, "mime_prefix": ""}}}


def _build(tmp_path, label, key="0.5"):
    nb = {"cells": [{"cell_type": "code", "outputs": [
        _glue_output("verdict_thm44", f"'{label}'"), _glue_output("key_thm44", f"'{key}'"),
        {"output_type": "stream", "text": "not glued"}, _glue_output("other", "'x'")]}]}
    folder = tmp_path / label.replace(" ", "_") / "jupyter_execute" / "book"
    folder.mkdir(parents=True)
    (folder / "ch04_margin_bound.ipynb").write_text(json.dumps(nb))
    return folder.parent.parent


def test_reads_glued_text_and_only_verdicts(tmp_path):
    b = _build(tmp_path, "holds")
    assert glued_values(b / "jupyter_execute" / "book" / "ch04_margin_bound.ipynb")["verdict_thm44"] == "holds"
    assert build_verdicts(b) == {"ch04_margin_bound": {"thm44": {"verdict": "holds", "key": "0.5"}}}


def test_a_verdict_that_flips_is_marked_unstable(tmp_path):
    per_seed = {"0": build_verdicts(_build(tmp_path, "holds")), "1": build_verdicts(_build(tmp_path, "violated"))}
    [row] = seed_rows(per_seed)
    assert not row["stable"] and row["labels"] == {"0": "holds", "1": "violated"}
    same = {"0": per_seed["0"], "1": per_seed["0"]}
    assert seed_rows(same)[0]["stable"]
    missing = {"0": per_seed["0"], "1": {}}
    assert not seed_rows(missing)[0]["stable"]  # absent at one seed: not shown to be stable
    # a verdict waiting for a sweep's runs is one label whatever the count (the sweep runs on)
    waiting = {s: {"ch10_reference": {"ref": {"verdict": f"incomplete: {k} runs of this setting missing"}}}
               for s, k in (("0", 77), ("1", 74))}
    assert seed_rows(waiting)[0]["stable"]
    waiting["1"]["ch10_reference"]["ref"]["verdict"] = "holds"
    assert not seed_rows(waiting)[0]["stable"]


def test_cli_records_and_refuses_a_lone_build(tmp_path, capsys):
    a, b = _build(tmp_path, "holds"), _build(tmp_path, "holds but vacuous")
    out = tmp_path / "rec.json"
    assert main(["record", "--build", f"0={a}", "--build", f"1={b}", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["summary"][0]["stable"] is False and rec["provenance"]["torch"]
    assert set(rec["build_commits"]) == {"0", "1"}  # the commit each build was made at (or None)
    with pytest.raises(SystemExit):
        main(["record", "--build", f"0={a}", "--build", f"1={tmp_path / 'none'}", "--out", str(out)])
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        build_verdicts(tmp_path)


def test_machine_agreement_compares_every_machine_and_seed(tmp_path):
    from nclib.stability import machine_agreement

    made = iter(range(100))

    def rec(labels):
        per_seed = {s: build_verdicts(_build(tmp_path / str(next(made)), lab)) for s, lab in labels.items()}
        return {"summary": seed_rows(per_seed), "verdicts": per_seed}

    amd = rec({"0": "holds", "1": "holds", "2": "holds"})
    intel = rec({"0": "holds", "1": "holds", "2": "holds"})
    assert machine_agreement({"AMD EPYC": amd, "Intel Xeon": intel}, "ch04_margin_bound", "thm44") == (
        "same at seeds 0/1/2 on AMD EPYC, Intel Xeon")
    # the same at every seed on each machine, but not the same label on both: it differs
    other = rec({"0": "violated", "1": "violated", "2": "violated"})
    assert machine_agreement({"AMD EPYC": amd, "Intel Xeon": other}, "ch04_margin_bound", "thm44") == (
        "differs: AMD EPYC holds / holds / holds; Intel Xeon violated / violated / violated")
    flip = rec({"0": "holds", "1": "violated", "2": "holds"})
    assert machine_agreement({"AMD EPYC": flip}, "ch04_margin_bound", "thm44").startswith("differs: AMD EPYC holds / violated")
    assert machine_agreement({"AMD EPYC": amd}, "ch04_margin_bound", "rem46") == "not recorded"
    assert machine_agreement({}, "ch04_margin_bound", "thm44") == "not recorded"


def test_a_record_is_checked_against_a_build_of_its_machine(tmp_path):
    from nclib.stability import build_disagreements

    build = _build(tmp_path, "holds")
    rec = {"verdicts": {"0": build_verdicts(build)}}
    assert build_disagreements(rec, build) == []
    other = _build(tmp_path, "violated")
    assert build_disagreements(rec, other) == ["ch04_margin_bound::thm44 recorded holds, built violated"]
    assert build_disagreements({"verdicts": {}}, build) == ["ch04_margin_bound::thm44 recorded nothing, built holds"]
    # a verdict waiting for a sweep's runs is one label, however many are still missing
    waiting = _build(tmp_path / "w", "incomplete: 88 runs of this setting missing")
    fewer = {"verdicts": {"0": build_verdicts(_build(tmp_path / "f", "incomplete: 78 runs of this setting missing"))}}
    assert build_disagreements(fewer, waiting) == []
    assert build_disagreements(fewer, build) == ["ch04_margin_bound::thm44 recorded incomplete: 78 runs of this "
                                                 "setting missing, built holds"]


def test_records_are_named_by_cpu_model_and_read_back(tmp_path):
    from nclib.stability import load_records, record_path

    a, b = _build(tmp_path, "holds"), _build(tmp_path, "holds but vacuous")
    assert main(["record", "--build", f"0={a}", "--build", f"1={b}", "--out", str(tmp_path / "rec" / "x.json")]) == 0
    assert record_path("Intel(R) Xeon(R) Processor", root=tmp_path).name == "intel-xeon-processor.json"
    (tmp_path / "rec" / "archive").mkdir()
    (tmp_path / "rec" / "archive" / "old.json").write_text("{}")  # archived records are not read
    [(cpu, rec)] = load_records(tmp_path / "rec").items()
    assert cpu == rec["provenance"]["cpu_model"] and rec["summary"]


def test_reads_the_glue_file_myst_nb_writes_beside_the_executed_notebook(tmp_path):
    """A real build: MyST-NB moves the glued values out of the notebook into <page>.glue.json
    (mime prefix stripped), so the notebook itself has none; the glue file wins."""
    folder = tmp_path / "_build" / "jupyter_execute" / "book"
    folder.mkdir(parents=True)
    (folder / "ch05_covering.ipynb").write_text(json.dumps({"cells": []}))
    glue = {"verdict_thm48": {"output_type": "display_data", "data": {"text/plain": "'untestable at this size'"},
                              "metadata": {"scrapbook": {"name": "verdict_thm48", "mime_prefix": "x/"}}},
            "key_thm48": {"output_type": "display_data", "data": {"text/plain": "'bound 0.6'"}, "metadata": {}},
            "badge_thm48": {"output_type": "display_data", "data": {"text/html": "<span/>"}, "metadata": {}}}
    (folder / "ch05_covering.glue.json").write_text(json.dumps(glue))
    assert build_verdicts(tmp_path / "_build") == {
        "ch05_covering": {"thm48": {"verdict": "untestable at this size", "key": "bound 0.6"}}}


def test_a_build_is_recorded_at_the_commit_its_environment_page_printed(tmp_path):
    """The builds of a record are made over minutes while commits land: each is recorded at the
    commit its own environment page printed when it ran, not at the checkout's later HEAD."""
    from nclib.stability import _commit_of

    page = tmp_path / "jupyter_execute" / "book" / "environment.ipynb"
    page.parent.mkdir(parents=True)
    text = "built (UTC)      2026-12-06 15:43\ncommit           41f714b\nPython           3.11.7\n"
    page.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": [text]}]}]}))
    assert _commit_of(tmp_path) == "41f714b"
    page.write_text(json.dumps({"cells": []}))  # no such line: the checkout's commit (or None)
    assert _commit_of(tmp_path) != "41f714b"

