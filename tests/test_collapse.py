"""The collapse criterion of the confirmatory runs (nclib.collapse), on hand-built histories."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nclib.collapse import CRITERION, CollapseCriterion, collapse_status
from nclib.history import History


def history(points, terminal=None):
    """points: (epoch, train_accuracy, train_nc1)."""
    h = History()
    for e, acc, nc1 in points:
        h.observe({"epoch": e, "train_accuracy": acc, "train_nc1": nc1}, [])
    return h


def test_a_collapsed_run_passes_on_the_absolute_threshold():
    s = collapse_status(history([(0, 0.1, 5.0), (50, 1.0, 0.4), (100, 1.0, 0.08)]))
    assert s.collapsed and s.terminal_epoch == 50 and s.terminal_epochs == 50
    assert s.nc1_first_fit == 0.4 and s.nc1_ratio == pytest.approx(0.2) and s.reason == "collapsed"


def test_the_relative_threshold_alone_suffices():
    assert collapse_status(history([(0, 0.1, 5.0), (50, 1.0, 0.8), (100, 1.0, 0.19)])).collapsed
    s = collapse_status(history([(0, 0.1, 5.0), (50, 1.0, 0.8), (100, 1.0, 0.21)]))
    assert not s.collapsed and "final NC1 0.21" in s.reason


def test_first_fit_runs_fail_for_want_of_a_terminal_phase():
    s = collapse_status(history([(0, 0.1, 5.0), (90, 0.99, 0.7), (95, 1.0, 0.05)]))
    assert not s.collapsed and "0 epochs of terminal phase" in s.reason


def test_runs_that_never_fit_or_lose_the_fit_fail_with_their_reason():
    assert collapse_status(history([(0, 0.1, 5.0), (100, 0.999, 0.01)])).reason == "never fitted every training label"
    s = collapse_status(history([(0, 0.1, 5.0), (20, 1.0, 0.5), (100, 0.9999, 0.01)]))
    assert not s.collapsed and "training accuracy 99.99%" in s.reason
    # one label of 30 000 unfitted: counted, and never rounded up to 100%
    s = collapse_status(history([(0, 0.1, 5.0), (20, 1.0, 0.5), (300, 1 - 1 / 30000, 0.07)]), n_train=30000)
    assert s.reason == "1 of 30,000 training labels unfitted, training accuracy 99.997% at the last epoch"
    with pytest.raises(ValueError, match="n_train must be a positive number"):
        collapse_status(history([(0, 0.1, 5.0), (20, 1.0, 0.5)]), n_train=0)


@given(st.integers(1, 10**6), st.data())
def test_a_run_short_of_full_accuracy_never_reads_as_100_percent(n, data):
    k = data.draw(st.integers(1, n))  # labels unfitted
    s = collapse_status(history([(0, 0.1, 5.0), (20, 1.0, 0.5), (300, (n - k) / n, 0.07)]), n_train=n)
    assert f"{k:,} of {n:,} training labels unfitted" in s.reason and "100.0" not in s.reason


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no measured epochs"):
        collapse_status(History())
    with pytest.raises(ValueError, match="train_nc1"):
        collapse_status(type("H", (), {"records": [{"epoch": 0, "train_accuracy": 1.0}], "terminal_epoch": 0})())
    with pytest.raises(ValueError, match="min_terminal_epochs"):
        CollapseCriterion(min_terminal_epochs=-1)


@given(st.floats(0.01, 10), st.floats(0.01, 10), st.integers(0, 200))
def test_the_criterion_is_monotone_in_nc1_and_length(nc1_fit, nc1_last, length):
    """Lowering the final NC1 or lengthening the terminal phase never turns collapsed into not."""
    h = history([(0, 0.1, 9.0), (10, 1.0, nc1_fit), (10 + length, 1.0, nc1_last)] if length else
                [(0, 0.1, 9.0), (10, 1.0, nc1_fit)])
    s = collapse_status(h)
    if s.collapsed:
        better = history([(0, 0.1, 9.0), (10, 1.0, nc1_fit), (11 + length, 1.0, nc1_last / 2)])
        assert collapse_status(better).collapsed
    expected = length >= CRITERION.min_terminal_epochs and (
        (nc1_last if length else nc1_fit) <= CRITERION.nc1_max
        or (nc1_last if length else nc1_fit) / nc1_fit <= CRITERION.nc1_fraction)
    assert s.collapsed == expected
