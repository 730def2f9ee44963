"""MoCo v3: momentum network outside the optimizer, symmetric loss, ResNet and ViT encoders."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.core.trainer import TrainConfig, build_optimizer
from mmssl.pretrain import load_data
from mmssl.vision.encoders import VisionTransformer, build_encoder
from mmssl.vision.methods import MoCoV3

SMALL = {"proj_hidden": 256, "pred_hidden": 256, "proj_dim": 64}


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=32)


def test_registered_and_momentum_network_not_optimised(digits):
    cls = registry.get("vision", "mocov3")
    assert cls is MoCoV3 and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination"
    torch.manual_seed(0)
    m = cls.build(digits, **SMALL)
    opt = build_optimizer(m, TrainConfig())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    target = list(m.target_encoder.parameters()) + list(m.target_projector.parameters())
    assert target and not any(id(p) in in_opt for p in target)
    assert m.temperature == 0.2 and m.momentum(0, 10) == pytest.approx(0.99)
    assert len([x for x in m.projector if isinstance(x, torch.nn.Linear)]) == 2  # ResNet: 2


def test_loss_finite_decreasing_and_target_follows(digits):
    torch.manual_seed(0)
    m = MoCoV3.build(digits, **SMALL)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam([p for g in m.param_groups() for p in g["params"]], lr=1e-3)
    losses = []
    for step in range(6):
        loss = m(views)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        target_before = [p.clone() for p in m.target_encoder.parameters()]
        m.after_step(step + 1, 100)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.1, losses
    mom = m.momentum(6, 100)
    for t0, t1, o in zip(
        target_before, m.target_encoder.parameters(), m.encoder.parameters(), strict=True
    ):
        assert torch.allclose(t1, mom * t0 + (1 - mom) * o, atol=1e-6)  # EMA in after_step
    assert not torch.equal(target_before[0], next(m.target_encoder.parameters()))
    assert m.embed(next(iter(digits.probe.splits["test"]))[0][:4]).shape == (4, 256)


@pytest.mark.parametrize(("name", "dim"), [("vit_tiny", 192), ("vit_small", 384)])
def test_vit_encoders(name, dim):
    enc = build_encoder(name, 3, 32)
    assert isinstance(enc, VisionTransformer) and enc.out_dim == dim and enc.grid == 8
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, dim)
    assert enc(torch.randn(2, 3, 16, 16)).shape == (2, dim)  # interpolated position embeddings
    with pytest.raises(ValueError, match="multiple of patch_size"):
        VisionTransformer(image_size=30, patch_size=4)


def test_mocov3_with_vit(digits):
    torch.manual_seed(0)
    m = MoCoV3.build(digits, encoder="vit_tiny", **SMALL)
    assert not any(p.requires_grad for p in m.encoder.patch_embed.parameters())  # frozen
    assert len([x for x in m.projector if isinstance(x, torch.nn.Linear)]) == 3  # ViT: 3
    views = m.augment(next(iter(digits.train)))
    loss = m(views)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and m.embed(views[0]).shape == (32, 192)
