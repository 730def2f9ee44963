"""CPC v2 on tiny real data (sklearn digits): the patch grid, the masked context network,
registration, learning and the mean-pooled embedding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.core.trainer import TrainConfig, build_optimizer
from mmssl.pretrain import load_data
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import CPC
from mmssl.vision.methods.cpc import MaskedContext, columns, layer_norm_, patch_grid


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=8)


def _tiny(digits, **kw) -> CPC:
    torch.manual_seed(0)
    return CPC.build(digits, context_hidden=16, seed=0, **kw)


def test_patch_grid_and_columns():
    x = torch.randn(2, 3, 16, 16)
    p = patch_grid(x, 4, 2)
    assert p.shape == (2, 7, 7, 3, 4, 4)
    assert torch.equal(p[1, 3, 5], x[1, :, 6:10, 10:14])
    grid = torch.randn(2, 5, 7, 6)  # (B, D, rows, cols)
    seq = columns(grid)
    assert seq.shape == (12, 7, 5) and torch.equal(seq[6 + 4, 2], grid[1, :, 2, 4])


def test_context_sees_only_rows_above():
    torch.manual_seed(0)
    net = MaskedContext(8, hidden=16, layers=3)
    z = torch.randn(2, 8, 7, 7)
    changed = z.clone()
    changed[:, :, 4] += 1.0  # perturb row 4 only
    diff = (net(changed) - net(z)).abs().amax((0, 1, 3))  # (rows,)
    assert diff[:4].max() == 0 and diff[4] > 0  # rows above are blind to row 4


def test_layer_norm_replaces_batch_norm():
    enc = layer_norm_(SmallResNet(widths=(8, 16)))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in enc.modules()) >= 3
    out = enc(torch.randn(1, 3, 4, 4))  # no batch statistics: one patch is fine
    assert out.shape == (1, 16)


def test_registered_and_built(digits):
    for name in ("cpc", "cpcv2"):
        cls = registry.get("vision", name)
        assert cls is CPC and cls.family == "contrastive" and cls.modality == "vision"
        assert cls.kind == "context-instance/mutual-information"
    m = _tiny(digits)
    assert (m.patch, m.stride) == (4, 2)  # 7x7 grid at 16 px
    assert m.flip_prob == 0.0 and m.color_drop_prob == 0.0  # digits do not flip
    assert m.skip == 1  # offsets 2..4: the next row overlaps the context's own
    assert len(m.predictors) == 1 and len(m.predictors[0]) == 3
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.encoder.modules())
    assert len(_tiny(digits, directions=4).predictors) == 4
    with pytest.raises(ValueError, match="grid rows"):
        CPC(SmallResNet(widths=(8,)), steps=5, skip=2)


def test_patch_augment_drops_colours(digits):
    m = _tiny(digits, padding=0, color_drop_prob=1.0)
    images = next(iter(digits.train))
    patches = m.augment(images)
    assert patches.shape == (8, 7, 7, 3, 4, 4)
    clean = patch_grid(m.normalize(images), 4, 2)
    kept = (patches != 0).flatten(4).any(-1)  # (B, G, G, C) channels not zeroed
    nonzero = (clean != 0).flatten(4).any(-1)
    assert (kept.sum(-1) <= 1).all()  # at most one channel survives in every patch
    assert torch.equal(patches.sum(3), (clean * kept[..., None, None]).sum(3))
    assert nonzero.any()


@pytest.mark.parametrize("directions", [1, 2])
def test_loss_finite_decreasing_and_embed(digits, directions):
    m = _tiny(digits, directions=directions)
    with torch.no_grad():
        batch = m.augment(next(iter(digits.train)))
    opt = build_optimizer(m, TrainConfig(optimizer="adam", lr=1e-3))
    losses = []
    for _ in range(6):
        loss = m(batch)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.3, losses
    m.eval()
    x, _ = next(iter(digits.probe.splits["test"]))
    z = m.embed(x[:4])
    assert z.shape == (4, m.encoder.out_dim)
    want = m.latents(patch_grid(m.normalize(x[:4]), 4, 2)).mean((2, 3))
    assert torch.allclose(z, want, atol=1e-5)
