"""nclib.verdicts: the record every verdict of the book goes through."""

import pytest

from nclib.verdicts import LABELS, Verdict, confidence


def _v(**kw):
    base = dict(label="holds", rule="bound ≥ error at every epoch", control="shuffled labels: violated",
                sureness="95% CI [0.1, 0.2]", key="0.15")
    return Verdict(**{**base, **kw})


def test_glue_pastes_every_field_under_its_name():
    pasted = {}
    _v(detail="long reading").glue("thm44", lambda k, v, display=True: pasted.__setitem__(k, v))
    assert pasted["verdict_thm44"] == "holds" and pasted["rule_thm44"].startswith("bound")
    assert pasted["control_thm44"].startswith("shuffled") and pasted["sure_thm44"].startswith("95%")
    assert pasted["key_thm44"] == "0.15" and pasted["detail_thm44"] == "long reading"
    assert "verdict-holds" in pasted["badge_thm44"].data


@pytest.mark.parametrize("label", sorted(LABELS))
def test_every_label_has_a_badge_class(label):
    assert f"verdict-{LABELS[label]}" in _v(label=label).badge_html()


def test_a_verdict_needs_a_known_label_and_every_field():
    with pytest.raises(ValueError, match="Verdict.label must be one of"):
        _v(label="holds, loose")
    with pytest.raises(ValueError, match="Verdict.control must be a non-empty phrase"):
        _v(control=" ")


def test_every_label_is_styled_by_the_book():
    from pathlib import Path

    css = (Path(__file__).resolve().parents[1] / "book" / "static" / "nclib.css").read_text()
    for cls in LABELS.values():
        assert f".verdict-{cls} " in css or f".verdict-{cls}{{" in css, f"no CSS rule for verdict-{cls}"


def test_the_introduction_shows_every_book_verdict_and_no_other():
    """The strict build fails on a glue key a chapter does not paste, so this pins the other
    direction: the table in intro.md has exactly the rows of BOOK_VERDICTS, in that order."""
    import re
    from pathlib import Path

    from nclib.verdicts import BOOK_VERDICTS, CONFIRMATORY_VERDICTS, REFERENCE_VERDICTS

    intro = (Path(__file__).resolve().parents[1] / "book" / "intro.md").read_text()
    main, rules = intro.split("| result | decided by", 1)
    rules, at_reference = rules.split("| result | CPU scale", 1)
    for field, table in (("badge", main), ("key", main), ("rule", rules), ("control", rules),
                         ("sure", rules)):
        shown = re.findall(rf"(ch\d\d_\w+)\.py::{field}_(\w+)", table)
        assert shown == list(BOOK_VERDICTS), f"the introduction's {field} column"
    at_reference, confirmatory = at_reference.split("| confirmatory design", 1)
    reference = re.findall(r"ch10_reference\.py::badge_(\w+)", at_reference)
    assert reference == [REFERENCE_VERDICTS[n] for _, n in BOOK_VERDICTS if n in REFERENCE_VERDICTS]
    assert re.findall(r"ch10_reference\.py::badge_(\w+)", confirmatory) == list(CONFIRMATORY_VERDICTS)
    stable = re.findall(r"stability\.py::stable_(ch\d\d_\w+)__(\w+)", intro)
    assert stable == list(BOOK_VERDICTS), "the introduction's stability column"


def test_printed_verdict_wraps_within_an_output_column_and_keeps_every_word():
    from nclib.verdicts import Verdict

    v = Verdict("holds", "the rule " * 30, "a control " * 20, "an interval [0.1, 0.2] " * 10, "key 3.14")
    text = v.text(width=88)
    assert max(len(line) for line in text.splitlines()) <= 88
    assert text.split() == f"holds: key 3.14 sureness: {v.sureness} control: {v.control} rule: {v.rule}".split()


@pytest.mark.parametrize("alpha, said", [(0.05, "95%"), (0.05 / 3, "98.3%"), (0.01, "99%"), (0.1, "90%")])
def test_an_interval_level_is_stated_as_the_rule_reads_it(alpha, said):
    assert confidence(alpha) == said
