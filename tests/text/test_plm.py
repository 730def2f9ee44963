"""PLM: XLNet's perm_mask and target_mapping, two-stream training on an XLNet from scratch."""

from __future__ import annotations

import torch
from transformers import AutoModel

from mmssl.core import registry
from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.text.methods.plm import PLM, permutation_targets


def test_registered():
    cls = registry.get("text", "plm")
    assert cls is PLM and (cls.family, cls.kind) == ("generative", "hybrid")


def test_perm_mask_and_target_mapping(pydoc_bundle):
    batch = next(iter(pydoc_bundle.train))
    ids = batch["input_ids"]
    special = batch["special_tokens_mask"].bool() | (batch["attention_mask"] == 0)
    gen = torch.Generator().manual_seed(0)
    out = permutation_targets(ids, special, K=6, generator=gen)
    perm, mapping, labels = out["perm_mask"], out["target_mapping"], out["target_labels"]
    b, t = ids.shape
    assert perm.shape == (b, t, t) and mapping.shape[::2] == (b, t)
    for r in range(b):
        target = mapping[r].sum(0).bool()  # (T,) positions predicted
        n = int((~special[r]).sum())
        assert int(target.sum()) == max(1, round(n / 6)) and not (target & special[r]).any()
        # only targets are ever hidden; every query sees all non-targets
        assert perm[r][:, ~target].sum() == 0
        tp = target.nonzero().squeeze(1)
        sub = perm[r][tp][:, tp]  # (n_t, n_t) among targets
        assert torch.all(sub.diagonal() == 1)  # a query never sees its own token
        off = sub + sub.T - 2 * torch.eye(len(tp))
        assert torch.all(off == 1 - torch.eye(len(tp)))  # a strict total order between targets
        # target_mapping rows are one-hot at the targets, labels are their tokens
        rows = mapping[r][labels[r] != IGNORE_INDEX]
        assert torch.all(rows.sum(1) == 1)
        assert torch.equal(ids[r][rows.argmax(1)], labels[r][labels[r] != IGNORE_INDEX])
    again = permutation_targets(ids, special, K=6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again["perm_mask"], perm)  # seeded


def test_smoke_loss_decreases_and_embed(pydoc_bundle, tmp_path):
    m = PLM.build(pydoc_bundle, size="tiny", dropout=0.0)
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
    m.encoder.save_pretrained(tmp_path)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "XLNetModel"
