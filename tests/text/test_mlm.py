"""MLM: masking respects special tokens, the head sees only masked positions, smoke training."""

from __future__ import annotations

import torch

from mmssl.core import registry
from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.text.methods.mlm import MLM


def _tiny(bundle, **kw) -> MLM:
    return MLM.build(bundle, size="tiny", **kw)


def test_registered():
    cls = registry.get("text", "mlm")
    assert cls is MLM and (cls.family, cls.kind) == ("generative", "auto-encoding")
    assert cls.defaults["optimizer"] == "adamw" and cls.defaults["weight_decay"] == 0.01


def test_masking_respects_special_tokens(pydoc_bundle):
    m = _tiny(pydoc_bundle, mask_prob=0.5)
    batch = next(iter(pydoc_bundle.train))
    out = m.augment(batch)
    special = batch["special_tokens_mask"]
    picked = out["labels"] != IGNORE_INDEX
    assert picked.any() and not (picked & special).any()
    assert torch.equal(out["input_ids"][special], batch["input_ids"][special])
    assert torch.equal(out["labels"][picked], batch["input_ids"][picked])
    assert (out["input_ids"][picked] == pydoc_bundle.info["mask_token_id"]).float().mean() > 0.6


def test_masking_is_seeded(pydoc_bundle):
    batch = next(iter(pydoc_bundle.train))
    a, b = _tiny(pydoc_bundle, seed=1).augment(batch), _tiny(pydoc_bundle, seed=1).augment(batch)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])


def test_head_scores_only_masked_positions(pydoc_bundle):
    m = _tiny(pydoc_bundle)
    batch = m.augment(next(iter(pydoc_bundle.train)))
    seen = []
    m.head.register_forward_hook(lambda mod, args, out: seen.append((args[0].shape, out.shape)))
    m(batch)
    n_masked = int((batch["labels"] != IGNORE_INDEX).sum())
    dim, vocab = m.encoder.dim, pydoc_bundle.info["vocab_size"]
    assert seen == [((n_masked, dim), (n_masked, vocab))]
    # untied by default; tie_weights=True shares the input embeddings as in BERT
    assert m.head.decoder.weight is not m.encoder.word_embeddings.weight
    tied = MLM(m.encoder, vocab, m.mask_token_id, tie_weights=True)
    assert tied.head.decoder.weight is m.encoder.word_embeddings.weight


def test_same_seed_same_init(pydoc_bundle):
    a, b = _tiny(pydoc_bundle, seed=5), _tiny(pydoc_bundle, seed=5)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_smoke_loss_decreases(pydoc_bundle):
    torch.manual_seed(0)
    m = _tiny(pydoc_bundle, dropout=0.0)
    opt = torch.optim.AdamW(m.param_groups(), lr=2e-3, weight_decay=0.01)
    batch = next(iter(pydoc_bundle.train))
    losses = []
    for _ in range(15):
        with torch.no_grad():
            b = m.augment(batch)
        out = m(b)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
        assert torch.isfinite(out["loss"]) and 0 <= float(out["mlm_acc"]) <= 1
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5


def test_masked_token_accuracy_and_embed(pydoc_bundle):
    m = _tiny(pydoc_bundle)
    held = pydoc_bundle.info["heldout"]
    acc = m.masked_token_accuracy(held)
    assert 0.0 <= acc <= 1.0 and acc == m.masked_token_accuracy(held)  # fixed-seed masking
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    z = m.embed(inputs)
    assert z.shape == (len(y), m.encoder.dim) and torch.isfinite(z).all()
