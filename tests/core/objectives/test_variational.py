"""Gaussian KL, ELBO, reparameterisation and likelihoods against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import (
    bernoulli_log_likelihood,
    gaussian_elbo,
    gaussian_elbo_terms,
    gaussian_kl,
    gaussian_log_likelihood,
    reparameterize,
)


def kl_loop(mu, logvar) -> list[float]:
    out = []
    for m_row, lv_row in zip(mu.double().tolist(), logvar.double().tolist(), strict=True):
        # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, per dimension
        out.append(
            sum(
                -0.5 * lv + (math.exp(lv) + m * m) / 2 - 0.5
                for m, lv in zip(m_row, lv_row, strict=True)
            )
        )
    return out


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


SHAPES = [(1, 1), (3, 2), (8, 16)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gaussian_kl_matches_loop(shape, reduction):
    g = torch.Generator().manual_seed(shape[1])
    mu, logvar = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    want = kl_loop(mu, logvar)
    got = gaussian_kl(mu, logvar, reduction=reduction)
    if reduction == "none":
        assert got.shape == (shape[0],)
        assert got.tolist() == pytest.approx(want, rel=1e-5)
    else:
        agg = sum(want) / len(want) if reduction == "mean" else sum(want)
        assert got.item() == pytest.approx(agg, rel=1e-5)


def test_kl_is_zero_at_the_prior():
    assert gaussian_kl(torch.zeros(4, 3), torch.zeros(4, 3)).abs().max().item() == 0.0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_elbo_matches_loop(shape, beta):
    g = torch.Generator().manual_seed(shape[0])
    mu, logvar = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    recon = torch.randn(shape[0], generator=g) - 5
    kl = kl_loop(mu, logvar)
    want_recon = -sum(recon.tolist()) / shape[0]
    want = want_recon + beta * sum(kl) / len(kl)
    terms = gaussian_elbo_terms(recon, mu, logvar, beta=beta)
    assert gaussian_elbo(recon, mu, logvar, beta=beta).item() == pytest.approx(want, rel=1e-5)
    assert terms["recon"].item() == pytest.approx(want_recon, rel=1e-5)
    assert terms["kl"].item() == pytest.approx(sum(kl) / len(kl), rel=1e-5)


def test_elbo_takes_a_scalar_likelihood_with_node_posteriors():
    mu, logvar = torch.randn(10, 4), torch.randn(10, 4)  # VGAE: 10 nodes, one graph
    loss = gaussian_elbo(torch.tensor(-3.0), mu, logvar)
    assert loss.item() == pytest.approx(3.0 + sum(kl_loop(mu, logvar)) / 10, rel=1e-5)


@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 2)])
def test_bernoulli_log_likelihood_matches_loop(shape):
    g = torch.Generator().manual_seed(len(shape))
    logits, target = torch.randn(*shape, generator=g) * 3, torch.rand(*shape, generator=g)
    want = []
    for lr, tr in zip(
        logits.reshape(shape[0], -1).tolist(), target.reshape(shape[0], -1).tolist(), strict=True
    ):
        want.append(
            sum(
                t * math.log(sigmoid(x)) + (1 - t) * math.log(1 - sigmoid(x))
                for x, t in zip(lr, tr, strict=True)
            )
        )
    assert bernoulli_log_likelihood(logits, target).tolist() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("logvar", [0.0, -1.5, "tensor"])
def test_gaussian_log_likelihood_matches_loop(logvar):
    g = torch.Generator().manual_seed(0)
    mean, target = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    lv = torch.randn(3, 4, generator=g) if logvar == "tensor" else logvar
    lv_rows = lv.tolist() if isinstance(lv, torch.Tensor) else [[lv] * 4] * 3
    want = []
    for m_row, t_row, v_row in zip(mean.tolist(), target.tolist(), lv_rows, strict=True):
        want.append(
            sum(
                -0.5 * ((t - m) ** 2 / math.exp(v) + v + math.log(2 * math.pi))
                for m, t, v in zip(m_row, t_row, v_row, strict=True)
            )
        )
    assert gaussian_log_likelihood(mean, target, lv).tolist() == pytest.approx(want, rel=1e-5)


def test_reparameterize_statistics_and_reproducibility():
    mu, logvar = torch.full((20000, 2), 3.0), torch.full((20000, 2), math.log(4.0))
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(3.0, abs=0.05)
    assert z.std().item() == pytest.approx(2.0, abs=0.05)
    again = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


def test_gradients_flow_through_the_elbo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g, requires_grad=True)
    logvar = torch.randn(4, 3, generator=g, requires_grad=True)
    dec = torch.nn.Linear(3, 5)
    x = (torch.rand(4, 5, generator=g) > 0.5).float()
    z = reparameterize(mu, logvar, generator=g)
    gaussian_elbo(bernoulli_log_likelihood(dec(z), x), mu, logvar).backward()
    for grad in [mu.grad, logvar.grad, dec.weight.grad]:
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    dec = torch.nn.Linear(3, 6)
    z, x = torch.randn(8, 3, generator=g), torch.rand(8, 6, generator=g)
    mu, logvar = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    ref = gaussian_elbo(bernoulli_log_likelihood(dec(z), x), mu, logvar)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = dec(z)
        got = gaussian_elbo(bernoulli_log_likelihood(logits, x), mu.bfloat16(), logvar.bfloat16())
        ll = gaussian_log_likelihood(logits, x)
    assert logits.dtype == torch.bfloat16
    assert got.dtype == torch.float32 and ll.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=3e-2)


def test_validation_errors():
    mu = torch.randn(2, 3)
    with pytest.raises(ValueError, match="log-variance"):
        gaussian_kl(mu, torch.randn(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        gaussian_kl(mu, mu, reduction="avg")
    with pytest.raises(ValueError, match="beta"):
        gaussian_elbo(torch.zeros(2), mu, mu, beta=-1.0)
    with pytest.raises(ValueError, match="recon_loglik"):
        gaussian_elbo(torch.zeros(2, 3), mu, mu)
    with pytest.raises(ValueError, match="differ"):
        bernoulli_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="log-variance"):
        reparameterize(mu, torch.randn(3))
