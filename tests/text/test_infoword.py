"""InfoWord: a masked n-gram, encoded alone, contrasted with its masked sentence; plus MLM."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.text.methods.infoword import InfoWord


def test_registered():
    cls = registry.get("text", "infoword")
    assert cls is InfoWord and (cls.family, cls.kind) == (
        "contrastive",
        "context-instance/mutual-information",
    )


def test_ngram_masked_in_sentence_and_encoded_alone(pydoc_bundle):
    info = pydoc_bundle.info
    m = InfoWord.build(pydoc_bundle, size="tiny", max_ngram=4)
    batch = next(iter(pydoc_bundle.train))
    out = m.augment(batch)
    special = batch["special_tokens_mask"]
    for r in range(len(batch["input_ids"])):
        gram = out["ngram_ids"][r][out["ngram_mask"][r].bool()]
        assert gram[0] == info["cls_token_id"] and gram[-1] == info["sep_token_id"]
        words = gram[1:-1]
        assert 1 <= len(words) <= 4
        ids = batch["input_ids"][r]
        starts = [
            i
            for i in range(len(ids) - len(words) + 1)
            if torch.equal(ids[i : i + len(words)], words)
        ]
        hit = [
            i
            for i in starts
            if (out["input_ids"][r][i : i + len(words)] == info["mask_token_id"]).all()
        ]
        assert hit, "the n-gram must appear in the row, fully masked"
        i = hit[0]
        assert torch.equal(out["labels"][r][i : i + len(words)], words)  # MLM predicts it
    picked = out["labels"] != IGNORE_INDEX
    assert not (picked & special).any()


@pytest.mark.parametrize("estimator", ["infonce", "jsd"])
def test_smoke_loss_decreases_and_embed(pydoc_bundle, estimator):
    m = InfoWord.build(pydoc_bundle, size="tiny", estimator=estimator, dropout=0.0)
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
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    assert m.embed(inputs).shape == (len(y), m.encoder.dim)
