"""Masking functions and masked-prediction losses against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import (
    IGNORE_INDEX,
    mask_tokens,
    masked_cross_entropy,
    masked_mse,
    random_mask,
    scaled_cosine_error,
)


def ce_loop(logits, labels, ignore_index=IGNORE_INDEX) -> float:
    rows = logits.double().reshape(-1, logits.shape[-1]).tolist()
    ys = labels.reshape(-1).tolist()
    terms = []
    for row, y in zip(rows, ys, strict=True):
        if y == ignore_index:
            continue
        m = max(row)
        terms.append(-(row[y] - m - math.log(sum(math.exp(x - m) for x in row))))
    return sum(terms) / len(terms) if terms else 0.0


def mse_loop(pred, target, mask) -> float:
    p = pred.double().reshape(-1, pred.shape[-1]).tolist()
    t = target.double().reshape(-1, pred.shape[-1]).tolist()
    m = [True] * len(p) if mask is None else mask.reshape(-1).bool().tolist()
    errs = [
        sum((a - b) ** 2 for a, b in zip(pr, tr, strict=True)) / len(pr)
        for pr, tr, keep in zip(p, t, m, strict=True)
        if keep
    ]
    return sum(errs) / len(errs) if errs else 0.0


def sce_loop(pred, target, alpha, mask) -> float:
    terms = []
    for i in range(pred.shape[0]):
        if mask is not None and not mask[i]:
            continue
        a, b = pred[i].double().tolist(), target[i].double().tolist()
        cos = sum(x * y for x, y in zip(a, b, strict=True)) / (
            math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        )
        terms.append((1 - cos) ** alpha)
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 11), (16, 4)])
@pytest.mark.parametrize("ignored", [0.0, 0.5, 0.9])
def test_masked_cross_entropy_matches_loop(shape, ignored):
    g = torch.Generator().manual_seed(len(shape) * 10 + shape[-1])
    logits = torch.randn(*shape, generator=g) * 3
    labels = torch.randint(shape[-1], shape[:-1], generator=g)
    labels[torch.rand(shape[:-1], generator=g) < ignored] = IGNORE_INDEX
    got = masked_cross_entropy(logits, labels).item()
    assert got == pytest.approx(ce_loop(logits, labels), rel=1e-5, abs=1e-6)


def test_masked_cross_entropy_with_nothing_masked_is_zero_not_nan():
    logits = torch.randn(4, 5, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((4,), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("shape", [(5, 3), (2, 6, 4)])
@pytest.mark.parametrize("with_mask", [False, True])
def test_masked_mse_matches_loop(shape, with_mask):
    g = torch.Generator().manual_seed(shape[-1])
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    mask = torch.rand(shape[:-1], generator=g) < 0.5 if with_mask else None
    if mask is not None:
        mask.view(-1)[0] = True
    assert masked_mse(pred, target, mask).item() == pytest.approx(
        mse_loop(pred, target, mask), rel=1e-5
    )


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("with_mask", [False, True])
def test_scaled_cosine_error_matches_loop(alpha, with_mask):
    g = torch.Generator().manual_seed(int(alpha))
    pred, target = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    mask = torch.arange(9) % 2 == 0 if with_mask else None
    got = scaled_cosine_error(pred, target, alpha=alpha, mask=mask).item()
    assert got == pytest.approx(sce_loop(pred, target, alpha, mask), rel=1e-5)


def test_empty_masks_give_zero():
    pred, target = torch.randn(4, 3), torch.randn(4, 3)
    empty = torch.zeros(4, dtype=torch.bool)
    assert masked_mse(pred, target, empty).item() == 0.0
    assert scaled_cosine_error(pred, target, mask=empty).item() == 0.0


@pytest.mark.parametrize("which", ["ce", "mse", "sce"])
def test_gradients_finite_and_nonzero(which):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(6, 5, generator=g, requires_grad=True)
    target = torch.randn(6, 5, generator=g)
    mask = torch.tensor([True, False, True, True, False, True])
    if which == "ce":
        labels = torch.where(mask, torch.randint(5, (6,), generator=g), IGNORE_INDEX)
        loss = masked_cross_entropy(pred, labels)
    elif which == "mse":
        loss = masked_mse(pred, target, mask)
    else:
        loss = scaled_cosine_error(pred, target, mask=mask)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert (pred.grad[~mask] == 0).all()  # unmasked rows get no gradient


@pytest.mark.parametrize("which", ["ce", "mse", "sce"])
def test_float32_under_bf16_autocast(which):
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(8, 6)
    x, target = torch.randn(10, 8, generator=g), torch.randn(10, 6, generator=g)
    labels = torch.randint(6, (10,), generator=g)

    def loss(out):
        if which == "ce":
            return masked_cross_entropy(out, labels)
        return masked_mse(out, target) if which == "mse" else scaled_cosine_error(out, target)

    ref = loss(lin(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(x)  # bf16 activations, as a model under autocast gives
        got = loss(out)
    assert out.dtype == torch.bfloat16 and got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=3e-2)


def test_mask_tokens_proportions_and_reproducibility():
    ids = torch.randint(5, 100, (64, 128), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    kwargs = dict(mask_token_id=1, vocab_size=100, special_mask=special)
    inputs, labels = mask_tokens(ids, generator=torch.Generator().manual_seed(1), **kwargs)
    again = mask_tokens(ids, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(inputs, again[0]) and torch.equal(labels, again[1])
    picked = labels != IGNORE_INDEX
    assert not picked[:, 0].any()
    assert torch.equal(labels[picked], ids[picked])
    assert torch.equal(inputs[~picked], ids[~picked])
    assert picked.float().mean().item() == pytest.approx(0.15 * 127 / 128, abs=0.01)
    n = picked.sum().item()
    masked = (inputs[picked] == 1).sum().item() / n
    kept = (inputs[picked] == ids[picked]).sum().item() / n
    assert masked == pytest.approx(0.8, abs=0.03)
    assert kept == pytest.approx(0.1 + 0.1 / 100, abs=0.03)  # kept, or replaced by itself


@pytest.mark.parametrize("shape", [(4, 10), (7,), (2, 3, 49)])
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.75, 1.0])
def test_random_mask_exact_count(shape, ratio):
    m = random_mask(shape, ratio, generator=torch.Generator().manual_seed(0))
    assert m.shape == shape and m.dtype == torch.bool
    assert (m.sum(-1) == round(ratio * shape[-1])).all()
    m2 = random_mask(shape, ratio, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, m2)


def test_validation_errors():
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(ids, mask_token_id=1, vocab_size=5, mask_prob=0.0)
    with pytest.raises(ValueError, match="replace_prob"):
        mask_tokens(ids, mask_token_id=1, vocab_size=5, replace_prob=0.9, random_prob=0.2)
    with pytest.raises(ValueError, match="vocab_size"):
        mask_tokens(ids, mask_token_id=1, vocab_size=0)
    with pytest.raises(ValueError, match="ratio"):
        random_mask((2, 3), 1.5)
    with pytest.raises(ValueError, match="labels"):
        masked_cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="mask"):
        masked_mse(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="alpha"):
        scaled_cosine_error(torch.randn(2, 3), torch.randn(2, 3), alpha=0.5)
