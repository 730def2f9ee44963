"""SimCSE: the same sentences twice through dropout, in-batch InfoNCE at tau 0.05."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mmssl.core import registry
from mmssl.text.methods.simcse import SimCSE


def test_registered():
    cls = registry.get("text", "simcse")
    assert cls is SimCSE and (cls.family, cls.kind) == (
        "contrastive",
        "instance-instance/discrimination",
    )
    assert cls.build.__kwdefaults__["temperature"] == 0.05


def test_views_differ_by_dropout_only(pydoc_bundle):
    batch = next(iter(pydoc_bundle.train))
    plain = SimCSE.build(pydoc_bundle, size="tiny", dropout=0.0)
    out = plain(batch)  # no dropout: identical views, positives at cosine 1
    assert torch.isclose(out["positive_cosine"], torch.tensor(1.0), atol=1e-5)
    torch.manual_seed(0)
    noisy = SimCSE.build(pydoc_bundle, size="tiny")(batch)
    assert float(noisy["positive_cosine"]) < 1 - 1e-4 and torch.isfinite(noisy["loss"])


def test_smoke_loss_decreases_and_embed(pydoc_bundle):
    torch.manual_seed(0)
    m = SimCSE.build(pydoc_bundle, size="tiny")
    opt = torch.optim.AdamW(m.param_groups(), lr=1e-3, weight_decay=0.01)
    batches = [b for _, b in zip(range(2), pydoc_bundle.train, strict=False)]
    losses = []
    for step in range(8):
        out = m(m.augment(batches[step % 2]))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    m.eval()
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    z = m.embed(inputs)
    assert z.shape == (len(y), m.encoder.dim) and torch.equal(z, m.embed(inputs))


def test_one_sentence_per_row_by_default():
    from mmssl.pretrain import resolve_config

    assert resolve_config("text", "simcse")["data_options"]["pack"] is False
    packed = resolve_config("text", "simcse", data_options={"pack": True})
    assert packed["data_options"]["pack"] is True  # the user's setting wins
    assert "pack" not in resolve_config("text", "mlm")["data_options"]


def test_continues_from_a_pretrained_encoder(pydoc_bundle, tmp_path):
    start = SimCSE.build(pydoc_bundle, size="tiny", seed=3).eval()
    start.encoder.save_pretrained(tmp_path / "encoder")
    again = SimCSE.build(pydoc_bundle, pretrained=str(tmp_path / "encoder")).eval()
    batch = next(iter(pydoc_bundle.train))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    assert torch.allclose(again.embed(inputs), start.embed(inputs), atol=1e-6)
    assert again.encoder.model.pooler is None  # no untrained pooler added on loading
    # a vocabulary that is not the data's, or a folder that holds no encoder: one clear error
    other = dict(pydoc_bundle.info, vocab_size=pydoc_bundle.info["vocab_size"] + 1)
    with pytest.raises(ValueError, match="--data-opt tokenizer="):
        SimCSE.build(replace(pydoc_bundle, info=other), pretrained=str(tmp_path / "encoder"))
    with pytest.raises(OSError, match="save_pretrained"):
        SimCSE.build(pydoc_bundle, pretrained=str(tmp_path / "nothing-here"))


def test_auxiliary_masked_lm(pydoc_bundle):
    """``mlm_weight`` adds the paper's auxiliary masked LM on a third, masked copy of the batch."""
    torch.manual_seed(0)
    m = SimCSE.build(pydoc_bundle, size="tiny", mlm_weight=0.1)
    batch = next(iter(pydoc_bundle.train))
    aug = m.augment(batch)
    picked = aug["mlm_labels"] != -100
    assert picked.any() and not (picked & batch["special_tokens_mask"].bool()).any()
    assert torch.equal(aug["mlm_labels"][picked], batch["input_ids"][picked])
    assert torch.equal(aug["input_ids"], batch["input_ids"])  # the contrastive views stay whole
    out = m(aug)
    assert torch.isclose(out["loss"], out["contrastive_loss"] + 0.1 * out["mlm_loss"], atol=1e-5)
    out["loss"].backward()
    assert m.mlm_head.decoder.weight.grad.abs().sum() > 0
    # off by default: no head, no extra keys, the loss is the contrastive one alone
    plain = SimCSE.build(pydoc_bundle, size="tiny")
    assert plain.mlm_head is None and plain.augment(batch) is batch
    with pytest.raises(ValueError, match="mlm_weight"):
        SimCSE.build(pydoc_bundle, size="tiny", mlm_weight=-1.0)
