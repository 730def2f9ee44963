"""Sinkhorn-Knopp, SwAV's swapped prediction and k-means against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import kmeans, sinkhorn_knopp, swav_loss


def sinkhorn_loop(scores, epsilon, iterations) -> list[list[float]]:
    """SwAV's algorithm as written in the paper's code, in plain Python."""
    b, k = scores.shape
    q = [[math.exp(x / epsilon) for x in row] for row in scores.double().tolist()]  # (B, K)
    total = sum(map(sum, q))
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        col = [sum(q[i][j] for i in range(b)) for j in range(k)]
        q = [[q[i][j] / col[j] / k for j in range(k)] for i in range(b)]
        row = [sum(q[i]) for i in range(b)]
        q = [[q[i][j] / row[i] / b for j in range(k)] for i in range(b)]
    return [[x * b for x in r] for r in q]


def swav_loop(scores, codes, temperature) -> float:
    terms = []
    for i, q in enumerate(codes):
        for v, s in enumerate(scores):
            if v == i:
                continue
            per = []
            for q_row, s_row in zip(q.double().tolist(), s.double().tolist(), strict=True):
                m = max(x / temperature for x in s_row)
                lse = m + math.log(sum(math.exp(x / temperature - m) for x in s_row))
                per.append(
                    -sum(qk * (x / temperature - lse) for qk, x in zip(q_row, s_row, strict=True))
                )
            terms.append(sum(per) / len(per))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("shape", [(1, 3), (4, 4), (8, 5), (6, 12)])
@pytest.mark.parametrize("epsilon", [0.05, 0.5])
@pytest.mark.parametrize("iterations", [1, 3, 10])
def test_sinkhorn_matches_loop(shape, epsilon, iterations):
    g = torch.Generator().manual_seed(shape[0] * 13 + shape[1])
    scores = torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=1)
    got = sinkhorn_knopp(scores, epsilon=epsilon, iterations=iterations)
    want = torch.tensor(sinkhorn_loop(scores, epsilon, iterations))
    assert got.dtype == torch.float32 and not got.requires_grad
    assert torch.allclose(got, want.float(), rtol=1e-4, atol=1e-6)
    assert torch.allclose(got.sum(dim=1), torch.ones(shape[0]), atol=1e-5)


def test_sinkhorn_converges_to_equipartition():
    scores = torch.nn.functional.normalize(
        torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), dim=1
    )
    q = sinkhorn_knopp(scores, iterations=100)
    assert torch.allclose(q.sum(dim=0), torch.full((8,), 64 / 8), rtol=1e-3)


def test_sinkhorn_survives_scores_that_overflow_exp():
    scores = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)) * 50  # exp(1000)
    q = sinkhorn_knopp(scores)
    assert torch.isfinite(q).all()
    assert torch.allclose(q.sum(dim=1), torch.ones(16), atol=1e-5)


@pytest.mark.parametrize("n_views, n_codes", [(2, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_swav_matches_loop(n_views, n_codes, temperature):
    g = torch.Generator().manual_seed(n_views)
    scores = [torch.randn(5, 6, generator=g) for _ in range(n_views)]
    codes = [sinkhorn_knopp(s) for s in scores[:n_codes]]
    got = swav_loss(scores, codes, temperature=temperature).item()
    assert got == pytest.approx(swav_loop(scores, codes, temperature), rel=1e-5)


def test_swav_gradients_reach_scores_not_codes():
    g = torch.Generator().manual_seed(0)
    scores = [torch.randn(4, 3, generator=g, requires_grad=True) for _ in range(3)]
    codes = [torch.softmax(torch.randn(4, 3, generator=g), 1).requires_grad_() for _ in range(2)]
    swav_loss(scores, codes).backward()
    for s in scores:
        assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert all(c.grad is None for c in codes)


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    protos = torch.nn.Linear(16, 10, bias=False)
    x1, x2 = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    ref_scores = [protos(x1), protos(x2)]
    ref = swav_loss(ref_scores, [sinkhorn_knopp(s.detach()) for s in ref_scores])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = [protos(x1), protos(x2)]
        codes = [sinkhorn_knopp(s.detach()) for s in scores]
        got = swav_loss(scores, codes)
    assert scores[0].dtype == torch.bfloat16
    assert codes[0].dtype == torch.float32 and got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=3e-2)


def test_kmeans_finds_separated_clusters_reproducibly():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(30, 2, generator=g) for c in centers])
    assign, cent = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    for block in assign.reshape(3, 30):
        assert (block == block[0]).all()
    assert len(set(assign.reshape(3, 30)[:, 0].tolist())) == 3
    again, _ = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(assign, again)
    assert cent.shape == (3, 2)


def test_validation_errors():
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn_knopp(torch.randn(3, 2), epsilon=0)
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn_knopp(torch.randn(3, 2), iterations=0)
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        sinkhorn_knopp(torch.randn(3))
    s = torch.randn(3, 2)
    with pytest.raises(ValueError, match=">= 2 views"):
        swav_loss([s], [s])
    with pytest.raises(ValueError, match=">= 2 views"):
        swav_loss([s, s], [s, s, s])
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        swav_loss([s, torch.randn(3, 4)], [s])
    with pytest.raises(ValueError, match="temperature"):
        swav_loss([s, s], [s], temperature=0)
    with pytest.raises(ValueError, match="k <= N"):
        kmeans(torch.randn(3, 2), 4)
