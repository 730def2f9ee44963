"""GCC: positional features against a dense reference, RWR views, MoCo queue, transfer probes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from mmssl.core import registry
from mmssl.graph.data import load
from mmssl.graph.methods.gcc import GCC, laplacian_eigenvectors, structural_features

SMALL = {"hidden_dim": 16, "num_layers": 2, "max_degree": 16, "K": 64, "num_egos": 8}


def _cycle(n: int) -> Tensor:
    i = torch.arange(n)
    ei = torch.stack([i, (i + 1) % n])
    return torch.cat([ei, ei.flip(0)], dim=1)


def _path(n: int) -> Tensor:
    i = torch.arange(n - 1)
    return torch.cat([torch.stack([i, i + 1]), torch.stack([i + 1, i])], dim=1)


def _reference(edge_index: Tensor, n: int, k: int) -> Tensor:
    """Dense float64 eigendecomposition, the k smallest, rows normalised, zero-padded."""
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], edge_index[1]] = 1.0
    d = a.sum(1).clamp(min=1).rsqrt()
    _, vecs = torch.linalg.eigh(torch.eye(n, dtype=torch.float64) - d[:, None] * a * d[None])
    out = torch.zeros(n, k, dtype=torch.float64)
    out[:, : min(n, k)] = vecs[:, :k]
    return torch.nn.functional.normalize(out, dim=1).float()


def test_registered() -> None:
    cls = registry.get("graph", "gcc")
    assert cls is GCC and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination"


def test_laplacian_eigenvectors_match_a_dense_reference() -> None:
    sizes = [4, 6, 11, 3]  # paths have distinct eigenvalues: eigenvectors unique up to sign
    batch = Batch.from_data_list([Data(edge_index=_path(n), num_nodes=n) for n in sizes])
    out = laplacian_eigenvectors(batch.edge_index, sizes, k=6)
    assert out.shape == (24, 6)
    start = 0
    for n in sizes:  # graphs of different padded sizes are decomposed in separate buckets
        ref = _reference(_path(n), n, 6)
        assert torch.allclose(out[start : start + n].abs(), ref.abs(), atol=1e-4)
        start += n
    assert (out[:4, 4:] == 0).all()  # zero-padded past the graph's size
    flipped = laplacian_eigenvectors(_path(4), [4], k=6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(flipped.abs(), out[:4].abs(), atol=1e-6)
    assert not torch.allclose(flipped, out[:4])


def test_structural_features_layout() -> None:
    batch = Batch.from_data_list([Data(edge_index=_cycle(5), num_nodes=5)] * 2)
    x = structural_features(batch, torch.tensor([0, 7]), k=4, max_degree=3, generator=None)
    assert x.shape == (10, 4 + 4 + 1) and x[:, -1].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert (x[:, 4:8].argmax(1) == 2).all()  # every node of a cycle has degree 2


def test_smoke_karate_in_batch_negatives_loss_decreases() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GCC.build(data, moco=False, walk_length=32, **{**SMALL, "num_egos": 16})
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        with torch.no_grad():
            views = method.augment(data.train[0])
        loss = method(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    method.eval()
    emb = method.embed(data.train[0])
    assert emb.shape == (34, 16) and torch.equal(emb, method.embed(data.train[0]))


def test_moco_queue_and_momentum_encoder() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GCC.build(data, walk_length=32, **SMALL)
    views = method.augment(data.train[0])
    assert views[0].num_graphs == 8 and views[0].x.shape[1] == GCC.in_dim(32, 16)
    key_before = [p.clone() for p in method.key_encoder.parameters()]
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    loss = method(views)["loss"]
    loss.backward()
    opt.step()
    method.after_step(0, 10)
    assert torch.isfinite(loss) and int(method.queue.ptr) == 8
    assert not all(
        torch.equal(a, b) for a, b in zip(key_before, method.key_encoder.parameters(), strict=True)
    )
    assert all(not p.requires_grad for p in method.key_encoder.parameters())


def test_embeds_graphs_of_another_dataset(data_root: Path) -> None:
    data = load("karate", str(data_root), probe_data="mutag")
    assert data.info["probe_data"] == "mutag" and data.probe.protocol == "svm-cv"
    assert data.info["level"] == "node"  # pretraining stays on karate
    torch.manual_seed(0)
    method = GCC.build(data, **SMALL).eval()
    graphs, labels = next(iter(data.probe.splits["all"]))
    emb = method.embed(graphs)
    assert emb.shape == (graphs.num_graphs, 16) and torch.isfinite(emb).all()
    with pytest.raises(ValueError, match="num_egos"):
        GCC.build(data, num_egos=1)
