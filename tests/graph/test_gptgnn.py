"""GPT-GNN: the generation order's graph, smoke training on karate, registration."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.graph.data import load
from mmssl.graph.methods.gptgnn import GPTGNN, generation_step


def test_registered() -> None:
    cls = registry.get("graph", "gpt-gnn")
    assert cls is GPTGNN and cls.family == "generative" and cls.kind == "autoregressive"


def test_generation_step_sees_only_earlier_nodes() -> None:
    graph = load("karate", None).train[0]
    n = graph.num_nodes
    step = generation_step(graph, 0.5, 0.5, torch.Generator().manual_seed(0))
    new = set(step.new.tolist())
    assert len(new) == 17 and step.num_nodes == n + 17
    src, dst = step.edge_index
    assert all(int(s) not in new for s in src)  # no message leaves a new node
    assert all(int(s) < n for s in src)  # nor an attribute copy
    copies = dst >= n
    assert torch.equal(
        step.new[dst[copies] - n].sort().values,
        dst[~copies][torch.isin(dst[~copies], step.new)].sort().values,
    )  # both copies get the same edges
    edges = {tuple(e) for e in graph.edge_index.T.tolist()}
    kept = {tuple(e) for e in step.edge_index.T.tolist()}
    for a, b in step.held.T.tolist():  # held-out edges: new -> observed, real, not shown
        assert a in new and b not in new and (a, b) in edges
        assert (a, b) not in kept and (b, a) not in kept
    again = generation_step(graph, 0.5, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again.edge_index, step.edge_index)
    with pytest.raises(ValueError, match="gen_ratio"):
        generation_step(graph, 1.0, 0.5)


def test_smoke_karate_loss_decreases() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GPTGNN.build(data, hidden_dim=32, seed=0)
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        with torch.no_grad():
            step = method.augment(data.train[0])
        out = method(step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert {"attr_loss", "edge_loss"} <= set(out)
    assert method.embed(data.train[0]).shape == (34, 32)
