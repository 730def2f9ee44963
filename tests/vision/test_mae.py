"""MAE on tiny real data (sklearn digits): masking, visible-only encoding, learning, PNG."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.vision.data import load
from mmssl.vision.encoders import VisionTransformer
from mmssl.vision.methods import MAE
from mmssl.vision.methods.mae import patchify, unpatchify


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=64, seed=0)


def tiny(seed: int = 0, **kw) -> MAE:
    """A 2-block ViT on 16x16 digits, patch 2: an 8x8 grid, fast on a CPU."""
    torch.manual_seed(0)
    vit = VisionTransformer(16, 2, 3, dim=48, depth=2, heads=3)
    return MAE(vit, decoder_dim=32, decoder_depth=1, decoder_heads=2, seed=seed, **kw)


def test_registered_and_built(digits):
    cls = registry.get("vision", "mae")
    assert cls is MAE and cls.family == "generative" and cls.kind == "auto-encoding"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    m = MAE.build(digits, seed=0)
    assert isinstance(m.encoder, VisionTransformer) and m.encoder.out_dim == 192
    assert m.patch == 4 and m.num_patches == 16  # a 4x4 grid at 16x16
    assert m.embed(next(iter(digits.train))[:4]).shape == (4, 192)
    with pytest.raises(ValueError, match="ViT"):
        MAE.build(digits, encoder="small")


def test_mask_ratio_and_seeded(digits):
    a, b, c = tiny(seed=1), tiny(seed=1), tiny(seed=2)
    batch = next(iter(digits.train))
    (_, ma), (_, mb), (_, mc) = a.augment(batch), b.augment(batch), c.augment(batch)
    assert ma.shape == (64, 64) and (ma.sum(1) == 48).all()  # exactly 75% per image
    assert torch.equal(ma, mb) and not torch.equal(ma, mc)


def test_encoder_sees_visible_patches_only(digits):
    """Changing the pixels of removed patches changes neither the loss's inputs nor the
    encoder's tokens; the encoder runs on 1 + 16 tokens."""
    m = tiny().eval()
    x, masked = m.augment(next(iter(digits.train))[:4])
    keep = (~masked).nonzero()[:, 1].view(4, -1)
    assert m.encoder.tokens(m.normalize(x), keep).shape == (4, 17, 48)
    p = patchify(x, 2)
    other = unpatchify(torch.where(masked.unsqueeze(-1), torch.rand_like(p), p), 2, 3)
    assert torch.allclose(m.predict(x, masked), m.predict(other, masked), atol=1e-6)
    full = torch.arange(64).expand(4, -1)
    assert torch.allclose(m.encoder.tokens(x, full), m.encoder.tokens(x), atol=1e-6)
    assert torch.allclose(m.encoder.tokens(x)[:, 0], m.encoder(x))


def test_loss_on_masked_patches_only(digits):
    m = tiny()
    x, masked = m.augment(next(iter(digits.train))[:8])
    pred = m.predict(x, masked).detach().requires_grad_()
    from mmssl.core.objectives import masked_mse

    masked_mse(pred, m.target(x), masked).backward()
    assert (pred.grad[~masked] == 0).all() and (pred.grad[masked] != 0).any()
    t = m.target(x)
    assert torch.allclose(t.mean(-1), torch.zeros(8, 64), atol=1e-5)  # per-patch normalised


def test_patchify_roundtrip():
    x = torch.rand(2, 3, 16, 16)
    p = patchify(x, 4)
    assert p.shape == (2, 16, 48) and torch.equal(unpatchify(p, 4, 3), x)
    assert torch.equal(p[0, 1], x[0, :, :4, 4:8].permute(1, 2, 0).reshape(-1))


def test_loss_finite_and_decreasing(digits):
    m = tiny()
    with torch.no_grad():
        batch = m.augment(next(iter(digits.train)))
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss = m(batch)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


def test_evaluate_and_png(digits, tmp_path):
    m = tiny()
    ev = m.evaluate(digits, limit=64)
    assert set(ev) == {"masked_patch_mse"} and ev == m.evaluate(digits, limit=64)
    names = m.save_artifacts(tmp_path, digits, n=4)
    assert names == ["mae_reconstructions.png"] and (tmp_path / names[0]).stat().st_size > 0
