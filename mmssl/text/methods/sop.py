r"""ALBERT's sentence-order prediction (Lan et al. 2020, https://arxiv.org/abs/1909.11942).

Two consecutive segments of one document, ``A`` then ``B``, cut after a sentence end where
there is one; half the pairs are swapped. A classifier on ``[CLS]`` predicts the order
:math:`y` (0: ``[CLS] A [SEP] B [SEP]``, 1: ``[CLS] B [SEP] A [SEP]``), jointly with the masked
LM:

.. math::
    \mathcal{L} = -\frac{1}{B}\sum_b \log p_\theta(y_b \mid \text{pair}_b)
    + \lambda_{\mathrm{MLM}}\,\mathcal{L}_{\mathrm{MLM}}

Unlike NSP's random second segment, both segments share a topic, so the task is discourse
coherence, not topic matching. Pairs are made on the device from packed rows, as in
:mod:`mmssl.text.methods.nsp` (a ``[SEP]`` inside a row ends a document), so ``A`` and ``B``
always come from the same document. The default encoder is ALBERT (``encoder="bert"`` for BERT).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, albert, bert
from mmssl.text.methods.nsp import NSP, longest_run, segment_pairs, split_points

ENCODERS = {"albert": albert, "bert": bert}


@register("sop", modality="text")
class SOP(NSP):
    """Sentence-order prediction; the arguments are :class:`NSP`'s.

    ``build(data, encoder="albert", size="mini", mlm_weight=1.0, ...)``.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/relative-position"
    modality: ClassVar[str] = "text"
    # ALBERT: LAMB 0.00176, batch 4096, 125k steps, no dropout; AdamW at MLM's small-model rate here.
    defaults: ClassVar[dict[str, Any]] = dict(NSP.defaults)

    def pairs(
        self, batch: dict[str, Tensor], g: torch.Generator
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Segment pairs and their targets ``(B,)``: 0 = in order, 1 = swapped."""
        ids, special = batch["input_ids"], batch["special_tokens_mask"].bool()
        start, length = longest_run(special)
        cut = split_points(ids, start, length, self.ends, g)
        rows = torch.arange(ids.shape[0], device=ids.device)
        a = (rows, start, cut - start)
        b = (rows, cut, start + length - cut)
        y = (torch.rand(ids.shape[0], generator=g, device=ids.device) < 0.5).long()
        swap = y.bool()
        first = tuple(torch.where(swap, v, u) for u, v in zip(a, b, strict=True))
        second = tuple(torch.where(swap, u, v) for u, v in zip(a, b, strict=True))
        pair = segment_pairs(ids, first, second, **self.special)  # type: ignore[arg-type]
        return pair, y.masked_fill(length < 2, IGNORE_INDEX)

    @classmethod
    def _encoder(
        cls, info: dict[str, Any], size: str, encoder: str = "albert", **kw: Any
    ) -> TextEncoder:
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        return TextEncoder(
            ENCODERS[encoder](
                info["vocab_size"],
                size,
                max_length=info["max_length"],
                pad_token_id=info["pad_token_id"],
                **kw,
            )
        )
