"""nclib.bounds against hand-computed cases, limits and invariances."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from nclib.bounds import (
    corollary_45,
    covering_bound,
    covering_bound_of_model,
    greedy_cover,
    hoeffding_bound,
    hoeffding_bound_of_features,
    hoeffding_H,
    linear_rademacher,
    lipschitz_lower,
    lipschitz_upper,
    margin_bound,
    rademacher_monte_carlo,
)
from nclib.etf import simplex_etf
from nclib.metrics import margins


def two_class_line():
    # Class 0 at z ∈ {1, 2}, class 1 at z ∈ {−1, −3}, M = [[1, −1]] (d = 1, C = 2).
    Z = torch.tensor([[1.0], [2.0], [-1.0], [-3.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    M = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    return Z, y, M


def test_margin_bound_by_hand():
    Z, y, M = two_class_line()
    r = margin_bound(Z, y, M)
    # Gaps ⟨M_y − M_y', z⟩ = 2z for class 0 → {2, 4}; −2z for class 1 → {2, 6}. γ = 2, K = 6.
    # B = ‖M_0 − M_1‖ = 2; R_0 = 2·√(1+4)/2 = √5, R_1 = 2·√(1+9)/2 = √10; p = (½, ½).
    A = 0.5 * (math.sqrt(5) / 2) + 0.5 * (math.sqrt(10) / 2)
    Bterm = 2 * 0.5 * math.sqrt(math.log(math.log2(4 * 6 / 2)) / 2)
    L01 = 0.5 * (1 / 2) + 0.5 * (1 / 2)  # the sample at the margin counts (≤ γ) in each class
    assert r.applicable and r.terms["K"] == 6.0
    assert r.terms["A"] == pytest.approx(A)
    assert r.terms["B"] == pytest.approx(Bterm)
    assert r.terms["L01"] == pytest.approx(L01)
    assert r.value == pytest.approx(A + Bterm + L01)
    assert r.vacuous  # ≥ 1: an error bound that says nothing


def test_margin_bound_with_smaller_margins_counts_fewer_samples():
    Z, y, M = two_class_line()
    gamma = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    assert margin_bound(Z, y, M, gamma=gamma).terms["L01"] == 0.0


def test_margin_bound_not_applicable_when_not_separable():
    Z, y, M = two_class_line()
    r = margin_bound(Z, y, -M)
    assert not r.applicable and "not linearly separable" in r.reason and r.value is None
    assert "not applicable" in r.describe()


def test_corollary_45_matches_theorem_44_on_balanced_symmetric_data():
    C, d = 4, 5
    M = simplex_etf(C, d, generator=1)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(C).repeat_interleave(6)
    Z = 2.0 * M.T[y] + 0.2 * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    r = margin_bound(Z, y, M)
    gamma = margins(Z, y, M).pairwise.nan_to_num(1.0)
    # Corollary 4.5 has one R_{N/C}(F) for all classes: feed it each class's estimate in turn and
    # compare with Theorem 4.4's (A), which averages them with weights p(y) = 1/C.
    rad = torch.tensor(r.terms["rademacher"], dtype=torch.float64)
    off = ~torch.eye(C, dtype=torch.bool)
    per_class_A = [(rad[c] / gamma[c][off[c]]).sum().item() / C for c in range(C)]
    assert sum(per_class_A) == pytest.approx(r.terms["A"], rel=1e-12)
    # With a common R the corollary's (A) is exactly R/C Σ_y Σ_y' 1/γ, and (B) matches exactly.
    R = rad.mean().item()
    cor = corollary_45(R, gamma, r.terms["K"], len(y))
    assert cor["A"] == pytest.approx(R / C * (1 / gamma[off]).sum().item(), rel=1e-12)
    assert cor["B"] == pytest.approx(r.terms["B"], rel=1e-12)
    with pytest.raises(ValueError, match="positive"):
        corollary_45(R, -gamma, r.terms["K"], len(y))


@given(seed=st.integers(0, 10**6), a=st.floats(0.05, 20.0), b=st.floats(0.05, 20.0))
def test_margin_bound_is_scale_free(seed, a, b):
    C, d = 3, 4
    M = simplex_etf(C, d, generator=seed)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(8)
    Z = 2.0 * M.T[y] + 0.2 * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    r0, r1 = margin_bound(Z, y, M), margin_bound(b * Z, y, a * M)
    for key in ("A", "B", "L01"):
        assert r1.terms[key] == pytest.approx(r0.terms[key], rel=1e-9, abs=1e-12)


def test_rademacher_closed_form_bounds_monte_carlo():
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(40, 3, generator=g, dtype=torch.float64)
    closed, mc = linear_rademacher(Z, 2.0), rademacher_monte_carlo(Z, 2.0, draws=20000, generator=1)
    # Jensen: E‖Σσz‖ ≤ (E‖Σσz‖²)^{1/2} = (Σ‖z‖²)^{1/2}; and it is tight up to a constant.
    assert mc <= closed * 1.01 and mc > 0.8 * closed


def test_greedy_cover_on_a_segment():
    points = torch.linspace(0, 1, 2001, dtype=torch.float64)[:, None]
    for eps in (0.3, 0.1, 0.01):
        centres = greedy_cover(points, eps)
        # Valid cover: every point within ε of a centre.
        dist = (points - points[centres].T).abs().min(dim=1).values
        assert dist.max() <= eps + 1e-12
        # N(ε) = ⌈1/(2ε)⌉ for a segment of length 1; a greedy net lies between N(ε) and N(ε/2)+1.
        assert math.ceil(1 / (2 * eps)) <= len(centres) <= math.ceil(1 / eps) + 1
    with pytest.raises(ValueError, match="positive"):
        greedy_cover(points, 0.0)


def test_lipschitz_estimates_bracket_a_linear_map():
    A = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    net[0].weight.data = A
    X = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    lo, hi = lipschitz_lower(net, X, generator=0), lipschitz_upper(net)
    assert hi == pytest.approx(3.0, rel=1e-6)
    assert 2.9 < lo <= hi * (1 + 1e-4)  # float32 rounding of tiny differences


def test_lipschitz_lower_below_upper_for_a_relu_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    X = torch.randn(300, 2)
    assert lipschitz_lower(net, X, generator=1) <= lipschitz_upper(net)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        lipschitz_upper(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


def test_covering_bound_checks_its_size_assumption():
    # Two classes on two far-apart segments, identity features (L = 1), M separating them.
    t = torch.linspace(0, 1, 200, dtype=torch.float64)
    seg0 = torch.stack([t, torch.zeros_like(t) + 2.0], 1)
    seg1 = torch.stack([t, torch.zeros_like(t) - 2.0], 1)
    M = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    idx = torch.arange(0, 200, 4)
    Z = torch.cat([seg0[idx], seg1[idx]])
    y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    r = covering_bound(Z, y, M, [seg0, seg1], lipschitz=1.0)
    # γ = 4 (gap 2·2), ‖M_0 − M_1‖ = 2, so γ̂ = 2: one ball covers each unit segment.
    assert r.applicable and r.terms["worst_covering"] == [1, 1]
    assert r.value == pytest.approx(1 - 2 / 200)
    short = covering_bound(Z, y, M, [seg0, seg1], lipschitz=250.0)  # γ̂ = 0.008: ~67 balls > 50 samples
    assert not short.applicable and "assumption" in short.reason
    assert 50 < short.terms["worst_covering"][0] < 200
    # γ̂ = 0.002 is below half the sampling step (1/199): every sampled point is its own ball
    tiny = covering_bound(Z, y, M, [seg0, seg1], lipschitz=1000.0)
    assert not tiny.applicable and "saturated" in tiny.reason and tiny.terms["worst_covering"] == [200, 200]


def test_covering_bound_of_model_is_the_bound_on_its_features_with_both_lipschitz_estimates():
    # the two segments of the test above, pushed through a known network: features = 2·x, so the
    # Lipschitz constant is 2 from above (spectral norm) and, measured, from below
    from nclib.data import TensorDataset
    from nclib.models import FixedHead, NCModel

    t = torch.linspace(0, 1, 200, dtype=torch.float64)
    seg0 = torch.stack([t, torch.zeros_like(t) + 2.0], 1).float()
    seg1 = torch.stack([t, torch.zeros_like(t) - 2.0], 1).float()
    idx = torch.arange(0, 200, 4)
    data = TensorDataset(torch.cat([seg0[idx], seg1[idx]]), torch.cat([torch.zeros(50), torch.ones(50)]).long(), ["a", "b"])
    backbone = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        backbone[0].weight.copy_(2 * torch.eye(2))
    M = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    model = NCModel(backbone, FixedHead(M))
    support = torch.cat([seg0, seg1])
    out = covering_bound_of_model(model, data, [seg0, seg1], support, generator=0)
    assert out["L_upper"] == pytest.approx(2.0)
    assert out["L_lower"] == pytest.approx(lipschitz_lower(backbone, support, generator=0))
    for tag in ("lower", "upper"):
        direct = covering_bound(2 * data.x.double(), data.y, M, [seg0, seg1], out[f"L_{tag}"])
        assert out[f"bound_{tag}"].value == pytest.approx(direct.value)
    assert "L_upper" not in covering_bound_of_model(model, data, [seg0, seg1], support, upper=False)
    with pytest.raises(TypeError, match="classifier_matrix"):
        covering_bound_of_model(backbone, data, [seg0, seg1], support)


def test_hoeffding_bound_of_features_takes_the_smallest_normalized_margin_per_class():
    g = torch.Generator().manual_seed(0)
    M = simplex_etf(4, 3, generator=1)
    y = torch.arange(4).repeat_interleave(25)
    Z = 3 * M.T[y] + 0.05 * torch.randn(100, 3, generator=g, dtype=torch.float64)
    rho = Z.norm(dim=1).new_tensor([Z[y == c].norm(dim=1).max() for c in range(4)])
    result, gamma = hoeffding_bound_of_features(Z, y, M, rho)
    # by hand: γ̂_y = min over y' of min_{i in y} ⟨M_y − M_y', z_i⟩ / ‖M_y − M_y'‖ (and its mirror)
    by_hand = torch.full((4,), math.inf, dtype=torch.float64)
    for a in range(4):
        for b in range(4):
            if a != b:
                diff = M[:, a] - M[:, b]
                gap = min((Z[y == a] @ diff).min(), -(Z[y == b] @ diff).max()) / diff.norm()
                by_hand[a] = min(by_hand[a], gap)
    assert torch.allclose(gamma, by_hand)
    assert result.value == pytest.approx(hoeffding_bound(by_hand, rho, 3, 100, 4).value)
    # features that do not separate the sample: the theorem does not apply, and says why
    mixed, _ = hoeffding_bound_of_features(torch.randn(100, 3, generator=g, dtype=torch.float64), y, M, rho)
    assert not mixed.applicable and "separate" in mixed.reason and mixed.value is None


def test_hoeffding_H_by_hand_and_limits():
    assert hoeffding_H(2.0, 3, 0.5, 9).item() == pytest.approx(math.exp(-9 * 4 / (8 * 9 * 0.25)))
    # As n → ∞ both H terms vanish and the bound tends to 1 (here with a positive margin).
    values = [hoeffding_bound(torch.full((3,), 0.5), torch.ones(3), 2, N, 3).value for N in (30, 3000, 300000)]
    assert values[0] < values[1] < values[2] and values[2] == pytest.approx(1.0, abs=1e-9)
    small = hoeffding_bound(torch.full((3,), 0.5), torch.ones(3), 2, 30, 3)
    assert small.vacuous


def test_hoeffding_bound_cannot_see_the_sign_of_the_margin():
    # H depends on α² only: margins g and 2√n − g give the same bound (the printed statement's flaw).
    n = 100.0
    a = hoeffding_bound(torch.full((2,), 1.0), torch.ones(2), 2, 200, 2)
    b = hoeffding_bound(torch.full((2,), 2 * math.sqrt(n) - 1.0), torch.ones(2), 2, 200, 2)
    assert a.value == pytest.approx(b.value)
    with pytest.raises(ValueError, match="ρ > 0"):
        hoeffding_H(1.0, 2, 0.0, 10)
    with pytest.raises(ValueError, match="one entry per class"):
        hoeffding_bound(torch.ones(3), torch.ones(2), 2, 10, 2)


@given(
    st.lists(st.floats(0.01, 10.0), min_size=2, max_size=5),
    st.floats(0.1, 100.0),
    st.integers(1, 64),
    st.integers(1, 500),
)
def test_hoeffding_bound_goes_to_one_when_features_shrink(gaps, rho, d, per_class):
    # Multiplying every feature by a > 0 changes no prediction, yet the bound as printed tends to 1
    # as a → 0 for any separated sample: the scale dependence chapter 6 turns into a counterexample.
    C = len(gaps)
    g, r = torch.tensor(gaps, dtype=torch.float64), torch.full((C,), rho, dtype=torch.float64)
    a = 1e-3 * math.sqrt(per_class) / (d * rho)
    shrunk = hoeffding_bound(a * g, a * r, d, per_class * C, C)
    assert shrunk.value > 0.99
    assert shrunk.value >= hoeffding_bound(g, r, d, per_class * C, C).value - 1e-12
