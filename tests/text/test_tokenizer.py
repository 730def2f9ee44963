"""WordPiece / BPE training, save_pretrained and load round trips, offline errors."""

from __future__ import annotations

from pydoc_data.topics import topics

import pytest
from transformers import AutoTokenizer

from mmssl.core.data import DataError
from mmssl.text.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_bpe, train_wordpiece

TEXTS = list(topics.values())


@pytest.fixture(scope="module")
def wordpiece():
    return train_wordpiece(TEXTS, vocab_size=600)


def test_wordpiece_specials_and_template(wordpiece):
    assert len(wordpiece) == 600
    assert [wordpiece.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (wordpiece.pad_token_id, wordpiece.mask_token_id) == (0, 4)
    one = wordpiece("The assert statement")["input_ids"]
    assert one[0] == wordpiece.cls_token_id and one[-1] == wordpiece.sep_token_id
    pair = wordpiece("first part", "second part")
    assert pair["input_ids"].count(wordpiece.sep_token_id) == 2
    assert wordpiece.decode(one, skip_special_tokens=True) == "the assert statement"  # lowercased


def test_wordpiece_round_trip(wordpiece, tmp_path):
    wordpiece.save_pretrained(str(tmp_path))
    text = "Assignment statements re-bind names to values, caf\u00e9."
    for loaded in (load_tokenizer(tmp_path), AutoTokenizer.from_pretrained(str(tmp_path))):
        assert loaded(text)["input_ids"] == wordpiece(text)["input_ids"]
        assert loaded.mask_token == "[MASK]" and loaded.pad_token_id == 0


def test_bpe_has_no_unknowns(tmp_path):
    tok = train_bpe(TEXTS[:20], vocab_size=400)
    ids = tok("\u00fcbercode \u2603")["input_ids"]
    assert tok.unk_token_id not in ids
    tok.save_pretrained(str(tmp_path))
    assert load_tokenizer(tmp_path)("x = 1")["input_ids"] == tok("x = 1")["input_ids"]


def test_load_tokenizer_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="not a folder"):
        load_tokenizer("surely-not-a-cached/tokenizer-name")
    with pytest.raises(DataError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_vocab_size_checked():
    with pytest.raises(ValueError, match="special tokens"):
        train_wordpiece(["a b c"], vocab_size=3)
