"""AMDIM: the clipped NCE against a naive loop, the multiscale tasks, a smoke run on digits."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core import registry
from mmssl.vision.data import load
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import AMDIM
from mmssl.vision.methods.amdim import clipped_nce


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=32, seed=0)


def _naive_clipped_nce(src, tgt, tclip, reg):
    b, e, h, w = tgt.shape
    s = torch.einsum("ie,jep->ijp", src, tgt.flatten(2)) / math.sqrt(e)  # (B, B, HW)
    c = tclip * torch.tanh(s / tclip)
    terms = []
    for i in range(b):
        negatives = torch.cat([c[i, j] for j in range(b) if j != i])
        for p in range(h * w):
            denom = torch.cat([c[i, i, p : p + 1], negatives]).exp().sum().log()
            terms.append(denom - c[i, i, p])
    return torch.stack(terms).mean(), reg * (s**2).mean()


@pytest.mark.parametrize(("tclip", "scale"), [(20.0, 1.0), (2.0, 10.0), (0.5, 3.0)])
def test_clipped_nce_against_a_loop(tclip, scale):
    torch.manual_seed(0)
    src, tgt = scale * torch.randn(4, 6), scale * torch.randn(4, 6, 2, 3)
    loss, reg = clipped_nce(src, tgt, tclip=tclip, score_reg=0.05)
    ref_loss, ref_reg = _naive_clipped_nce(src, tgt, tclip, 0.05)
    assert torch.allclose(loss, ref_loss, atol=1e-5) and torch.allclose(reg, ref_reg, atol=1e-5)


def test_clipping_bounds_the_loss():
    torch.manual_seed(0)
    src, tgt = 1e4 * torch.randn(8, 16), 1e4 * torch.randn(8, 16, 2, 2)
    loss, _ = clipped_nce(src, tgt, tclip=1.0, score_reg=0.0)
    # every clipped score lies in [-1, 1]: the loss is at most log(N) + 2
    assert torch.isfinite(loss) and loss <= math.log(1 + 7 * 4) + 2.0


def test_registered_and_built(digits):
    assert registry.get("vision", "amdim") is AMDIM
    assert AMDIM.family == "contrastive" and AMDIM.kind == "context-instance/mutual-information"
    torch.manual_seed(0)
    m = AMDIM.build(digits, n_rkhs=64, seed=0)
    assert m.layers == ["features.4", "features.5"]  # 4x4 and 2x2 on 16x16 digits
    assert [h.shortcut.in_channels for h in m.local_heads] == [64, 128]
    assert m.global_head.shortcut.in_channels == m.encoder.out_dim
    with pytest.raises(ValueError, match="two stage outputs"):
        AMDIM(SmallResNet(), layers=(1,))
    with pytest.raises(ValueError, match="tclip"):
        AMDIM(SmallResNet(), tclip=0.0)


def test_terms_and_seeded_locations(digits):
    torch.manual_seed(0)
    m = AMDIM.build(digits, n_rkhs=64, seed=3)
    views = m.augment(next(iter(digits.train)))
    assert len(views) == 2 and views[0].shape == (32, 3, 16, 16)
    out = m(views)
    names = {"global_coarse", "global_fine", "coarse_coarse", "score_reg"}
    assert names <= set(out)
    assert torch.allclose(out["loss"], sum(out[k] for k in names))
    fmap = torch.randn(32, 8, 2, 2)
    first = AMDIM.build(digits, n_rkhs=8, seed=3)._random_location(fmap)
    again = AMDIM.build(digits, n_rkhs=8, seed=3)._random_location(fmap)
    assert torch.equal(first, again) and first.shape == (32, 8)
    assert any(torch.equal(first[0], fmap[0, :, i, j]) for i in range(2) for j in range(2))


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = AMDIM.build(digits, n_rkhs=128, seed=0)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = m(views)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.3, losses
    images, _ = next(iter(digits.probe.splits["test"]))
    assert m.embed(images[:5]).shape == (5, m.encoder.out_dim)
