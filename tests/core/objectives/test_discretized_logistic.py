"""The discretised logistic likelihood against a hand-written loop over bins."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import discretized_logistic_log_likelihood


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


def loop(mean, log_scale, target, bins) -> list[float]:
    half = 0.5 / (bins - 1)
    out = []
    for m_row, s_row, x_row in zip(
        mean.double().flatten(1).tolist(),
        log_scale.double().flatten(1).tolist(),
        target.double().flatten(1).tolist(),
        strict=True,
    ):
        total = 0.0
        for m, ls, x in zip(m_row, s_row, x_row, strict=True):
            s = math.exp(max(ls, -7.0))
            upper = 1.0 if x > 1 - half else _sigmoid((x + half - m) / s)
            lower = 0.0 if x < half else _sigmoid((x - half - m) / s)
            total += math.log(upper - lower)
        out.append(total)
    return out


@pytest.mark.parametrize("bins", [2, 16, 256])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 4)])
def test_matches_loop(bins, shape):
    g = torch.Generator().manual_seed(bins)
    mean = torch.rand(shape, generator=g)
    log_scale = torch.randn(shape, generator=g) - 2.0
    target = torch.randint(bins, shape, generator=g).float() / (bins - 1)
    got = discretized_logistic_log_likelihood(mean, log_scale, target, bins=bins)
    want = torch.tensor(loop(mean, log_scale, target, bins), dtype=torch.float64)
    assert got.shape == (shape[0],)
    assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-4)


def test_is_a_distribution_over_the_bins():
    """The masses of all 256 values sum to one, for any location and scale."""
    values = torch.arange(256).float() / 255  # (256,)
    for m, ls in [(0.3, -3.0), (0.0, -6.0), (1.2, 0.5), (0.5, -9.0)]:
        mean = torch.full((256, 1), m)
        ll = discretized_logistic_log_likelihood(mean, torch.full((256, 1), ls), values[:, None])
        assert abs(float(ll.exp().sum()) - 1.0) < 1e-4


def test_finite_gradients_at_extreme_scales():
    mean = torch.tensor([[0.5, 0.0, 1.0, 0.2]], requires_grad=True)
    log_scale = torch.tensor([[60.0, -30.0, -30.0, 5.0]], requires_grad=True)
    target = torch.tensor([[0.5, 0.0, 1.0, 1.0]])
    ll = discretized_logistic_log_likelihood(mean, log_scale, target)
    ll.sum().backward()
    assert torch.isfinite(ll).all() and torch.isfinite(mean.grad).all()
    assert torch.isfinite(log_scale.grad).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        discretized_logistic_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))
