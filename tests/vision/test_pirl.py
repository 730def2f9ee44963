"""PIRL: jigsaw patches, the two-term memory-bank loss, and a smoke run on digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.methods import PIRL
from mmssl.vision.methods.pirl import jigsaw_cells


@pytest.fixture()
def digits():
    return load_data("vision", None, None, batch_size=32)


def test_jigsaw_cells_tile_the_image():
    x = torch.arange(2 * 3 * 7 * 7, dtype=torch.float32).view(2, 3, 7, 7)
    cells = jigsaw_cells(x, 3)  # 7 // 3 = 2: a 6x6 crop in nine 2x2 cells
    assert cells.shape == (2, 9, 3, 2, 2)
    assert torch.equal(cells[:, 0], x[:, :, 0:2, 0:2])
    assert torch.equal(cells[:, 5], x[:, :, 2:4, 4:6])  # row 1, column 2


def test_registered_and_views(digits):
    cls = registry.get("vision", "pirl")
    assert cls is PIRL and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination"
    torch.manual_seed(0)
    m = cls.build(digits, seed=0)
    x, patches, idx = m.augment(next(iter(digits.train)))
    assert x.shape == (32, 3, 16, 16) and patches.shape == (32, 9, 3, 5, 5) and idx.shape == (32,)
    with pytest.raises(ValueError, match="mix"):
        PIRL(m.encoder, 10, mix=1.5)


def test_loss_finite_decreasing_and_bank_gets_image_features(digits):
    torch.manual_seed(0)
    m = PIRL.build(digits, seed=0)
    with torch.no_grad():
        batch = m.augment(next(iter(digits.train)))
    x, _, idx = batch
    before = m.bank.bank[idx].clone()
    opt = torch.optim.Adam([p for g in m.param_groups() for p in g["params"]], lr=1e-3)
    losses = []
    for step in range(5):
        if step == 0:
            with torch.no_grad():
                v = F.normalize(m.head_image(m.encoder(x)), dim=1)
        out = m(batch)
        if step == 0:
            assert torch.allclose(
                m.bank.bank[idx], F.normalize(0.5 * before + 0.5 * v, dim=1), atol=1e-5
            )
            assert 0 < float(out["loss_jigsaw"]) and 0 < float(out["loss_image"])
        losses.append(float(out["loss"].detach()))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5, losses
