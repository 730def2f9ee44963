"""VICReg on tiny real data (sklearn digits): registration, parts, logged terms, learning."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.core.method import loss_and_logs
from mmssl.pretrain import load_data
from mmssl.vision.augment import BYOLAugment
from mmssl.vision.methods import VICReg


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def test_registered_and_built(digits):
    cls = registry.get("vision", "vicreg")
    assert cls is VICReg and cls.family == "contrastive"
    assert cls.kind == "instance-instance/no-negatives" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    linears = [x for x in m.projector if isinstance(x, nn.Linear)]
    assert [lin.out_features for lin in linears] == [2048, 2048, 2048]  # CIFAR width
    assert isinstance(m.views, BYOLAugment)
    paper = inspect.signature(VICReg).parameters  # the paper's expander by default
    assert paper["proj_hidden"].default == paper["proj_dim"].default == 8192
    x = next(iter(digits.train))[:8]
    assert m.embed(x).shape == (8, m.encoder.out_dim)


def test_loss_and_terms_logged_and_decreasing(digits):
    torch.manual_seed(0)
    m = VICReg.build(digits, proj_hidden=256, proj_dim=256)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        out = m(views)
        loss, logs = loss_and_logs(out)
        assert {"loss", "invariance", "variance", "covariance"} <= set(logs)
        expect = 25 * logs["invariance"] + 25 * logs["variance"] + logs["covariance"]
        assert logs["loss"] == pytest.approx(expect, rel=1e-4)
        losses.append(logs["loss"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 2.0, losses
