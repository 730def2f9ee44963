"""Deep Graph Infomax: the loss against a hand-written reference, smoke training, embeddings."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core import registry
from mmssl.core.evaluate import run_probe
from mmssl.graph.augment import shuffle_features
from mmssl.graph.data import load
from mmssl.graph.methods.dgi import DGI


def _train(method: DGI, batches: list, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(method.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        with torch.no_grad():
            views = method.augment(batch)
        loss = method(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_registered_with_paper_defaults() -> None:
    cls = registry.get("graph", "dgi")
    assert cls is DGI and cls.family == "contrastive"
    assert cls.kind == "context-instance/mutual-information"
    assert cls.defaults["lr"] == 1e-3 and cls.defaults["patience"] == 20


def test_loss_matches_the_papers_bce() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = DGI.build(data, hidden_dim=16, seed=0)
    graph, perm = method.augment(data.train[0])  # the GCN embeds the shuffle in one pass
    corrupted = copy.copy(graph)
    corrupted.x = graph.x[perm]  # DGI's corruption, written out
    h, h_neg = method.encoder(graph), method.encoder(corrupted)  # (N, D)
    s = torch.sigmoid(h.mean(0))  # (D,)
    w = method.discriminator.weight
    logits = torch.cat([h @ w @ s, h_neg @ w @ s])  # (2N,)
    labels = torch.cat([torch.ones(34), torch.zeros(34)])
    expected = 2 * F.binary_cross_entropy_with_logits(logits, labels)  # equal-sized halves
    assert torch.allclose(method((graph, perm))["loss"], expected, atol=1e-5)
    assert torch.allclose(method((graph, corrupted))["loss"], expected, atol=1e-5)


def test_the_one_pass_corruption_is_the_shuffle_it_replaces() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    fast = DGI.build(data, hidden_dim=16, seed=3)
    slow = copy.deepcopy(fast)
    slow.corruption = lambda graph, gen: shuffle_features(graph, gen)  # not the default: 2 passes
    graph = data.train[0]
    views = fast.augment(graph)
    slow_views = slow.augment(graph)
    assert isinstance(views[1], Tensor) and not isinstance(slow_views[1], Tensor)
    a, b = fast(views), slow(slow_views)
    torch.testing.assert_close(a["loss"], b["loss"])
    a["loss"].backward()
    b["loss"].backward()
    for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5)


def test_smoke_karate_loss_decreases() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = DGI.build(data, hidden_dim=64, seed=0)
    losses = _train(method, data.train, steps=20, lr=1e-2)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    emb = method.embed(data.train[0])
    assert emb.shape == (34, 64)
    result = run_probe(method, data.probe, "linear")["linear"]
    assert 0.0 <= result["test_acc"] <= 1.0


def test_corruption_is_seeded() -> None:
    data = load("karate", None)
    a = DGI.build(data, seed=5).augment(data.train[0])[1]  # the permutation
    b = DGI.build(data, seed=5).augment(data.train[0])[1]
    c = DGI.build(data, seed=6).augment(data.train[0])[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_graph_level_per_graph_summaries(data_root: Path) -> None:
    data = load("mutag", str(data_root), batch_size=64, seed=0)
    torch.manual_seed(0)
    method = DGI.build(data, seed=0)
    assert method.level == "graph"
    batches = [b for _, b in zip(range(3), data.train, strict=False)]
    losses = _train(method, batches, steps=12, lr=1e-3)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert method.embed(batches[0]).shape == (batches[0].num_graphs, method.encoder.out_dim)
