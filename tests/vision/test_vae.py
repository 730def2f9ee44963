"""VAE on tiny real data (sklearn digits): parts, ELBO and bits/dim, learning, PNG."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core import registry
from mmssl.vision.data import load
from mmssl.vision.methods import VAE


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=64, seed=0)


def test_registered_and_built(digits):
    cls = registry.get("vision", "vae")
    assert cls is VAE and cls.family == "generative" and cls.kind == "variational"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    m = VAE.build(digits, z_dim=16, seed=0)
    x = m.augment(next(iter(digits.train))[:8])
    mu, logvar = m.posterior(x)
    assert mu.shape == logvar.shape == (8, 16)
    mean, log_scale = m.decode(mu)
    assert mean.shape == log_scale.shape == (8, 3, 16, 16)
    assert torch.equal(m.embed(x), mu)
    with pytest.raises(ValueError, match="beta"):
        VAE.build(digits, beta=-1.0)


def test_terms_and_bits_per_dim(digits):
    m = VAE.build(digits, seed=0, beta=4.0)
    x = m.augment(next(iter(digits.train)))
    out = m(x)
    assert torch.allclose(out["loss"], out["recon"] + 4.0 * out["kl"])  # beta-VAE weight
    assert torch.allclose(out["bits_per_dim"], (out["recon"] + out["kl"]) / (768 * math.log(2)))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    m.eval()
    assert torch.equal(m.terms(x, g())["loss"], m.terms(x, g())["loss"])  # seeded z
    ev = m.evaluate(digits, limit=64)
    assert ev["neg_elbo_nats"] == pytest.approx(ev["recon_nats"] + ev["kl_nats"])
    assert ev["bits_per_dim"] == pytest.approx(ev["neg_elbo_nats"] / (768 * math.log(2)))


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = VAE.build(digits, seed=0)
    x = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = m(x)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.95 * losses[0], losses


def test_png(digits, tmp_path):
    names = VAE.build(digits, seed=0).save_artifacts(tmp_path, digits, n=4)
    assert names == ["vae_samples.png", "vae_reconstructions.png"]
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
