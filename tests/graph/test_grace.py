"""GRACE: registered with the paper's Cora settings, NT-Xent loss goes down on Karate."""

from __future__ import annotations

import torch

from mmssl.core import registry
from mmssl.graph.augment import GraphViews
from mmssl.graph.data import load
from mmssl.graph.methods.grace import GRACE, GRACEEncoder
from mmssl.graph.methods.two_view import GraphTwoView


def test_registered_with_paper_defaults() -> None:
    cls = registry.get("graph", "grace")
    assert cls is GRACE and issubclass(cls, GraphTwoView)
    assert cls.family == "contrastive" and cls.kind == "instance-instance/discrimination"
    assert cls.defaults["lr"] == 5e-4 and cls.defaults["weight_decay"] == 1e-5
    assert cls.defaults["epochs"] == 200


def test_build_uses_grace_cora_parts() -> None:
    data = load("karate", None)
    method = GRACE.build(data, seed=0)
    assert isinstance(method.encoder, GRACEEncoder) and method.encoder.out_dim == 128
    widths = [layer.convs[0].out_channels for layer in method.encoder.layers]
    assert widths == [256, 128]  # the paper's code: hidden layers twice the output width
    assert isinstance(method.views, GraphViews)
    assert method.views.drop_edge == (0.2, 0.4) and method.views.mask_feature == (0.3, 0.4)
    assert method.objective.keywords["temperature"] == 0.4


def test_smoke_karate_loss_decreases() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GRACE.build(data, seed=0)
    opt = torch.optim.Adam(method.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        with torch.no_grad():
            views = method.augment(data.train[0])
        loss = method(views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    method.eval()
    assert method.embed(data.train[0]).shape == (34, 128)
