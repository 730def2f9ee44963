"""Mutual-information estimators and discriminators against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import (
    BilinearDiscriminator,
    DotDiscriminator,
    donsker_varadhan_loss,
    jensen_shannon_loss,
    nce_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def _cells(scores, pos_mask):
    s, m = scores.double().tolist(), pos_mask.tolist()
    pos = [s[i][j] for i in range(len(s)) for j in range(len(s[0])) if m[i][j]]
    neg = [s[i][j] for i in range(len(s)) for j in range(len(s[0])) if not m[i][j]]
    return s, m, pos, neg


def jsd_loop(scores, pos_mask) -> float:
    _, _, pos, neg = _cells(scores, pos_mask)
    return sum(softplus(-x) for x in pos) / len(pos) + sum(softplus(x) for x in neg) / len(neg)


def dv_loop(scores, pos_mask) -> float:
    _, _, pos, neg = _cells(scores, pos_mask)
    return -sum(pos) / len(pos) + math.log(sum(math.exp(x) for x in neg) / len(neg))


def nce_loop(scores, pos_mask) -> float:
    s, m, _, _ = _cells(scores, pos_mask)
    terms = []
    for i, row in enumerate(s):
        negs = sum(math.exp(x) for j, x in enumerate(row) if not m[i][j])
        for j, x in enumerate(row):
            if m[i][j]:
                terms.append(-(x - math.log(math.exp(x) + negs)))
    return sum(terms) / len(terms)


def _problem(n, m, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, m, generator=g) * scale
    pos = torch.zeros(n, m, dtype=torch.bool)
    pos[torch.arange(n), torch.arange(n) % m] = True  # one positive per row (DGI / InfoGraph)
    return scores, pos


SHAPES = [(2, 2), (3, 5), (8, 8), (10, 4)]
LOSSES = [
    (jensen_shannon_loss, jsd_loop),
    (donsker_varadhan_loss, dv_loop),
    (nce_loss, nce_loop),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("loss_fn, reference", LOSSES)
def test_estimators_match_loops(shape, scale, loss_fn, reference):
    scores, pos = _problem(*shape, seed=shape[0] * 31 + shape[1], scale=scale)
    got = loss_fn(scores, pos).item()
    assert got == pytest.approx(reference(scores, pos), rel=1e-4, abs=1e-5)


def test_several_positives_per_row():
    scores, _ = _problem(4, 6, seed=3)
    pos = torch.rand(4, 6, generator=torch.Generator().manual_seed(4)) < 0.4
    pos[:, 0], pos[:, 1] = True, False
    for loss_fn, reference in LOSSES:
        assert loss_fn(scores, pos).item() == pytest.approx(reference(scores, pos), rel=1e-4)


def test_better_discriminator_gives_lower_loss():
    scores, pos = _problem(8, 8, seed=0, scale=0.1)
    sharp = scores + 5.0 * pos.float()
    for loss_fn, _ in LOSSES:
        assert loss_fn(sharp, pos) < loss_fn(scores, pos)


@pytest.mark.parametrize("loss_fn", [loss for loss, _ in LOSSES])
@pytest.mark.parametrize("disc", ["bilinear", "dot"])
def test_gradients_reach_inputs_and_discriminator(loss_fn, disc):
    g = torch.Generator().manual_seed(0)
    local = torch.randn(6, 4, generator=g, requires_grad=True)
    summary = torch.randn(3, 4, generator=g, requires_grad=True)
    d = BilinearDiscriminator(4) if disc == "bilinear" else DotDiscriminator(0.5)
    scores = d(local, summary)  # (6, 3)
    assert scores.shape == (6, 3)
    pos = torch.zeros(6, 3, dtype=torch.bool)
    pos[torch.arange(6), torch.arange(6) // 2] = True
    loss_fn(scores, pos).backward()
    grads = [local.grad, summary.grad] + [p.grad for p in d.parameters()]
    for grad in grads:
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_bilinear_scores_match_loop():
    torch.manual_seed(0)
    d = BilinearDiscriminator(3, 2)
    a, b = torch.randn(4, 3), torch.randn(5, 2)
    w = d.weight.detach()
    want = torch.tensor(
        [
            [sum(a[i, p] * w[p, q] * b[j, q] for p in range(3) for q in range(2)) for j in range(5)]
            for i in range(4)
        ]
    )
    assert torch.allclose(d(a, b), want, atol=1e-5)


@pytest.mark.parametrize("loss_fn", [loss for loss, _ in LOSSES])
def test_float32_under_bf16_autocast(loss_fn):
    scores, pos = _problem(8, 8, seed=1)
    d = BilinearDiscriminator(16)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    ref = loss_fn(d(a, b), pos)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = d(a, b)
        out = loss_fn(scores, pos)
        out_bf16 = loss_fn(scores.bfloat16(), pos)
    assert scores.dtype == torch.float32
    assert out.dtype == torch.float32 and out_bf16.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    assert out_bf16.item() == pytest.approx(ref.item(), rel=2e-2)


def test_validation_errors():
    scores = torch.randn(3, 3)
    with pytest.raises(ValueError, match="differ"):
        jensen_shannon_loss(scores, torch.eye(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="positive and one negative"):
        nce_loss(scores, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="positive and one negative"):
        donsker_varadhan_loss(scores, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        DotDiscriminator(0.0)
