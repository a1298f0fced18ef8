"""nclib.decisions: every decision function must reach each of its outcomes on constructed inputs
(a case that holds, one that is violated, one that is untestable), and its statistics must agree
with independent computations."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
import torch

from nclib import decisions as D
from nclib import evidence
from nclib.metrics import nc1
from nclib.bounds import hoeffding_margin_curve
from nclib.train import FeatureSnapshots
from nclib.verdicts import LABELS, span


# --- NC1 by hand -------------------------------------------------------------------------------

def test_unchecked_nc1_of_the_bootstrap_agrees_with_nclib_metrics():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(30)
    Z = torch.randn(4, 6, generator=g, dtype=torch.float64)[y] + 0.3 * torch.randn(120, 6, generator=g, dtype=torch.float64)
    assert evidence._nc1_unchecked(Z.numpy(), y.numpy(), 4) == pytest.approx(nc1(Z, y), rel=1e-8)


# --- chapter 2: NC1 -------------------------------------------------------------------------------

def _clusters(spread, seed, n=30, C=4, d=6):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(C, d))
    y = np.repeat(np.arange(C), n)
    return centres[y] + spread * rng.normal(size=(len(y), d)), y


@given(st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_swap_epochs_exchanges_whole_pairs(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    first, second = evidence.swap_epochs(a, b, seed=seed)
    # each sample keeps its two feature vectors, in one order or the other
    kept = np.all(first == a, axis=1) & np.all(second == b, axis=1)
    swapped = np.all(first == b, axis=1) & np.all(second == a, axis=1)
    assert np.all(kept | swapped)
    again = evidence.swap_epochs(a, b, seed=seed)  # the seed fixes the coin flips
    assert np.array_equal(again[0], first)


def test_swap_epochs_flips_about_half_and_checks_shapes():
    a, b = np.zeros((10_000, 2)), np.ones((10_000, 2))
    first, _ = evidence.swap_epochs(a, b, seed=0)
    assert 0.48 < first[:, 0].mean() < 0.52
    with pytest.raises(ValueError, match="same samples"):
        evidence.swap_epochs(a, b[:5])


def test_decide_nc_outcomes():
    Z0, y = _clusters(1.0, 0)
    Z1 = Z0.copy()
    # collapse: shrink every sample towards its class mean
    means = np.stack([Z0[y == c].mean(0) for c in range(4)])
    Zc = means[y] + 0.3 * (Z0 - means[y])
    control = evidence.nc1_drop(*evidence.swap_epochs(Z0, Zc, seed=1), y, n_boot=200)
    assert control["lo"] < 1 < control["hi"]  # exchanged epochs: no change by construction
    v = D.decide_nc(evidence.nc1_drop(Z0, Zc, y, n_boot=200), control, 10, 20)
    assert v.label == "holds"
    v = D.decide_nc(evidence.nc1_drop(Zc, Z0, y, n_boot=200), control, 10, 20)
    assert v.label == "violated"
    v = D.decide_nc(evidence.nc1_drop(Z0, Z1 + 1e-3 * np.random.default_rng(2).normal(size=Z1.shape), y, n_boot=200),
                    control, 10, 20)
    assert v.label == "not distinguishable from seed noise"
    assert D.decide_nc(evidence.nc1_drop(Z0, Zc, y, n_boot=50), control, None, 20).label == "untestable at this size"
    assert "exchanged" in v.control
    # a control that moved (here: the real collapse passed off as the control) is flagged
    moved = D.decide_nc(evidence.nc1_drop(Z0, Zc, y, n_boot=200), evidence.nc1_drop(Z0, Zc, y, n_boot=200), 10, 20)
    assert "not to be trusted" in moved.detail


# --- chapter 3: Theorem 4.1, Remark 4.2 -----------------------------------------------------------

def _path(loss_fn, pmin_fn):
    t = np.geomspace(1e-2, 1e4, 80)
    return evidence.flow_summary(t, loss_fn(t), pmin_fn(t))


def test_decide_thm41_outcomes():
    grows = [_path(lambda t: 40 / (1 + t), lambda t: np.log1p(t) * (1 + 0.05 * k)) for k in range(4)]
    bounded = [_path(lambda t: 5 + 35 / (1 + t), lambda t: 2 - 1 / (1 + t) + 0 * k) for k in range(3)]
    stuck = [_path(lambda t: 40 / (1 + t), lambda t: 2 + 1 / (1 + t) + 0.01 * k) for k in range(4)]
    assert D.decide_thm41(grows, bounded).label == "holds"
    assert D.decide_thm41(stuck, bounded).label == "violated"
    assert D.decide_thm41(bounded, bounded).label == "untestable at this size"
    # CE → 0 and p_min rising at every snapshot, but towards a finite limit (2 − 1/(1+t)): the
    # slope against log t dies out decade by decade, which contradicts p_min → ∞
    creeping = [_path(lambda t: 40 / (1 + t), lambda t: 2 - 1 / (1 + t) + 0.01 * k) for k in range(4)]
    assert all(r["pmin_rising"] for r in creeping) and all(r["pmin_slope"] > 0 for r in creeping)
    v_creep = D.decide_thm41(creeping, bounded)
    assert v_creep.label == "violated" and "finite limit" in v_creep.detail
    assert all(r["pmin_persistence"] == pytest.approx(1.0, abs=0.15) for r in grows)
    v = D.decide_thm41(grows, bounded)
    assert "premise not met" in v.control


def test_decide_rem42_outcomes():
    ctrl = [0.95, 0.96, 0.95]
    ratio = [0.97, 0.98, 0.97]
    assert D.decide_rem42([0.999, 0.998, 0.999], [-1.0, -0.9, -1.1], ctrl, ratio).label == "holds"
    assert D.decide_rem42([0.94, 0.93, 0.94], [0.5, 0.6, 0.4], ctrl, ratio).label == "violated"
    # approaching the SVM (1 − cos shrinking) and closer than the control: holds at any final cosine
    # above the control's, the threshold of 0.99 (or 0.995) is gone
    assert D.decide_rem42([0.98, 0.975, 0.985], [-0.5, -0.4, -0.6], ctrl, ratio).label == "holds"
    # no approach visible: the slope's interval contains 0
    assert D.decide_rem42([0.98, 0.975, 0.985], [-0.1, 0.05, -0.02], ctrl, ratio).label == "untestable at this size"
    # the margin of the joint solution not yet within 10% of the ETF's
    assert D.decide_rem42([0.999, 0.998, 0.999], [-1.0, -0.9, -1.1], ctrl, [0.7, 0.72, 0.71]).label \
        == "untestable at this size"


# --- chapter 4: Theorem 4.4, Remark 4.6, margins and similarity -------------------------------------

def test_decide_thm44_outcomes():
    err = np.full(20, 0.15)
    l01 = np.full(20, 0.0225)
    assert D.decide_thm44(np.full(20, 3.0), err, 2000, l01, "L01 alone").label == "holds but vacuous"
    assert D.decide_thm44(np.full(20, 0.5), err, 2000).label == "holds"
    v = D.decide_thm44(np.full(20, 0.10), err, 2000)
    assert v.label == "violated"
    assert D.decide_thm44(np.full(20, np.nan), err, 2000).label == "untestable at this size"
    assert "(violated)" in D.decide_thm44(np.full(20, 3.0), err, 2000, l01, "L01 alone").control
    # an error just above the bound but within its interval is not a violation
    assert D.decide_thm44(np.full(20, 0.148), err, 2000).label == "holds"


def _changes(db, de, n=4, sd=0.3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"d_log_bound": db + 0.05 * rng.normal(), "d_error": de + sd * rng.normal(),
             "d_log_clock": -0.3, "tpt_epochs": 40} for _ in range(n)]


def test_decide_rem46_outcomes():
    ten = dict(n=10)  # power 0.80 against a change of one seed sd: the design can decide
    assert D.decide_rem46(_changes(-0.5, -2.0, **ten), n_test=1000).label == "holds"
    assert D.decide_rem46(_changes(-0.5, +2.0, **ten), n_test=1000).label == "violated"
    nd = D.decide_rem46(_changes(-0.5, 0.0, sd=1.0, **ten), n_test=1000)
    assert nd.label == "not distinguishable from seed noise" and "detected with probability 0.8" in nd.detail
    # the bound did not fall: the remark's mechanism is absent
    assert D.decide_rem46(_changes(+0.5, -2.0, **ten), n_test=1000).label == "untestable at this size"
    assert D.decide_rem46([None, _changes(-0.5, -2.0)[0]], n_test=1000).label == "untestable at this size"


def test_decide_rem46_with_four_seeds_is_untestable_whatever_the_intervals_say():
    """The design's power (0.29 at 4 seeds against a change of one seed sd) is known before the
    runs: an interval that clears 0 by luck at one seed does not at the next, so the label is the
    same at every seed."""
    clear = D.decide_rem46(_changes(-0.5, -2.0), n_test=1000)
    noisy = D.decide_rem46(_changes(-0.5, 0.0, sd=1.0), n_test=1000)
    assert clear.label == noisy.label == "untestable at this size"
    assert "this build's interval clears 0" in clear.detail and "0.8 needs 10 seeds" in clear.detail
    assert "power against a change of one seed sd 0.29 at 4 seeds" in clear.sureness


def test_decide_rem46_needs_the_error_to_clear_zero_by_one_test_image():
    falls = [{"d_log_bound": -0.4, "d_log_clock": -0.3, "tpt_epochs": 40, "d_error": e}
             for e in np.linspace(-0.24, -0.16, 10)]  # mean −0.2 points, interval ≈ [−0.22, −0.18]
    assert D.decide_rem46(falls, n_test=1000).label == "holds"  # one image = 0.1 points
    assert D.decide_rem46(falls, n_test=200).label == "not distinguishable from seed noise"  # 0.5
    with pytest.raises(ValueError, match="n_test must be ≥ 1"):
        D.decide_rem46(falls, n_test=0)


def test_tpt_changes_reads_the_windows():
    ep = np.arange(0, 40)
    bound = np.where(ep >= 10, 4.0 - 0.05 * (ep - 10), np.nan)
    err = np.where(ep >= 10, 0.20 - 0.001 * (ep - 10), 0.5)
    c = evidence.tpt_changes(ep, bound, err, 10, window=5)
    assert c["d_log_bound"] == pytest.approx(np.log(np.mean(bound[35:40])) - np.log(np.mean(bound[10:15])))
    assert c["d_error"] == pytest.approx(100 * (err[35:40].mean() - err[10:15].mean()))
    assert c["d_log_clock"] < 0
    assert evidence.tpt_changes(ep, bound, err, 38, window=5) is None


def test_decide_margin_similarity_outcomes():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(10, 3))
    dist = np.linalg.norm(P[:, None] - P[None], axis=2)
    assert D.decide_margin_similarity(dist + 0.05 * (dist > 0), dist, n_perm=999).label == "holds"
    assert D.decide_margin_similarity(1 / (dist + np.eye(10)), dist, n_perm=999).label == "violated"
    Q = rng.normal(size=(10, 3))
    other = np.linalg.norm(Q[:, None] - Q[None], axis=2)
    assert D.decide_margin_similarity(other, dist, n_perm=999).label == "not distinguishable from seed noise"


# --- chapters 5, 6: accuracy lower bounds ----------------------------------------------------------

def test_decide_thm48_outcomes():
    C = D.AccuracyCase
    shuffled = [C("shuffled", 0.8, 500, 2000)]
    assert D.decide_thm48([C("a", 0.8, 1900, 2000), C("b", None, 1000, 2000)], shuffled).label == "holds"
    assert D.decide_thm48([C("a", 0.8, 1000, 2000)]).label == "violated"
    assert D.decide_thm48([C("a", None, 1000, 2000)]).label == "untestable at this size"
    assert D.decide_thm48([C("a", 0.8, 2000, 2000), C("b", 0.7, 2000, 2000)]).label == "untestable at this size"
    assert D.decide_thm48([C("a", -0.5, 1500, 2000)]).label == "holds but vacuous"
    assert "(violated)" in D.decide_thm48([C("a", 0.8, 2000, 2000)], shuffled).control


def test_decide_thm410_outcomes():
    C = D.AccuracyCase
    assert D.decide_thm410([C("memorizer", 1.0, 100, 1000)]).label == "violated"
    assert D.decide_thm410([C("clean", 0.7, 900, 1000)]).label == "holds"
    assert D.decide_thm410([C("natural scale", -120.0, 100, 1000)]).label == "holds but vacuous"
    assert D.decide_thm410([C("none", None, 100, 1000)]).label == "untestable at this size"


def test_decide_rem49_outcomes():
    rng = np.random.default_rng(0)
    seed_acc = 0.8 + 0.002 * rng.normal(size=12)
    perm_acc = 0.8 + 0.02 * rng.normal(size=12)
    assert D.decide_rem49(perm_acc, seed_acc, perm_acc + 0.001 * rng.normal(size=12), 2000).label == "holds"
    assert D.decide_rem49(perm_acc, seed_acc, -perm_acc, 2000).label == "violated"
    # a null with 12 runs a side: the test detects only SD ratios ≥ 3.1 with probability 0.8, an effect
    # as large as the seed noise makes √2: untestable at this size, by chapter 8's standard
    weak = D.decide_rem49(seed_acc[::-1] + 0.0001, seed_acc, perm_acc, 2000)
    assert weak.label == "untestable at this size" and "√2" in weak.key
    # with 200 runs a side the same null is a real one (ratio 1.3 detected with probability 0.8)
    big_seed = 0.8 + 0.002 * rng.normal(size=200)
    big_perm = 0.8 + 0.002 * rng.normal(size=200)
    strong = D.decide_rem49(big_perm, big_seed, big_perm, 2000)
    assert strong.label == "not distinguishable from seed noise"
    assert D.decide_rem49(np.ones(8), np.ones(8), perm_acc[:8], 2000).label == "untestable at this size"


def test_hoeffding_margin_curve_hand_values():
    """Theorem 4.10 as printed, C = 4, d = 3, N/C = 50, ρ = 1.5: the bound gets *worse* as the
    margin grows towards √(N/C) = 7.07 (hand values −3.41 at γ̂ ≤ 1, −5.00 at 5, −9.41 at 7.07)."""
    values = hoeffding_margin_curve([0.0, 1.0, 5.0, math.sqrt(50)], 1.5, 3, 50, 4)
    assert values[0] == pytest.approx(-3.41, abs=0.005)
    assert values[1] == pytest.approx(-3.41, abs=0.005)
    assert values[2] == pytest.approx(-5.00, abs=0.005)
    assert values[3] == pytest.approx(-9.41, abs=0.005)
    assert np.all(np.diff(hoeffding_margin_curve(np.linspace(0, math.sqrt(50), 30), 1.5, 3, 50, 4)) <= 1e-12)


def test_decide_rem411_outcomes():
    moving = np.array([0.99, 0.5, -3.0])
    still = np.array([0.9990, 0.9991, 0.9992])
    assert D.decide_rem411(moving, 1000, 1000, still).label == "violated"
    assert D.decide_rem411(still, 1000, 1000, moving).label == "holds"


def test_every_decision_uses_the_vocabulary():
    v = D.decide_thm44(np.full(5, 3.0), np.full(5, 0.1), 1000)
    assert v.label in LABELS and v.rule and v.control and v.sureness and v.key


def test_feature_snapshots_keep_the_start_of_the_terminal_phase_and_the_last_epoch():
    class Stub:
        def __init__(self):
            self.scale = 1.0

        def features(self, x):
            return self.scale * x

    x = torch.arange(6.0).reshape(3, 2)
    model, snaps = Stub(), FeatureSnapshots(x)
    for epoch, acc in ((0, 0.5), (1, 1.0), (2, 0.9), (3, 1.0)):
        model.scale = epoch + 1.0
        assert snaps(epoch, model, {"accuracy": acc}, {}) is None
    assert snaps.start_epoch == 1 and np.allclose(snaps.start, 2 * x.numpy())
    assert snaps.last_epoch == 3 and np.allclose(snaps.last, 4 * x.numpy())


def test_input_similarity_is_a_distance_between_class_means():
    x = torch.tensor([[0.0, 0.0], [0.0, 2.0], [3.0, 0.0], [3.0, 2.0], [0.0, 8.0]])
    y = torch.tensor([0, 0, 1, 1, 2])
    S = evidence.input_similarity(x, y)
    assert S.shape == (3, 3) and np.allclose(S, S.T) and np.allclose(np.diag(S), 0)
    assert S[0, 1] == pytest.approx(3.0) and S[0, 2] == pytest.approx(7.0)


@given(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3))
def test_span_never_writes_a_double_dash(a, b):
    text = span(min(a, b), max(a, b), ".2f")
    assert "--" not in text and "–-" not in text and "-–" not in text
    assert ("to" in text) == (min(a, b) < 0)
