"""Graph augmentations: shapes, no mutation of the input, determinism under a seeded generator."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from mmssl.graph.augment import GraphViews, drop_edges, mask_features, shuffle_features


def _graph(n: int = 50, e: int = 400, f: int = 16) -> Data:
    g = torch.Generator().manual_seed(0)
    return Data(
        x=torch.randn(n, f, generator=g),
        edge_index=torch.randint(0, n, (2, e), generator=g),
        edge_attr=torch.arange(e, dtype=torch.float).view(e, 1),
    )


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shuffle_features_permutes_rows_only() -> None:
    data = _graph()
    x0 = data.x.clone()
    out = shuffle_features(data, _gen())
    assert torch.equal(data.x, x0)  # input untouched
    assert out.edge_index is data.edge_index  # the graph is shared, not copied
    assert not torch.equal(out.x, data.x)
    assert torch.equal(out.x.sort(0).values, data.x.sort(0).values)  # same rows, new order
    assert torch.equal(shuffle_features(data, _gen()).x, out.x)
    assert not torch.equal(shuffle_features(data, _gen(1)).x, out.x)


def test_drop_edges() -> None:
    data = _graph()
    assert torch.equal(drop_edges(data, 0.0, _gen()).edge_index, data.edge_index)
    out = drop_edges(data, 0.5, _gen())
    kept = out.edge_index.shape[1]
    assert 120 < kept < 280 and out.x is data.x
    idx = out.edge_attr.view(-1).long()  # edge_attr held each edge's position
    assert torch.equal(data.edge_index[:, idx], out.edge_index)
    assert torch.equal(drop_edges(data, 0.5, _gen()).edge_index, out.edge_index)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_edges(data, 1.0)


def test_mask_features_columns_and_nodes() -> None:
    data = Data(x=torch.ones(30, 200), edge_index=torch.zeros(2, 0, dtype=torch.long))
    out = mask_features(data, 0.3, _gen())
    zero_cols = out.x.eq(0).all(0)
    assert out.x.eq(0).any(0).equal(zero_cols)  # whole columns, same for every node
    assert 30 < int(zero_cols.sum()) < 90
    per = mask_features(data, 0.3, _gen(), per_node=True)
    assert per.x.shape == (30, 200) and not per.x.eq(0).any(0).equal(per.x.eq(0).all(0))
    assert torch.equal(mask_features(data, 0.3, _gen()).x, out.x)
    assert data.x.eq(1).all()


def test_graph_views_on_a_batch() -> None:
    batch = Batch.from_data_list([_graph(10, 30), _graph(20, 60)])
    v1, v2 = GraphViews(seed=3)(batch)
    for v in (v1, v2):
        assert v.x.shape == batch.x.shape and v.num_graphs == 2
        assert torch.equal(v.batch, batch.batch)
        assert v.edge_index.shape[1] < batch.edge_index.shape[1]
    w1, w2 = GraphViews(seed=3)(batch)
    assert torch.equal(w1.edge_index, v1.edge_index) and torch.equal(w2.x, v2.x)
    assert not torch.equal(v1.x, v2.x) or not torch.equal(v1.edge_index, v2.edge_index)
    with pytest.raises(ValueError, match="one probability per view"):
        GraphViews(drop_edge=(0.2,))


def test_drop_nodes_removes_nodes_with_their_edges() -> None:
    from mmssl.graph.augment import drop_nodes

    data = _graph()
    same = drop_nodes(data, 0.0, _gen())
    assert torch.equal(same.x, data.x) and torch.equal(same.edge_index, data.edge_index)
    out = drop_nodes(data, 0.5, _gen())
    assert 10 < out.x.shape[0] < 40 and out.edge_index.max() < out.x.shape[0] == out.num_nodes
    assert out.edge_index.shape[1] < data.edge_index.shape[1] and data.x.shape[0] == 50
    assert torch.equal(drop_nodes(data, 0.5, _gen()).x, out.x)
    with pytest.raises(ValueError, match="node drop probability"):
        drop_nodes(data, 1.0)


def test_rwr_subgraph_is_an_induced_subgraph_around_the_start() -> None:
    from torch_geometric.datasets import KarateClub
    from torch_geometric.utils import subgraph

    from mmssl.graph.augment import rwr_subgraph, rwr_subgraphs

    data = KarateClub()[0]
    subs = rwr_subgraphs(data, torch.tensor([0, 5, 33, 5]), walk_length=16, generator=_gen())
    for sub, start in zip(subs, [0, 5, 33, 5], strict=True):
        assert int(sub.node_ids[0]) == start and sub.num_nodes == sub.node_ids.numel() > 1
        assert torch.equal(sub.x, data.x[sub.node_ids])
        ref, _ = subgraph(sub.node_ids, data.edge_index, relabel_nodes=True)
        assert {tuple(e) for e in ref.T.tolist()} == {tuple(e) for e in sub.edge_index.T.tolist()}
        assert sub.edge_index.shape == ref.shape
    one = rwr_subgraph(data, 5, walk_length=16, generator=_gen())
    assert torch.equal(
        one.node_ids, rwr_subgraph(data, 5, walk_length=16, generator=_gen()).node_ids
    )
    # restart after every step: the ego network's nodes only, and all of them with enough steps
    ego = rwr_subgraph(data, 0, restart_prob=1.0, walk_length=500, generator=_gen())
    neighbours = data.edge_index[1, data.edge_index[0] == 0]
    assert set(ego.node_ids.tolist()) == {0, *neighbours.tolist()}
    lonely = Data(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 0]]))
    assert rwr_subgraph(lonely, 2, generator=_gen()).num_nodes == 1
    with pytest.raises(ValueError, match="restart_prob"):
        rwr_subgraph(data, 0, restart_prob=0.0)
