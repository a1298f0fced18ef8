"""Section 5.2's confirmatory design (chapter 10): collapsed networks, a test and a negative control.

The design, fixed before its runs (:data:`nclib.presets.PRESETS` ``["confirmatory"]``): the grid of
a simplex ETF M* and its permutations × fresh seeds, trained deep into the terminal phase with
weight decay, on two backbones, analysed with chapter 8's rule (:func:`nclib.report.decide_nc_gen`):

* the **test**, ``mlp_relu``: features after a ReLU, as in the paper's networks, where a permuted
  head is not a change of variables (chapter 8's identity fails) and may matter;
* the **negative control**, ``mlp_gauss``: a linear last layer with a rotation-invariant
  initialisation, where a permuted simplex ETF (a rotation of it) changes only the draw of that
  layer, from the same law: the truth is "no effect", and the rule should say "not
  distinguishable" in about 1 − α of such experiments.

The family of confirmatory verdicts at reference scale is corrected with Holm's procedure
(:func:`nclib.stats.holm`); the control is not in the family (it is decided at the raw level, the
stricter check of the pipeline). A verdict also needs its networks collapsed
(:mod:`nclib.collapse`): with fewer than ``min_collapsed`` of a grid's runs meeting the criterion,
the claim about collapsed networks is untestable at this size, whatever the test says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from nclib.collapse import CRITERION, CollapseCriterion, collapse_status
from nclib.report import ALPHA, SettingSummary, decide_nc_gen
from nclib.stats import f_test_power, holm
from nclib.tables import Table
from nclib.tpt_margins import decide_fig3
from nclib.verdicts import Verdict, confidence

__all__ = ["TEST_BACKBONE", "CONTROL_BACKBONE", "MIN_COLLAPSED", "CollapseSummary", "collapse_summary",
           "collapse_table", "replication_agreement", "family_members", "decide_family",
           "figure3_family_size", "decide_figure3", "decide_design", "reading"]

TEST_BACKBONE, CONTROL_BACKBONE = "mlp_relu", "mlp_gauss"
MIN_COLLAPSED = 0.8  #: the share of a grid's runs that must meet the collapse criterion


@dataclass(frozen=True)
class CollapseSummary:
    """The collapse criterion over one backbone's runs: counts, medians, and the failing runs."""

    backbone: str
    runs: int
    collapsed: int
    terminal_epochs: float
    nc1_first_fit: float
    nc1_last: float
    failures: tuple  # (run label, reason)

    @property
    def share(self) -> float:
        return self.collapsed / self.runs if self.runs else math.nan


def collapse_summary(runs, backbone: str, criterion: CollapseCriterion = CRITERION) -> CollapseSummary:
    """The :class:`CollapseSummary` of the runs (``(params, History)`` pairs) of ``backbone``."""
    mine = [(p, h) for p, h in runs if p.get("backbone") == backbone]
    status = [(p, collapse_status(h, criterion, n_train=p.get("n_train"))) for p, h in mine]
    med = lambda xs: float(np.median(xs)) if xs else math.nan
    fails = tuple((f"{_run_label(p)} seed {p.get('seed')}", s.reason) for p, s in status if not s.collapsed)
    return CollapseSummary(backbone, len(mine), sum(s.collapsed for _, s in status),
                           med([s.terminal_epochs for _, s in status]),
                           med([s.nc1_first_fit for _, s in status if s.nc1_first_fit is not None]),
                           med([s.nc1_last for _, s in status]), fails)


def _run_label(params: dict) -> str:
    """A grid run's classifier ("permutation 3"), or a Figure 3 run's head ("etf head")."""
    if "kind" in params:
        return f"{params['kind']} {params.get('index')}"
    return f"{params.get('head', 'unnamed')} head"


def collapse_table(summaries, caption: str):
    """One row per backbone: runs meeting the criterion, median terminal-phase length, median
    training NC1 at the first fit and at the end, and the first failing runs with their reasons."""

    body = []
    for c in (c for c in summaries if c.runs):  # a backbone with no recorded run yet has no row
        shown = "; ".join(f"{who}: {why}" for who, why in c.failures[:3]) + (" …" if len(c.failures) > 3 else "")
        body.append([c.backbone, f"{c.collapsed} / {c.runs}", f"{c.terminal_epochs:.0f}", f"{c.nc1_first_fit:.3f}",
                     f"{c.nc1_last:.3f}", shown or "none"])
    return Table(["backbone", "collapsed", "terminal epochs (median)", "NC1 at first fit", "NC1 at the end",
                  "runs failing the criterion"], body, caption)


def replication_agreement(summary: SettingSummary, label: str, kind: str = "permutation",
                          alpha: float = ALPHA) -> float:
    """The chance that a replication of the same grid reaches the same reading as ``label``, if
    the true classifier effect equals its estimate τ̂: the F-test's power at τ̂/σ
    (:func:`nclib.stats.f_test_power`) for "holds", one minus it otherwise."""
    ga = summary.grids[kind]
    a, b = ga.grid.shape
    ratio = ga.effect / ga.sigma if ga.sigma > 0 else 0.0
    power = float(f_test_power(a, b, ratio, alpha))
    return power if label == "holds" else 1.0 - power


def family_members(tests: dict, collapse: dict, *, min_collapsed: float = MIN_COLLAPSED) -> list[str]:
    """The names among ``tests`` ({name: (SettingSummary or None, kind)}) that enter the family:
    their grid is complete and at least ``min_collapsed`` of its runs collapsed."""
    return [n for n, (summary, kind) in tests.items() if summary is not None and kind in summary.grids
            and collapse[n].share >= min_collapsed]


def decide_family(tests: dict, collapse: dict, *, alpha: float = ALPHA,
                  min_collapsed: float = MIN_COLLAPSED, others: int = 0) -> dict:
    """Decide a family of Section 5.2 verdicts with Holm's correction. ``tests``: {name:
    (SettingSummary, kind)} for the verdicts that have their grid; ``collapse``: {name:
    CollapseSummary} of each verdict's backbone. Returns {name: Verdict}; a verdict whose networks
    did not collapse (share below ``min_collapsed``) is untestable at this size, and it leaves the
    family (a test of another regime). ``others``: members of the same family decided by their own
    rule at the Bonferroni level α/k, k the family's size (:func:`decide_figure3`); they count in
    Holm's family as if their p were 1. Every member is then held to a threshold no more lenient
    than Holm's own, so the family-wise error stays at most α."""
    ready = {n: tests[n] for n in family_members(tests, collapse, min_collapsed=min_collapsed)}
    pvalues = [t[0].grids[t[1]].p for t in ready.values()] + [1.0] * others
    adjusted = dict(zip(ready, holm(pvalues))) if ready else {}  # zip drops the others
    return {name: decide_nc_gen(summary, kind, alpha=alpha, p_adjusted=adjusted[name]) if name in adjusted
            else _decide_alone(summary, kind, collapse[name], alpha, min_collapsed)
            for name, (summary, kind) in tests.items()}


def _decide_alone(summary, kind: str, c: CollapseSummary, alpha: float, min_collapsed: float) -> Verdict:
    """A grid decided outside any family, at the raw level ``alpha``, behind the collapse gate."""
    v = decide_nc_gen(summary, kind, alpha=alpha)
    if summary is not None and c.share < min_collapsed:
        return _not_collapsed(v, c, min_collapsed)
    return v


def _not_collapsed(v: Verdict, c: CollapseSummary, min_collapsed: float) -> Verdict:
    """``v`` turned untestable: fewer than ``min_collapsed`` of its runs collapsed."""
    why = (f"{c.collapsed} of {c.runs} runs met the collapse criterion (< {100 * min_collapsed:.0f}%): "
           "not a test of collapsed networks")
    return Verdict("untestable at this size", v.rule, v.control, v.sureness, why, v.detail)


def decide_figure3(rows, collapse: CollapseSummary, family_size: int, *, alpha: float = ALPHA,
                   min_collapsed: float = MIN_COLLAPSED) -> Verdict:
    """Section 5.1's verdict (:func:`nclib.tpt_margins.decide_fig3`, Figure 3) on the confirmatory
    runs ``rows`` (:class:`~nclib.tpt_margins.MarginGrowth`), as a member of the confirmatory
    family of ``family_size`` verdicts: its intervals at level 1 − α/k (Bonferroni; a rule decided
    by intervals has no single p for Holm's steps, see :func:`decide_family`'s ``others``), and
    untestable at this size when fewer than ``min_collapsed`` of its runs met the collapse
    criterion."""
    if not isinstance(family_size, int) or family_size < 1:
        raise ValueError(f"decide_figure3: family_size must be a whole number ≥ 1, got {family_size!r}")
    level = alpha / family_size
    v = decide_fig3(rows, alpha=level)
    if collapse.share < min_collapsed:
        return _not_collapsed(v, collapse, min_collapsed)
    if family_size == 1:
        return v
    return replace(v, key=f"{v.key}; intervals at {confidence(level)}, Bonferroni over a family of "
                          f"{family_size}")


def figure3_family_size(tests: dict, collapse: dict, name: str, *,
                        min_collapsed: float = MIN_COLLAPSED) -> int:
    """The size k of the family whose Bonferroni level α/k Figure 3's intervals are taken at
    (:func:`decide_figure3`): the grid tests among ``tests`` that enter the family
    (:func:`family_members`), plus Figure 3 itself (``name`` in ``collapse``) once at least
    ``min_collapsed`` of its runs collapsed; at least 1. Chapter 10 draws its figure at that level."""
    fig3_in = collapse[name].share >= min_collapsed
    return max(len(family_members(tests, collapse, min_collapsed=min_collapsed)) + int(fig3_in), 1)


def decide_design(tests: dict, collapse: dict, *, control: tuple | None = None, figure3: tuple | None = None,
                  alpha: float = ALPHA, min_collapsed: float = MIN_COLLAPSED) -> dict:
    """Every verdict of the confirmatory design, {name: Verdict}. ``tests``: {name: (SettingSummary
    or None, kind)}, the grid tests, decided as one family (:func:`decide_family`) together with
    ``figure3`` = (name, MarginGrowth rows) when Figure 3's sweep is complete (None otherwise),
    whose intervals are taken at the Bonferroni level of the family (:func:`decide_figure3`; it
    counts in the family once its runs collapsed); ``control`` = (name, (SettingSummary or None,
    kind)), the negative control, decided alone at the raw level α (not a member: its job is to
    check the pipeline, and a correction would make it more lenient). ``collapse``: {name:
    CollapseSummary} for every name."""
    fig3_in = figure3 is not None and collapse[figure3[0]].share >= min_collapsed
    out = decide_family(tests, collapse, alpha=alpha, min_collapsed=min_collapsed, others=int(fig3_in))
    if figure3 is not None:
        size = figure3_family_size(tests, collapse, figure3[0], min_collapsed=min_collapsed)
        out[figure3[0]] = decide_figure3(figure3[1], collapse[figure3[0]], size, alpha=alpha,
                                         min_collapsed=min_collapsed)
    if control is not None:  # its key shows the raw p it is decided on, not a family's
        name, (summary, kind) = control
        out[name] = _decide_alone(summary, kind, collapse[name], alpha, min_collapsed)
    return out


def reading(test: Verdict | None, control: Verdict | None) -> str:
    """Which of chapter 10's readings, written before the runs, the primary test and the negative
    control select together (None: not decided yet). The control comes first: if it finds an
    effect where there is none by construction, the pipeline is suspect and the test is not read
    as evidence either way."""
    if test is None or control is None:
        return "The test and the control are not both decided yet, so there is nothing to read."
    if control.label == "holds":
        return ("The control finds an effect where none exists by construction: the pipeline is suspect, "
                "and the test's verdict is not read as evidence either way.")
    if control.label != "not distinguishable from seed noise":
        return (f"The control is {control.label} ({control.key}), so nothing checked the pipeline on a case "
                "whose truth is known: the test's verdict stands without that check.")
    if test.label == "holds":
        return ("The control is not distinguishable from seed noise and the test holds: permuting the "
                "simplex ETF head of collapsed networks whose features pass through a ReLU changes their "
                f"test accuracy beyond seed noise, as the paper claims. Its size: {test.sureness}.")
    if test.label == "not distinguishable from seed noise":
        return ("The control and the test are both not distinguishable from seed noise: the paper's claim "
                f"is not supported at this size. What the grid could have caught: {test.sureness}.")
    return (f"The control behaves as it should, but the test is {test.label} ({test.key}): at this size "
            "the experiment says nothing either way about the claim.")
