"""The streaming accumulator agrees with the in-memory metrics on the same data."""

import pytest
import torch

from nclib.accumulate import NCAccumulator, measure
from nclib.metrics import margins, nc_metrics


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
