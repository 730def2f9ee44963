"""SOP: two consecutive segments of one document, swapped half the time; ALBERT from scratch."""

from __future__ import annotations

import torch
from transformers import AutoModel

from mmssl.core import registry
from mmssl.text.data import Collate
from mmssl.text.methods.sop import SOP

DOCS = [
    (
        "The parser reads a file. It builds a tree of nodes! Each node has a type. "
        "The compiler then walks the tree.",
        "Dictionaries map keys to values.",
    ),
    ("A list is mutable.", "Tuples are not. Strings are immutable too. Sets hold unique items."),
]


def _packed_batch(bundle) -> dict[str, torch.Tensor]:
    """Rows packing two documents each, ``[CLS] d1 [SEP] d2 [SEP]``, as the loader packs them."""
    info, tok = bundle.info, bundle.info["tokenizer"]
    rows = []
    for d1, d2 in DOCS:
        a, b = (tok(d, add_special_tokens=False)["input_ids"] for d in (d1, d2))
        sep = [info["sep_token_id"]]
        rows.append(torch.tensor([info["cls_token_id"], *a, *sep, *b, *sep]))
    return Collate(info["pad_token_id"], info["special_token_ids"])(rows)


def _segments(pair: dict[str, torch.Tensor], r: int, special: list[int]) -> tuple[list, list]:
    ids, types = pair["input_ids"][r], pair["token_type_ids"][r]
    real = ~torch.isin(ids, torch.tensor(special))
    return ids[real & (types == 0)].tolist(), ids[real & (types == 1)].tolist()


def _contains(seq: list[int], sub: list[int]) -> bool:
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_registered():
    cls = registry.get("text", "sop")
    assert cls is SOP and (cls.family, cls.kind) == (
        "contrastive",
        "context-instance/relative-position",
    )


def test_pairs_come_from_one_document_in_or_out_of_order(pydoc_bundle):
    info, tok = pydoc_bundle.info, pydoc_bundle.info["tokenizer"]
    m = SOP.build(pydoc_bundle, size="tiny", mlm_weight=0.0)
    batch = _packed_batch(pydoc_bundle)
    ends = tok.convert_tokens_to_ids([".", "!", "?"])
    seen = set()
    for seed in range(6):
        pair, y = m.pairs(batch, torch.Generator().manual_seed(seed))
        for r, (d1, d2) in enumerate(DOCS):
            longest = max(d1, d2, key=lambda d: len(tok(d, add_special_tokens=False)["input_ids"]))
            doc = tok(longest, add_special_tokens=False)["input_ids"]
            a, b = _segments(pair, r, info["special_token_ids"])
            assert a and b
            first, second = (a, b) if y[r] == 0 else (b, a)  # undo the swap
            assert _contains(doc, first + second)  # consecutive, from the one longest document
            assert first[-1] in ends  # cut right after a sentence end
            seen.add(int(y[r]))
            assert pair["input_ids"][r, 0] == info["cls_token_id"]
    assert seen == {0, 1}


def test_smoke_loss_decreases_and_embed(pydoc_bundle, tmp_path):
    m = SOP.build(pydoc_bundle, size="tiny")
    assert type(m.encoder.model).__name__ == "AlbertModel"
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
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "AlbertModel"


def test_mini_albert_factorised_embeddings(pydoc_bundle):
    m = SOP.build(pydoc_bundle, size="mini")  # hidden 256, embeddings 128
    assert m.encoder.dim == 256 and m.encoder.word_embeddings.weight.shape[1] == 128
    out = m(m.augment(next(iter(pydoc_bundle.train))))
    assert torch.isfinite(out["loss"]) and "mlm_loss" in out
