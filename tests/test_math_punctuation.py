"""book/_ext/math_punctuation.py: the punctuation after an inline formula stays on its line."""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes
from docutils.core import publish_doctree
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from math_punctuation import keep_punctuation_with_math  # noqa: E402


def _wrapped(rst: str) -> tuple[int, nodes.document]:
    doc = publish_doctree(rst, settings_overrides={"report_level": 5})
    return keep_punctuation_with_math(doc), doc


def test_a_formula_and_its_punctuation_share_a_span_and_the_words_after_it_do_not():
    n, doc = _wrapped("The margin :math:`p_{\\min}`, then :math:`M^*`. Next :math:`x` and :math:`y`).\n")
    assert n == 3  # "," "." and ")." — not the formula followed by " and"
    boxes = list(doc.findall(lambda node: isinstance(node, nodes.inline) and "nowrap" in node["classes"]))
    assert [b.astext() for b in boxes] == ["p_{\\min},", "M^*.", "y)."]
    assert doc.astext() == "The margin p_{\\min}, then M^*. Next x and y)."  # no text lost or moved
    assert keep_punctuation_with_math(doc) == 0  # a second pass finds nothing more to wrap


def test_formulas_without_punctuation_after_them_are_left_alone():
    n, doc = _wrapped("Only :math:`a` and :math:`b` here\n")
    assert n == 0 and not list(doc.findall(nodes.inline))


@given(st.text(alphabet=st.sampled_from(list(".,;:!?)] abc")), max_size=8))
def test_the_text_reads_the_same_after_wrapping(after):
    rst = f"Before :math:`z`{after}\n" if after[:1] in set(".,;:!?)]") else f"Before :math:`z` {after}\n"
    doc = publish_doctree(rst, settings_overrides={"report_level": 5})
    before = doc.astext()
    keep_punctuation_with_math(doc)
    assert doc.astext() == before
    for box in doc.findall(lambda node: isinstance(node, nodes.inline) and "nowrap" in node["classes"]):
        assert isinstance(box[0], nodes.math) and box[1].astext().strip(".,;:!?)]") == ""


def test_the_book_styles_the_span():
    css = (ROOT / "book" / "static" / "nclib.css").read_text()
    assert "white-space: nowrap" in css.split("span.nowrap {", 1)[1].split("}", 1)[0]
