"""The graph two-view method: default GRACE parts, a user's own objective, graph-level batches."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from mmssl.core import registry
from mmssl.graph.augment import GraphViews
from mmssl.graph.data import load
from mmssl.graph.encoders import GCN
from mmssl.graph.methods.two_view import GraphTwoView


def _train(method: GraphTwoView, batches: list, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(method.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        with torch.no_grad():
            views = method.augment(batches[step % len(batches)])
        loss = method(views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_registered_grace_defaults_loss_decreases() -> None:
    assert registry.get("graph", "two-view") is GraphTwoView
    data = load("karate", None)
    torch.manual_seed(0)
    method = GraphTwoView.build(data, seed=0)
    assert isinstance(method.encoder, GCN) and isinstance(method.views, GraphViews)
    losses = _train(method, data.train, steps=30, lr=5e-3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert method.embed(data.train[0]).shape == (34, 128)


def test_custom_objective_callable() -> None:
    calls = []

    def alignment_uniformity(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        calls.append(z1.shape)
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        align = (z1 - z2).pow(2).sum(1).mean()
        uniform = torch.pdist(z1).pow(2).mul(-2).exp().mean().log()
        return align + uniform

    data = load("karate", None)
    torch.manual_seed(0)
    method = GraphTwoView(GCN(34, 32), objective=alignment_uniformity, dim=32, proj_dim=16)
    losses = _train(method, data.train, steps=25, lr=1e-2)
    assert calls[0] == (34, 16)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    lam = GraphTwoView(GCN(34, 8), objective=lambda a, b: (a - b).pow(2).mean())
    assert torch.isfinite(lam(lam.augment(data.train[0])))


def test_graph_level_contrasts_graphs(data_root: Path) -> None:
    data = load("mutag", str(data_root), batch_size=32, seed=0)
    torch.manual_seed(0)
    method = GraphTwoView.build(data, seed=0)
    batch = next(iter(data.train))
    assert method.embed(batch).shape == (32, 160)
    losses = _train(method, [batch], steps=10, lr=1e-3)
    assert losses[-1] < losses[0]
