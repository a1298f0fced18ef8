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
from dataclasses import dataclass

import numpy as np

from nclib.collapse import CRITERION, CollapseCriterion, collapse_status
from nclib.report import ALPHA, SettingSummary, decide_nc_gen
from nclib.stats import f_test_power, holm
from nclib.tables import Table
from nclib.verdicts import Verdict

__all__ = ["TEST_BACKBONE", "CONTROL_BACKBONE", "MIN_COLLAPSED", "CollapseSummary", "collapse_summary",
           "collapse_table", "replication_agreement", "decide_family"]

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
    fails = tuple((f"{p.get('kind')} {p.get('index')} seed {p.get('seed')}", s.reason) for p, s in status
                  if not s.collapsed)
    return CollapseSummary(backbone, len(mine), sum(s.collapsed for _, s in status),
                           med([s.terminal_epochs for _, s in status]),
                           med([s.nc1_first_fit for _, s in status if s.nc1_first_fit is not None]),
                           med([s.nc1_last for _, s in status]), fails)


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


def decide_family(tests: dict, collapse: dict, *, alpha: float = ALPHA,
                  min_collapsed: float = MIN_COLLAPSED) -> dict:
    """Decide a family of Section 5.2 verdicts with Holm's correction. ``tests``: {name:
    (SettingSummary, kind)} for the verdicts that have their grid; ``collapse``: {name:
    CollapseSummary} of each verdict's backbone. Returns {name: Verdict}; a verdict whose networks
    did not collapse (share below ``min_collapsed``) is untestable at this size, and it leaves the
    family (a test of another regime)."""
    ready = {n: t for n, t in tests.items() if t[0] is not None and t[1] in t[0].grids
             and collapse[n].share >= min_collapsed}
    adjusted = dict(zip(ready, holm([t[0].grids[t[1]].p for t in ready.values()]))) if ready else {}
    out = {}
    for name, (summary, kind) in tests.items():
        if name in adjusted:
            out[name] = decide_nc_gen(summary, kind, alpha=alpha, p_adjusted=adjusted[name])
            continue
        v = decide_nc_gen(summary, kind, alpha=alpha)
        c = collapse[name]
        if summary is not None and c.share < min_collapsed:
            why = (f"{c.collapsed} of {c.runs} runs met the collapse criterion (< {100 * min_collapsed:.0f}%): "
                   "not a test of collapsed networks")
            v = Verdict("untestable at this size", v.rule, v.control, v.sureness, why, v.detail)
        out[name] = v
    return out
