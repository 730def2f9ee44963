"""InfoGraph: the loss against a hand-written loop, smoke training, graph embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from mmssl.core import registry
from mmssl.core.data import DataBundle
from mmssl.graph.data import load
from mmssl.graph.methods.infograph import InfoGraph


def _batch(num_graphs: int = 12, f: int = 7, seed: int = 0) -> Batch:
    """Random undirected graphs of 6..15 nodes with one-hot node labels (MUTAG-like)."""
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(num_graphs):
        n = int(torch.randint(6, 16, (1,), generator=g))
        ei = torch.randint(0, n, (2, 2 * n), generator=g)
        ei = torch.cat([ei, ei.flip(0)], dim=1)
        x = F.one_hot(torch.randint(0, f, (n,), generator=g), f).float()
        graphs.append(Data(x=x, edge_index=ei))
    return Batch.from_data_list(graphs)


def _bundle(f: int = 7) -> DataBundle:
    return DataBundle(
        name="toy", modality="graph", train=[], info={"num_features": f, "level": "graph"}
    )


def _train(method: InfoGraph, batches: list, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(method.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        with torch.no_grad():
            views = method.augment(batches[step % len(batches)])
        loss = method(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_registered_with_paper_defaults() -> None:
    cls = registry.get("graph", "infograph")
    assert cls is InfoGraph and cls.family == "contrastive"
    assert cls.kind == "context-instance/mutual-information"
    assert cls.defaults["lr"] == 1e-3 and cls.defaults["batch_size"] == 128
    assert cls.defaults["epochs"] == 20
    with pytest.raises(ValueError, match="graph-level"):
        InfoGraph.build(load("karate", None))


def test_loss_matches_a_naive_loop() -> None:
    torch.manual_seed(0)
    method = InfoGraph.build(_bundle(), hidden_dim=8, num_layers=3)
    batch = _batch(5)
    h = method.encoder(batch)  # (N, 24)
    pos_terms, neg_terms = [], []
    for g in range(batch.num_graphs):
        hg = method.global_head(h[batch.batch == g].sum(0, keepdim=True))  # (1, 24)
        for u in range(h.shape[0]):
            t = float((method.local_head(h[u : u + 1]) @ hg.T).detach())
            if batch.batch[u] == g:
                pos_terms.append(F.softplus(torch.tensor(-t)))
            else:
                neg_terms.append(F.softplus(torch.tensor(t)))
    expected = torch.stack(pos_terms).mean() + torch.stack(neg_terms).mean()
    assert torch.allclose(method(batch)["loss"], expected, rtol=1e-4, atol=1e-4)


def test_smoke_loss_decreases_and_embed_shape() -> None:
    torch.manual_seed(0)
    method = InfoGraph.build(_bundle(), hidden_dim=16, num_layers=3)
    batches = [_batch(16, seed=s) for s in range(2)]
    losses = _train(method, batches, steps=20, lr=1e-3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    method.eval()
    emb = method.embed(batches[0])
    assert emb.shape == (16, 48) and torch.isfinite(emb).all()


def test_mutag_smoke(data_root: Path) -> None:
    data = load("mutag", str(data_root), batch_size=32, seed=0)
    torch.manual_seed(0)
    method = InfoGraph.build(data)
    batches = [b for _, b in zip(range(2), data.train, strict=False)]
    losses = _train(method, batches, steps=10, lr=1e-3)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert method.embed(batches[0]).shape == (batches[0].num_graphs, 160)
