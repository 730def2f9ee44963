"""Barlow Twins and VICReg against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import barlow_twins_loss, vicreg_loss, vicreg_terms


def _columns(z) -> list[list[float]]:
    rows = z.double().tolist()
    return [[r[j] for r in rows] for j in range(len(rows[0]))]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _var(xs: list[float], ddof: int) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - ddof)


def barlow_loop(z1, z2, lambd, eps=1e-5) -> float:
    def standardise(col):
        m, s = _mean(col), math.sqrt(_var(col, 0) + eps)
        return [(x - m) / s for x in col]

    a, b = [standardise(c) for c in _columns(z1)], [standardise(c) for c in _columns(z2)]
    n, d = z1.shape
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[i][k] * b[j][k] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c * c
    return loss


def vicreg_loop(z1, z2, sim_w, var_w, cov_w, eps=1e-4) -> dict[str, float]:
    n, d = z1.shape
    inv = _mean(
        [
            (x - y) ** 2
            for r1, r2 in zip(z1.double().tolist(), z2.double().tolist(), strict=True)
            for x, y in zip(r1, r2, strict=True)
        ]
    )
    var = cov = 0.0
    for z in (z1, z2):
        cols = _columns(z)
        var += _mean([max(0.0, 1 - math.sqrt(_var(c, 1) + eps)) for c in cols])
        means = [_mean(c) for c in cols]
        for i in range(d):
            for j in range(d):
                if i != j:
                    cij = sum(
                        (cols[i][k] - means[i]) * (cols[j][k] - means[j]) for k in range(n)
                    ) / (n - 1)
                    cov += cij * cij / d
    return {
        "loss": sim_w * inv + var_w * var + cov_w * cov,
        "invariance": inv,
        "variance": var,
        "covariance": cov,
    }


SHAPES = [(2, 2), (5, 3), (16, 8)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambd", [5e-3, 0.0051, 0.1])
@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_barlow_twins_matches_loop(shape, lambd, scale):
    g = torch.Generator().manual_seed(shape[0])
    z1 = torch.randn(*shape, generator=g) * scale
    z2 = z1 + torch.randn(*shape, generator=g) * 0.5
    got = barlow_twins_loss(z1, z2, lambd=lambd).item()
    assert got == pytest.approx(barlow_loop(z1, z2, lambd), rel=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 10.0)])
@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_vicreg_matches_loop(shape, weights, scale):
    g = torch.Generator().manual_seed(shape[1])
    z1 = torch.randn(*shape, generator=g) * scale
    z2 = z1 + torch.randn(*shape, generator=g) * 0.5
    sw, vw, cw = weights
    want = vicreg_loop(z1, z2, sw, vw, cw)
    got = vicreg_terms(z1, z2, sim_weight=sw, var_weight=vw, cov_weight=cw)
    for key, value in want.items():
        assert got[key].item() == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert vicreg_loss(z1, z2, sim_weight=sw, var_weight=vw, cov_weight=cw).item() == pytest.approx(
        want["loss"], rel=1e-4
    )


def test_identity_correlation_gives_zero_barlow_loss():
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # decorrelated, unit var
    assert barlow_twins_loss(z, z, eps=1e-12).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("fn", [barlow_twins_loss, vicreg_loss])
def test_gradients_finite_and_nonzero(fn):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 6, generator=g, requires_grad=True)
    z2 = torch.randn(8, 6, generator=g, requires_grad=True)
    fn(z1, z2).backward()
    for z in (z1, z2):
        assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", [barlow_twins_loss, vicreg_loss])
def test_float32_under_bf16_autocast(fn):
    g = torch.Generator().manual_seed(0)
    proj = torch.nn.Linear(16, 32)
    x1, x2 = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    z1f, z2f = proj(x1).detach(), proj(x2).detach()
    ref = fn(z1f, z2f)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z1, z2 = proj(x1), proj(x2)
        got = fn(z1, z2)
        exact = fn(z1f, z2f)  # float32 inputs: no bf16 matmul inside the loss
    assert z1.dtype == torch.bfloat16 and got.dtype == exact.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=5e-2)
    assert exact.item() == pytest.approx(ref.item(), rel=1e-6)


def test_validation_errors():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="lambd"):
        barlow_twins_loss(z, z, lambd=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        barlow_twins_loss(z[:1], z[:1])
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        vicreg_loss(z, torch.randn(4, 2))
    with pytest.raises(ValueError, match="sim_weight"):
        vicreg_loss(z, z, sim_weight=-1)
    with pytest.raises(ValueError, match="eps"):
        vicreg_loss(z, z, eps=0)
