"""SimSiam on tiny real data (sklearn digits): registration, parts, learning, stop-gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.methods import SimSiam

SMALL = {"proj_hidden": 256, "proj_dim": 256, "pred_hidden": 64}  # fast heads for the CPU


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def test_registered_and_built_with_paper_parts(digits):
    cls = registry.get("vision", "simsiam")
    assert cls is SimSiam and cls.family == "contrastive"
    assert cls.kind == "instance-instance/no-negatives" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    linears = [x for x in m.projector if isinstance(x, nn.Linear)]
    assert [lin.out_features for lin in linears] == [2048, 2048]  # the paper's CIFAR projector
    big = type(digits)(**{**vars(digits), "info": {**digits.info, "image_size": 96}})
    deep = cls.build(big, **SMALL)  # ImageNet-sized images: the paper's 3 layers
    assert sum(isinstance(x, nn.Linear) for x in deep.projector) == 3
    explicit = cls.build(digits, proj_layers=3, **SMALL)
    assert sum(isinstance(x, nn.Linear) for x in explicit.projector) == 3
    last = m.projector[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine  # the paper's output BN
    assert m.predictor[0].out_features == 512 and m.predictor[-1].out_features == 2048
    assert m.views.min_scale == 0.25  # the digits hint beats the 0.2 recipe
    x = next(iter(digits.train))[:8]
    assert m.embed(x).shape == (8, m.encoder.out_dim)


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = SimSiam.build(digits, **SMALL)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = m(views)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses))) and -1 <= min(losses)
    assert losses[-1] < losses[0] - 0.2, losses


def test_targets_are_stop_gradient(digits):
    """The gradient reaches the projector only through the predictor side."""
    torch.manual_seed(0)
    m = SimSiam.build(digits, **SMALL)
    with torch.no_grad():
        v1, v2 = m.augment(next(iter(digits.train)))
    z = m.projector(m.encoder(v1))
    z.retain_grad()
    p = m.predictor(z)
    m.objective(p, z).backward()  # D(p, sg(z)): z gets gradient through p only
    direct = z.grad.clone()
    z2 = m.projector(m.encoder(v1)).detach().requires_grad_()
    m.objective(m.predictor(z2), z2).backward()
    assert torch.allclose(direct, z2.grad, atol=1e-6)
