"""NSP: true next segment or a random one, BERT's pair layout, smoke training."""

from __future__ import annotations

import torch

from mmssl.core import registry
from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.text.methods.nsp import NSP, longest_run


def _contains(seq: list[int], sub: list[int]) -> bool:
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_registered():
    cls = registry.get("text", "nsp")
    assert cls is NSP and (cls.family, cls.kind) == (
        "contrastive",
        "context-instance/relative-position",
    )


def test_longest_run():
    special = torch.tensor([[1, 0, 0, 1, 0, 0, 0, 1], [1, 0, 1, 1, 1, 1, 1, 1]]).bool()
    start, length = longest_run(special)
    assert start.tolist() == [4, 1] and length.tolist() == [3, 1]


def test_pairs_next_or_random(pydoc_bundle):
    info = pydoc_bundle.info
    m = NSP.build(pydoc_bundle, size="tiny", mlm_weight=0.0)
    batch = next(iter(pydoc_bundle.train))
    pair, y = m.pairs(batch, torch.Generator().manual_seed(0))
    special = torch.tensor(info["special_token_ids"])
    assert set(y.tolist()) <= {0, 1, IGNORE_INDEX} and {0, 1} <= set(y.tolist())
    for r in range(len(y)):
        ids, types, att = pair["input_ids"][r], pair["token_type_ids"][r], pair["attention_mask"][r]
        n = int(att.sum())
        assert ids[0] == info["cls_token_id"] and ids[n - 1] == info["sep_token_id"]
        assert (ids[:n] == info["sep_token_id"]).sum() == 2 and types[0] == 0 and types[n - 1] == 1
        real = ~torch.isin(ids, special) & att.bool()
        a, b = ids[real & (types == 0)].tolist(), ids[real & (types == 1)].tolist()
        own = batch["input_ids"][r].tolist()
        assert _contains(own, a)
        if y[r] == 0:
            assert _contains(own, a + b)  # B is the text right after A
        elif y[r] == 1:
            assert any(
                _contains(batch["input_ids"][o].tolist(), b) for o in range(len(y)) if o != r
            )


def test_smoke_loss_decreases_and_embed(pydoc_bundle):
    for weight in (0.0, 1.0):
        m = NSP.build(pydoc_bundle, size="tiny", mlm_weight=weight, dropout=0.0)
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
            assert ("mlm_loss" in out) == (weight > 0)
        assert all(torch.isfinite(torch.tensor(losses)))
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - (0.5 if weight else 0.0)
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    assert m.embed(inputs).shape == (len(y), m.encoder.dim)
