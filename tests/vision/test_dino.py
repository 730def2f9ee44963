"""DINO: teacher outside the optimizer, centre, temperature warmup, momentum, ResNet and ViT."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.core.trainer import TrainConfig, build_optimizer
from mmssl.pretrain import load_data
from mmssl.vision.methods import DINO, DINOHead

SMALL = {"out_dim": 256}


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=32)


def test_head_unit_norm_logits():
    head = DINOHead(16, out_dim=50, hidden=32, bottleneck=8)
    out = head(torch.randn(4, 16))
    assert out.shape == (4, 50) and out.abs().max() <= 1.0 + 1e-5  # cosines: weight norm g=1
    out.sum().backward()
    assert head.last.weight.grad is not None
    head.zero_grad()
    head(torch.randn(4, 16), freeze_last=True).sum().backward()
    assert head.last.weight.grad is None


def test_registered_schedules_and_teacher_not_optimised(digits):
    cls = registry.get("vision", "dino")
    assert cls is DINO and cls.family == "contrastive"
    assert cls.kind == "instance-instance/no-negatives"
    torch.manual_seed(0)
    m = cls.build(digits, **SMALL, teacher_temp=0.07, base_momentum=0.996)  # the paper's
    opt = build_optimizer(m, TrainConfig())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    teacher = list(m.teacher_encoder.parameters()) + list(m.teacher_head.parameters())
    assert teacher and not any(id(p) in in_opt for p in teacher)
    assert m.teacher_temperature() == pytest.approx(0.04)
    m.after_step(15, 100)  # halfway through the 30-step warmup
    assert m.teacher_temperature() == pytest.approx(0.055)
    m.after_step(60, 100)
    assert m.teacher_temperature() == pytest.approx(0.07)
    assert m.momentum(0, 100) == pytest.approx(0.996) and m.momentum(100, 100) == 1.0


def test_centre_and_smoke(digits):
    torch.manual_seed(0)
    m = DINO.build(digits, **SMALL, n_local=2)
    with torch.no_grad():
        crops = m.augment(next(iter(digits.train)))
    assert [tuple(c.shape[-2:]) for c in crops] == [(16, 16)] * 2 + [(8, 8)] * 2
    opt = torch.optim.Adam([p for g in m.param_groups() for p in g["params"]], lr=1e-3)
    losses = []
    for step in range(6):
        centre = m.loss.center.clone()
        out = m(crops)
        if step == 0:  # started at the first batch's teacher mean, then moved by the update
            assert bool(m.center_ready) and not torch.equal(m.loss.center, centre)
        losses.append(float(out["loss"].detach()))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        m.after_step(step + 1 + len(digits.train), 1000)  # past the last-layer freeze
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses
    assert m.embed(crops[0]).shape == (32, m.encoder.out_dim)


def test_dino_with_vit(digits):
    torch.manual_seed(0)
    m = DINO.build(digits, encoder="vit_tiny", **SMALL, n_local=2)
    crops = m.augment(next(iter(digits.train)))
    loss = m(crops)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and m.embed(crops[0]).shape == (32, 192)
    assert m.encoder.blocks[0].qkv.weight.grad is not None


def test_head_batch_norm_on_for_resnets_off_for_vits(digits):
    def has_bn(m: DINO) -> tuple[bool, bool]:
        student, teacher = (
            any(isinstance(x, torch.nn.BatchNorm1d) for x in h.modules())
            for h in (m.head, m.teacher_head)
        )
        return student, teacher

    assert has_bn(DINO.build(digits, **SMALL)) == (True, True)
    assert has_bn(DINO.build(digits, encoder="vit_tiny", **SMALL)) == (False, False)
    assert has_bn(DINO.build(digits, head_batch_norm=False, **SMALL)) == (False, False)
    assert has_bn(DINO.build(digits, encoder="vit_tiny", head_batch_norm=True, **SMALL)) == (
        True,
        True,
    )


def test_small_resnet_recipe_and_explicit_settings_win(digits):
    def settings(m: DINO) -> tuple[int, int, float, float, float]:
        linears = sum(isinstance(x, torch.nn.Linear) for x in m.head.mlp.modules())
        return (linears, m.loss.out_dim, *m.temps[:2], m.momentum(0, 100))

    # digits on a ResNet: lightly's CIFAR-10 settings (2-layer head, 2048, 0.04, 0.99)
    assert settings(DINO.build(digits)) == (2, 2048, 0.04, 0.04, pytest.approx(0.99))
    # a ViT keeps the paper's head and schedules (4096 outputs for small images)
    vit = DINO.build(digits, encoder="vit_tiny", n_local=2)
    assert settings(vit) == (3, 4096, 0.04, 0.07, pytest.approx(0.996))
    given = DINO.build(digits, head_layers=3, out_dim=512, teacher_temp=0.07, base_momentum=0.9)
    assert settings(given) == (3, 512, 0.04, 0.07, pytest.approx(0.9))
