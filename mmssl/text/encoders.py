"""Text encoders: a BERT built from scratch, and a wrapper that turns it into sentence embeddings.

BERT: Devlin et al. 2019, https://arxiv.org/abs/1810.04805. The small sizes follow Turc et al.
2019, "Well-Read Students Learn Better" (https://arxiv.org/abs/1908.08962): BERT-tiny 2x128,
mini 4x256, small 4x512, base 12x768, 64 dims per attention head, feed-forward 4x wider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel

# size -> (layers, hidden width)
SIZES: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "base": (12, 768),
}


def bert(
    vocab_size: int,
    size: str = "mini",
    *,
    max_length: int = 512,
    pad_token_id: int = 0,
    head_dim: int = 64,
    ffn_ratio: int = 4,
    dropout: float = 0.1,
    **config: Any,
) -> BertModel:
    """A randomly initialised :class:`~transformers.BertModel` (no pooler) of a named size.

    Args:
        vocab_size: the tokenizer's vocabulary size.
        size: ``tiny`` (2x128), ``mini`` (4x256), ``small`` (4x512) or ``base`` (12x768).
        max_length: the number of position embeddings (longest sequence).
        pad_token_id: the tokenizer's ``[PAD]`` id.
        head_dim: width of one attention head (heads = hidden / head_dim).
        ffn_ratio: feed-forward width over hidden width.
        dropout: hidden and attention dropout (BERT: 0.1).
        config: any other :class:`~transformers.BertConfig` field, overriding the above.
    """
    if size not in SIZES:
        raise ValueError(f"unknown BERT size {size!r}: choose one of {', '.join(SIZES)}")
    layers, hidden = SIZES[size]
    cfg = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // head_dim),
        intermediate_size=ffn_ratio * hidden,
        max_position_embeddings=max_length,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **config,
    )
    return BertModel(cfg, add_pooling_layer=False)


def mean_pool(states: Tensor, mask: Tensor) -> Tensor:
    """Average token states over the attended positions: ``(B, T, D), (B, T) -> (B, D)``."""
    m = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


class TextEncoder(nn.Module):
    """Sentence embeddings from a Hugging Face encoder: mean of the last layer over real tokens.

    ``forward(inputs)`` takes a dict with ``input_ids`` and ``attention_mask``:

    - ``(B, T)``: one sequence per example, returns ``(B, D)``;
    - ``(B, C, T)``: a long document cut into ``C`` chunks (all-padding chunks allowed); each
      chunk is pooled, then the chunks are averaged, returns ``(B, D)``.

    Args:
        model: a :class:`~transformers.PreTrainedModel` returning ``last_hidden_state``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def dim(self) -> int:
        """The embedding size ``D``."""
        return int(self.model.config.hidden_size)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The input embedding table ``(V, D)`` (tied to the MLM decoder)."""
        return self.model.get_input_embeddings()

    def token_states(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Last-layer token states ``(B, T, D)``."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        if ids.ndim == 3:  # (B, C, T) document chunks
            b, c, t = ids.shape
            flat_mask = mask.reshape(b * c, t)  # (B*C, T)
            keep = flat_mask.any(1)  # chunks with at least one real token
            pooled = ids.new_zeros((b * c, self.dim), dtype=torch.float32)
            emb = mean_pool(
                self.token_states(ids.reshape(b * c, t)[keep], flat_mask[keep]), flat_mask[keep]
            )
            pooled = pooled.to(emb.dtype).index_copy(0, keep.nonzero().squeeze(1), emb)
            w = keep.reshape(b, c, 1).to(emb.dtype)  # (B, C, 1)
            return (pooled.reshape(b, c, -1) * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, D)
        return mean_pool(self.token_states(ids, mask), mask)  # (B, D)

    def save_pretrained(self, path: str | Path) -> None:
        """Write the encoder so ``transformers.AutoModel.from_pretrained(path)`` loads it."""
        self.model.save_pretrained(str(path))
