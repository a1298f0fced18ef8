"""Verdicts on the paper's claims: one vocabulary, one record, one way into the book.

Every verdict in the book is decided by a rule stated in its chapter *before* the numbers, which
could come out either way; it is measured beside a control (the same computation on a case where
the effect is absent by construction) and says how sure it is (an interval, or the smallest effect
the experiment could have detected). :class:`Verdict` carries all of that, and
:meth:`Verdict.glue` pastes it under fixed names so that the introduction's table reads the rule,
the control, the label and the key number of every row from the chapter that computed them.

The decision functions themselves live beside their analysis (:mod:`nclib.decisions` for the
theorem checks of chapters 3–6, :mod:`nclib.report` for the experiments of chapters 7, 8 and 10);
each returns a :class:`Verdict` and is tested on constructed inputs where each outcome must come out.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

__all__ = ["LABELS", "SHORT", "BOOK_VERDICTS", "REFERENCE_VERDICTS", "CONFIRMATORY_VERDICTS", "Verdict",
           "span", "interval", "confidence"]

#: The vocabulary (ARCHITECTURE.md, "Verdicts"), each with the CSS class of its coloured label.
LABELS = {
    "holds": "holds",
    "holds but vacuous": "vacuous",
    "violated": "violated",
    "untestable at this size": "untestable",
    "not distinguishable from seed noise": "indistinct",
}
#: The short form of each label, for badges and table cells (the full label is the badge's tooltip
#: and is spelled out in the introduction's legend).
SHORT = {
    "holds": "holds",
    "holds but vacuous": "vacuous",
    "violated": "violated",
    "untestable at this size": "untestable",
    "not distinguishable from seed noise": "not distinguishable",
}

#: The rows of the introduction's verdict table, in the book's order: (chapter, verdict name).
#: The stability page glues, for each, whether it came out the same at every recorded seed;
#: tests/test_verdicts.py checks that each chapter glues its names and the introduction shows them.
BOOK_VERDICTS = (
    ("ch02_neural_collapse", "nc"),
    ("ch03_ce_svm", "thm41"),
    ("ch03_ce_svm", "rem42"),
    ("ch04_margin_bound", "thm44"),
    ("ch04_margin_bound", "rem46"),
    ("ch04_margin_bound", "margsim"),
    ("ch05_covering", "thm48"),
    ("ch05_covering", "rem49"),
    ("ch06_hoeffding", "thm410"),
    ("ch06_hoeffding", "rem411"),
    ("ch07_margins_tpt", "fig3"),
    ("ch08_non_conservative", "nc_gen"),
    ("ch08_non_conservative", "nc_rot"),
    ("ch08_non_conservative", "nc_gen_small"),
    ("ch09_related", "zhu"),
    ("ch09_related", "jacot"),
    ("ch09_related", "wu"),
)

#: The rows of that table that have a reference-scale verdict too (chapter 10, read from recorded
#: runs): {CPU-scale name: reference-scale name}. The other rows are theorem checks, not run twice.
REFERENCE_VERDICTS = {"fig3": "ref_fig3", "nc_gen": "ref_nc_gen", "nc_rot": "ref_nc_rot",
                      "nc_gen_small": "ref_nc_gen_small"}
#: The verdicts of chapter 10's confirmatory design (collapsed networks), shown in their own table:
#: the test, its further parts (the rotation grid, the C > d grid, Figure 3) and the negative control.
CONFIRMATORY_VERDICTS = ("ref_conf_perm", "ref_conf_rot", "ref_conf_small", "ref_conf_fig3", "ref_conf_control")


@dataclass(frozen=True)
class Verdict:
    """A decided claim.

    ``label``: one of :data:`LABELS`; ``rule``: what is computed and what threshold or test
    decides (a short phrase); ``control``: the case where the effect is absent by construction and
    what it gave; ``sureness``: the interval or the detectable effect; ``key``: the key number;
    ``detail``: the longer reading, for the chapter.
    """

    label: str
    rule: str
    control: str
    sureness: str
    key: str
    detail: str = ""

    def __post_init__(self):
        if self.label not in LABELS:
            raise ValueError(f"Verdict.label must be one of {sorted(LABELS)}, got {self.label!r}")
        for name in ("rule", "control", "sureness", "key"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Verdict.{name} must be a non-empty phrase: a verdict without "
                                 f"its {name} cannot be judged by a reader")

    def text(self, width: int = 88) -> str:
        """The verdict as printed text: label and key number, sureness, control and rule, each
        wrapped at ``width`` characters (a code cell's output column holds about 90) with its
        continuation lines indented."""
        parts = [(f"{self.label}: ", self.key), ("  sureness: ", self.sureness),
                 ("  control: ", self.control), ("  rule: ", self.rule)]
        return "\n".join(textwrap.fill(str(body), width, initial_indent=head, subsequent_indent="    ",
                                        break_on_hyphens=False) for head, body in parts)

    def badge_html(self) -> str:
        """The label as a short coloured badge (styled by the book's CSS), the full label as its
        tooltip."""
        return (f'<span class="verdict verdict-{LABELS[self.label]}" title="{html.escape(self.label)}">'
                f'{html.escape(SHORT[self.label])}</span>')

    def glue(self, name: str, glue_fn=None) -> None:
        """Paste the verdict under ``verdict_<name>`` (label), ``badge_<name>`` (coloured HTML),
        ``rule_<name>``, ``control_<name>``, ``sure_<name>``, ``key_<name>`` and
        ``detail_<name>``. ``glue_fn``: myst_nb's ``glue`` (default), or a stand-in."""
        if glue_fn is None:
            from myst_nb import glue as glue_fn
        for prefix, value in (("verdict", self.label), ("rule", self.rule), ("control", self.control),
                              ("sure", self.sureness), ("key", self.key), ("detail", self.detail or self.label)):
            glue_fn(f"{prefix}_{name}", value, display=False)
        try:
            from IPython.display import HTML
        except ImportError:  # a bare machine running a chapter as a script
            glue_fn(f"badge_{name}", self.label, display=False)
        else:
            glue_fn(f"badge_{name}", HTML(self.badge_html()), display=False)


def span(lo, hi, fmt: str = ".2f") -> str:
    """A range of two numbers in words: "0.12–0.34", or "−1.24 to −0.81" when one is negative (an en
    dash between signed numbers reads as a minus sign)."""
    a, b = format(float(lo), fmt), format(float(hi), fmt)
    return f"{a}–{b}" if float(lo) >= 0 and float(hi) >= 0 else f"{a} to {b}".replace("-", "−")


def interval(lo, hi, fmt: str = ".3g") -> str:
    """An interval as printed in a verdict: "[lo, hi]"."""
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def confidence(alpha: float) -> str:
    """The confidence of an interval taken at level ``alpha``, as a rule states it: "95%" for
    0.05, "98.3%" for 0.05 / 3."""
    return f"{100 * (1 - alpha):.3g}%"
