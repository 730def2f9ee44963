"""Text loaders: the offline default, the shared corpora, local files, errors."""

from __future__ import annotations

import json

import pytest
import torch

from mmssl.core.data import DataError
from mmssl.text.data import load, read_corpus, read_text

# ---- the offline default ----------------------------------------------------------------------


def test_default_corpus_offline(pydoc_bundle):
    d = pydoc_bundle
    assert d.modality == "text" and d.name == "pydoc"
    info = d.info
    assert info["vocab_size"] == len(info["tokenizer"]) == 1000
    assert (info["pad_token_id"], info["mask_token_id"]) == (0, 4)
    batch = next(iter(d.train))
    assert set(batch) == {"input_ids", "attention_mask", "special_tokens_mask"}
    assert batch["input_ids"].shape == (8, 32)
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    assert (ids[:, 0] == info["cls_token_id"]).all()
    assert special[:, 0].all() and not special.all()
    assert torch.equal(special, torch.isin(ids, torch.tensor(info["special_token_ids"])))
    assert info["heldout"] and 0 < info["heldout_majority_acc"] < 0.5
    # the default still probes: which help topic a paragraph comes from
    assert d.probe.protocol == "logreg-cv"
    inputs, y = d.probe.splits["all"][0]
    assert inputs["input_ids"].shape[1] <= 32 and len(y) == inputs["input_ids"].shape[0]
    assert len(torch.cat([y for _, y in d.probe.splits["all"]]).unique()) == 22


def test_same_seed_same_batches():
    a = load(None, None, batch_size=4, max_length=16, vocab_size=500, seed=3)
    b = load(None, None, batch_size=4, max_length=16, vocab_size=500, seed=3)
    assert torch.equal(next(iter(a.train))["input_ids"], next(iter(b.train))["input_ids"])


def test_unknown_option():
    with pytest.raises(ValueError, match="unknown text data option"):
        load(None, None, vocab_size=500, colour="blue")


# ---- local files ------------------------------------------------------------------------------


def test_local_txt_documents_and_lines(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("First sentence here.\nSecond one.\n\n\nAnother document.\n\n")
    assert read_corpus(str(docs)).documents == [
        ["First sentence here.", "Second one."],
        ["Another document."],
    ]
    lines = tmp_path / "lines.txt"
    lines.write_text("one line\ntwo line\n  \n")
    assert read_corpus(str(lines)).documents == [["one line"], ["two line"]]
    d = load(str(docs), None, vocab_size=100, max_length=16)
    assert d.probe is None and next(iter(d.train))["input_ids"].shape[1] <= 16


def test_latin1_file(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("the action clich\u00e9s just pile up \u2026\n".encode("cp1252"))
    assert read_text(f) == "the action clich\u00e9s just pile up \u2026\n"
    f.write_bytes(b"undefined in cp1252: \x81\n")  # falls back to latin-1, never crashes
    assert read_text(f).startswith("undefined")


def test_local_jsonl_and_csv(tmp_path):
    rows = [
        {
            "text": f"sentence number {i} is {'good' if i % 2 else 'bad'}",
            "label": ["neg", "pos"][i % 2],
        }
        for i in range(20)
    ]
    rows.append({"text": "   ", "label": "pos"})  # blank text is dropped
    f = tmp_path / "data.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    d = load(str(f), None, vocab_size=100, max_length=16, batch_size=4)
    assert d.probe.protocol == "logreg-cv"
    y = torch.cat([y for _, y in d.probe.splits["all"]])
    assert len(y) == 20 and set(y.tolist()) == {0, 1}
    c = tmp_path / "data.csv"
    c.write_text("body,other\nhello there,1\ngeneral kenobi,2\n")
    assert read_corpus(str(c), text_column="body").documents == [
        ["hello there"],
        ["general kenobi"],
    ]
    with pytest.raises(DataError, match="text_column"):
        read_corpus(str(c))


def test_local_folder_with_labels(tmp_path):
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        for i in range(3):
            (tmp_path / label / f"{i}.txt").write_text(
                f"a {label} review {i} .\nit was {label} .\n"
            )
    c = read_corpus(str(tmp_path))
    texts, labels = c.splits["all"]
    assert len(texts) == 6 and labels == [0, 0, 0, 1, 1, 1] and c.probe_documents


def test_probe_folds_and_c_reach_the_probe(tmp_path):
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        for i in range(4):
            (tmp_path / label / f"{i}.txt").write_text(f"a {label} review {i} .\n")
    bundle = load(str(tmp_path), None, probe_folds=3, probe_c=0.5, batch_size=4)
    assert bundle.probe.options == {"logreg-cv": {"folds": 3, "cs": [0.5]}}
    assert load(str(tmp_path), None, batch_size=4).probe.options == {}


@pytest.mark.parametrize("name", ["empty.txt", "empty.jsonl", "blank.txt"])
def test_empty_file_is_a_data_error(tmp_path, name):
    f = tmp_path / name
    f.write_text("\n \n\n" if name == "blank.txt" else "")
    with pytest.raises(DataError, match="empty"):
        load(str(f), None, vocab_size=100)


def test_missing_file_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        load(str(tmp_path / "nope.txt"), None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Hub is offline"):
        load("someone/some-dataset", None)


def test_named_dataset_without_root(monkeypatch):
    monkeypatch.delenv("MMSSL_DATA", raising=False)
    with pytest.raises(DataError, match="MMSSL_DATA"):
        load("mr", None)


# ---- the shared corpora (MMSSL_DATA) ---------------------------------------------------------


def test_mr_latin1_and_bundle(data_root):
    c = read_corpus("mr", str(data_root))
    texts, labels = c.splits["all"]
    assert len(texts) == 10662 and sum(labels) == 5331
    assert "the action clich\u00e9s just pile up ." in texts
    d = load("mr", str(data_root), vocab_size=2000, max_length=32, batch_size=64)
    assert d.probe.protocol == "logreg-cv" and set(d.probe.splits) == {"all"}
    assert sum(len(y) for _, y in d.probe.splits["all"]) == 10662
    assert max(x["input_ids"].shape[1] for x, _ in d.probe.splits["all"]) == 32  # truncated
    assert next(iter(d.train))["input_ids"].shape == (64, 32)


def test_subj(data_root):
    texts, labels = read_corpus("subj", str(data_root)).splits["all"]
    assert len(texts) == 10000 and sum(labels) == 5000


def test_trec(data_root):
    c = read_corpus("trec", str(data_root))
    assert c.protocol == "linear"
    assert {k: len(v[0]) for k, v in c.splits.items()} == {"train": 5452, "test": 500}
    assert set(c.splits["train"][1]) == set(range(6))
    assert not c.splits["test"][0][0].startswith(("NUM", "DESC", "HUM", "LOC", "ENTY", "ABBR"))


def test_sst2(data_root):
    c = read_corpus("sst2", str(data_root))
    assert {k: len(v[0]) for k, v in c.splits.items()} == {"train": 6920, "val": 872, "test": 1821}
    assert set(c.splits["val"][1]) == {0, 1}


def test_brown(data_root):
    c = read_corpus("brown", str(data_root))
    texts, labels = c.splits["all"]
    assert len(c.documents) == 500 and len(set(labels)) == 15 and c.probe_documents
    first = c.documents[0][0]
    assert first.startswith("The Fulton County Grand Jury said") and "/" not in first


def test_movie_reviews(data_root):
    c = read_corpus("movie-reviews", str(data_root))
    texts, labels = c.splits["all"]
    assert len(texts) == 2000 and sum(labels) == 1000
    assert all(len(d) > 1 for d in c.documents[:10])  # documents keep their sentences


def test_a_saved_tokenizer_packs_without_padding(pydoc_bundle, tmp_path):
    """A tokenizer saved after a padded call (as a run's ``encoder/`` was) still packs plain ids.

    A padded, truncated call leaves both settings on the Rust backend and ``save_pretrained``
    wrote them out; loading such a folder used to fill the packed rows with attended [PAD]s."""
    tok = pydoc_bundle.info["tokenizer"]
    tok(["one short line", "and a longer line than that one"], padding=True, truncation=True)
    tok.save_pretrained(tmp_path)
    again = load(None, None, batch_size=8, max_length=32, tokenizer=str(tmp_path))
    batch = next(iter(again.train))
    inside = batch["input_ids"][batch["attention_mask"].bool()]
    assert not (inside == again.info["pad_token_id"]).any()
    assert batch["special_tokens_mask"].float().mean() < 0.2  # [CLS]/[SEP] only, not padding
    ref = next(iter(pydoc_bundle.train))
    assert batch["input_ids"].shape == ref["input_ids"].shape
    # a run saves its encoder/ folder's tokenizer without them, whatever the probe calls set
    from mmssl.pretrain import save_encoder
    from mmssl.text.methods.mlm import MLM

    (tmp_path / "run").mkdir()
    save_encoder(MLM.build(again, size="tiny"), tmp_path / "run", again)
    state = json.loads((tmp_path / "run" / "encoder" / "tokenizer.json").read_text())
    assert state["padding"] is None and state["truncation"] is None
