"""GNN encoders against PyG's reference layers, readouts, and the adjacency cache."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv

from mmssl.graph.encoders import GAT, GCN, GIN, SparseFeatures, readout


def _graph(n: int = 12, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 3 * n), generator=g)
    return Data(x=torch.randn(n, 5, generator=g), edge_index=torch.cat([ei, ei.flip(0)], 1))


def test_gcn_matches_pyg_gcnconv() -> None:
    data = _graph()
    enc = GCN(5, 8, num_layers=2, activation="relu")
    ref = [GCNConv(5, 8), GCNConv(8, 8)]
    for mine, theirs in zip(enc.convs, ref, strict=True):
        theirs.load_state_dict(mine.state_dict())
    expected = torch.relu(ref[1](torch.relu(ref[0](data.x, data.edge_index)), data.edge_index))
    assert torch.allclose(enc(data), expected, atol=1e-5)
    assert enc(data).shape == (12, 8) and enc.out_dim == 8


def test_gcn_caches_the_normalised_adjacency_per_edge_index() -> None:
    data = _graph()
    enc = GCN(5, 4)
    enc(data)
    cached = enc._cache[2]
    enc(Data(x=data.x.flip(0), edge_index=data.edge_index))  # corruption: same graph
    assert enc._cache[2] is cached
    enc(Data(x=data.x, edge_index=data.edge_index[:, :10]))  # dropped edges: recomputed
    assert enc._cache[2] is not cached and enc._cache[2].shape[1] < cached.shape[1]


def _bag_of_words(n: int = 40, f: int = 200, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.03).float()  # 3% non-zero, like Cora's words
    ei = torch.randint(0, n, (2, 4 * n), generator=g)
    return Data(x=x, edge_index=torch.cat([ei, ei.flip(0)], 1))


def test_sparse_features_give_the_dense_result_and_gradients() -> None:
    data = _bag_of_words()
    torch.manual_seed(0)
    enc = GCN(200, 16, num_layers=2)
    dense = GCN(200, 16, num_layers=2)
    dense.load_state_dict(enc.state_dict())
    dense.features.max_density = 0.0  # never sparse
    out, ref = enc(data), dense(data)
    assert enc.features._last is not None and enc.features._last[1].layout == torch.sparse_csr
    assert dense.features._last is None
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    for a, b in zip(enc.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4)


def test_sparse_features_convert_once_and_leave_dense_or_trainable_inputs() -> None:
    sf = SparseFeatures(max_density=0.1)
    x = _bag_of_words().x
    first = sf(x)
    assert first.layout == torch.sparse_csr and sf(x) is first  # cached by identity
    dense = torch.randn(40, 200)
    assert sf(dense) is dense  # 100% non-zero: a dense product is faster
    trainable = x.clone().requires_grad_()
    assert sf(trainable) is trainable  # a gradient must reach it


@pytest.mark.parametrize("layers", [1, 2])
def test_forward_permuted_equals_encoding_the_shuffled_features(layers: int) -> None:
    data = _bag_of_words()
    enc = GCN(200, 16, num_layers=layers)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    h, h_perm = enc.forward_permuted(data, perm)
    torch.testing.assert_close(h, enc(data), atol=1e-5, rtol=1e-5)
    shuffled = Data(x=data.x[perm], edge_index=data.edge_index)
    torch.testing.assert_close(h_perm, enc(shuffled), atol=1e-5, rtol=1e-5)


def test_gcn_runs_under_bf16_autocast() -> None:
    data = _bag_of_words()
    enc = GCN(200, 16, num_layers=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = enc(data)
        h2, _ = enc.forward_permuted(data, torch.arange(40))
    torch.testing.assert_close(h.float(), enc(data), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h2.float(), h.float(), atol=1e-5, rtol=1e-5)


def test_graph_readouts_and_gin() -> None:
    batch = Batch.from_data_list([_graph(7, 0), _graph(9, 1), _graph(4, 2)])
    h = torch.randn(20, 3)
    assert torch.allclose(readout(h, batch.batch, "sum")[1], h[7:16].sum(0))
    assert readout(h, None, "mean").shape == (1, 3)
    with pytest.raises(ValueError, match="readout must be"):
        readout(h, None, "median")
    gin = GIN(5, 16, num_layers=3)
    assert gin(batch).shape == (3, 48) and gin.out_dim == 48
    nodes = GIN(5, 16, num_layers=3, jk="last", readout=None)
    assert nodes(batch).shape == (20, 16)
    assert GCN(5, 6, readout="mean")(batch).shape == (3, 6)
    gin.eval()  # a graph's embedding does not depend on the other graphs in its batch
    alone = gin(Batch.from_data_list([_graph(9, 1)]))
    assert torch.allclose(gin(batch)[1], alone[0], atol=1e-5)


def test_gat_and_graphsage_match_pyg_layers() -> None:
    from torch_geometric.nn import GATConv, SAGEConv

    from mmssl.graph.encoders import GAT, GraphSAGE

    data = _graph()
    gat = GAT(5, 8, num_layers=1, heads=4)
    ref = GATConv(5, 2, heads=4)
    ref.load_state_dict(gat.convs[0].state_dict())
    assert torch.allclose(gat(data), torch.nn.functional.elu(ref(data.x, data.edge_index)))
    assert gat(data).shape == (12, 8) and gat.out_dim == 8
    sage = GraphSAGE(5, 6, num_layers=1, activation="identity")
    ref_sage = SAGEConv(5, 6, aggr="mean")
    ref_sage.load_state_dict(sage.convs[0].state_dict())
    assert torch.allclose(sage(data), ref_sage(data.x, data.edge_index), atol=1e-6)
    batch = Batch.from_data_list([_graph(7, 0), _graph(9, 1)])
    assert GAT(5, 16, readout="sum")(batch).shape == (2, 16)
    assert GraphSAGE(5, 16, num_layers=2, readout="max")(batch).shape == (2, 16)
    with pytest.raises(ValueError, match="divide hidden_dim"):
        GAT(5, 10, heads=4)


def test_attention_readout_and_build_encoder() -> None:
    from mmssl.graph.encoders import ENCODERS, Readout, build_encoder

    batch = Batch.from_data_list([_graph(7, 0), _graph(9, 1), _graph(4, 2)])
    h = torch.randn(20, 3)
    pool = Readout("attention", 3)
    torch.nn.init.zeros_(pool.attention.gate_nn.weight)  # a constant gate: the mean
    assert torch.allclose(pool(h, batch.batch, 3), readout(h, batch.batch, "mean"), atol=1e-6)
    torch.nn.init.normal_(pool.attention.gate_nn.weight)
    out = pool(h, batch.batch, 3)  # a convex combination of each graph's nodes
    assert out.shape == (3, 3) and (out[1] <= h[7:16].max(0).values + 1e-6).all()
    assert pool(h, None).shape == (1, 3)
    with pytest.raises(ValueError, match="use Readout"):
        readout(h, None, "attention")
    gin = GIN(5, 8, num_layers=2, readout="attention")
    assert gin(batch).shape == (3, 16) and len(list(gin.pool.parameters())) == 2
    assert GCN(5, 6, readout="attention")(batch).shape == (3, 6)
    for name in ENCODERS:
        enc = build_encoder(name, 5, hidden_dim=8, readout="mean")
        assert enc(batch).shape == (3, enc.out_dim)
    with pytest.raises(ValueError, match="encoder must be one of"):
        build_encoder("gpt", 5)


def test_gat_init_gain_draws_xavier_normal() -> None:
    """``init_gain`` replaces PyG's Glorot-uniform start by DGL's Xavier-normal one."""
    torch.manual_seed(0)
    plain, dgl = GAT(1433, 512, 1, 4), GAT(1433, 512, 1, 4, init_gain=2**0.5)
    expected = 2**0.5 * (2 / (1433 + 512)) ** 0.5  # gain * sqrt(2 / (fan_in + fan_out))
    assert abs(float(dgl.convs[0].lin.weight.std()) / expected - 1) < 0.02
    assert float(plain.convs[0].lin.weight.std()) < 0.75 * expected  # PyG's is sqrt(2) smaller
    assert not torch.equal(dgl.convs[0].att_src, plain.convs[0].att_src)
