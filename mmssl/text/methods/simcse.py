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

``mlm_weight`` > 0 adds the paper's auxiliary masked LM (its appendix on transfer tasks, and the
released code's ``--do_mlm``, at :math:`\lambda = 0.1`): a third, masked copy of the batch
(BERT's 15% / 80 / 10 / 10) predicts its original tokens, and the loss is
:math:`\ell + \lambda\,\mathcal{L}_{\mathrm{MLM}}`. The paper finds it helps the transfer
(probe) tasks and hurts semantic similarity.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives.contrastive import info_nce
from mmssl.core.objectives.masked import IGNORE_INDEX, mask_tokens, masked_cross_entropy
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, bert
from mmssl.text.encoders import pretrained as load_pretrained
from mmssl.text.methods.mlm import MLMHead


@register("simcse", modality="text")
class SimCSE(Method):
    """Dropout-only contrastive sentence embeddings.

    Args:
        encoder: a :class:`TextEncoder` with dropout (BERT's 0.1).
        temperature: :math:`\\tau` (SimCSE: 0.05).
        mlp: the training-only dense + tanh head over the pooled output (SimCSE unsup: True).
        mlm_weight: :math:`\\lambda` of the auxiliary masked LM (0: off, as unsup SimCSE;
            the paper's transfer-task setting: 0.1). Needs ``vocab_size`` and ``mask_token_id``.
        vocab_size, mask_token_id: the tokenizer's, for the masked LM.
        seed: seeds the masked LM's masking.
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
        self,
        encoder: TextEncoder,
        *,
        temperature: float = 0.05,
        mlp: bool = True,
        mlm_weight: float = 0.0,
        vocab_size: int | None = None,
        mask_token_id: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mlm_weight < 0 or (mlm_weight > 0 and (vocab_size is None or mask_token_id is None)):
            raise ValueError(
                f"mlm_weight must be >= 0 (got {mlm_weight}); a positive one needs vocab_size "
                "and mask_token_id (SimCSE.build takes them from the data)"
            )
        self.encoder = encoder
        d = encoder.dim
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.Tanh()) if mlp else nn.Identity()
        self.temperature = temperature
        self.mlm_weight, self.vocab_size, self.mask_token_id = mlm_weight, vocab_size, mask_token_id
        self.mlm_head = MLMHead(encoder.word_embeddings, tie=False) if mlm_weight > 0 else None
        self.generators = SeededGenerators(seed)

    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """With the auxiliary masked LM: adds ``mlm_input_ids`` and ``mlm_labels`` ``(B, T)``
        (``-100`` where not picked); otherwise the batch as it is (dropout makes the views)."""
        if self.mlm_head is None:
            return batch
        ids = batch["input_ids"]
        special = batch.get("special_tokens_mask")
        masked, labels = mask_tokens(
            ids,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            special_mask=special if special is not None else batch["attention_mask"] == 0,
            generator=self.generators(ids.device),
        )
        return {**batch, "mlm_input_ids": masked, "mlm_labels": labels}

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ids, att = batch["input_ids"], batch["attention_mask"]
        twice = {"input_ids": ids.repeat(2, 1), "attention_mask": att.repeat(2, 1)}  # (2B, T)
        z1, z2 = self.mlp(self.encoder(twice)).chunk(2)  # (B, D) each: two dropout masks
        loss = info_nce(z1, z2, temperature=self.temperature, gather=True)
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(z1, z2).mean()
        out = {"positive_cosine": cos}
        if self.mlm_head is not None:  # augment made the masked copy
            h = self.encoder.token_states(batch["mlm_input_ids"], att)  # (B, T, D)
            picked = batch["mlm_labels"] != IGNORE_INDEX
            targets = batch["mlm_labels"][picked]
            logits = self.mlm_head(h[picked])  # (M, V) at the masked positions only
            mlm = masked_cross_entropy(logits, targets) if len(targets) else logits.sum() * 0.0
            out["contrastive_loss"], out["mlm_loss"] = loss.detach(), mlm.detach()
            loss = loss + self.mlm_weight * mlm
        return {"loss": loss, **out}

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
        mlm_weight: float = 0.0,
        seed: int = 0,
        pretrained: str | None = None,
        **bert_kw: Any,
    ) -> SimCSE:
        """A ``size`` BERT sized from ``data.info``; ``bert_kw`` go to
        :func:`~mmssl.text.encoders.bert` (``dropout=0.1`` makes the views).

        ``pretrained``: continue from this encoder instead, as the paper does from BERT (a
        run's ``encoder/`` folder or a Hub name; see :func:`~mmssl.text.encoders.pretrained`).
        The run's "random init" baseline is then that starting encoder; the paper fine-tunes
        at ``--lr 3e-5``. ``mlm_weight=0.1`` adds the auxiliary masked LM (see the module)."""
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
            return cls(
                TextEncoder(model),
                temperature=temperature,
                mlp=mlp,
                mlm_weight=mlm_weight,
                vocab_size=info["vocab_size"],
                mask_token_id=info.get("mask_token_id"),
                seed=seed,
            )
