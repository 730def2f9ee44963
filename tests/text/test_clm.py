"""CLM: a GPT-2 decoder from scratch, causal, next-token loss, held-out perplexity."""

from __future__ import annotations

import torch
from transformers import AutoModel

from mmssl.core import registry
from mmssl.text.methods.clm import CLM


def test_registered():
    cls = registry.get("text", "clm")
    assert cls is CLM and (cls.family, cls.kind) == ("generative", "autoregressive")


def test_causal_and_tied(pydoc_bundle):
    m = CLM.build(pydoc_bundle, size="tiny").eval()
    batch = next(iter(pydoc_bundle.train))
    ids, att = batch["input_ids"][:2].clone(), batch["attention_mask"][:2]
    h1 = m.encoder.token_states(ids, att)
    ids[:, 10:] = pydoc_bundle.info["mask_token_id"]  # change the future only
    h2 = m.encoder.token_states(ids, att)
    assert torch.allclose(h1[:, :10], h2[:, :10], atol=1e-5) and not torch.allclose(h1, h2)
    assert m.lm_head.weight is m.encoder.word_embeddings.weight


def test_smoke_loss_decreases_and_embed(pydoc_bundle, tmp_path):
    m = CLM.build(pydoc_bundle, size="tiny", dropout=0.0)
    opt = torch.optim.AdamW(m.param_groups(), lr=2e-3, weight_decay=0.01)
    batch = next(iter(pydoc_bundle.train))
    losses = []
    for _ in range(12):
        out = m(m.augment(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] - 1.0
    ev = m.evaluate(pydoc_bundle)
    assert ev["heldout_nll"] > 0 and ev["heldout_perplexity"] > 1
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    assert m.embed(inputs).shape == (len(y), m.encoder.dim)
    m.encoder.save_pretrained(tmp_path)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "GPT2Model"
