"""BGRL: registered, the loss goes down on Karate, the target is an EMA of the online GCN."""

from __future__ import annotations

import torch

from mmssl.core import registry
from mmssl.graph.data import load
from mmssl.graph.methods.bgrl import BGRL


def _train(method: BGRL, graph: object, steps: int, lr: float) -> list[float]:
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        with torch.no_grad():
            views = method.augment(graph)
        loss = method(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(step, steps)
        losses.append(float(loss.detach()))
    return losses


def test_registered() -> None:
    cls = registry.get("graph", "bgrl")
    assert cls is BGRL and cls.family == "contrastive"
    assert cls.kind == "instance-instance/no-negatives"


def test_target_is_frozen_and_not_optimised() -> None:
    data = load("karate", None)
    method = BGRL.build(data, dims=(32, 32), seed=0)
    assert all(not p.requires_grad for p in method.target_encoder.parameters())
    names = {n for n, p in method.named_parameters() if p.requires_grad}
    assert not any(n.startswith("target_encoder") for n in names)
    assert method.momentum(0, 10) == 0.99 and method.momentum(10, 10) == 1.0


def test_smoke_karate_loss_decreases_and_target_moves() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = BGRL.build(data, dims=(64, 64), seed=0)
    before = [p.clone() for p in method.target_encoder.parameters()]
    losses = _train(method, data.train[0], steps=30, lr=5e-3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    moved = [
        not torch.equal(a, b)
        for a, b in zip(before, method.target_encoder.parameters(), strict=True)
    ]
    assert all(moved)
    online = list(method.encoder.parameters())
    assert not all(
        torch.equal(a, b) for a, b in zip(online, method.target_encoder.parameters(), strict=True)
    )
    method.eval()
    assert method.embed(data.train[0]).shape == (34, 64)
