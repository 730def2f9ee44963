r"""The generic two-view method for text: two views of a token batch, one encoder, any objective.

With no token corruption the two views are the same tokens and dropout makes them differ: that
is unsupervised SimCSE (Gao et al. 2021, https://arxiv.org/abs/2104.08821), InfoNCE with
:math:`\tau = 0.05`. Token masking and deletion give the discrete augmentations of CLEAR (Wu et
al. 2020, https://arxiv.org/abs/2012.15466) and ConSERT (Yan et al. 2021,
https://arxiv.org/abs/2105.11741). Any ``objective(z1, z2) -> loss`` plugs in::

    method = TextTwoView.build(data, objective=lambda z1, z2: (z1 - z2).pow(2).mean())
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import SeededGenerators, TwoViewMethod
from mmssl.core.objectives.contrastive import info_nce
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, bert


class TokenViews(nn.Module):
    """Two corrupted copies of a token batch, made on its device.

    Each view independently replaces ``mask_prob`` of the non-special tokens with ``[MASK]`` and
    drops ``delete_prob`` of them (the kept tokens shift left, padding fills the end). Both 0:
    two identical views (SimCSE's dropout-only views).

    Args:
        mask_token_id, pad_token_id: the tokenizer's ids.
        mask_prob: probability a token becomes ``[MASK]``.
        delete_prob: probability a token is deleted.
        seed: seeds the generator (made on the batch's device at first use).
    """

    def __init__(
        self,
        mask_token_id: int,
        pad_token_id: int,
        *,
        mask_prob: float = 0.0,
        delete_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not (0 <= mask_prob < 1 and 0 <= delete_prob < 1):
            raise ValueError(
                f"mask_prob and delete_prob must be in [0, 1), got {mask_prob} and {delete_prob}"
            )
        self.mask_token_id, self.pad_token_id = mask_token_id, pad_token_id
        self.mask_prob, self.delete_prob, self.seed = mask_prob, delete_prob, seed
        self.generators = SeededGenerators(seed)

    def view(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One corrupted view ``{input_ids, attention_mask}``, each ``(B, T)``."""
        ids, att = batch["input_ids"], batch["attention_mask"].bool()
        special = batch.get("special_tokens_mask", ~att).bool() | ~att  # (B, T)
        gen = self.generators(ids.device)
        shape, dev = ids.shape, ids.device
        if self.mask_prob > 0:
            hit = (torch.rand(shape, generator=gen, device=dev) < self.mask_prob) & ~special
            ids = ids.masked_fill(hit, self.mask_token_id)
        if self.delete_prob > 0:
            drop = (torch.rand(shape, generator=gen, device=dev) < self.delete_prob) & ~special
            keep = att & ~drop  # (B, T)
            order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept first
            att = keep.gather(1, order)  # (B, T)
            ids = ids.gather(1, order).masked_fill(~att, self.pad_token_id)  # (B, T)
        return {"input_ids": ids, "attention_mask": att.long()}

    def forward(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return self.view(batch), self.view(batch)


@register("two-view", modality="text")
class TextTwoView(TwoViewMethod):
    """:class:`~mmssl.core.method.TwoViewMethod` on a BERT sentence encoder (mean pooling).

    ``embed`` is the encoder's mean-pooled output, without the projector.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    modality: ClassVar[str] = "text"
    # SimCSE fine-tunes BERT with lr 3e-5, batch 64, 1 epoch; from scratch a small BERT needs more.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 5,
        "lr": 5e-4,
        "batch_size": 128,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 0.5,
    }

    @classmethod
    def build(
        cls,
        data: DataBundle,
        objective: Any = None,
        *,
        size: str = "mini",
        temperature: float = 0.05,
        mask_prob: float = 0.0,
        delete_prob: float = 0.0,
        proj_dim: int = 128,
        seed: int = 0,
        **bert_kw: Any,
    ) -> TextTwoView:
        """A ``size`` BERT; ``objective`` defaults to InfoNCE at ``temperature`` (SimCSE: 0.05)."""
        info = data.info
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = bert(
                info["vocab_size"],
                size,
                max_length=info["max_length"],
                pad_token_id=info["pad_token_id"],
                **bert_kw,
            )
            encoder = TextEncoder(model)
            views = TokenViews(
                info["mask_token_id"],
                info["pad_token_id"],
                mask_prob=mask_prob,
                delete_prob=delete_prob,
                seed=seed,
            )
            objective = objective or functools.partial(info_nce, temperature=temperature)
            return cls(encoder, objective, views, dim=encoder.dim, proj_dim=proj_dim)
