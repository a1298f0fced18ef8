"""nclib.related (chapter 9) against brute force, finite differences, closed forms and direct
optimization."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

from nclib import related
from nclib.etf import random_orthonormal, random_rotation, simplex_etf
from nclib.related import (
    LinearTailMLP,
    MeanFieldThreeLayer,
    balancedness,
    feature_condition_number,
    gaussian_mixture,
    linear_tail_metrics,
    mean_field_gradient_norm,
    orthogonal_frame_error,
    train_linear_tail,
    train_mean_field,
    training_memory,
    ufm_wd_gradient_descent,
    ufm_wd_hessian,
    ufm_wd_loss,
    ufm_wd_optimum,
    ufm_wd_origin_spectrum,
)

LAMS = (0.05, 0.02, 0.01)  # λ_M, λ_Z, λ_b


@pytest.fixture
def one_thread():
    """Loops of many tiny steps: a second thread only adds synchronization (and, on a shared
    machine, waiting), so these tests run single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_ufm(seed=0, C=3, d=3, n=2, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(n)
    f64 = dict(dtype=torch.float64, generator=g)
    return (scale * torch.randn(d, C, **f64), scale * torch.randn(n * C, d, **f64),
            scale * torch.randn(C, **f64), y)


# --- Zhu et al.: the loss --------------------------------------------------------------------

def test_ufm_loss_matches_a_loop_and_batches():
    M, Z, b, y = tiny_ufm()
    lM, lZ, lb = LAMS
    Mn, Zn, bn = M.numpy(), Z.numpy(), b.numpy()
    ce = 0.0
    for i in range(len(y)):
        logits = Mn.T @ Zn[i] + bn
        ce += np.log(np.exp(logits).sum()) - logits[y[i]]
    expected = ce / len(y) + lM / 2 * (Mn**2).sum() + lZ / 2 * (Zn**2).sum() + lb / 2 * (bn**2).sum()
    assert ufm_wd_loss(M, Z, b, y, *LAMS).item() == pytest.approx(expected, rel=1e-12)
    M2, Z2, b2, _ = tiny_ufm(1)
    batched = ufm_wd_loss(torch.stack([M, M2]), torch.stack([Z, Z2]), torch.stack([b, b2]), y, *LAMS)
    assert batched[1].item() == pytest.approx(ufm_wd_loss(M2, Z2, b2, y, *LAMS).item(), rel=1e-12)


def test_ufm_closed_form_gradient_matches_autograd():
    M, Z, b, y = tiny_ufm(2)
    Y = F.one_hot(y, 3).double()
    value, grads = related.ufm_wd_value_and_grad(M, Z, b, Y, *LAMS)
    params = [t.clone().requires_grad_(True) for t in (M, Z, b)]
    auto = torch.autograd.grad(ufm_wd_loss(*params, y, *LAMS), params)
    assert value.item() == pytest.approx(ufm_wd_loss(M, Z, b, y, *LAMS).item(), rel=1e-12)
    for a, c in zip(grads, auto):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_ufm_loss_rejects_inconsistent_shapes():
    M, Z, b, y = tiny_ufm()
    with pytest.raises(ValueError, match="inconsistent"):
        ufm_wd_loss(M, Z[:, :2], b, y, *LAMS)
    with pytest.raises(ValueError, match="expected"):
        ufm_wd_loss(M, Z, b[None], y, *LAMS)
    with pytest.raises(ValueError, match="labels"):
        ufm_wd_loss(M, Z, b, y + 1, *LAMS)


# --- Zhu et al.: the closed-form optimum ------------------------------------------------------

def _direct_minimum(C, d, n, lM, lZ, lb, seed):
    """Minimize the UFM objective over all of (M, Z, b) with SciPy's L-BFGS, from a random start."""
    y = torch.arange(C).repeat_interleave(n)
    P = d * C + n * C * d + C

    def fun(x):
        th = torch.tensor(x, requires_grad=True)
        val = ufm_wd_loss(*related.ufm_unflatten(th, d, C, n * C), y, lM, lZ, lb)
        (grad,) = torch.autograd.grad(val, th)
        return val.item(), grad.numpy()

    x0 = np.random.default_rng(seed).normal(size=P)
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-15})
    return res.fun


@pytest.mark.parametrize("C,d,n,lM,lZ", [(3, 3, 2, 0.05, 0.02), (4, 5, 3, 0.01, 0.03), (3, 2, 4, 0.02, 0.02)])
def test_closed_form_optimum_matches_direct_optimization(C, d, n, lM, lZ):
    opt = ufm_wd_optimum(C, n, lM, lZ)
    assert not opt.collapsed_to_zero
    assert _direct_minimum(C, d, n, lM, lZ, 0.01, seed=C + d) == pytest.approx(opt.value, abs=1e-8)


def test_closed_form_point_is_stationary_with_the_stated_value():
    C, d, n, lM, lZ, lb = 4, 5, 3, 0.01, 0.03, 0.02
    opt = ufm_wd_optimum(C, n, lM, lZ)
    M = simplex_etf(C, d, scale=opt.class_norm, generator=0)
    Z = (opt.feature_norm / opt.class_norm) * M.T[torch.arange(C).repeat_interleave(n)]
    b = torch.zeros(C, dtype=torch.float64)
    y = torch.arange(C).repeat_interleave(n)
    params = [t.clone().requires_grad_(True) for t in (M, Z, b)]
    value = ufm_wd_loss(*params, y, lM, lZ, lb)
    grads = torch.autograd.grad(value, params)
    assert value.item() == pytest.approx(opt.value, rel=1e-12)
    assert max(g.abs().max().item() for g in grads) < 1e-12
    assert (Z @ M)[0, 0].item() == pytest.approx(opt.own_logit, rel=1e-12)


def test_large_weight_decay_collapses_to_the_origin():
    C, n, lam = 3, 2, 0.5  # C·√(n)·λ = 2.1 ≥ 1
    opt = ufm_wd_optimum(C, n, lam, lam)
    assert opt.collapsed_to_zero and opt.value == pytest.approx(math.log(C))
    assert _direct_minimum(C, 3, n, lam, lam, 0.1, seed=1) == pytest.approx(math.log(C), abs=1e-8)


def test_optimum_rejects_bad_input():
    with pytest.raises(ValueError, match="C ≥ 2"):
        ufm_wd_optimum(1, 3, 0.1, 0.1)
    with pytest.raises(ValueError, match="lam_Z"):
        ufm_wd_optimum(3, 3, 0.1, 0.0)
    with pytest.raises(ValueError, match="n ≥ 1"):
        ufm_wd_optimum(3, 0, 0.1, 0.1)


def test_gradient_descent_reaches_the_closed_form_optimum_from_every_start(one_thread):
    C, d, n, lam = 4, 4, 3, 0.01
    y = torch.arange(C).repeat_interleave(n)
    runs = ufm_wd_gradient_descent(y, d, lam, lam, lam, runs=6, steps=1000, lr=4.0,
                                   init_scale=[1e-3, 0.01, 0.1, 0.5, 1.0, 2.0], generator=3)
    opt = ufm_wd_optimum(C, n, lam, lam)
    assert (runs.final_loss - opt.value).abs().max() < 1e-9
    assert runs.loss_history.shape == (len(runs.steps), 6)
    with pytest.raises(ValueError, match="init_scale"):
        ufm_wd_gradient_descent(y, d, lam, lam, lam, runs=3, steps=2, init_scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="lr"):
        ufm_wd_gradient_descent(y, d, lam, lam, lam, runs=1, steps=2, lr=-1.0)


# --- Zhu et al.: the Hessian ------------------------------------------------------------------

def test_hessian_matches_finite_differences_of_the_gradient():
    M, Z, b, y = tiny_ufm(4, C=3, d=2, n=2)
    d, C, N = 2, 3, 6
    H = ufm_wd_hessian(M, Z, b, y, *LAMS)
    theta = torch.cat([M.reshape(-1), Z.reshape(-1), b])

    def grad(th):
        th = th.clone().requires_grad_(True)
        return torch.autograd.grad(ufm_wd_loss(*related.ufm_unflatten(th, d, C, N), y, *LAMS), th)[0]

    h = 1e-5
    fd = torch.stack([(grad(theta + h * e) - grad(theta - h * e)) / (2 * h)
                      for e in torch.eye(len(theta), dtype=torch.float64)], dim=1)
    torch.testing.assert_close(H, fd, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("C,d,n", [(3, 3, 2), (4, 2, 1), (2, 3, 3)])
def test_origin_spectrum_in_closed_form(C, d, n):
    zeros = (torch.zeros(d, C, dtype=torch.float64), torch.zeros(n * C, d, dtype=torch.float64),
             torch.zeros(C, dtype=torch.float64))
    y = torch.arange(C).repeat_interleave(n)
    H = ufm_wd_hessian(*zeros, y, *LAMS)
    np.testing.assert_allclose(np.linalg.eigvalsh(H.numpy()), ufm_wd_origin_spectrum(C, d, n, *LAMS), atol=1e-12)


@given(C=st.integers(2, 6), n=st.integers(1, 8), lM=st.floats(1e-3, 1.0), lZ=st.floats(1e-3, 1.0))
def test_origin_is_a_strict_saddle_exactly_when_it_is_not_the_minimum(C, n, lM, lZ):
    negative = ufm_wd_origin_spectrum(C, 2, n, lM, lZ, 0.01)[0] < 0
    sigma = math.sqrt(n * lM * lZ)
    if abs(C * sigma - 1) > 1e-9:
        assert negative == (not ufm_wd_optimum(C, n, lM, lZ).collapsed_to_zero)


def test_hessian_rejects_large_instances():
    with pytest.raises(ValueError, match="smaller instance"):
        ufm_wd_hessian(torch.zeros(60, 10), torch.zeros(100, 60), torch.zeros(10), torch.arange(10).repeat(10), *LAMS)


# --- Zhu et al.: memory accounting ------------------------------------------------------------

def test_training_memory_counts_every_category_exactly():
    B, d_in, d_out = 8, 5, 7
    model = torch.nn.Linear(d_in, d_out, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(B, d_in), torch.zeros(B)
    # (x W^T)² summed: mm saves x (the input) and W (a parameter); pow saves its input, B×d_out.
    mem = training_memory(model, opt, x, y, loss_fn=lambda out, _: out.pow(2).sum())
    n_param_bytes = d_in * d_out * 4
    assert (mem.parameters, mem.gradients, mem.optimizer_state) == (n_param_bytes,) * 3
    assert mem.input == B * d_in * 4
    assert mem.saved_activations == B * d_out * 4
    assert mem.buffers == 0
    assert mem.total == 3 * n_param_bytes + B * d_in * 4 + B * d_out * 4


def test_training_memory_separates_buffers_and_rejects_bad_batches():
    from nclib.models import FixedHead, NCModel

    model = NCModel(torch.nn.Linear(4, 3, bias=False), FixedHead(simplex_etf(3, 3, generator=0)))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    mem = training_memory(model, opt, torch.randn(6, 4), torch.arange(3).repeat(2))
    assert mem.buffers == 9 * 4 and mem.optimizer_state == 0  # no momentum: no state
    with pytest.raises(ValueError, match="same positive number"):
        training_memory(model, opt, torch.randn(6, 4), torch.arange(3))


# --- Jacot et al.: balancedness ---------------------------------------------------------------

def test_balancedness_brute_force_and_balanced_pair():
    g = torch.Generator().manual_seed(5)
    A, B = torch.randn(4, 6, generator=g), torch.randn(3, 4, generator=g)
    An, Bn = A.double().numpy(), B.double().numpy()
    num = np.linalg.norm(Bn.T @ Bn - An @ An.T)
    expected = num / (np.linalg.norm(Bn.T @ Bn) + np.linalg.norm(An @ An.T))
    assert balancedness(A, B) == pytest.approx(expected, rel=1e-10)
    assert balancedness(A, B, relative=False) == pytest.approx(num, rel=1e-10)
    # A balanced pair: W_l = U S Vᵀ, W_{l+1} = P S Uᵀ with orthonormal U, V, P.
    U, V, P = random_orthonormal(4, 4, 1), random_orthonormal(6, 4, 2), random_orthonormal(3, 3, 3)
    S = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64))
    W_l = U @ S @ V.T
    W_u = P @ S[:3] @ U.T
    assert balancedness(W_l, W_u) < 1e-12
    assert balancedness(torch.zeros(2, 3), torch.zeros(4, 2)) == 0.0


@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_balancedness_is_invariant_under_orthogonal_change_of_basis(seed, scale):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(5, 7, generator=g, dtype=torch.float64)
    B = torch.randn(3, 5, generator=g, dtype=torch.float64)
    Q = random_rotation(5, generator=seed + 1)
    value = balancedness(A, B)
    assert 0.0 <= value <= 1.0
    assert balancedness(Q @ A, B @ Q.T) == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert balancedness(scale * A, scale * B) == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_balancedness_rejects_bad_input():
    with pytest.raises(ValueError, match="do not compose"):
        balancedness(torch.randn(4, 6), torch.randn(3, 5))
    with pytest.raises(ValueError, match="matrices"):
        balancedness(torch.randn(4), torch.randn(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        balancedness(torch.full((2, 2), float("nan")), torch.randn(2, 2))


def test_weight_decay_balances_linear_layers_at_rate_two_lambda(one_thread):
    # Plain GD: D_{k+1} = (1 − ηλ)² D_k + η²(…), so ‖D_k‖ ≈ (1 − ηλ)^{2k} ‖D_0‖ for small η.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    y = torch.arange(4).repeat(10)
    torch.manual_seed(0)
    net = LinearTailMLP(6, 16, 4, depth=1, linear_depth=3, hidden=8)
    lr, lam, steps = 0.01, 0.05, 200
    log = train_linear_tail(net, x, y, lr=lr, weight_decay=lam, steps=steps, log_every=50)
    D0 = np.array(log[0]["unbalance_norm"])
    for rec in log[1:]:
        predicted = D0 * (1 - lr * lam) ** (2 * rec["step"])
        np.testing.assert_allclose(rec["unbalance_norm"], predicted, rtol=0.02)
    assert log[-1]["balancedness"][0] < log[0]["balancedness"][0]


def test_train_linear_tail_rejects_bad_input():
    net = LinearTailMLP(3, 4, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="momentum"):
        train_linear_tail(net, x, y, lr=0.1, weight_decay=0.0, steps=1, momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        train_linear_tail(net, x, y, lr=0.1, weight_decay=-1.0, steps=1)


# --- Jacot et al.: conditioning, frames, the model --------------------------------------------

def test_feature_condition_number_against_known_singular_values():
    U, V = random_orthonormal(10, 4, 0), random_orthonormal(6, 4, 1)
    X = U @ torch.diag(torch.tensor([10.0, 5.0, 1.0, 0.0], dtype=torch.float64)) @ V.T
    kappa, rank = feature_condition_number(X)
    assert rank == 3 and kappa == pytest.approx(10.0, rel=1e-10)
    s = np.linalg.svd(X.numpy(), compute_uv=False)
    assert kappa == pytest.approx(s[0] / s[2], rel=1e-10)
    with pytest.raises(ValueError, match="zero"):
        feature_condition_number(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="rtol"):
        feature_condition_number(X, rtol=0.0)


def test_orthogonal_frame_error():
    C, n = 4, 3
    y = torch.arange(C).repeat_interleave(n)
    Q = random_orthonormal(6, C, 0)
    Z = 2.5 * Q.T[y]
    assert orthogonal_frame_error(Z, y) < 1e-12
    assert orthogonal_frame_error(7.0 * Z, y) < 1e-12
    etf = simplex_etf(C, 6, generator=0).T[y]  # an ETF is not orthogonal
    G = torch.full((C, C), -1.0 / (C - 1)) + torch.eye(C) * (1 + 1.0 / (C - 1))
    expected = (G / G.norm() - torch.eye(C) / 2.0).norm().item()
    assert orthogonal_frame_error(etf, y) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="zero"):
        orthogonal_frame_error(torch.zeros(8, 3), torch.arange(4).repeat(2))


def test_linear_tail_mlp_structure_and_metrics():
    with pytest.raises(ValueError, match="two linear layers"):
        LinearTailMLP(5, 8, 3, linear_depth=1)
    torch.manual_seed(0)
    net = LinearTailMLP(5, 8, 3, depth=2, linear_depth=3, hidden=4)
    assert all(layer.bias is None for layer in net.linear)
    x = torch.randn(12, 5)
    y = torch.arange(3).repeat(4)
    inputs = net.layer_inputs(x)
    assert [t.shape[1] for t in inputs] == [8, 4, 4]
    torch.testing.assert_close(net(x), net.linear[-1](inputs[-1]))
    m = linear_tail_metrics(net, x, y)
    assert len(m["balancedness"]) == 2
    Ws = net.linear_weights()
    assert m["balancedness"][1] == pytest.approx(balancedness(Ws[1], Ws[2]))
    assert 0.0 <= m["train_accuracy"] <= 1.0 and m["rank"] <= 8


# --- Wu & Mondelli ----------------------------------------------------------------------------

def test_mean_field_features_are_the_scaled_sum_over_neurons():
    net = MeanFieldThreeLayer(3, 5, 4, 2, generator=0)
    x = torch.randn(6, 3)
    by_hand = sum(net.a[:, j][None, :] * torch.tanh(x @ net.w[j])[:, None] for j in range(5)) / 5
    torch.testing.assert_close(net.features(x), by_hand)
    torch.testing.assert_close(net(x), by_hand @ net.W.T)


def test_mean_field_gradient_norm_formula():
    net = MeanFieldThreeLayer(3, 5, 4, 2, generator=1)
    with pytest.raises(ValueError, match="backward"):
        mean_field_gradient_norm(net)
    net(torch.randn(6, 3)).pow(2).sum().backward()
    particle = sum((net.w.grad[j].pow(2).sum() + net.a.grad[:, j].pow(2).sum()).item() for j in range(5))
    expected = math.sqrt(5 * particle + net.W.grad.pow(2).sum().item())
    assert mean_field_gradient_norm(net) == pytest.approx(expected, rel=1e-6)


def test_mean_field_training_collapses_on_separated_data(one_thread):
    x, y, centres = gaussian_mixture(3, 20, 8, 2.0, generator=0)
    xt, yt, _ = gaussian_mixture(3, 50, 8, 2.0, generator=1, centres=centres)
    net = MeanFieldThreeLayer(8, 64, 8, 3, generator=0)
    h = train_mean_field(net, x, y, xt, yt, lr=0.5, steps=300, weight_decay=1e-3, log_every=50)
    assert h["mse"][-1] < 0.1 * h["mse"][0]
    assert h["nc1"][-1] < 0.1 * h["nc1"][0]
    assert h["test_error"][-1] < 0.05
    assert list(h["step"]) == [0, 50, 100, 150, 200, 250, 300]
    with pytest.raises(ValueError, match="lr"):
        train_mean_field(net, x, y, xt, yt, lr=0.0, steps=1)


def test_gaussian_mixture_geometry_and_errors():
    x, y, centres = gaussian_mixture(4, 5, 9, 1.5, noise=2.0, generator=0)
    assert x.shape == (20, 9) and torch.bincount(y).tolist() == [5] * 4
    dist = (centres[0] - centres[1]).norm().item()
    assert dist == pytest.approx(1.5 * 2.0 * 3.0, rel=1e-10)
    with pytest.raises(ValueError, match="dim ≥ C"):
        gaussian_mixture(5, 3, 4, 1.0)
    with pytest.raises(ValueError, match="noise"):
        gaussian_mixture(3, 3, 4, 1.0, noise=0.0)


# --- batched training against the one-model loops ---------------------------------------------

def test_train_linear_tails_matches_one_model_at_a_time(one_thread):
    import copy

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g), torch.arange(4).repeat(10)
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(LinearTailMLP(6, 16, 4, depth=2, linear_depth=3, hidden=8))
    reference = [copy.deepcopy(m) for m in models]
    lams = [0.0, 0.01, 0.05]
    logs = related.train_linear_tails(models, x, y, lr=0.05, weight_decays=lams, steps=120,
                                      momentum=0.9, log_every=40)
    for model, ref, lam, log in zip(models, reference, lams, logs):
        ref_log = train_linear_tail(ref, x, y, lr=0.05, weight_decay=lam, steps=120, momentum=0.9,
                                    log_every=40)
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        assert [r["step"] for r in log] == [r["step"] for r in ref_log] == [0, 40, 80, 120]
        np.testing.assert_allclose([r["unbalance_norm"] for r in log],
                                   [r["unbalance_norm"] for r in ref_log], rtol=1e-4)
    with pytest.raises(ValueError, match="one architecture"):
        related.train_linear_tails([models[0], LinearTailMLP(6, 8, 4)], x, y, lr=0.1,
                                   weight_decays=0.0, steps=1)
    with pytest.raises(ValueError, match="weight_decays"):
        related.train_linear_tails(models, x, y, lr=0.1, weight_decays=[0.1, 0.2], steps=1)


def test_train_mean_fields_matches_one_model_at_a_time(one_thread):
    import copy

    nets, data = [], []
    for s in range(2):
        x, y, c = gaussian_mixture(3, 10, 8, 2.0, generator=s)
        xt, yt, _ = gaussian_mixture(3, 20, 8, 2.0, generator=s + 5, centres=c)
        data.append((x, y, xt, yt))
        nets.append(MeanFieldThreeLayer(8, 16, 5, 3, generator=s))
    reference = [copy.deepcopy(n) for n in nets]
    xs, ys, xts, yts = zip(*data)
    hs = related.train_mean_fields(nets, xs, ys, xts, yts, lr=0.5, steps=60, weight_decay=1e-3,
                                   log_every=20)
    for net, ref, (x, y, xt, yt), h in zip(nets, reference, data, hs):
        h_ref = train_mean_field(ref, x, y, xt, yt, lr=0.5, steps=60, weight_decay=1e-3, log_every=20)
        for key in h_ref:
            np.testing.assert_allclose(h[key], h_ref[key], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(net.W, ref.W, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="one training and one test set"):
        related.train_mean_fields(nets, xs[:1], ys[:1], xts[:1], yts[:1], lr=0.5, steps=1)


def test_linear_tail_sweep_and_mean_field_runs_return_every_configuration(one_thread):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 5, generator=g), torch.arange(3).repeat(8)
    out = related.linear_tail_sweep(x, y, 3, [(8, 0.0, 0), (8, 0.01, 0), (4, 0.01, 1)], steps=5,
                                    lr=0.05, momentum=0.9, hidden=4, log_every=2)
    assert set(out) == {(8, 0.0, 0), (8, 0.01, 0), (4, 0.01, 1)}
    metrics, log = out[8, 0.01, 0]
    assert "nc1_penultimate" in metrics and log[-1]["step"] == 5
    runs = related.mean_field_runs(3, 6, 5, 5, (2.0, 0.5), [0, 1], neurons=8, feature_dim=4, lr=0.5,
                                   steps=4, weight_decay=1e-3, log_points=3)
    assert set(runs) == {(2.0, 0), (2.0, 1), (0.5, 0), (0.5, 1)}
    assert runs[2.0, 0]["step"][0] == 0 and runs[2.0, 0]["step"][-1] == 4


def test_basin_share():
    assert related.basin_share(1, 0.8) == pytest.approx(0.8)
    p = related.basin_share(40, 0.8)
    assert 1 - (1 - p) ** 40 == pytest.approx(0.8)
    assert related.basin_share(40, 0.95) > p
    with pytest.raises(ValueError):
        related.basin_share(0, 0.8)


# --- decision functions: each outcome on constructed inputs ------------------------------------

def _landscape(**changes):
    base = dict(gaps=[1e-16] * 4, grad_norms=[1e-14] * 4, etf_errors=[1e-13] * 4, nc1s=[1e-32] * 4,
                control_gaps=[0.5, 0.51], control_grad_norms=[1e-4, 1e-4], control_etf_errors=[1.0, 1.0],
                control_final=[1.2, 1.21])
    base.update(changes)
    args = [base.pop(k) for k in ("gaps", "grad_norms", "etf_errors", "nc1s", "control_gaps",
                                  "control_grad_norms", "control_etf_errors", "control_final")]
    return related.decide_ufm_landscape(*args, control_dim=2)


def test_decide_ufm_landscape_every_outcome():
    held = _landscape()
    assert held.label == "holds" and "4/4" in held.key and "2 different values" in held.control
    assert _landscape(gaps=[1e-16, 1e-16, 0.3, 1e-16], grad_norms=[1e-14, 1e-14, 1e-6, 1e-14]).label == "violated"
    # reaching f* without an ETF contradicts Theorem 3.1
    assert _landscape(etf_errors=[1e-13, 1e-2, 1e-13, 1e-13]).label == "violated"
    moving = _landscape(gaps=[1e-16, 0.3, 1e-16, 1e-16], grad_norms=[1e-14, 0.5, 1e-14, 1e-14])
    assert moving.label == "untestable at this size" and "moving" in moving.detail
    blind = _landscape(control_gaps=[1e-12, 0.5])
    assert blind.label == "untestable at this size" and "control" in blind.detail
    with pytest.raises(ValueError, match="one length"):
        _landscape(nc1s=[0.0])


def test_decide_origin_saddle_every_outcome():
    ok = related.decide_origin_saddle(-0.23, -0.23, 1e-16, 1e-17, -1e-17)
    assert ok.label == "holds" and "-0.230" in ok.key
    assert related.decide_origin_saddle(-1e-9, -0.23, 1e-16, 1e-17, 0.0).label == "violated"
    assert related.decide_origin_saddle(-0.23, -0.23, 1e-16, 0.4, 0.0).label == "violated"
    assert related.decide_origin_saddle(-0.23, -0.23, 1e-16, 1e-17, -0.01).label == "untestable at this size"


def test_decide_fixed_etf_every_outcome():
    base = np.array([0.80, 0.81, 0.79, 0.80, 0.805, 0.795])
    jitter = np.array([0.001, -0.001, 0.0005, -0.0005, 0.0, 0.001])
    other = np.array([-0.001, 0.0005, 0.001, 0.0, -0.0005, 0.0005])  # the control's own noise

    def decide(fixed, control_noise=other, mem=(3, 5)):
        # the control arm is the fixed ETF again under other seeds
        return related.decide_fixed_etf(fixed, base, fixed + control_noise, *mem)

    assert decide(base + 0.002 + jitter).label == "holds"
    assert decide(base - 0.05 + jitter).label == "violated"
    assert decide(base + jitter, mem=(5, 5)).label == "violated"
    crossing = decide(base - 0.01 + np.array([0.004, -0.004, 0.003, -0.003, 0.002, -0.002]))
    assert crossing.label == "not distinguishable from seed noise"
    noisy = decide(base + jitter, control_noise=np.array([0.03, -0.03, 0.02, -0.02, 0.03, -0.03]))
    assert noisy.label == "not distinguishable from seed noise" and "identical" in noisy.detail
    one = related.decide_fixed_etf([0.8], [0.8], [0.8], 3, 5)
    assert one.label == "untestable at this size"
    assert "caught with probability 0.8" in decide(base + jitter).sureness
    # the distance to the threshold, and the margin against the test set's own resolution
    held = decide(base + 0.002 + jitter)
    excluded = float(held.sureness.split("no loss beyond ")[1].split(" points")[0])
    assert 0 <= excluded < 1.0  # the interval's lower end sits inside the 1-point margin
    sized = related.decide_fixed_etf(base + 0.002 + jitter, base, base + other, 3, 5, n_test=3000)
    se = math.sqrt(0.8 * 0.2 / 3000)  # about 0.73 points at 80% accuracy
    assert f"{0.01 / se:.1f} standard errors" in sized.sureness


def test_decide_zhu_takes_the_worst_part():
    from nclib.verdicts import Verdict

    def v(label):
        return Verdict(label, "r", "c", "s", "k", "d")

    assert related.decide_zhu(v("holds"), v("holds"), v("holds")).label == "holds"
    assert related.decide_zhu(v("holds"), v("not distinguishable from seed noise"), v("holds")).label \
        == "not distinguishable from seed noise"
    assert related.decide_zhu(v("untestable at this size"), v("holds"), v("violated")).label == "violated"


def _jacot(**changes):
    base = dict(train_accuracy=[1.0, 1.0, 1.0], unbalancedness=[0.030, 0.031, 0.031],
                nc1_values=[4e-3, 4.5e-3, 4.3e-3], rate_ratio=[1.02, 1.03, 1.02],
                control_unbalancedness=[0.47, 0.46, 0.47], control_retained=[0.95, 0.96, 0.95],
                control_nc1=[1e-2, 6e-3, 7e-3])
    base.update(changes)
    return related.decide_jacot(**base, weight_decay=3e-3)


def test_decide_jacot_every_outcome():
    held = _jacot()
    assert held.label == "holds" and "not that balancedness is needed" in held.detail
    assert "stays" in _jacot(control_nc1=[0.3, 0.4, 0.35]).detail
    # still unbalanced, but decaying at the predicted rate: a short budget, not a violation (600
    # steps instead of 1 000 read "violated" while the rate matched the theory 1.026×)
    short = _jacot(unbalancedness=[0.2, 0.21, 0.2])
    assert short.label == "untestable at this size" and "too short" in short.detail
    assert _jacot(unbalancedness=[0.2, 0.21, 0.2], rate_ratio=[0.5, 0.52, 0.51]).label == "violated"
    assert _jacot(rate_ratio=[0.5, 0.52, 0.51]).label == "violated"
    balanced_not_collapsed = _jacot(nc1_values=[0.2, 0.3, 0.25])
    assert balanced_not_collapsed.label == "violated" and "balanced but not collapsed" in balanced_not_collapsed.detail
    assert _jacot(train_accuracy=[1.0, 0.99, 1.0]).label == "untestable at this size"
    assert _jacot(control_unbalancedness=[0.01, 0.01, 0.012]).label == "untestable at this size"
    assert _jacot(unbalancedness=[0.02, 0.06, 0.04]).label == "not distinguishable from seed noise"


def _wu(**changes):
    base = dict(mse=[2e-4] * 3, grad_norm=[3e-3] * 3, nc1_values=[2e-4, 2.5e-4, 3e-4],
                nc1_initial=[0.11, 0.13, 0.12], test_error_rates=[0.0, 0.0, 0.0], n_test_per_seed=2000)
    base.update(changes)
    return related.decide_wu(**base)


def test_decide_wu_every_outcome():
    held = _wu(overlap_nc1=[1e-3, 2e-3], overlap_error=[0.35, 0.36])
    assert held.label == "holds" and "0 of 6000" in held.sureness and "overlapping" in held.control
    assert _wu(nc1_initial=[1e-3, 2e-3, 1.5e-3]).label == "holds but vacuous"
    assert _wu(nc1_values=[0.2, 0.3, 0.25]).label == "violated"
    assert _wu(test_error_rates=[0.1, 0.12, 0.11]).label == "violated"
    assert _wu(mse=[0.2, 1e-4, 1e-4]).label == "untestable at this size"
    assert _wu(grad_norm=[3e-3, 0.5, 3e-3]).label == "untestable at this size"
    assert _wu(nc1_values=[1e-3, 5e-2, 1e-2]).label == "not distinguishable from seed noise"


# --- analysis helpers --------------------------------------------------------------------------

def test_decay_rate_ratio_recovers_the_law_and_retained_share():
    lam, lr, beta = 3e-3, 0.05, 0.9
    rate = 2 * lam * lr / (1 - beta)
    log = [{"step": k, "unbalance_norm": [2.0 * math.exp(-rate * k), 1.0 * math.exp(-1.1 * rate * k)]}
           for k in range(0, 1001, 25)]
    ratios = related.decay_rate_ratio(log, lam, lr, beta)
    assert ratios == pytest.approx([1.0, 1.1], rel=1e-9)
    assert related.unbalance_retained(log) == pytest.approx(math.exp(-1.1 * rate * 1000))
    with pytest.raises(ValueError, match="zero without weight decay"):
        related.decay_rate_ratio(log, 0.0, lr, beta)
    with pytest.raises(ValueError, match="log more often"):
        related.decay_rate_ratio(log[:2], lam, lr, beta)
    summary = related.linear_tail_summary(
        [({"train_accuracy": 1.0, "balancedness": [0.1, 0.2], "nc1_penultimate": 1e-3}, log)], lam, lr, beta)
    assert summary["rate"] == [pytest.approx(1.1)] and summary["unbalancedness"] == [0.2]


def test_ufm_run_summary_and_origin_saddle_check(one_thread):
    C, n, lam = 3, 2, 5e-3
    y = torch.arange(C).repeat_interleave(n)
    runs = ufm_wd_gradient_descent(y, 3, lam, lam, lam, runs=2, steps=1500, lr=4.0, generator=0)
    s = related.ufm_run_summary(runs, ufm_wd_optimum(C, n, lam, lam))
    assert np.abs(s["gap"]).max() < 1e-9 and s["etf_error"].max() < 1e-6 and s["norm_error"].max() < 1e-6
    check = related.origin_saddle_check(C, 3, n, lam, steps=1500, lr=4.0)
    assert check.lam_min == pytest.approx(check.closed_form[0], abs=1e-12)
    assert check.lam_min < 0 and abs(check.escape_gap) < 1e-9 and check.minimizer_min > -1e-6
    assert check.quad_ratio == pytest.approx(1.0, abs=1e-3)


def test_small_helpers():
    x = np.geomspace(1e-4, 1.0, 20)
    assert related.loglog_slope(x, 3 * x**0.7) == pytest.approx(0.7)
    assert related.geometric_mean([1e-2, 1.0]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        related.geometric_mean([0.0])


def test_head_models_and_memory():
    from nclib.models import FixedHead
    from nclib.train import TrainConfig

    shape, C = (1, 4, 4), 3
    fixed = related.head_models("fixed", shape, C, hidden=8, wide_dim=16, seed=0)
    assert isinstance(fixed.head, FixedHead)
    with pytest.raises(ValueError, match="kind"):
        related.head_models("other", shape, C, hidden=8, wide_dim=16, seed=0)
    batch = (torch.randn(6, *shape), torch.arange(C).repeat(2))
    config = TrainConfig(epochs=1)
    mem = {k: related.head_memory(k, batch, config, C, hidden=8, wide_dim=16)
           for k in ("learnable", "learnable, d = C", "fixed")}
    assert mem["fixed"].total < mem["learnable, d = C"].total < mem["learnable"].total


def test_figures_fit_the_column():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([0, 1, 10, 100])
    figs = [related.plot_ufm_landscape({"d = 3": (steps, np.abs(np.random.randn(4, 2)))}, 1e-9)]
    check = related.origin_saddle_check(3, 3, 2, 5e-3, steps=50, lr=4.0)
    figs.append(related.plot_saddle(check))
    log = [{"step": k, "unbalance_norm": [1.0 / (k + 1), 2.0], "balancedness": [0.1, 0.1]} for k in range(5)]
    figs.append(related.plot_balance_law({0.0: log, 1e-3: log}, 0.05, 0.9))
    m = {"nc1_penultimate": 1e-2, "nc2_orthogonal_error": 0.5, "balancedness": [0.1, 0.2], "kappa": 10.0}
    figs.append(related.plot_jacot_grid({(w, wd): m for w in (4, 8) for wd in (0.1, 0.2)}, (4, 8), (0.1, 0.2)))
    h = {"mse": np.array([1.0, 0.1]), "nc1": np.array([1.0, 0.01]), "grad_norm": np.array([1.0, 0.1]),
         "time": np.array([0.0, 1.0]), "test_error": np.array([0.5, 0.0])}
    figs.append(related.plot_wu({"a": [h, h]}))
    mem = related.TrainingMemory(10, 10, 10, 1, 5, 5)
    figs.append(related.plot_fixed_etf({"a": mem, "b": mem}, {"a": [0.8, 0.81], "b": [0.8, 0.79]}))
    for fig in figs:
        assert fig.get_size_inches()[0] <= 8.0
        plt.close(fig)
