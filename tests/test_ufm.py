"""nclib.ufm: gradient flow on equation (1) and the multiclass SVM."""

import numpy as np
import pytest
import torch

from nclib.etf import simplex_etf
from nclib.ufm import ce_loss, direction_cosine, gradient_flow, multiclass_svm


def small_problem(seed=0, C=3, d=4, n=5):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(n)
    return (0.1 * torch.randn(d, C, generator=g, dtype=torch.float64),
            0.1 * torch.randn(C * n, d, generator=g, dtype=torch.float64), y)


def test_ce_loss_is_the_summed_cross_entropy():
    M, Z, y = small_problem()
    logits = (Z @ M).numpy()
    by_hand = -sum(logits[i, y[i]] - np.log(np.exp(logits[i]).sum()) for i in range(len(y)))
    assert ce_loss(M, Z, y).item() == pytest.approx(by_hand, rel=1e-12)
    wd = ce_loss(M, Z, y, weight_decay=0.3).item() - by_hand
    assert wd == pytest.approx(0.15 * (M.pow(2).sum() + Z.pow(2).sum()).item(), rel=1e-10)


@pytest.mark.parametrize("train_features", [True, False])
def test_small_step_gradient_flow_decreases_ce_monotonically(train_features):
    M, Z, y = small_problem(1)
    Z = Z + 2.0 * torch.eye(3, 4, dtype=torch.float64)[y]  # separable, so the loss can go to zero
    path = gradient_flow(M, Z, y, step=0.01, steps=3000, train_features=train_features, snapshots=200)
    assert np.all(np.diff(path.loss) <= 1e-12)
    assert path.loss[-1] < 0.5 * path.loss[0]


def test_gradient_flow_separates_and_grows_p_min():
    M, Z, y = small_problem(2)
    path = gradient_flow(M, Z, y, step=0.02, steps=8000, snapshots=30)
    assert path.p_min[0] < 0 < path.p_min[-1]
    late = np.asarray(path.p_min[-10:])
    assert np.all(np.diff(late) > 0)


def test_clock_normalized_flow_follows_the_same_path():
    # The normalized flow is a change of clock: compare the direction of M at matching loss.
    M, _, y = small_problem(3)
    g = torch.Generator().manual_seed(3)
    Z = 2.0 * torch.eye(3, 4, dtype=torch.float64)[y] + 0.3 * torch.randn(len(y), 4, generator=g, dtype=torch.float64)
    plain = gradient_flow(M, Z, y, step=0.01, steps=4000, train_features=False, snapshots=2)
    target = plain.loss[-1]
    norm = gradient_flow(M, Z, y, step=1e-3, steps=20000, train_features=False, normalized=True, snapshots=400)
    k = int(np.argmin(np.abs(np.log(np.asarray(norm.loss)) - np.log(target))))
    assert abs(np.log(norm.loss[k]) - np.log(target)) < 0.05
    assert direction_cosine(norm.M[k], plain.M[-1]) > 0.999


def test_svm_on_etf_features_has_the_closed_form_solution():
    # z_i = M*_{y_i} with a unit simplex ETF M*: by symmetry M = c M*, and the constraint
    # c⟨M*_y − M*_{y'}, M*_y⟩ = c(1 + 1/(C−1)) = 1 gives c = (C−1)/C.
    C, d = 5, 6
    E = simplex_etf(C, d, generator=0)
    y = torch.arange(C).repeat(3)
    S = multiclass_svm(E.T[y], y)
    assert torch.allclose(S, (C - 1) / C * E, atol=1e-6)


def test_svm_two_points_on_a_line():
    # Two classes at z = ±1 in one dimension: min ½(m0² + m1²) s.t. m0 − m1 ≥ 1 → m = (½, −½).
    Z = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    S = multiclass_svm(Z, torch.tensor([0, 1]))
    assert torch.allclose(S, torch.tensor([[0.5, -0.5]], dtype=torch.float64), atol=1e-7)


def test_svm_rejects_non_separable_features():
    Z = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="not linearly separable"):
        multiclass_svm(Z, torch.tensor([0, 1]))


def test_gradient_flow_bad_input():
    M, Z, y = small_problem()
    with pytest.raises(ValueError, match="step must be > 0"):
        gradient_flow(M, Z, y, step=0.0, steps=10)
    with pytest.raises(FloatingPointError, match="lower the step"):
        gradient_flow(M * 100, Z * 100, y, step=50.0, steps=200)
