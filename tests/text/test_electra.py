"""ELECTRA: a 1/4-width generator sharing embeddings, replaced-token labels, smoke training."""

from __future__ import annotations

import torch
from transformers import AutoModel

from mmssl.core import registry
from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.text.methods.electra import ELECTRA


def test_registered():
    cls = registry.get("text", "electra")
    assert cls is ELECTRA and (cls.family, cls.kind) == ("generative-contrastive", "adversarial")


def test_generator_is_quarter_width_and_shares_embeddings(pydoc_bundle):
    m = ELECTRA.build(pydoc_bundle, size="mini")
    assert m.generator.dim * 4 == m.encoder.dim
    assert m.generator.model.embeddings is m.encoder.model.embeddings
    assert m.gen_head[1].decoder.weight is m.encoder.word_embeddings.weight


def test_discriminator_labels_are_replaced_tokens(pydoc_bundle):
    m = ELECTRA.build(pydoc_bundle, size="tiny", mask_prob=0.3)
    batch = next(iter(pydoc_bundle.train))
    b = m.augment(batch)
    assert torch.equal(b["original_ids"], batch["input_ids"])
    _, targets, corrupted, replaced = m.corrupt(b)
    att = batch["attention_mask"].bool()
    assert torch.equal(replaced, (corrupted != batch["input_ids"]) & att)
    picked = b["labels"] != IGNORE_INDEX
    assert not (replaced & ~picked).any()  # only masked positions can be replaced
    assert torch.equal(targets, batch["input_ids"][picked])
    assert replaced.any()


def test_smoke_loss_decreases_and_embed(pydoc_bundle, tmp_path):
    m = ELECTRA.build(pydoc_bundle, size="tiny", dropout=0.0)
    opt = torch.optim.AdamW(m.param_groups(), lr=2e-3, weight_decay=0.01)
    batch = next(iter(pydoc_bundle.train))
    losses = []
    for _ in range(12):
        with torch.no_grad():
            b = m.augment(batch)
        out = m(b)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
        assert 0 <= float(out["disc_acc"]) <= 1
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    assert m.embed(inputs).shape == (len(y), m.encoder.dim)
    m.encoder.save_pretrained(tmp_path)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "ElectraModel"
