"""Barlow Twins on tiny real data (sklearn digits): registration, parts, learning."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.core.objectives import barlow_twins_loss
from mmssl.pretrain import load_data
from mmssl.vision.augment import BYOLAugment
from mmssl.vision.methods import BarlowTwins


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def test_registered_and_built(digits):
    cls = registry.get("vision", "barlowtwins")
    assert cls is BarlowTwins and cls.family == "contrastive"
    assert cls.kind == "instance-instance/no-negatives" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    linears = [x for x in m.projector if isinstance(x, nn.Linear)]
    assert [lin.out_features for lin in linears] == [2048, 2048, 2048]  # CIFAR width
    assert m.lambd == 5e-3 and isinstance(m.views, BYOLAugment)
    paper = inspect.signature(BarlowTwins).parameters  # the paper's projector by default
    assert paper["proj_hidden"].default == paper["proj_dim"].default == 8192
    assert paper["lambd"].default == 5e-3
    x = next(iter(digits.train))[:8]
    assert m.embed(x).shape == (8, m.encoder.out_dim)


def test_loss_is_the_core_objective_and_decreases(digits):
    torch.manual_seed(0)
    m = BarlowTwins.build(digits, proj_hidden=256, proj_dim=256)
    with torch.no_grad():
        v1, v2 = m.augment(next(iter(digits.train)))
        z1, z2 = m.projector(m.encoder(v1)), m.projector(m.encoder(v2))
        assert torch.allclose(m((v1, v2)), barlow_twins_loss(z1, z2, lambd=5e-3), rtol=1e-4)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = m((v1, v2))
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0], losses
