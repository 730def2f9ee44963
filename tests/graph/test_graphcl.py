"""GraphCL: per-graph batched node dropping and subgraphs, seeded views, smoke training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_networkx

from mmssl.core import registry
from mmssl.core.data import DataBundle
from mmssl.graph.augment import drop_nodes_batched, subgraph_batched
from mmssl.graph.data import load
from mmssl.graph.methods.graphcl import GraphCL, GraphCLViews


def _batch(num_graphs: int = 12, f: int = 7, seed: int = 0) -> Batch:
    """Connected random graphs (a path plus chords) of 6..25 nodes, one-hot labels, edge_attr."""
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(num_graphs):
        n = int(torch.randint(6, 26, (1,), generator=g))
        path = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
        ei = torch.cat([path, torch.randint(0, n, (2, n // 2), generator=g)], dim=1)
        ei = torch.cat([ei, ei.flip(0)], dim=1)
        x = F.one_hot(torch.randint(0, f, (n,), generator=g), f).float()
        graphs.append(Data(x=x, edge_index=ei, edge_attr=torch.ones(ei.shape[1], 1)))
    return Batch.from_data_list(graphs)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sizes(b: Batch) -> torch.Tensor:
    return torch.bincount(b.batch, minlength=b.num_graphs)


def test_drop_nodes_batched_per_graph() -> None:
    b = _batch()
    x0, n = b.x.clone(), _sizes(b)
    out = drop_nodes_batched(b, 0.2, _gen())
    assert torch.equal(b.x, x0) and out.num_graphs == b.num_graphs  # input untouched
    assert torch.equal(_sizes(out), n - (n * 0.2).floor().long())
    assert out.edge_attr.shape[0] == out.edge_index.shape[1]
    for a, o in zip(out.to_data_list(), b.to_data_list(), strict=True):  # valid Batch
        assert a.edge_index.max() < a.num_nodes and a.num_nodes < o.num_nodes
    assert torch.equal(drop_nodes_batched(b, 0.2, _gen()).x, out.x)
    assert torch.equal(drop_nodes_batched(b, 0.0, _gen()).edge_index, b.edge_index)
    stored = Batch.from_data_list(
        [Data(x=torch.ones(5, 1), edge_index=b.edge_index[:, :0], num_nodes=5)] * 2
    )
    cut = drop_nodes_batched(stored, 0.4, _gen())  # a stored num_nodes follows the cut
    assert cut.num_nodes == 6 and [g.num_nodes for g in cut.to_data_list()] == [3, 3]


def test_subgraph_batched_connected_and_sized() -> None:
    import networkx as nx

    b = _batch()
    out = subgraph_batched(b, 0.2, _gen())
    assert torch.equal(_sizes(out), torch.ceil(_sizes(b) * 0.8).long())
    for a in out.to_data_list():
        assert nx.is_connected(to_networkx(a, to_undirected=True))
    assert torch.equal(subgraph_batched(b, 0.2, _gen()).edge_index, out.edge_index)
    assert not torch.equal(subgraph_batched(b, 0.2, _gen(1)).x, out.x)
    small = subgraph_batched(b, 0.5, _gen(), rounds=2)  # several nodes per step
    assert torch.equal(_sizes(small), torch.ceil(_sizes(b) * 0.5).long())
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        subgraph_batched(b, 1.0)


def test_registered_views_seeded() -> None:
    cls = registry.get("graph", "graphcl")
    assert cls is GraphCL and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination"
    assert cls.defaults["batch_size"] == 128 and cls.defaults["epochs"] == 20
    b = _batch()
    v1, v2 = GraphCLViews(seed=3)(b)
    w1, _ = GraphCLViews(seed=3)(b)
    assert torch.equal(v1.x, w1.x) and v1.num_graphs == v2.num_graphs == b.num_graphs
    assert GraphCLViews("subgraph+identity").augmentations == ("subgraph", "identity")
    with pytest.raises(ValueError, match="two names"):
        GraphCLViews(("drop_nodes", "rotate"))


def test_smoke_loss_decreases_and_embed_shape() -> None:
    bundle = DataBundle(
        name="toy", modality="graph", train=[], info={"num_features": 7, "level": "graph"}
    )
    torch.manual_seed(0)
    method = GraphCL.build(bundle, seed=0)
    batches = [_batch(16, seed=s) for s in range(2)]
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for step in range(20):
        with torch.no_grad():
            views = method.augment(batches[step % 2])
        loss = method(views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    method.eval()
    assert method.embed(batches[0]).shape == (16, 96)  # 3 layers x 32, concatenated


def test_mutag_smoke(data_root: Path) -> None:
    data = load("mutag", str(data_root), batch_size=32, seed=0)
    torch.manual_seed(0)
    method = GraphCL.build(data, seed=0)
    batch = next(iter(data.train))
    views = method.augment(batch)
    assert all(v.num_graphs == batch.num_graphs for v in views)
    assert torch.isfinite(method(views))
    assert method.embed(batch).shape == (batch.num_graphs, method.encoder.out_dim)
