"""Causal LM loss and CPC against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import IGNORE_INDEX, CPCPredictor, cpc_loss, next_token_loss


def _log_softmax_at(row: list[float], y: int) -> float:
    m = max(row)
    return row[y] - m - math.log(sum(math.exp(x - m) for x in row))


def next_token_loop(logits, tokens) -> float:
    b, t, _ = logits.shape
    terms = []
    for i in range(b):
        for s in range(t - 1):
            y = int(tokens[i, s + 1])
            if y != IGNORE_INDEX:
                terms.append(-_log_softmax_at(logits[i, s].double().tolist(), y))
    return sum(terms) / len(terms)


def cpc_loop(context, latents, predictor, temperature, negatives) -> float:
    b, t, _ = context.shape
    per_step = []
    for k, lin in enumerate(predictor, start=1):
        w = lin.weight.detach().double()  # (D, C)
        preds = {
            (i, s): (w @ context[i, s].double()).tolist() for i in range(b) for s in range(t - k)
        }
        targets = {
            (i, s): latents[i, s + k].double().tolist() for i in range(b) for s in range(t - k)
        }

        def score(p, z):
            return sum(x * y for x, y in zip(p, z, strict=True)) / temperature

        terms = []
        for (i, s), p in preds.items():
            if negatives == "all":
                cands = list(targets)
            else:
                cands = [(j, s) for j in range(b)]
            row = [score(p, targets[c]) for c in cands]
            terms.append(-_log_softmax_at(row, cands.index((i, s))))
        per_step.append(sum(terms) / len(terms))
    return sum(per_step) / len(per_step)


@pytest.mark.parametrize("shape", [(1, 2, 3), (2, 5, 7), (4, 9, 11)])
@pytest.mark.parametrize("ignored", [0.0, 0.3])
def test_next_token_loss_matches_loop(shape, ignored):
    g = torch.Generator().manual_seed(shape[1])
    logits = torch.randn(*shape, generator=g) * 2
    tokens = torch.randint(shape[-1], shape[:2], generator=g)
    tokens[torch.rand(shape[:2], generator=g) < ignored] = IGNORE_INDEX
    tokens[:, 1] = 0  # at least one target per row
    got = next_token_loss(logits, tokens).item()
    assert got == pytest.approx(next_token_loop(logits, tokens), rel=1e-5)


def test_next_token_loss_uses_the_shift():
    tokens = torch.tensor([[0, 1, 2, 3]])
    logits = torch.full((1, 4, 4), -20.0)
    logits[0, torch.arange(3), torch.tensor([1, 2, 3])] = 20.0  # position t predicts t + 1
    assert next_token_loss(logits, tokens).item() < 1e-6


@pytest.mark.parametrize("shape", [(1, 3), (2, 4), (3, 6)])
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("temperature", [0.1, 1.0])
@pytest.mark.parametrize("negatives", ["all", "batch"])
def test_cpc_loss_matches_loop(shape, steps, temperature, negatives):
    b, t = shape
    torch.manual_seed(b * 100 + t * 10 + steps)
    context, latents = torch.randn(b, t, 5), torch.randn(b, t, 4)
    predictor = CPCPredictor(5, 4, steps)
    got = cpc_loss(context, latents, predictor, temperature=temperature, negatives=negatives)
    want = cpc_loop(context, latents, predictor, temperature, negatives)
    assert got.item() == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_cpc_accepts_plain_callables():
    torch.manual_seed(0)
    context, latents = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    identity = cpc_loss(context, latents, [lambda c: c, lambda c: 2 * c])
    assert torch.isfinite(identity)


def test_cpc_gradients_reach_context_latents_and_predictors():
    torch.manual_seed(0)
    context = torch.randn(3, 6, 5, requires_grad=True)
    latents = torch.randn(3, 6, 4, requires_grad=True)
    predictor = CPCPredictor(5, 4, 3)
    cpc_loss(context, latents, predictor).backward()
    for grad in [context.grad, latents.grad] + [p.grad for p in predictor.parameters()]:
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert context.grad[:, -1].abs().sum() == 0  # the last context predicts nothing


def test_next_token_gradients():
    logits = torch.randn(2, 5, 6, requires_grad=True)
    next_token_loss(logits, torch.randint(6, (2, 5))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[:, :-1].abs().sum() > 0
    assert logits.grad[:, -1].abs().sum() == 0


def test_float32_under_bf16_autocast():
    torch.manual_seed(0)
    context, latents = torch.randn(4, 8, 16), torch.randn(4, 8, 16)
    predictor = CPCPredictor(16, 16, 3)
    lm_head = torch.nn.Linear(16, 10)
    tokens = torch.randint(10, (4, 8))
    ref_cpc = cpc_loss(context, latents, predictor)
    ref_lm = next_token_loss(lm_head(context), tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_cpc = cpc_loss(context, latents, predictor)
        got_lm = next_token_loss(lm_head(context), tokens)
    assert got_cpc.dtype == torch.float32 and got_lm.dtype == torch.float32
    assert got_cpc.item() == pytest.approx(ref_cpc.item(), rel=1e-5)
    assert got_lm.item() == pytest.approx(ref_lm.item(), rel=3e-2)


def test_validation_errors():
    context, latents = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="len\\(predictors\\)"):
        cpc_loss(context, latents, CPCPredictor(3, 3, 4))
    with pytest.raises(ValueError, match="len\\(predictors\\)"):
        cpc_loss(context, latents, [])
    with pytest.raises(ValueError, match="negatives"):
        cpc_loss(context, latents, CPCPredictor(3, 3, 1), negatives="time")
    with pytest.raises(ValueError, match="temperature"):
        cpc_loss(context, latents, CPCPredictor(3, 3, 1), temperature=0)
    with pytest.raises(ValueError, match="same B and T"):
        cpc_loss(context, torch.randn(2, 5, 3), CPCPredictor(3, 3, 1))
    with pytest.raises(ValueError, match="predictor 1"):
        cpc_loss(context, latents, CPCPredictor(3, 2, 1))
    with pytest.raises(ValueError, match="steps"):
        CPCPredictor(3, 3, 0)
    with pytest.raises(ValueError, match="length >= 2"):
        next_token_loss(torch.randn(2, 1, 5), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        next_token_loss(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.long))
