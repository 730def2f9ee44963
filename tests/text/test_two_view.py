"""The text two-view method: token views, a user objective, the default InfoNCE."""

from __future__ import annotations

import torch

from mmssl.core import registry
from mmssl.text.methods.two_view import TextTwoView, TokenViews


def test_registered():
    cls = registry.get("text", "two-view")
    assert cls is TextTwoView and cls.family == "contrastive"


def test_identity_views_are_equal(pydoc_bundle):
    batch = next(iter(pydoc_bundle.train))
    info = pydoc_bundle.info
    v1, v2 = TokenViews(info["mask_token_id"], info["pad_token_id"])(batch)
    assert torch.equal(v1["input_ids"], batch["input_ids"]) and torch.equal(
        v1["input_ids"], v2["input_ids"]
    )


def test_mask_and_delete_views_keep_special_tokens(pydoc_bundle):
    batch = next(iter(pydoc_bundle.train))
    info = pydoc_bundle.info
    views = TokenViews(
        info["mask_token_id"], info["pad_token_id"], mask_prob=0.3, delete_prob=0.3, seed=1
    )
    v1, v2 = views(batch)
    assert not torch.equal(v1["input_ids"], v2["input_ids"])
    for v in (v1, v2):
        att = v["attention_mask"].bool()
        assert att.sum() < batch["attention_mask"].sum()  # some tokens deleted
        assert (v["input_ids"][:, 0] == info["cls_token_id"]).all()  # [CLS] kept, still first
        assert (v["input_ids"][~att] == info["pad_token_id"]).all()
        assert att[:, :-1].int().ge(att[:, 1:].int()).all()  # kept tokens packed to the left
        # the [SEP]s survive, in order
        n_sep = (batch["input_ids"] == info["sep_token_id"]).sum(1)
        assert torch.equal((v["input_ids"] == info["sep_token_id"]).sum(1), n_sep)


def test_user_objective_lambda_trains(pydoc_bundle):
    calls = []

    def objective(z1, z2):
        calls.append(z1.shape)
        return (z1 - z2).pow(2).sum(1).mean() + (1 - z1.std(0)).clamp_min(0).mean()

    m = TextTwoView.build(
        pydoc_bundle, objective=objective, size="tiny", proj_dim=16, mask_prob=0.2
    )
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    batch = next(iter(pydoc_bundle.train))
    losses = []
    for _ in range(8):
        with torch.no_grad():
            views = m.augment(batch)
        loss = m(views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert calls[0] == (8, 16) and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def test_default_is_simcse_info_nce(pydoc_bundle):
    m = TextTwoView.build(pydoc_bundle, size="tiny")
    assert m.objective.keywords == {"temperature": 0.05}
    batch = next(iter(pydoc_bundle.train))
    torch.manual_seed(0)
    loss = m(m.augment(batch))  # dropout makes the identical views differ
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    inputs, y = pydoc_bundle.probe.splits["all"][0]
    assert m.embed(inputs).shape == (len(y), m.encoder.dim)
