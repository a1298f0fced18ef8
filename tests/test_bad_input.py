"""Bad input to nclib's metric, bound, ETF, UFM and synthetic-data functions gets a clear error
raised by nclib: the exception type and a phrase of the message are pinned for every case, so a
NaN, a silent plausible number or a raw error from inside torch cannot come back unnoticed.

The first block is the audit's list (each a failure that used to pass silently); the rest cover
the same classes of problem (sizes, NaN/inf scalars, shapes, dtypes, counts, generators) for
every public function."""

import math

import pytest
import torch
from torch import nn

from nclib import bounds, etf, metrics, synthetic, ufm
from nclib._checks import UndefinedMetricError, check_int, check_real
from nclib.accumulate import NCAccumulator, measure

NAN, INF = float("nan"), float("inf")
C, D = 4, 5


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(6)
    Z = 3 * torch.randn(C, D, generator=g, dtype=torch.float64)[y] + torch.randn(len(y), D, generator=g, dtype=torch.float64)
    M = torch.randn(D, C, generator=g, dtype=torch.float64)
    return Z, y, M


Z, Y, M = problem()
SAME = torch.ones(len(Y), D, dtype=torch.float64)  # every feature identical


def means_1e9_apart():
    # Within-class noise ±n in pairs, so each class mean is exactly its centre: centres 1e-9 apart
    # on top of unit-scale features (the audit's NC1 = 2e16).
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(3, D, generator=g, dtype=torch.float64)
    rows, labels = [], []
    for c in range(C):
        centre = 1.0 + 1e-9 * torch.randn(D, generator=g, dtype=torch.float64)
        rows += [centre + noise, centre - noise]
        labels += [c] * 6
    return torch.cat(rows), torch.tensor(labels)


def with_nan(t, where=(0, 0)):
    t = t.clone()
    t[where] = NAN
    return t


def two_equal_columns():
    M2 = M.clone()
    M2[:, 1] = M2[:, 0]
    return M2


def acc_update(Zb, yb, **kw):
    NCAccumulator(M, **kw).update(Zb, yb)


def acc_compute(Zb, yb, **kw):
    a = NCAccumulator(M, **kw)
    a.update(Zb, yb)
    return a.compute()


def acc_overflow():
    a = NCAccumulator(M, keep_features=False)
    a.update(Z, Y)
    a.update(Z * 1e200, Y)
    return a.compute()


supports = [Z[Y == c] for c in range(C)]
relu_net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
nan_net = nn.Sequential(nn.Linear(2, 3))
nan_net[0].weight.data[0, 0] = NAN
cases = {
    # --- the audit -------------------------------------------------------------------------------
    "nc1: all class means coincide": (lambda: metrics.nc1(SAME, Y), UndefinedMetricError, "between-class scatter is zero"),
    "nc1: class means 1e-9 apart": (lambda: metrics.nc1(*means_1e9_apart()), UndefinedMetricError, "between-class scatter is zero"),
    "nc_metrics: identical features": (lambda: metrics.nc_metrics(SAME, Y, M), UndefinedMetricError, "NC1–NC3 are undefined"),
    "nc_metrics: zero classifier": (lambda: metrics.nc_metrics(Z, Y, torch.zeros(D, C)), UndefinedMetricError, "classifier column(s) [0, 1, 2, 3] are zero"),
    "margins: zero classifier": (lambda: metrics.margins(Z, Y, torch.zeros(D, C)), UndefinedMetricError, "coincide (or M is zero)"),
    "margins: identical zero features": (lambda: metrics.margins(torch.zeros(len(Y), D), Y, M), UndefinedMetricError, "every feature is zero"),
    "accumulator: float labels 0.5": (lambda: acc_update(Z, Y + 0.5), ValueError, "non-integer values such as 0.5"),
    "margin_bound: K = -1": (lambda: bounds.margin_bound(Z, Y, M, K=-1), ValueError, "must be > 0, got -1"),
    "margin_bound: K = NaN": (lambda: bounds.margin_bound(Z, Y, M, K=NAN), ValueError, "must be finite, got nan"),
    "margin_bound: class_probs not a distribution": (lambda: bounds.margin_bound(Z, Y, M, class_probs=[0.5] * C), ValueError, "must sum to 1"),
    "covering_bound: lipschitz NaN": (lambda: bounds.covering_bound(Z, Y, M, supports, NAN), ValueError, "Lipschitz constant lipschitz must be finite"),
    "rotate: all-NaN R": (lambda: etf.rotate(M, torch.full((D, D), NAN)), ValueError, "rotation R contains NaN"),
    "simplex_etf: scale NaN": (lambda: etf.simplex_etf(4, 5, scale=NAN), ValueError, "must be finite, got nan"),
    "ufm_structure: restarts 0": (lambda: etf.ufm_structure(4, 5, restarts=0), ValueError, "restarts must be ≥ 1"),
    "nc_metrics: Z and M mismatched": (lambda: metrics.nc_metrics(Z[:, :3], Y, M), ValueError, "d = the feature dimension of Z"),
    "margins: Z and M mismatched": (lambda: metrics.margins(Z, Y, M[:3]), ValueError, "d = the feature dimension of Z"),
    "accumulator: Z of the wrong width": (lambda: acc_update(Z[:, :3], Y), ValueError, "must be N×5"),
    # --- metrics: shapes, dtypes, labels -----------------------------------------------------------
    "nc_metrics: M with one column": (lambda: metrics.nc_metrics(Z, Y, M[:, :1]), ValueError, "C ≥ 2 classes"),
    "nc_metrics: M with NaN": (lambda: metrics.nc_metrics(Z, Y, with_nan(M)), ValueError, "classifier M contains NaN"),
    "nc_metrics: Z with inf": (lambda: metrics.nc_metrics(with_nan(Z) * 0 + INF, Y, M), ValueError, "NaN or infinite values in 24 of 24 rows"),
    "nc_metrics: 3-D Z": (lambda: metrics.nc_metrics(Z[None], Y, M), ValueError, "must be a 2-D N×d matrix"),
    "nc_metrics: empty Z": (lambda: metrics.nc_metrics(Z[:0], Y[:0], M), ValueError, "is empty"),
    "nc_metrics: complex Z": (lambda: metrics.nc_metrics(Z.to(torch.complex128), Y, M), ValueError, "must hold real numbers"),
    "nc_metrics: string Z": (lambda: metrics.nc_metrics("features", Y, M), ValueError, "must be a tensor, array or nested list"),
    "nc_metrics: bool labels": (lambda: metrics.nc_metrics(Z, Y > 1, M), ValueError, "bool tensor (a mask?)"),
    "nc_metrics: one-hot labels": (lambda: metrics.nc_metrics(Z, nn.functional.one_hot(Y), M), ValueError, "one-hot labels? pass y.argmax"),
    "nc_metrics: labels of the wrong length": (lambda: metrics.nc_metrics(Z, Y[:-1], M), ValueError, "mismatched shapes"),
    "nc_metrics: label ≥ C": (lambda: metrics.nc_metrics(Z, torch.where(Y == 0, 9, Y), M), ValueError, "out of range"),
    "nc1: NaN labels": (lambda: metrics.nc1(Z, Y.double().index_fill(0, torch.tensor([0]), NAN)), ValueError, "non-integer values such as nan"),
    "nc1: one class only": (lambda: metrics.nc1(Z[Y == 0], Y[Y == 0]), ValueError, "at least two classes"),
    "class_means: num_classes 2.5": (lambda: metrics.class_means(Z, Y, 2.5), ValueError, "num_classes must be an integer"),
    "class_means: a class without samples": (lambda: metrics.class_means(Z, Y, 6), ValueError, "[4, 5] have no samples"),
    "ncc_mismatch: means of the wrong shape": (lambda: metrics.ncc_mismatch(Z, Y, M, torch.zeros(C, D + 1)), ValueError, "means must have shape 4×5"),
    "nc_from_statistics: non-integer counts": (lambda: metrics.nc_from_statistics(torch.tensor([1.5, 2, 3, 4]), torch.zeros(C, D), torch.eye(D), M), ValueError, "non-negative integers"),
    "nc_from_statistics: empty class": (lambda: metrics.nc_from_statistics(torch.tensor([0, 2, 3, 4]), torch.zeros(C, D), torch.eye(D), M), ValueError, "[0] have no samples"),
    "nc_from_statistics: second moment shape": (lambda: metrics.nc_from_statistics(torch.ones(C), torch.zeros(C, D), torch.eye(D + 1), M), ValueError, "second_moment must have shape 5×5"),
    "nc_from_statistics: NaN sums": (lambda: metrics.nc_from_statistics(torch.ones(C), with_nan(torch.zeros(C, D)), torch.eye(D), M), ValueError, "sums contains NaN"),
    "margins: two equal classifier columns": (lambda: metrics.margins(Z, Y, two_equal_columns()), UndefinedMetricError, "M_0 and M_1 coincide"),
    "margins_from_min_gaps: rms NaN": (lambda: metrics.margins_from_min_gaps(torch.ones(C, C), M, NAN), ValueError, "rms_feature_norm must be finite"),
    "margins_from_min_gaps: rms 0": (lambda: metrics.margins_from_min_gaps(torch.ones(C, C), M, 0.0), UndefinedMetricError, "every feature is zero"),
    "margins_from_min_gaps: an empty class (inf)": (lambda: metrics.margins_from_min_gaps(torch.full((C, C), INF), M, 1.0), ValueError, "class with no samples"),
    "margins_from_min_gaps: not square": (lambda: metrics.margins_from_min_gaps(torch.ones(C, C + 1), M, 1.0), ValueError, "C×C matrix"),
    "scale_free_margin_of_etf: C = 1": (lambda: metrics.scale_free_margin_of_etf(1), ValueError, "C must be ≥ 2"),
    "scale_free_margin_of_etf: C = 2.0": (lambda: metrics.scale_free_margin_of_etf(2.0), ValueError, "C must be an integer"),
    # --- accumulator -----------------------------------------------------------------------------
    "accumulator: bool labels": (lambda: acc_update(Z, Y > 0), ValueError, "bool tensor"),
    "accumulator: labels of the wrong length": (lambda: acc_update(Z, Y[:-2]), ValueError, "mismatched shapes"),
    "accumulator: label ≥ C": (lambda: acc_update(Z, Y + 1), ValueError, "out of range"),
    "accumulator: NaN features": (lambda: acc_update(with_nan(Z), Y), ValueError, "NaN or infinite"),
    "accumulator: 1-D M": (lambda: NCAccumulator(torch.ones(4)), ValueError, "d×C matrix with C ≥ 2"),
    "accumulator: keep_features 'yes'": (lambda: NCAccumulator(M, keep_features="yes"), ValueError, "must be True or False"),
    "accumulator: identical features": (lambda: acc_compute(SAME, Y), UndefinedMetricError, "between-class scatter is zero"),
    "accumulator (streaming): identical features": (lambda: acc_compute(SAME, Y, keep_features=False), UndefinedMetricError, "between-class scatter is zero"),
    "accumulator (streaming): overflow": (acc_overflow, ValueError, "overflowed float64"),
    "accumulator: missing class": (lambda: acc_compute(Z[Y < 3], Y[Y < 3]), ValueError, "[3] have no samples"),
    "measure: loader of non-pairs": (lambda: measure(lambda x: x, [Z], M), ValueError, "(inputs, labels) pairs"),
    "measure: features_fn not callable": (lambda: measure(3, [(Z, Y)], M), ValueError, "must be callable"),
    # --- bounds ----------------------------------------------------------------------------------
    "margin_bound: negative class_probs": (lambda: bounds.margin_bound(Z, Y, M, class_probs=[1.5, -0.5, 0, 0]), ValueError, "must be non-negative"),
    "margin_bound: class_probs wrong length": (lambda: bounds.margin_bound(Z, Y, M, class_probs=[0.5, 0.5]), ValueError, "class_probs must have shape 4"),
    "margin_bound: NaN gamma": (lambda: bounds.margin_bound(Z, Y, M, gamma=torch.full((C, C), NAN)), ValueError, "gamma must be finite off the diagonal"),
    "margin_bound: gamma wrong shape": (lambda: bounds.margin_bound(Z, Y, M, gamma=torch.ones(2, 2)), ValueError, "gamma must have shape 4×4"),
    "covering_bound: supports of the wrong length": (lambda: bounds.covering_bound(Z, Y, M, supports[:2], 1.0), ValueError, "supports has 2 entries"),
    "covering_bound: NaN support": (lambda: bounds.covering_bound(Z, Y, M, [with_nan(s) for s in supports], 1.0), ValueError, "supports[0] contains NaN"),
    "covering_numbers: NaN radii": (lambda: bounds.covering_numbers(supports, torch.full((C, C), NAN)), ValueError, "radii must be positive and finite"),
    "greedy_cover: ε NaN": (lambda: bounds.greedy_cover(torch.zeros(3, 2), NAN), ValueError, "positive and finite"),
    "greedy_cover: 1-D points": (lambda: bounds.greedy_cover(torch.zeros(3), 0.1), ValueError, "must have 2 dimension"),
    "linear_rademacher: weight_norm NaN": (lambda: bounds.linear_rademacher(Z, NAN), ValueError, "weight_norm must be finite"),
    "linear_rademacher: NaN features": (lambda: bounds.linear_rademacher(with_nan(Z), 1.0), ValueError, "NaN or infinite"),
    "rademacher_monte_carlo: draws 0": (lambda: bounds.rademacher_monte_carlo(Z, 1.0, draws=0), ValueError, "draws must be ≥ 1"),
    "rademacher_monte_carlo: generator 'abc'": (lambda: bounds.rademacher_monte_carlo(Z, 1.0, generator="abc"), ValueError, "a torch.Generator or an integer seed"),
    "corollary_45: K NaN": (lambda: bounds.corollary_45(1.0, torch.ones(C, C), NAN, 10), ValueError, "K must be finite"),
    "corollary_45: N 0": (lambda: bounds.corollary_45(1.0, torch.ones(C, C), 5.0, 0), ValueError, "N must be ≥ 1"),
    "corollary_45: NaN gamma": (lambda: bounds.corollary_45(1.0, torch.full((C, C), NAN), 5.0, 10), ValueError, "gamma must be finite"),
    "lipschitz_lower: pairs 1.5": (lambda: bounds.lipschitz_lower(relu_net, torch.randn(5, 2), pairs=1.5), ValueError, "pairs must be an integer"),
    "lipschitz_lower: scale -1": (lambda: bounds.lipschitz_lower(relu_net, torch.randn(5, 2), scale=-1.0), ValueError, "scale must be > 0"),
    "lipschitz_lower: f not callable": (lambda: bounds.lipschitz_lower(3, torch.randn(5, 2)), ValueError, "f must be callable"),
    "lipschitz_lower: NaN X": (lambda: bounds.lipschitz_lower(relu_net, with_nan(torch.randn(5, 2))), ValueError, "X contains NaN"),
    "lipschitz_upper: not a module": (lambda: bounds.lipschitz_upper([1, 2]), ValueError, "must be a torch.nn.Module"),
    "lipschitz_upper: NaN weights": (lambda: bounds.lipschitz_upper(nan_net), ValueError, "NaN or infinite weights"),
    "hoeffding_H: d 0": (lambda: bounds.hoeffding_H(1.0, 0, 1.0, 10), ValueError, "d must be ≥ 1"),
    "hoeffding_H: ρ NaN": (lambda: bounds.hoeffding_H(1.0, 2, NAN, 10), ValueError, "rho contains NaN"),
    "hoeffding_H: n 0": (lambda: bounds.hoeffding_H(1.0, 2, 1.0, 0), ValueError, "n > 0"),
    "hoeffding_bound: N < C": (lambda: bounds.hoeffding_bound(torch.ones(3), torch.ones(3), 2, 2, 3), ValueError, "N must be ≥ 3"),
    "hoeffding_bound: ρ 0": (lambda: bounds.hoeffding_bound(torch.ones(3), torch.zeros(3), 2, 30, 3), ValueError, "rho (the largest feature norm of each class) must be > 0"),
    "hoeffding_bound: C 2.0": (lambda: bounds.hoeffding_bound(torch.ones(2), torch.ones(2), 2, 30, 2.0), ValueError, "C must be an integer"),
    # --- ETF ---------------------------------------------------------------------------------------
    "simplex_etf: scale 0": (lambda: etf.simplex_etf(4, 5, scale=0.0), ValueError, "must be > 0"),
    "simplex_etf: C 2.5": (lambda: etf.simplex_etf(2.5, 5), ValueError, "C (number of classes) must be an integer"),
    "simplex_etf: d 0": (lambda: etf.simplex_etf(2, 0), ValueError, "d (feature dimension) must be ≥ 1"),
    "simplex_etf: generator -1": (lambda: etf.simplex_etf(3, 3, generator=-1), ValueError, "must be ≥ 0"),
    "simplex_etf: generator 1.5": (lambda: etf.simplex_etf(3, 3, generator=1.5), ValueError, "integer seed"),
    "etf_gram: scale inf": (lambda: etf.etf_gram(3, INF), ValueError, "must be finite"),
    "random_orthonormal: k 0": (lambda: etf.random_orthonormal(3, 0), ValueError, "k (number of columns) must be ≥ 1"),
    "random_rotation: d True": (lambda: etf.random_rotation(True), ValueError, "must be an integer"),
    "random_permutation: C 0": (lambda: etf.random_permutation(0), ValueError, "must be ≥ 1"),
    "permute: NaN P": (lambda: etf.permute(M, torch.full((C, C), NAN)), ValueError, "only 0s and 1s"),
    "permute: NaN M": (lambda: etf.permute(with_nan(M), torch.eye(C)), ValueError, "classifier M (d×C) contains NaN"),
    "rotate: R with one inf": (lambda: etf.rotate(M, torch.eye(D).index_fill(0, torch.tensor([0]), INF)), ValueError, "contains NaN or infinite"),
    "ufm_structure: steps 0": (lambda: etf.ufm_structure(4, 3, steps=0), ValueError, "steps must be ≥ 1"),
    "ufm_structure: lr NaN": (lambda: etf.ufm_structure(4, 3, lr=NAN), ValueError, "lr must be finite"),
    "ufm_structure: logit_scale -1": (lambda: etf.ufm_structure(4, 3, logit_scale=-1.0), ValueError, "logit_scale must be > 0"),
    "ufm_structure: diverging lr": (lambda: etf.ufm_structure(4, 3, lr=1e308, steps=5, restarts=1), FloatingPointError, "diverged"),
    # --- UFM -------------------------------------------------------------------------------------
    "gradient_flow: step NaN": (lambda: ufm.gradient_flow(M, Z, Y, step=NAN, steps=3), ValueError, "step must be finite"),
    "gradient_flow: steps 2.5": (lambda: ufm.gradient_flow(M, Z, Y, step=0.1, steps=2.5), ValueError, "steps must be an integer"),
    "gradient_flow: weight_decay -1": (lambda: ufm.gradient_flow(M, Z, Y, step=0.1, steps=3, weight_decay=-1.0), ValueError, "weight_decay must be ≥ 0"),
    "gradient_flow: snapshots 0": (lambda: ufm.gradient_flow(M, Z, Y, step=0.1, steps=3, snapshots=0), ValueError, "snapshots must be ≥ 1"),
    "gradient_flow: train_features 'no'": (lambda: ufm.gradient_flow(M, Z, Y, step=0.1, steps=3, train_features="no"), ValueError, "True or False"),
    "gradient_flow: zero M0": (lambda: ufm.gradient_flow(torch.zeros(D, C), Z, Y, step=0.1, steps=3), UndefinedMetricError, "gradient_flow at step 0"),
    "gradient_flow: M0 of one column": (lambda: ufm.gradient_flow(M[:, :1], Z, Y, step=0.1, steps=3), ValueError, "C ≥ 2"),
    "ce_loss: shapes": (lambda: ufm.ce_loss(M, Z[:, :3], Y), ValueError, "matching d"),
    "ce_loss: label out of range": (lambda: ufm.ce_loss(M, Z, Y + 1), ValueError, "out of range"),
    "ce_loss: weight_decay NaN": (lambda: ufm.ce_loss(M, Z, Y, NAN), ValueError, "weight_decay must be finite"),
    "direction_cosine: zero matrix": (lambda: ufm.direction_cosine(M, torch.zeros_like(M)), UndefinedMetricError, "A or B is zero"),
    "direction_cosine: shapes": (lambda: ufm.direction_cosine(M, M.T), ValueError, "same shape"),
    "direction_cosine: NaN": (lambda: ufm.direction_cosine(with_nan(M), M), ValueError, "must be finite"),
    "multiclass_svm: float labels 0.5": (lambda: ufm.multiclass_svm(Z, Y + 0.5), ValueError, "non-integer"),
    # --- synthetic -------------------------------------------------------------------------------
    "spiral_arm: c ≥ C": (lambda: synthetic.spiral_arm(3, 3, torch.rand(4)), ValueError, "must be in [0, C)"),
    "spiral_arm: t outside [0, 1]": (lambda: synthetic.spiral_arm(0, 3, torch.tensor([0.5, 2.0])), ValueError, "in [0, 1]"),
    "spiral_arm: NaN t": (lambda: synthetic.spiral_arm(0, 3, torch.tensor([NAN])), ValueError, "finite parameters"),
    "spiral_dataset: per_class 0": (lambda: synthetic.spiral_dataset(3, 0), ValueError, "per_class must be ≥ 1"),
    "spiral_dataset: C 1.5": (lambda: synthetic.spiral_dataset(1.5, 3), ValueError, "must be an integer"),
    "gaussian_mixture: noise NaN": (lambda: synthetic.gaussian_mixture(3, 4, 5, noise=NAN), ValueError, "noise must be finite"),
    "gaussian_mixture: separation -1": (lambda: synthetic.gaussian_mixture(3, 4, 5, separation=-1.0), ValueError, "separation must be ≥ 0"),
    "gaussian_mixture: d < C − 1": (lambda: synthetic.gaussian_mixture(6, 2, 5), ValueError, "ufm_structure"),
    "ball_mixture: radius NaN": (lambda: synthetic.ball_mixture(torch.eye(3), 4, radius=NAN), ValueError, "radius must be finite"),
    "ball_mixture: NaN centres": (lambda: synthetic.ball_mixture(with_nan(torch.eye(3)), 4), ValueError, "centres (d×C) contains NaN"),
    "ball_mixture: per_class 0": (lambda: synthetic.ball_mixture(torch.eye(3), 0), ValueError, "per_class must be ≥ 1"),
    # --- shared checks -----------------------------------------------------------------------------
    "check_int: True": (lambda: check_int(True, "n"), ValueError, "n must be an integer"),
    "check_real: a string": (lambda: check_real("1.0", "x"), ValueError, "x must be a real number"),
}


@pytest.mark.parametrize("case", list(cases))
def test_bad_input_raises_a_clear_error(case):
    fn, exc, phrase = cases[case]
    with pytest.raises(exc) as info:
        fn()
    assert phrase in str(info.value), f"{case}: message was {info.value!s}"


def test_undefined_metric_error_is_a_value_error():
    # Callers that catch ValueError (widgets, chapters) keep working.
    assert issubclass(UndefinedMetricError, ValueError)


# --- the same inputs, fixed instead of refused --------------------------------------------------

def test_huge_features_give_the_scale_free_values():
    # The audit: features ×1e155 made ρ̄ overflow and the scale-free margin read 0.0.
    m0, m1 = metrics.margins(Z, Y, M), metrics.margins(Z * 1e155, Y, M)
    assert m1.scale_free == pytest.approx(m0.scale_free, rel=1e-12)
    assert m1.p_min == pytest.approx(1e155 * m0.p_min, rel=1e-12)
    a, b = metrics.nc_metrics(Z, Y, M), metrics.nc_metrics(Z * 1e155, Y, M * 1e-300)
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-15), key
    assert bounds.linear_rademacher(Z * 1e155, 1.0) == pytest.approx(1e155 * bounds.linear_rademacher(Z, 1.0))
    assert ufm.direction_cosine(M * 1e200, M * 1e200) == pytest.approx(1.0)
    for keep in (True, False):
        got = acc_compute(Z * 1e155, Y, keep_features=keep)
        assert got["nc1"] == pytest.approx(a["nc1"], rel=1e-10)
        assert got["scale_free_margin"] == pytest.approx(m0.scale_free, rel=1e-12)


def test_random_init_features_are_not_degenerate():
    # Epoch 0: no class signal at all, one large common offset. Sampling noise alone separates the
    # class means by ~σ√(C/N), far above the √ε·ρ̄ threshold, so every metric is defined.
    g = torch.Generator().manual_seed(0)
    N = 60_000
    y = torch.arange(10).repeat(N // 10)
    Zr = 50.0 + torch.randn(N, 16, generator=g)
    out = metrics.nc_metrics(Zr, y, torch.randn(16, 10, generator=g))
    assert all(math.isfinite(v) for v in out.values())
    assert out["nc1"] > 100  # no collapse: within ≫ between


def test_margin_bound_with_k_below_the_data_does_not_apply():
    E = etf.simplex_etf(C, D, generator=0)
    Zs = 2.0 * E.T[Y] + 0.05 * torch.randn(len(Y), D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert bounds.margin_bound(Zs, Y, E).applicable
    r = bounds.margin_bound(Zs, Y, E, K=1e-3)
    assert not r.applicable and "K = 0.001 is below the largest observed |gap|" in r.reason


def test_integral_float_labels_are_accepted():
    assert metrics.nc_metrics(Z, Y.double(), M) == metrics.nc_metrics(Z, Y, M)
