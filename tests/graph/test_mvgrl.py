"""MVGRL: the PPR diffusion against a naive dense formula, smoke training, embeddings."""

from __future__ import annotations

import torch

from mmssl.core import registry
from mmssl.graph.augment import ppr_diffusion
from mmssl.graph.data import load
from mmssl.graph.methods.mvgrl import MVGRL, WeightedGCN


def _naive_ppr(edge_index: torch.Tensor, n: int, alpha: float) -> torch.Tensor:
    a = torch.eye(n, dtype=torch.float64)
    for j, i in edge_index.T.tolist():
        a[i, j] = 1.0
    deg = [sum(a[i].tolist()) for i in range(n)]
    t = torch.tensor(
        [[a[i, j].item() / (deg[i] * deg[j]) ** 0.5 for j in range(n)] for i in range(n)],
        dtype=torch.float64,
    )
    # S = alpha * sum_k ((1 - alpha) T)^k, the power series of the inverse
    s, term = torch.zeros(n, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
    for _ in range(400):
        s += term
        term = (1 - alpha) * t @ term
    return alpha * s


def _dense(out: object, n: int) -> torch.Tensor:
    s = torch.zeros(n, n, dtype=torch.float64)
    s[out.edge_index[1], out.edge_index[0]] = out.edge_weight.double()  # type: ignore[attr-defined]
    return s


def test_ppr_matches_naive_formula() -> None:
    graph = load("karate", None).train[0]
    expected = _naive_ppr(graph.edge_index, 34, 0.2)
    out = ppr_diffusion(graph, alpha=0.2)
    assert torch.allclose(_dense(out, 34), expected, atol=1e-5)
    assert out.x is graph.x and out.edge_weight.shape == (out.edge_index.shape[1],)


def test_ppr_top_k_keeps_each_rows_largest() -> None:
    graph = load("karate", None).train[0]
    full = _naive_ppr(graph.edge_index, 34, 0.2)
    out = ppr_diffusion(graph, alpha=0.2, top_k=5)
    assert out.edge_index.shape == (2, 34 * 5)
    got = _dense(out, 34)
    for i in range(34):
        kept = got[i].nonzero().view(-1)
        assert kept.numel() == 5
        assert torch.allclose(got[i, kept], full[i, kept], atol=1e-5)
        assert full[i, kept].min() >= full[i].topk(5).values.min() - 1e-6


def test_registered_and_diffusion_cached() -> None:
    cls = registry.get("graph", "mvgrl")
    assert cls is MVGRL and cls.family == "contrastive"
    assert cls.kind == "context-instance/mutual-information"
    data = load("karate", None)
    method = MVGRL.build(data, hidden_dim=16, top_k=8)
    a = method.diffusion(data.train[0])
    b = method.diffusion(data.train[0])
    assert a.edge_index is b.edge_index and a.edge_weight is b.edge_weight


def test_smoke_karate_loss_decreases() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = MVGRL.build(data, hidden_dim=64, top_k=16, seed=0)
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        with torch.no_grad():
            views = method.augment(data.train[0])
        loss = method(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert method.embed(data.train[0]).shape == (34, 64)


def test_weighted_gcn_is_s_x_w() -> None:
    graph = load("karate", None).train[0]
    diffused = ppr_diffusion(graph, alpha=0.2, top_k=6)
    torch.manual_seed(0)
    layer = WeightedGCN(34, 8, activation="identity")
    s = _dense(diffused, 34).float()
    expected = s @ layer.conv.lin(graph.x) + layer.conv.bias
    assert torch.allclose(layer(diffused), expected, atol=1e-5)
