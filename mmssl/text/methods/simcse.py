r"""Unsupervised SimCSE (Gao et al. 2021, https://arxiv.org/abs/2104.08821).

Each sentence goes through the encoder twice; the two dropout masks are the only augmentation.
The two embeddings of a sentence are positives, the other sentences of the batch negatives:

.. math::
    \ell_i = -\log \frac{e^{\mathrm{sim}(h_i, h_i^+)/\tau}}{\sum_{j=1}^{B} e^{\mathrm{sim}(h_i, h_j^+)/\tau}},
    \qquad \tau = 0.05

The batch is duplicated and encoded in one pass ``(2B, T)``, so the two copies get independent
dropout. SimCSE's MLP (dense and tanh) sits on the pooled output during training only.
:mod:`mmssl.text.methods.two_view` adds token masking or deletion views instead. SimCSE
pretrains on one sentence per row by default (``pack=False``), as the paper does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives.contrastive import info_nce
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, bert
from mmssl.text.encoders import pretrained as load_pretrained


@register("simcse", modality="text")
class SimCSE(Method):
    """Dropout-only contrastive sentence embeddings.

    Args:
        encoder: a :class:`TextEncoder` with dropout (BERT's 0.1).
        temperature: :math:`\\tau` (SimCSE: 0.05).
        mlp: the training-only dense + tanh head over the pooled output (SimCSE unsup: True).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    modality: ClassVar[str] = "text"
    # SimCSE fine-tunes BERT: lr 3e-5, batch 64, 1 epoch of 1M sentences; from scratch, a small
    # BERT takes a larger rate (the two-view method's). One sentence per row, as the paper (and
    # the sentence probes) have it, not packed blocks (``--data-opt pack=true`` packs anyway).
    defaults: ClassVar[dict[str, Any]] = {
        "data_options": {"pack": False},
        "epochs": 5,
        "lr": 5e-4,
        "batch_size": 64,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 0.5,
    }

    def __init__(
        self, encoder: TextEncoder, *, temperature: float = 0.05, mlp: bool = True
    ) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.dim
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.Tanh()) if mlp else nn.Identity()
        self.temperature = temperature

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ids, att = batch["input_ids"], batch["attention_mask"]
        twice = {"input_ids": ids.repeat(2, 1), "attention_mask": att.repeat(2, 1)}  # (2B, T)
        z1, z2 = self.mlp(self.encoder(twice)).chunk(2)  # (B, D) each: two dropout masks
        loss = info_nce(z1, z2, temperature=self.temperature, gather=True)
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(z1, z2).mean()
        return {"loss": loss, "positive_cosine": cos}

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean-pooled last-layer states ``(B, D)``, without the MLP (SimCSE unsup at test)."""
        return self.encoder(inputs)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        size: str = "mini",
        *,
        temperature: float = 0.05,
        mlp: bool = True,
        seed: int = 0,
        pretrained: str | None = None,
        **bert_kw: Any,
    ) -> SimCSE:
        """A ``size`` BERT sized from ``data.info``; ``bert_kw`` go to
        :func:`~mmssl.text.encoders.bert` (``dropout=0.1`` makes the views).

        ``pretrained``: continue from this encoder instead, as the paper does from BERT (a
        run's ``encoder/`` folder or a Hub name; see :func:`~mmssl.text.encoders.pretrained`).
        The run's "random init" baseline is then that starting encoder; the paper fine-tunes
        at ``--lr 3e-5``."""
        info = data.info
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if pretrained is not None:
                model = load_pretrained(pretrained, info["vocab_size"])
            else:
                model = bert(
                    info["vocab_size"],
                    size,
                    max_length=info["max_length"],
                    pad_token_id=info["pad_token_id"],
                    **bert_kw,
                )
            return cls(TextEncoder(model), temperature=temperature, mlp=mlp)
