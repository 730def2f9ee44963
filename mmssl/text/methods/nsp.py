r"""BERT's next-sentence prediction (Devlin et al. 2019, https://arxiv.org/abs/1810.04805).

Each packed row is cut into ``[CLS] A [SEP] B [SEP]``: ``A`` is the first part of the row's
longest one-document run, cut after a sentence end where there is one; half the time ``B`` is
the text that follows ``A`` in that document (:math:`y = 0`), half the time the second part of
another row of the batch (:math:`y = 1`). A classifier on ``[CLS]`` (BERT's pooler, dense and
tanh, then a linear layer) predicts :math:`y`, jointly with BERT's masked LM on the pair:

.. math::
    \mathcal{L} = -\frac{1}{B}\sum_b \log p_\theta(y_b \mid A_b, B_b)
    + \lambda_{\mathrm{MLM}}\,\mathcal{L}_{\mathrm{MLM}}

The pairs are made on the device from the packed rows in :meth:`NSP.augment`: a ``[SEP]``
inside a row is a document boundary, so no special data loader is needed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives.masked import IGNORE_INDEX, mask_tokens, masked_cross_entropy
from mmssl.core.objectives.pretext import pretext_loss
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, bert
from mmssl.text.methods.mlm import MLMHead

SENTENCE_ENDS = (".", "!", "?")


def longest_run(special: Tensor) -> tuple[Tensor, Tensor]:
    """Start and length ``(B,)`` of each row's longest run of non-special tokens (``(B, T)``)."""
    b, t = special.shape
    run = special.long().cumsum(1)  # (B, T) index of the run each token is in
    inside = (~special).long()
    sizes = torch.zeros(b, t + 1, dtype=torch.long, device=special.device).scatter_add_(
        1, run, inside
    )
    best = sizes.argmax(1)  # (B,)
    start = ((run == best[:, None]) & ~special).long().argmax(1)  # first token of that run
    return start, sizes.gather(1, best[:, None]).squeeze(1)


def split_points(
    ids: Tensor, start: Tensor, length: Tensor, ends: Tensor, generator: torch.Generator
) -> Tensor:
    """A cut ``(B,)`` strictly inside each run, right after a sentence end (``ends``) when the run
    has one, else anywhere; runs shorter than 2 get ``start + 1``."""
    pos = torch.arange(ids.shape[1], device=ids.device)[None]  # (1, T)
    inner = (pos > start[:, None]) & (pos < (start + length)[:, None])  # (B, T)
    after_end = torch.zeros_like(inner)
    after_end[:, 1:] = torch.isin(ids[:, :-1], ends)
    w = inner & after_end
    w = torch.where(w.any(1, keepdim=True), w, inner)
    w[~w.any(1), 0] = True  # rows with no possible cut: any index, fixed below
    cut = torch.multinomial(w.float(), 1, generator=generator).squeeze(1)
    return torch.where(length >= 2, cut, start + 1)


def segment_pairs(
    ids: Tensor,
    first: tuple[Tensor, Tensor, Tensor],
    second: tuple[Tensor, Tensor, Tensor],
    *,
    cls: int,
    sep: int,
    pad: int,
) -> dict[str, Tensor]:
    """``[CLS] first [SEP] second [SEP]`` from ``(row, start, length)`` triples of ``(B,)``.

    The pair keeps the width ``T`` of ``ids`` (then drops all-padding columns); too long, the
    longer segment is cut (the first from the front, the second from the back, so the text
    around the junction stays). Returns ``input_ids``, ``attention_mask``, ``token_type_ids``
    and ``special_tokens_mask``, each ``(B, T')``.
    """
    t = ids.shape[1]
    (ra, sa, la), (rb, sb, lb) = first, second
    la, lb = la.clamp_min(0), lb.clamp_min(0)
    budget = t - 3
    la2 = torch.minimum(la, torch.maximum(budget - lb, torch.full_like(la, budget // 2)))
    lb2 = torch.minimum(lb, budget - la2)
    sa = sa + la - la2
    j = torch.arange(t, device=ids.device)[None]  # (1, T) output position
    in_a = (j >= 1) & (j <= la2[:, None])
    in_b = (j >= la2[:, None] + 2) & (j < (la2 + lb2)[:, None] + 2)
    row = torch.where(in_a, ra[:, None], rb[:, None])  # (B, T)
    col = torch.where(in_a, sa[:, None] + j - 1, sb[:, None] + j - la2[:, None] - 2)
    out = ids[row, col.clamp(0, t - 1)]
    total = (la2 + lb2 + 3)[:, None]
    is_sep = (j == la2[:, None] + 1) | (j == total - 1)
    out = torch.where(in_a | in_b, out, torch.where(is_sep, sep, pad))
    out[:, 0] = cls
    att = j < total
    width = int(total.max())
    return {
        "input_ids": out[:, :width],
        "attention_mask": att[:, :width].long(),
        "token_type_ids": ((j > la2[:, None] + 1) & att)[:, :width].long(),
        "special_tokens_mask": (~(in_a | in_b))[:, :width],
    }


@register("nsp", modality="text")
class NSP(Method):
    """Next-sentence prediction (with BERT's MLM, weight ``mlm_weight``; 0 gives NSP alone).

    Args:
        encoder: a :class:`TextEncoder` over a model that takes ``token_type_ids``.
        vocab_size, mask_token_id, cls_token_id, sep_token_id, pad_token_id: the tokenizer's.
        sentence_end_ids: token ids that end a sentence (cuts go right after one).
        mlm_weight: :math:`\\lambda_{\\mathrm{MLM}}` (BERT: 1).
        mask_prob: BERT's 15% masking of the pair for the MLM term.
        seed: seeds the pairing and masking generator.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/relative-position"
    modality: ClassVar[str] = "text"
    # BERT: AdamW 1e-4, batch 256, 1M steps; a small BERT from scratch needs a larger rate (MLM).
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
        sentence_end_ids: tuple[int, ...] = (),
        mlm_weight: float = 1.0,
        mask_prob: float = 0.15,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mlm_weight < 0:
            raise ValueError(
                f"mlm_weight must be >= 0 (BERT: 1; 0 for the pair task alone), got {mlm_weight}"
            )
        self.encoder = encoder
        d = encoder.dim
        self.classifier = nn.Sequential(
            nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 2)
        )  # pooler + head
        emb = encoder.word_embeddings
        e = emb.weight.shape[1]  # ALBERT's factorised embedding: project H -> E first
        head = MLMHead(emb) if e == d else nn.Sequential(nn.Linear(d, e), MLMHead(emb))
        self.mlm_head = head if mlm_weight > 0 else None
        self.vocab_size, self.mask_token_id = vocab_size, mask_token_id
        self.special = {"cls": cls_token_id, "sep": sep_token_id, "pad": pad_token_id}
        self.register_buffer(
            "ends", torch.tensor(sentence_end_ids, dtype=torch.long), persistent=False
        )
        self.mlm_weight, self.mask_prob, self.seed = mlm_weight, mask_prob, seed
        self.generators = SeededGenerators(seed)

    def pairs(
        self, batch: dict[str, Tensor], g: torch.Generator
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Segment pairs and their targets ``(B,)``: 0 = ``B`` follows ``A``, 1 = random ``B``."""
        ids, special = batch["input_ids"], batch["special_tokens_mask"].bool()
        b, dev = ids.shape[0], ids.device
        start, length = longest_run(special)
        cut = split_points(ids, start, length, self.ends, g)
        rows = torch.arange(b, device=dev)
        y = (torch.rand(b, generator=g, device=dev) < 0.5).long()
        other = (rows + torch.randint(1, max(b, 2), (b,), generator=g, device=dev)) % b
        rb = torch.where(y.bool(), other, rows)
        end = start + length
        pair = segment_pairs(
            ids, (rows, start, cut - start), (rb, cut[rb], end[rb] - cut[rb]), **self.special
        )
        return pair, y.masked_fill(length < 2, IGNORE_INDEX)

    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        g = self.generators(batch["input_ids"].device)
        pair, y = self.pairs(batch, g)
        if self.mlm_head is not None:
            pair["input_ids"], pair["labels"] = mask_tokens(
                pair["input_ids"],
                mask_token_id=self.mask_token_id,
                vocab_size=self.vocab_size,
                mask_prob=self.mask_prob,
                special_mask=pair["special_tokens_mask"],
                generator=g,
            )
        return {**pair, "pair_labels": y}

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        h = self.encoder.token_states(
            batch["input_ids"], batch["attention_mask"], token_type_ids=batch["token_type_ids"]
        )  # (B, T, D)
        y = batch["pair_labels"]
        keep = y != IGNORE_INDEX  # rows too short to cut are left out
        logits = self.classifier(h[:, 0])  # (B, 2) from [CLS]
        pair_loss = pretext_loss(logits[keep], y[keep]) if keep.any() else logits.sum() * 0.0
        acc = (logits[keep].detach().argmax(1) == y[keep]).float().mean()
        out = {"loss": pair_loss, "pair_loss": pair_loss.detach(), "pair_acc": acc}
        if self.mlm_head is not None:
            picked = batch["labels"] != IGNORE_INDEX  # (B, T)
            mlm = masked_cross_entropy(self.mlm_head(h[picked]), batch["labels"][picked])
            out["loss"] = pair_loss + self.mlm_weight * mlm
            out["mlm_loss"] = mlm.detach()
        return out

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean-pooled last-layer states ``(B, D)``."""
        return self.encoder(inputs)

    @classmethod
    def _encoder(cls, info: dict[str, Any], size: str, **kw: Any) -> TextEncoder:
        return TextEncoder(
            bert(
                info["vocab_size"],
                size,
                max_length=info["max_length"],
                pad_token_id=info["pad_token_id"],
                **kw,
            )
        )

    @classmethod
    def build(
        cls,
        data: DataBundle,
        size: str = "mini",
        *,
        mlm_weight: float = 1.0,
        mask_prob: float = 0.15,
        seed: int = 0,
        **encoder_kw: Any,
    ) -> NSP:
        """A ``size`` encoder (BERT for NSP) sized from ``data.info``; ``encoder_kw`` go to its
        builder in :mod:`mmssl.text.encoders`."""
        info = data.info
        tok = info.get("tokenizer")
        ends: tuple[int, ...] = ()
        if tok is not None:
            found = tok.convert_tokens_to_ids(list(SENTENCE_ENDS))
            ends = tuple(i for i in found if i is not None and i != tok.unk_token_id)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(
                cls._encoder(info, size, **encoder_kw),
                info["vocab_size"],
                info["mask_token_id"],
                info["cls_token_id"],
                info["sep_token_id"],
                info["pad_token_id"],
                sentence_end_ids=ends,
                mlm_weight=mlm_weight,
                mask_prob=mask_prob,
                seed=seed,
            )
