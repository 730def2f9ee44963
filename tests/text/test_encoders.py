"""BERT sizes, mean pooling, document chunks and the save_pretrained / AutoModel round trip."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from mmssl.text.encoders import TextEncoder, bert, mean_pool


def test_sizes():
    enc = TextEncoder(bert(100, "tiny", max_length=16))
    cfg = enc.model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (2, 128, 2)
    assert enc.dim == 128 and cfg.intermediate_size == 512
    with pytest.raises(ValueError, match="tiny"):
        bert(100, "huge")


def test_padding_does_not_change_embeddings():
    torch.manual_seed(0)
    enc = TextEncoder(bert(50, "tiny", max_length=16)).eval()
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    padded = torch.tensor([[2, 7, 8, 9, 3, 0, 0]])
    a = enc({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    b = enc({"input_ids": padded, "attention_mask": (padded != 0).long()})
    assert torch.allclose(a, b, atol=1e-5)


def test_document_chunks_average_chunk_embeddings():
    torch.manual_seed(0)
    enc = TextEncoder(bert(50, "tiny", max_length=8)).eval()
    chunks = torch.tensor([[[2, 5, 6, 3, 0], [2, 9, 3, 0, 0], [0, 0, 0, 0, 0]]])  # (1, 3, 5)
    att = (chunks != 0).long()
    doc = enc({"input_ids": chunks, "attention_mask": att})
    each = enc({"input_ids": chunks[0, :2], "attention_mask": att[0, :2]})  # the 2 real chunks
    assert doc.shape == (1, 128) and torch.allclose(doc[0], each.mean(0), atol=1e-5)


def test_save_pretrained_loads_with_automodel(tmp_path):
    torch.manual_seed(0)
    enc = TextEncoder(bert(60, "tiny", max_length=16)).eval()
    enc.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(str(tmp_path)).eval()
    ids = torch.randint(5, 60, (3, 10))
    att = torch.ones_like(ids)
    att[1, 6:] = 0
    with torch.no_grad():
        ref = mean_pool(loaded(input_ids=ids, attention_mask=att).last_hidden_state, att)
        ours = enc({"input_ids": ids, "attention_mask": att})
    assert torch.allclose(ours, ref, atol=1e-6)


def test_sequence_longer_than_the_model_is_one_line_naming_the_fix():
    from mmssl.text.encoders import TextEncoder, bert

    enc = TextEncoder(bert(50, "tiny", max_length=8))
    ids = torch.ones(2, 12, dtype=torch.long)
    with pytest.raises(ValueError, match=r"12 tokens .* 8 positions.*max_length=8") as err:
        enc({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    assert "\n" not in str(err.value)
