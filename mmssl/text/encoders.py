"""Text encoders: a BERT built from scratch, and a wrapper that turns it into sentence embeddings.

BERT: Devlin et al. 2019, https://arxiv.org/abs/1810.04805. The small sizes follow Turc et al.
2019, "Well-Read Students Learn Better" (https://arxiv.org/abs/1908.08962): BERT-tiny 2x128,
mini 4x256, small 4x512, base 12x768, 64 dims per attention head, feed-forward 4x wider.
The same sizes build ALBERT, GPT-2, XLNet and ELECTRA encoders; each saves with
``save_pretrained`` to a folder ``transformers.AutoModel.from_pretrained`` loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import (
    AlbertConfig,
    AlbertModel,
    BertConfig,
    BertModel,
    ElectraConfig,
    ElectraModel,
    GPT2Config,
    GPT2Model,
    XLNetConfig,
    XLNetModel,
)

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


def pretrained(name_or_path: str | Path, vocab_size: int) -> nn.Module:
    """A pretrained encoder to continue from (SimCSE starts from BERT): a folder written by
    ``save_pretrained`` (an mmssl run's ``encoder/``) or a Hub name when online, loaded with
    ``transformers.AutoModel``. Its vocabulary must be the data's: pretrain with its tokenizer
    (``--data-opt tokenizer=`` the same folder or name)."""
    from transformers import AutoModel

    try:
        try:  # mmssl's encoders have no pooler (BERT, ALBERT): do not add an untrained one
            model = AutoModel.from_pretrained(str(name_or_path), add_pooling_layer=False)
        except TypeError:  # a model class without a pooler to leave out
            model = AutoModel.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(
            f"pretrained encoder {name_or_path}: cannot load it ({reason}); give a folder "
            "written by save_pretrained (a run's encoder/) or a Hub model name when online"
        ) from err
    if model.config.vocab_size != vocab_size:
        raise ValueError(
            f"pretrained encoder {name_or_path}: its vocabulary has {model.config.vocab_size} "
            f"tokens and the data's tokenizer {vocab_size}; tokenize with the encoder's own: "
            f"--data-opt tokenizer={name_or_path}"
        )
    return model


def _shape(size: str, head_dim: int, ffn_ratio: int, width: float = 1.0) -> dict[str, int]:
    """Layers, width, heads and feed-forward width of a named size (``width`` scales the last three)."""
    if size not in SIZES:
        raise ValueError(f"unknown encoder size {size!r}: choose one of {', '.join(SIZES)}")
    layers, hidden = SIZES[size]
    hidden = max(head_dim, int(hidden * width))
    return {
        "layers": layers,
        "hidden": hidden,
        "heads": max(1, hidden // head_dim),
        "ffn": ffn_ratio * hidden,
    }


def albert(
    vocab_size: int,
    size: str = "mini",
    *,
    max_length: int = 512,
    pad_token_id: int = 0,
    embedding_size: int = 128,
    head_dim: int = 64,
    ffn_ratio: int = 4,
    dropout: float = 0.0,
    **config: Any,
) -> AlbertModel:
    """A randomly initialised ALBERT (Lan et al. 2020, https://arxiv.org/abs/1909.11942), no pooler.

    ALBERT factorises the embedding (``V x E`` then ``E x H``, ``E = 128``), shares one layer's
    weights across all layers, and pretrains without dropout. Sizes as :func:`bert`.
    """
    s = _shape(size, head_dim, ffn_ratio)
    cfg = AlbertConfig(
        vocab_size=vocab_size,
        embedding_size=embedding_size,
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        intermediate_size=s["ffn"],
        max_position_embeddings=max_length,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **config,
    )
    return AlbertModel(cfg, add_pooling_layer=False)


def gpt2(
    vocab_size: int,
    size: str = "mini",
    *,
    max_length: int = 512,
    pad_token_id: int = 0,
    head_dim: int = 64,
    ffn_ratio: int = 4,
    dropout: float = 0.1,
    **config: Any,
) -> GPT2Model:
    """A randomly initialised GPT-2 decoder (Radford et al. 2019), causal attention; sizes as
    :func:`bert`."""
    s = _shape(size, head_dim, ffn_ratio)
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=max_length,
        n_embd=s["hidden"],
        n_layer=s["layers"],
        n_head=s["heads"],
        n_inner=s["ffn"],
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        **{"pad_token_id": pad_token_id, "bos_token_id": None, "eos_token_id": None, **config},
    )
    return GPT2Model(cfg)


def xlnet(
    vocab_size: int,
    size: str = "mini",
    *,
    pad_token_id: int = 0,
    head_dim: int = 64,
    ffn_ratio: int = 4,
    dropout: float = 0.1,
    **config: Any,
) -> XLNetModel:
    """A randomly initialised XLNet (Yang et al. 2019, https://arxiv.org/abs/1906.08237):
    two-stream relative-position attention, no memory; sizes as :func:`bert`."""
    s = _shape(size, head_dim, ffn_ratio)
    cfg = XLNetConfig(
        vocab_size=vocab_size,
        d_model=s["hidden"],
        n_layer=s["layers"],
        n_head=s["heads"],
        d_inner=s["ffn"],
        dropout=dropout,
        pad_token_id=pad_token_id,
        mem_len=None,
        **config,
    )
    return XLNetModel(cfg)


def electra(
    vocab_size: int,
    size: str = "mini",
    *,
    max_length: int = 512,
    pad_token_id: int = 0,
    embedding_size: int | None = None,
    width: float = 1.0,
    head_dim: int = 64,
    ffn_ratio: int = 4,
    dropout: float = 0.1,
    **config: Any,
) -> ElectraModel:
    """A randomly initialised ELECTRA encoder (Clark et al. 2020, https://arxiv.org/abs/2003.10555).

    Args:
        embedding_size: ``E`` (default: the size's width); projected to the hidden width when
            they differ, so a narrower generator can share the discriminator's embeddings.
        width: multiplies the hidden width, heads and feed-forward width (generator: 1/4).
        Others as :func:`bert`.
    """
    s = _shape(size, head_dim, ffn_ratio, width)
    cfg = ElectraConfig(
        vocab_size=vocab_size,
        embedding_size=embedding_size or SIZES[size][1],
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        intermediate_size=s["ffn"],
        max_position_embeddings=max_length,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **config,
    )
    return ElectraModel(cfg)


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

    def token_states(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **model_kw: Any
    ) -> Tensor:
        """Last-layer token states ``(B, T, D)``; ``model_kw`` (``token_type_ids``, XLNet's
        ``perm_mask`` and ``target_mapping``) go to the model as they are."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0 and input_ids.shape[-1] > limit:
            raise ValueError(
                f"input of {input_ids.shape[-1]} tokens is longer than the encoder's {limit} "
                f"positions; load the text with max_length <= {limit} (--data-opt "
                f"max_length={limit}) or build the encoder with max_length >= {input_ids.shape[-1]}"
            )
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **model_kw)
        return out.last_hidden_state

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
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a bar for one small shard is noise in a run's log
        try:
            self.model.save_pretrained(str(path))
        finally:
            if shown:
                hf_logging.enable_progress_bar()
