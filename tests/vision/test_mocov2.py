"""MoCo v2 on tiny real data (sklearn digits): registration, the v2 defaults, learning, queue."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.core.trainer import TrainConfig, build_optimizer
from mmssl.pretrain import load_data
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import MoCo, MoCoV2


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def test_registered_with_v2_defaults(digits):
    cls = registry.get("vision", "mocov2")
    assert cls is MoCoV2 and issubclass(cls, MoCo) and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    assert isinstance(m, MoCoV2) and m.T == 0.2 and m.m == 0.99
    linears = [x for x in m.projector if isinstance(x, nn.Linear)]  # the MLP head
    assert [lin.out_features for lin in linears] == [m.encoder.out_dim, 128]
    assert m.views.cj_prob == 0.8 and m.views.jitter["hue"] == pytest.approx(0.1)
    assert MoCoV2.build(digits, T=0.1).T == 0.1
    with pytest.raises(ValueError, match="T must be > 0"):
        MoCoV2(SmallResNet(widths=(8,)), T=0.0)


def test_loss_finite_and_decreasing_and_queue_fills(digits):
    """Fixed views and fixed negatives (the queue reset each step): the loss must go down."""
    torch.manual_seed(0)
    m = MoCoV2.build(digits)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    start = m.queue.queue.clone()
    opt = build_optimizer(m, TrainConfig(optimizer="adam", lr=1e-3))
    targets = {id(p) for p in [*m.target_encoder.parameters(), *m.target_projector.parameters()]}
    assert not targets & {id(p) for g in opt.param_groups for p in g["params"]}
    losses = []
    for step in range(1, 9):
        loss = m(views)["loss"]
        assert int(m.queue.ptr) == 64 and not torch.equal(m.queue.queue[:64], start[:64])
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        before = next(m.target_projector.parameters()).clone()
        m.after_step(step, 8)
        assert not torch.equal(before, next(m.target_projector.parameters()))
        m.queue.queue.copy_(start)
        m.queue.ptr.zero_()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.3, losses
