r"""InfoWord (Kong et al. 2020, "A Mutual Information Maximization Perspective of Language
Representation Learning", https://arxiv.org/abs/1910.08350).

Mask a contiguous n-gram :math:`x_{i:j}` of each row (on top of BERT's masking); encode the
masked row :math:`\hat x_{i:j}` and, separately, the n-gram alone; maximise the mutual
information between the two with InfoNCE, the other rows' n-grams :math:`\tilde S` being the
negatives, jointly with the masked LM:

.. math::
    \mathcal{L} = \lambda_{\mathrm{MLM}}\mathcal{L}_{\mathrm{MLM}}
    - \lambda_{\mathrm{DIM}}\,\mathbb{E}\Big[f(\hat x_{i:j})^\top f(x_{i:j})
    - \log \sum_{\tilde x \in \tilde S} e^{f(\hat x_{i:j})^\top f(\tilde x)}\Big]

:math:`f` is the one encoder (pooled, cosine scores over a temperature here). The MLM term
predicts every masked token, n-gram included, with BERT's head
(:class:`~mmssl.text.methods.mlm.MLMHead`). ``estimator="jsd"`` swaps InfoNCE for the
Jensen-Shannon estimator of Deep InfoMax.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives.contrastive import info_nce
from mmssl.core.objectives.masked import IGNORE_INDEX, mask_tokens, masked_cross_entropy
from mmssl.core.objectives.mutual_info import jensen_shannon_loss
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, bert, mean_pool
from mmssl.text.methods.mlm import MLMHead
from mmssl.text.methods.nsp import longest_run

ESTIMATORS = ("infonce", "jsd")
POOLINGS = ("mean", "cls")


@register("infoword", modality="text")
class InfoWord(Method):
    """Masked LM plus sentence/n-gram mutual information.

    Args:
        encoder: a :class:`TextEncoder` (BERT).
        vocab_size, mask_token_id, cls_token_id, sep_token_id, pad_token_id: the tokenizer's.
        max_ngram: n-gram lengths are uniform in ``1..max_ngram`` (cut to the row's text).
        mask_prob: BERT's masking of the rest of the row (15%).
        mlm_weight, dim_weight: :math:`\\lambda_{\\mathrm{MLM}}`, :math:`\\lambda_{\\mathrm{DIM}}`.
        estimator: ``"infonce"`` (InfoWord) or ``"jsd"``.
        temperature: scores are cosine similarities over this.
        pooling: ``"mean"`` (the probed embedding) or ``"cls"`` (first token) representations.
        seed: seeds the masking generator.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/mutual-information"
    modality: ClassVar[str] = "text"
    # InfoWord follows BERT's recipe (Adam 1e-4, batch 256, 1M steps); a small BERT from scratch
    # takes MLM's larger rate here.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 10,
        "lr": 1e-3,
        "batch_size": 128,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 1,
    }

    def __init__(
        self,
        encoder: TextEncoder,
        vocab_size: int,
        mask_token_id: int,
        cls_token_id: int,
        sep_token_id: int,
        pad_token_id: int,
        *,
        max_ngram: int = 5,
        mask_prob: float = 0.15,
        mlm_weight: float = 1.0,
        dim_weight: float = 1.0,
        estimator: str = "infonce",
        temperature: float = 0.1,
        pooling: str = "mean",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if estimator not in ESTIMATORS or pooling not in POOLINGS or max_ngram < 1:
            raise ValueError(
                f"need estimator in {ESTIMATORS}, pooling in {POOLINGS} and max_ngram >= 1; "
                f"got {estimator!r}, {pooling!r}, {max_ngram}"
            )
        self.encoder = encoder
        self.head = MLMHead(encoder.word_embeddings)
        self.ids = {
            "mask": mask_token_id,
            "cls": cls_token_id,
            "sep": sep_token_id,
            "pad": pad_token_id,
        }
        self.vocab_size, self.max_ngram, self.mask_prob = vocab_size, max_ngram, mask_prob
        self.mlm_weight, self.dim_weight = mlm_weight, dim_weight
        self.estimator, self.temperature, self.pooling, self.seed = (
            estimator,
            temperature,
            pooling,
            seed,
        )
        self.generators = SeededGenerators(seed)

    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Masked rows ``input_ids``/``labels`` ``(B, T)`` and the n-grams alone, ``[CLS] x_{i:j}
        [SEP]`` as ``ngram_ids``/``ngram_mask`` ``(B, max_ngram + 2)``."""
        ids, special = batch["input_ids"], batch["special_tokens_mask"].bool()
        b, t, dev = *ids.shape, ids.device
        gen = self.generators(dev)
        g = gen
        masked, labels = mask_tokens(
            ids,
            mask_token_id=self.ids["mask"],
            vocab_size=self.vocab_size,
            mask_prob=self.mask_prob,
            special_mask=special,
            generator=g,
        )
        run_start, run_len = longest_run(special)
        n = torch.randint(1, self.max_ngram + 1, (b,), generator=g, device=dev).minimum(run_len)
        start = run_start + (torch.rand(b, generator=g, device=dev) * (run_len - n + 1)).long()
        pos = torch.arange(t, device=dev)[None]  # (1, T)
        span = (pos >= start[:, None]) & (pos < (start + n)[:, None])  # (B, T)
        masked = masked.masked_fill(span, self.ids["mask"])
        labels = torch.where(span, ids, labels)
        j = torch.arange(self.max_ngram + 2, device=dev)[None]  # (1, G)
        in_gram = (j >= 1) & (j <= n[:, None])
        gram = ids.gather(1, (start[:, None] + j - 1).clamp(0, t - 1))  # (B, G)
        gram = torch.where(
            in_gram, gram, torch.where(j == n[:, None] + 1, self.ids["sep"], self.ids["pad"])
        )
        gram[:, 0] = self.ids["cls"]
        return {
            "input_ids": masked,
            "attention_mask": batch["attention_mask"],
            "labels": labels,
            "ngram_ids": gram,
            "ngram_mask": (j <= n[:, None] + 1).long().expand(b, -1),
        }

    def _pool(self, h: Tensor, mask: Tensor) -> Tensor:
        return mean_pool(h, mask) if self.pooling == "mean" else h[:, 0]

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        att = batch["attention_mask"]
        h = self.encoder.token_states(batch["input_ids"], att)  # (B, T, D)
        picked = batch["labels"] != IGNORE_INDEX
        mlm = masked_cross_entropy(self.head(h[picked]), batch["labels"][picked])
        sent = self._pool(h, att)  # (B, D) the masked sentence
        gram = self._pool(
            self.encoder.token_states(batch["ngram_ids"], batch["ngram_mask"]), batch["ngram_mask"]
        )
        if self.estimator == "infonce":
            dim = info_nce(sent, gram, temperature=self.temperature)
        else:
            s = torch.nn.functional.normalize(sent.float(), dim=1)
            scores = s @ torch.nn.functional.normalize(gram.float(), dim=1).T / self.temperature
            dim = jensen_shannon_loss(scores, torch.eye(len(s), dtype=torch.bool, device=s.device))
        loss = self.mlm_weight * mlm + self.dim_weight * dim
        return {"loss": loss, "mlm_loss": mlm.detach(), "dim_loss": dim.detach()}

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean-pooled last-layer states ``(B, D)``."""
        return self.encoder(inputs)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        size: str = "mini",
        *,
        max_ngram: int = 5,
        mask_prob: float = 0.15,
        mlm_weight: float = 1.0,
        dim_weight: float = 1.0,
        estimator: str = "infonce",
        temperature: float = 0.1,
        pooling: str = "mean",
        seed: int = 0,
        **bert_kw: Any,
    ) -> InfoWord:
        """A ``size`` BERT sized from ``data.info``; ``bert_kw`` go to
        :func:`~mmssl.text.encoders.bert`."""
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
            return cls(
                TextEncoder(model),
                info["vocab_size"],
                info["mask_token_id"],
                info["cls_token_id"],
                info["sep_token_id"],
                info["pad_token_id"],
                max_ngram=max_ngram,
                mask_prob=mask_prob,
                mlm_weight=mlm_weight,
                dim_weight=dim_weight,
                estimator=estimator,
                temperature=temperature,
                pooling=pooling,
                seed=seed,
            )
