"""The streaming accumulator agrees with the in-memory metrics on the same data."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nclib.accumulate import NCAccumulator, measure
from nclib.metrics import margins, nc_from_statistics, nc_metrics


@pytest.mark.parametrize("batch", [1, 7, 64, 500])
def test_streaming_equals_in_memory(batch):
    g = torch.Generator().manual_seed(batch)
    C, d, N = 6, 9, 300
    y = torch.arange(C).repeat(N // C)[torch.randperm(N, generator=g)]
    Z = (2 * torch.randn(C, d, generator=g))[y] + torch.randn(N, d, generator=g)  # float32 input
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    acc = NCAccumulator(M)
    for i in range(0, N, batch):
        acc.update(Z[i : i + batch], y[i : i + batch])
    got = acc.compute()
    ref, ref_m = nc_metrics(Z, y, M), margins(Z, y, M)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
    assert got["p_min"] == pytest.approx(ref_m.p_min, rel=1e-12)
    assert got["scale_free_margin"] == pytest.approx(ref_m.scale_free, rel=1e-10)
    assert torch.allclose(got["margins"].pairwise, ref_m.pairwise, equal_nan=True, rtol=1e-12)
    assert got["accuracy"] == pytest.approx(((Z.double() @ M).argmax(1) == y).double().mean().item())


def test_measure_runs_a_feature_function_over_a_loader():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 4, generator=g)
    y = torch.arange(3).repeat(40)
    W = torch.randn(4, 5, generator=g)
    M = torch.randn(5, 3, generator=g, dtype=torch.float64)
    loader = [(X[i : i + 32], y[i : i + 32]) for i in range(0, 120, 32)]
    got = measure(lambda x: x @ W, loader, M)
    assert got["nc1"] == pytest.approx(nc_metrics(X @ W, y, M)["nc1"], rel=1e-8)


def test_accumulator_bad_input():
    acc = NCAccumulator(torch.randn(4, 3))
    with pytest.raises(ValueError, match="no batches"):
        acc.compute()
    with pytest.raises(ValueError, match="B×4"):
        acc.update(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(torch.full((2, 4), float("nan")), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        acc.update(torch.randn(2, 4), torch.tensor([0, 3]))
    acc.update(torch.randn(4, 4), torch.tensor([0, 1, 0, 1]))  # class 2 never seen
    with pytest.raises(ValueError, match="no samples"):
        acc.compute()


# --- numerical stability: class means far from the origin ------------------------------------

@pytest.mark.parametrize("keep_features", [True, False])
@pytest.mark.parametrize("spread", [1e-6, 1e-3, 1.0])
@pytest.mark.parametrize("offset", [0.0, 1.0, 10.0, 100.0, 1e3])
def test_streaming_is_stable_far_from_the_origin(offset, spread, keep_features):
    # Class means at distance ~offset from the origin, O(1) apart, within-class spread `spread`,
    # streamed in batches of uneven size. The raw-moment formula Σzzᵀ − ΣN_cμ_cμ_cᵀ gave
    # NC1 = −2.35e-11 (true 7.94e-12) at offset 1e3, spread 1e-6; both paths must now agree with
    # the in-memory two-pass computation to 1e-9 relative, for every metric.
    g = torch.Generator().manual_seed(7)
    C, d, N = 4, 6, 203
    y = torch.arange(C).repeat(N // C + 1)[:N][torch.randperm(N, generator=g)]
    centres = offset / d**0.5 + torch.randn(C, d, generator=g, dtype=torch.float64)
    Z = centres[y] + spread * torch.randn(N, d, generator=g, dtype=torch.float64)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    acc = NCAccumulator(M, keep_features=keep_features)
    cuts = [0, 5, 6, 50, 111, N]
    for i, j in zip(cuts, cuts[1:]):
        acc.update(Z[i:j], y[i:j])
    got, ref = acc.compute(), nc_metrics(Z, y, M)
    assert got["nc1"] == pytest.approx(ref["nc1"], rel=1e-9)
    assert 0.5 < ref["nc1"] / spread**2 < 2.0  # the reference itself: NC1 ∝ spread² here
    for key, value in ref.items():
        if key in got:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-300), key
    assert ("nc4_ncc_mismatch" in got) == keep_features
    assert got["p_min"] == pytest.approx(margins(Z, y, M).p_min, rel=1e-9)


@given(seed=st.integers(0, 10**6), batch=st.integers(1, 40), offset=st.sampled_from([0.0, 1e2, 1e4]))
def test_sufficient_statistics_match_in_memory(seed, batch, offset):
    """The keep_features=False path (shifted moments) against the in-memory metrics, for any batch
    size and a common offset, with float32 features as a model gives them."""
    g = torch.Generator().manual_seed(seed)
    C, d, N = 3, 4, 60
    y = torch.arange(C).repeat(N // C)[torch.randperm(N, generator=g)]
    Z = (offset + 3 * torch.randn(C, d, generator=g))[y] + torch.randn(N, d, generator=g)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    acc = NCAccumulator(M, keep_features=False)
    for i in range(0, N, batch):
        acc.update(Z[i : i + batch], y[i : i + batch])
    got, ref = acc.compute(), nc_metrics(Z, y, M)
    # float32 features: the within-class product runs in float32 on centred deviations, so the
    # statistics agree to float32's precision of the spread (module doc), not float64's
    for key, value in ref.items():
        if key != "nc4_ncc_mismatch":
            assert got[key] == pytest.approx(value, rel=2e-6, abs=1e-9), key
    assert got["scale_free_margin"] == pytest.approx(margins(Z, y, M).scale_free, rel=1e-6, abs=1e-9)
    # float64 features keep the float64 product: agreement to float64 rounding
    acc64 = NCAccumulator(M, keep_features=False)
    for i in range(0, N, batch):
        acc64.update(Z[i : i + batch].double(), y[i : i + batch])
    got64 = acc64.compute()
    for key, value in ref.items():
        if key != "nc4_ncc_mismatch":
            assert got64[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert got64["scale_free_margin"] == pytest.approx(margins(Z, y, M).scale_free, rel=1e-9)


def test_a_huge_common_offset_costs_no_precision():
    """Features at +1e8 (float64, so the offset is exactly representable): every metric of the
    statistics path equals the metrics of the same features without the offset."""
    g = torch.Generator().manual_seed(7)
    C, d, N = 4, 6, 400
    y = torch.arange(C).repeat(N // C)
    Z = (3 * torch.randn(C, d, generator=g, dtype=torch.float64))[y] + torch.randn(N, d, generator=g, dtype=torch.float64)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    base, far = NCAccumulator(M, keep_features=False), NCAccumulator(M, keep_features=False)
    for i in range(0, N, 50):
        base.update(Z[i : i + 50], y[i : i + 50])
        far.update(Z[i : i + 50] + 1e8, y[i : i + 50])
    a, b = base.compute(), far.compute()
    for key in ("nc1", "nc2_equinorm_means", "nc2_equiangular_means", "nc2_etf_error_means"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key


def test_a_common_offset_far_above_the_class_spread_is_shifted_away_exactly():
    """Class means about 1 apart at +1e8 (ρ̄ ≈ 1e8, so the spread is 1e-8 of ρ̄, below the
    in-memory path's threshold √ε ≈ 1.5e-8): the float64 statistics path subtracts shifts near the
    class means exactly and returns the metrics of the features without the offset; float32
    features at +1e8 (resolution 8, the class structure rounded away) are still refused."""
    from nclib._checks import UndefinedMetricError

    g = torch.Generator().manual_seed(11)
    C, d, N = 4, 6, 400
    y = torch.arange(C).repeat(N // C)
    Z = (0.5 * torch.randn(C, d, generator=g, dtype=torch.float64))[y] + 0.2 * torch.randn(N, d, generator=g, dtype=torch.float64)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    with pytest.raises(UndefinedMetricError, match="between-class scatter"):
        nc_metrics(Z + 1e8, y, M)  # the in-memory path keeps its rule: centre first
    base, far, far32 = (NCAccumulator(M, keep_features=False) for _ in range(3))
    for i in range(0, N, 50):
        base.update(Z[i : i + 50], y[i : i + 50])
        far.update(Z[i : i + 50] + 1e8, y[i : i + 50])
        far32.update((Z[i : i + 50] + 1e8).float(), y[i : i + 50])
    a, b = base.compute(), far.compute()
    for key in ("nc1", "nc2_equinorm_means", "nc2_equiangular_means", "nc2_etf_error_means", "nc3_self_duality"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
    with pytest.raises(UndefinedMetricError):
        far32.compute()


def test_nc_from_statistics_with_and_without_shifts():
    g = torch.Generator().manual_seed(3)
    C, d = 3, 4
    y = torch.arange(C).repeat(10)
    Z = 5 + torch.randn(C, d, generator=g, dtype=torch.float64)[y] + 0.1 * torch.randn(30, d, generator=g, dtype=torch.float64)
    M = torch.randn(d, C, generator=g, dtype=torch.float64)
    counts = torch.bincount(y, minlength=C)
    raw = nc_from_statistics(counts, torch.zeros(C, d, dtype=torch.float64).index_add_(0, y, Z), Z.T @ Z, M)
    K = Z[:C]  # any per-class reference point
    D = Z - K[y]
    shifted = nc_from_statistics(counts, torch.zeros(C, d, dtype=torch.float64).index_add_(0, y, D), D.T @ D, M, shifts=K)
    ref = nc_metrics(Z, y, M)
    for key in raw:
        assert raw[key] == pytest.approx(ref[key], rel=1e-6), key
        assert shifted[key] == pytest.approx(ref[key], rel=1e-9), key


def test_the_statistics_path_refuses_a_change_of_precision():
    M = torch.randn(3, 2, dtype=torch.float64)
    acc = NCAccumulator(M, keep_features=False)
    acc.update(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="one dtype"):
        acc.update(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1]))


@given(B=st.integers(1, 30), d=st.integers(1, 300), blocks=st.integers(1, 5))
def test_blocked_gram_equals_the_full_product(B, d, blocks):
    from nclib.accumulate import _gram

    D = torch.randn(B, d, dtype=torch.float64, generator=torch.Generator().manual_seed(B * d))
    torch.testing.assert_close(_gram(D, blocks), D.T @ D, rtol=1e-12, atol=1e-12)
