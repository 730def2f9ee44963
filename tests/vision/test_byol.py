"""BYOL on tiny real data (sklearn digits): registration, learning, the EMA target, the views."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.core.trainer import TrainConfig, build_optimizer
from mmssl.pretrain import load_data
from mmssl.vision.augment import BYOLAugment
from mmssl.vision.methods import BYOL

SMALL = {"proj_hidden": 256, "pred_hidden": 256, "proj_dim": 64}  # fast heads for the CPU


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def _train(method, views, steps: int = 8, lr: float = 1e-3) -> list[float]:
    """Adam on fixed views, with the momentum update after each step."""
    opt = build_optimizer(method, TrainConfig(optimizer="adam", lr=lr))
    out = []
    for step in range(1, steps + 1):
        loss = method(views)["loss"]
        out.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(step, steps)
    return out


def test_registered_and_built_with_paper_parts(digits):
    cls = registry.get("vision", "byol")
    assert cls is BYOL and cls.family == "contrastive"
    assert cls.kind == "instance-instance/no-negatives" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    assert m.projector[0].out_features == 4096 and m.projector[-1].out_features == 256
    assert m.predictor[0].in_features == 256 and m.predictor[-1].out_features == 256
    assert isinstance(m.views, BYOLAugment) and m.views.view2.solarize_prob == 0.2
    assert m.views.view1.hflip_prob == 0.0  # the digits hint reaches both views
    x = next(iter(digits.train))[:8]
    assert m.embed(x).shape == (8, m.encoder.out_dim)


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = BYOL.build(digits, **SMALL)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    losses = _train(m, views)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert 0 <= losses[-1] < losses[0] - 0.5, losses


def test_target_is_frozen_and_moves_only_in_after_step(digits):
    torch.manual_seed(0)
    m = BYOL.build(digits, **SMALL)
    opt = build_optimizer(m, TrainConfig(optimizer="adamw", lr=1e-3))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    targets = [*m.target_encoder.parameters(), *m.target_projector.parameters()]
    assert targets and not any(id(p) in in_opt or p.requires_grad for p in targets)
    assert {id(p) for p in m.predictor.parameters()} <= in_opt

    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    loss = m(views)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    before = [p.detach().clone() for p in m.target_encoder.parameters()]
    assert all(p.grad is None for p in targets)
    m.after_step(1, 10)
    mom = m.momentum(1, 10)
    assert 0.99 <= mom < 1.0
    for old, new, online in zip(
        before, m.target_encoder.parameters(), m.encoder.parameters(), strict=True
    ):
        assert torch.allclose(new, mom * old + (1 - mom) * online.detach(), atol=1e-6)
    assert any(
        not torch.equal(o, n) for o, n in zip(before, m.target_encoder.parameters(), strict=True)
    )


def test_byol_views_are_asymmetric_and_seeded():
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    aug = BYOLAugment(32, blur_probs=(1.0, 0.1), solarize_probs=(0.0, 0.2), seed=3)
    assert aug.view1.blur_prob == 1.0 and aug.view2.blur_prob == 0.1
    assert aug.view1.solarize_prob == 0.0 and aug.view2.solarize_prob == 0.2
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert a[0].shape == a[1].shape == (32, 3, 32, 32)
    with pytest.raises(ValueError, match="one value per view"):
        BYOLAugment(blur_probs=(1.0,))
