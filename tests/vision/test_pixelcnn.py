"""PixelCNN on tiny real data (sklearn digits): causality, bits/dim, learning, sampling, PNG."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core import registry
from mmssl.vision.data import load
from mmssl.vision.methods import PixelCNN


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=64, seed=0)


def test_registered_and_built(digits):
    cls = registry.get("vision", "pixelcnn")
    assert registry.get("vision", "pixel-ar") is cls  # the alias
    assert cls is PixelCNN and cls.family == "generative" and cls.kind == "autoregressive"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    m = PixelCNN.build(digits, seed=0)
    x = next(iter(digits.train))[:4]
    assert m.logits(x.float() / 255).shape == (4, 3, 16, 16, 256)
    assert m.embed(x).shape == (4, 64)
    with pytest.raises(ValueError, match="own encoder"):
        PixelCNN.build(digits, encoder="vit_tiny")


@pytest.mark.parametrize("pos", [(0, 0), (3, 5), (7, 0), (9, 9)])
def test_causal(pos):
    """The logits at pixel (i, j) depend on earlier pixels only, never on (i, j) or later."""
    torch.manual_seed(0)
    m = PixelCNN(3, hidden=16, blocks=3)
    x = torch.rand(1, 3, 10, 10, requires_grad=True)
    i, j = pos
    m.logits(x)[0, :, i, j].sum().backward()
    dep = x.grad[0].abs().sum(0).flatten() > 0  # (H * W,), raster order
    k = i * 10 + j
    assert not dep[k:].any()
    if k > 0:
        assert dep[:k].any()


def test_bits_per_dim():
    """Uniform logits give exactly 8 bits per dimension; evaluate divides nats by ln 2."""
    m = PixelCNN(3, hidden=8, blocks=1)
    torch.nn.init.zeros_(m.head[-1].weight)
    torch.nn.init.zeros_(m.head[-1].bias)
    x = torch.randint(256, (4, 3, 8, 8), dtype=torch.uint8)
    out = m(x)
    assert out["loss"].item() == pytest.approx(math.log(256), rel=1e-6)
    assert out["bits_per_dim"].item() == pytest.approx(8.0, rel=1e-6)


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = PixelCNN(3, hidden=32, blocks=2)
    batch = next(iter(digits.train))[:16]
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = m(batch)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses


def test_evaluate_sample_and_png(digits, tmp_path):
    torch.manual_seed(0)
    m = PixelCNN(3, hidden=16, blocks=2)
    ev = m.evaluate(digits, limit=64)
    assert ev["bits_per_dim"] == pytest.approx(ev["nll_nats"] / (768 * math.log(2)))
    a = m.sample(2, 6, torch.Generator().manual_seed(0))
    b = m.sample(2, 6, torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 6, 6) and a.dtype == torch.uint8 and torch.equal(a, b)
    names = m.save_artifacts(tmp_path, digits, n=2)
    assert names == ["pixelcnn_samples.png"] and (tmp_path / names[0]).stat().st_size > 0
