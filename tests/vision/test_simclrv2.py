"""SimCLR v2 on tiny real data (sklearn digits): registration, the deeper head, learning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import SimCLR, SimCLRv2


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def test_registered_and_built(digits):
    cls = registry.get("vision", "simclrv2")
    assert cls is SimCLRv2 and issubclass(cls, SimCLR) and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    d = m.encoder.out_dim
    linears = [x for x in m.projector if isinstance(x, nn.Linear)]
    assert [lin.out_features for lin in linears] == [d, d, 128]  # three layers
    assert sum(isinstance(x, nn.BatchNorm1d) for x in m.projector) == 3  # BN on each
    assert m.temperature == 0.1
    with pytest.raises(ValueError, match="probe_layer"):
        SimCLRv2(SmallResNet(widths=(8,)), probe_layer=3)


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = SimCLRv2.build(digits)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = m(views)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 1.0, losses


def test_embed_from_the_projector_first_layer(digits):
    torch.manual_seed(0)
    m = SimCLRv2.build(digits, probe_layer=1).eval()
    x = next(iter(digits.train))[:8]
    h = m.encoder(m.normalize(x))
    want = m.projector[2](m.projector[1](m.projector[0](h)))  # Linear, BN, ReLU
    assert torch.allclose(m.embed(x), want, atol=1e-6)
    assert m.embed(x).shape == (8, m.encoder.out_dim)
