"""A classifier with a bias (an ordinary nn.Linear head): the metrics, margins and accumulator take
it and describe the model's own decisions, tested against the model's argmax and logits."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nclib.accumulate import NCAccumulator
from nclib.metrics import classifier_of, margins, nc_metrics, ncc_mismatch


def _model_and_features(seed, C=4, d=6, N=120, bias_scale=2.0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, d))
    head = nn.Linear(d, C, bias=True)
    with torch.no_grad():
        head.bias.copy_(bias_scale * torch.randn(C, generator=g))
    x = torch.randn(N, 5, generator=g)
    y = torch.arange(C).repeat(N // C)
    with torch.no_grad():
        Z = backbone(x)
        logits = head(Z)
    return head, Z, y, logits


def _ncc(Z, y, C):
    means = torch.stack([Z[y == c].double().mean(0) for c in range(C)])
    return torch.cdist(Z.double(), means).argmin(1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_with_the_bias_the_metrics_see_the_models_decisions(seed):
    head, Z, y, logits = _model_and_features(seed)
    M, b = classifier_of(head)
    decision = logits.argmax(1)
    want = (_ncc(Z, y, 4) != decision).double().mean().item()
    assert ncc_mismatch(Z, y, M, bias=b) == pytest.approx(want, abs=1e-12)
    assert nc_metrics(Z, y, M, bias=b)["nc4_ncc_mismatch"] == pytest.approx(want, abs=1e-12)
    acc = NCAccumulator(M, bias=b)
    acc.update(Z, y)
    out = acc.compute()
    assert out["accuracy"] == pytest.approx((decision == y).double().mean().item())
    assert out["nc4_ncc_mismatch"] == pytest.approx(want, abs=1e-12)
    # p_min: the model's smallest logit gap over samples and rival classes
    L = logits.double()
    gap = (L.gather(1, y[:, None]) - L).masked_fill(torch.nn.functional.one_hot(y, 4).bool(), float("inf"))
    assert margins(Z, y, M, bias=b).p_min == pytest.approx(gap.min().item(), rel=1e-5, abs=1e-5)
    stats = NCAccumulator(M, keep_features=False, bias=b)
    stats.update(Z, y)
    assert stats.compute()["accuracy"] == pytest.approx(out["accuracy"])
    assert stats.compute()["p_min"] == pytest.approx(out["p_min"], rel=1e-5, abs=1e-5)


def test_leaving_the_bias_out_describes_another_classifier():
    """The control: without the bias the 'decisions' are another classifier's."""
    head, Z, y, logits = _model_and_features(3, bias_scale=3.0)
    M, b = classifier_of(head)
    decision = logits.argmax(1)
    without = (torch.addmm(torch.zeros(4, dtype=torch.float64), Z.double(), M).argmax(1) != decision).double().mean()
    assert without > 0.2  # a large bias moves many decisions
    acc_with = NCAccumulator(M, bias=b)
    acc_with.update(Z, y)
    acc_without = NCAccumulator(M)
    acc_without.update(Z, y)
    want = (_ncc(Z, y, 4) != decision).double().mean().item()
    assert acc_with.compute()["nc4_ncc_mismatch"] == pytest.approx(want, abs=1e-12)
    assert abs(acc_without.compute()["nc4_ncc_mismatch"] - want) > 0.05


def test_normalized_margins_are_distances_to_the_shifted_hyperplanes():
    """Hand-worked: C = 2, M = [e1, −e1], b = (1, −1): the boundary is z₁ = −1; a point at z₁ = 2 of
    class 0 is 3 away from it; γ = 2·2 + 2 = 6, ‖M_0 − M_1‖ = 2, normalized 3."""
    Z = torch.tensor([[2.0, 0.0], [-4.0, 0.0]])
    y = torch.tensor([0, 1])
    M = torch.tensor([[1.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    m = margins(Z, y, M, bias=torch.tensor([1.0, -1.0]))
    assert m.p_min == pytest.approx(6.0) and m.pairwise_normalized[0, 1].item() == pytest.approx(3.0)


@pytest.mark.parametrize("bad, match", [(torch.zeros(3), "shape"), (torch.tensor([0.0, float("nan"), 0, 0]),
                                                                    "NaN|finite"), ("x", "classifier bias")])
def test_a_bad_bias_is_named(bad, match):
    head, Z, y, _ = _model_and_features(0)
    M, _ = classifier_of(head)
    with pytest.raises((ValueError, TypeError), match=match):
        nc_metrics(Z, y, M, bias=bad)
    with pytest.raises((ValueError, TypeError), match=match):
        NCAccumulator(M, bias=bad)


def test_classifier_of_reads_heads():
    lin = nn.Linear(3, 2, bias=False)
    M, b = classifier_of(lin)
    assert M.shape == (3, 2) and b is None and torch.equal(M, lin.weight.detach().double().T)
    from nclib.models import FixedHead
    from nclib.etf import simplex_etf

    M2, b2 = classifier_of(FixedHead(simplex_etf(3, 4, generator=0)))
    assert M2.shape == (4, 3) and b2 is None
    with pytest.raises(ValueError, match="nn.Linear or an nclib head"):
        classifier_of(nn.ReLU())


def test_bounds_take_the_bias_as_a_linear_classifier_on_augmented_features():
    from nclib.bounds import affine_inputs, covering_bound, hoeffding_bound_of_features, margin_bound

    g = torch.Generator().manual_seed(5)
    C, d = 3, 4
    y = torch.arange(C).repeat_interleave(20)
    from nclib.etf import simplex_etf

    M = simplex_etf(C, d, generator=2)
    b = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)
    Z = 8 * M.T[y] + 0.1 * torch.randn(60, d, generator=g, dtype=torch.float64)
    Za, _, Ma, _ = affine_inputs(Z, y, M, b)
    # by hand: the augmented logits are the model's, and so are the margins
    assert torch.allclose(Za @ Ma, Z @ M + b)
    assert margins(Za, y, Ma).p_min == pytest.approx(margins(Z, y, M, bias=b).p_min)
    by_hand = torch.cat([Z, torch.ones(60, 1, dtype=torch.float64)], 1), torch.cat([M, b[None]], 0)
    assert margin_bound(Z, y, M, bias=b).value == pytest.approx(margin_bound(*by_hand[:1], y, by_hand[1]).value)
    rho = torch.full((C,), float(Za.norm(dim=1).max()), dtype=torch.float64)
    assert (hoeffding_bound_of_features(Z, y, M, rho, bias=b)[0].value
            == pytest.approx(hoeffding_bound_of_features(by_hand[0], y, by_hand[1], rho)[0].value))
    supports = [Z[y == c] for c in range(C)]
    with_bias = covering_bound(Z, y, M, supports, 1.0, bias=b)
    assert with_bias.applicable and with_bias.value == pytest.approx(covering_bound(*by_hand[:1], y, by_hand[1], supports, 1.0).value)
    with pytest.raises(ValueError, match="bias"):
        margin_bound(Z, y, M, bias=torch.ones(C + 1))
