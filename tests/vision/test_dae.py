"""Denoising autoencoder on tiny real data (sklearn digits): parts, corruption, learning, PNG."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.vision.data import load
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import DAE
from mmssl.vision.methods.generative import ConvDecoder


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=64, seed=0)


def test_registered_and_built(digits):
    cls = registry.get("vision", "dae")
    assert registry.get("vision", "denoising-ae") is cls  # the alias
    assert cls is DAE and cls.family == "generative" and cls.kind == "auto-encoding"
    assert cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    m = DAE.build(digits, seed=0)
    assert isinstance(m.encoder, SmallResNet) and isinstance(m.decoder, ConvDecoder)
    x = next(iter(digits.train))[:8]
    assert m.embed(x).shape == (8, m.encoder.out_dim)
    clean, noisy = m.augment(x)
    assert clean.shape == noisy.shape == (8, 3, 16, 16)
    assert m.reconstruct(noisy).shape == (8, 3, 16, 16)


@pytest.mark.parametrize("size", [8, 16, 28, 32])
def test_decoder_sizes(size):
    assert ConvDecoder(10, 6, size)(torch.randn(2, 10)).shape == (2, 6, size, size)


def test_corruption_is_seeded_and_masks_the_requested_share(digits):
    x = torch.rand(64, 3, 16, 16) * 0.5 + 0.25  # no pixel is 0 before masking
    a = DAE.build(digits, seed=3, noise_std=0.0).corrupt(x)
    b = DAE.build(digits, seed=3, noise_std=0.0).corrupt(x)
    c = DAE.build(digits, seed=4, noise_std=0.0).corrupt(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    zero = a == 0
    assert torch.equal(zero[:, :1].expand_as(zero), zero)  # whole pixels, every channel
    assert abs(zero.float().mean().item() - 0.25) < 0.02
    noisy = DAE.build(digits, seed=3, mask_prob=0.0, noise_std=0.1).corrupt(x)
    assert 0.08 < (noisy - x).std().item() < 0.12


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = DAE.build(digits, seed=0)
    with torch.no_grad():
        batch = m.augment(next(iter(digits.train))[:32])
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = m(batch)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0], losses


def test_evaluate_and_png(digits, tmp_path):
    m = DAE.build(digits, seed=0)
    ev = m.evaluate(digits, limit=64)
    assert set(ev) == {"recon_mse", "recon_mse_clean_input"} and ev["recon_mse"] > 0
    assert ev == m.evaluate(digits, limit=64)  # fixed-seed corruption
    names = m.save_artifacts(tmp_path, digits, n=4)
    assert names == ["dae_reconstructions.png"] and (tmp_path / names[0]).stat().st_size > 0
