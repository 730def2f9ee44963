r"""ELECTRA's replaced-token detection (Clark et al. 2020, https://arxiv.org/abs/2003.10555).

A small generator :math:`G` (a masked LM, 1/4 of the discriminator's width) fills the masked
positions with tokens sampled from its output; the discriminator :math:`D` tells, for every
token, whether it was replaced:

.. math::
    \mathcal{L} = \mathcal{L}_{\mathrm{MLM}}(G)
    - \frac{\lambda}{|T|}\sum_{t} \big[\mathbb{1}(\tilde x_t \ne x_t)\log D(\tilde x, t)
    + \mathbb{1}(\tilde x_t = x_t)\log(1 - D(\tilde x, t))\big], \qquad \lambda = 50

over the non-padding tokens :math:`T`. A sampled token equal to the original counts as
original. Sampling is not back-propagated; the two share their token, position and type
embeddings. ``embed`` and the saved encoder are the discriminator's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives.masked import IGNORE_INDEX, mask_tokens, masked_cross_entropy
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, electra
from mmssl.text.methods.mlm import MLMHead


@register("electra", modality="text")
class ELECTRA(Method):
    """Generator MLM plus discriminator replaced-token detection.

    Args:
        encoder: the discriminator, a :class:`TextEncoder` over an ELECTRA model.
        generator: the generator's :class:`TextEncoder`; its embeddings are replaced by the
            discriminator's (shared).
        vocab_size, mask_token_id: the tokenizer's.
        mask_prob: share of tokens masked (ELECTRA: 15%); 85% of them become ``[MASK]``, the
            rest keep their token (ELECTRA's masking, no random replacement).
        disc_weight: :math:`\\lambda` (ELECTRA: 50).
        seed: seeds masking and sampling.
    """

    family: ClassVar[str] = "generative-contrastive"
    kind: ClassVar[str] = "adversarial"
    modality: ClassVar[str] = "text"
    # ELECTRA-Small: Adam 5e-4, weight decay 0.01, batch 128, 10k warmup, 1M steps.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 10,
        "lr": 5e-4,
        "batch_size": 128,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 1,
    }

    def __init__(
        self,
        encoder: TextEncoder,
        generator: TextEncoder,
        vocab_size: int,
        mask_token_id: int,
        *,
        mask_prob: float = 0.15,
        replace_prob: float = 0.85,
        disc_weight: float = 50.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder, self.generator = encoder, generator
        generator.model.embeddings = encoder.model.embeddings  # shared embeddings
        emb = encoder.word_embeddings
        self.gen_head = nn.Sequential(nn.Linear(generator.dim, emb.weight.shape[1]), MLMHead(emb))
        d = encoder.dim
        self.disc_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.vocab_size, self.mask_token_id = vocab_size, mask_token_id
        self.mask_args = {"mask_prob": mask_prob, "replace_prob": replace_prob, "random_prob": 0.0}
        self.disc_weight, self.seed = disc_weight, seed
        self.generators = SeededGenerators(seed)

    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ids = batch["input_ids"]
        masked, labels = mask_tokens(
            ids,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            special_mask=batch["special_tokens_mask"],
            generator=self.generators(ids.device),
            **self.mask_args,
        )
        return {**batch, "original_ids": ids, "input_ids": masked, "labels": labels}

    def corrupt(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Generator logits ``(M, V)`` at the ``M`` masked positions, their targets ``(M,)``,
        the corrupted ids ``(B, T)`` and the discriminator's labels ``(B, T)`` (1: replaced)."""
        picked = batch["labels"] != IGNORE_INDEX  # (B, T)
        h = self.generator.token_states(batch["input_ids"], batch["attention_mask"])  # (B, T, Dg)
        logits = self.gen_head(h[picked])  # (M, V)
        with torch.no_grad():
            probs = logits.detach().float().softmax(-1)
            g = self.generators(probs.device)
            sampled = (
                torch.multinomial(probs, 1, generator=g).squeeze(1)
                if len(probs)
                else probs.new_zeros(0, dtype=torch.long)
            )
        corrupted = batch["input_ids"].clone()
        corrupted[picked] = sampled
        replaced = (corrupted != batch["original_ids"]) & batch["attention_mask"].bool()
        return logits, batch["labels"][picked], corrupted, replaced

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        gen_logits, targets, corrupted, replaced = self.corrupt(batch)
        att = batch["attention_mask"].bool()
        h = self.encoder.token_states(corrupted, batch["attention_mask"])  # (B, T, D)
        scores = self.disc_head(h[att]).squeeze(-1).float()  # (N,) real tokens only
        disc = F.binary_cross_entropy_with_logits(scores, replaced[att].float())
        gen = masked_cross_entropy(gen_logits, targets) if len(targets) else gen_logits.sum() * 0.0
        with torch.no_grad():
            acc = ((scores > 0) == replaced[att]).float().mean()
        return {
            "loss": gen + self.disc_weight * disc,
            "gen_loss": gen.detach(),
            "disc_loss": disc.detach(),
            "disc_acc": acc,
            "replaced_frac": replaced[att].float().mean(),
        }

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """The discriminator's mean-pooled last-layer states ``(B, D)``."""
        return self.encoder(inputs)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        size: str = "mini",
        *,
        generator_width: float = 0.25,
        mask_prob: float = 0.15,
        disc_weight: float = 50.0,
        seed: int = 0,
        **electra_kw: Any,
    ) -> ELECTRA:
        """A ``size`` discriminator and a ``generator_width`` generator (ELECTRA: 1/4), sized from
        ``data.info``; ``electra_kw`` go to :func:`~mmssl.text.encoders.electra` for both."""
        info = data.info
        emb = electra_kw.pop("embedding_size", None)
        kw = {"max_length": info["max_length"], "pad_token_id": info["pad_token_id"], **electra_kw}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            disc = electra(info["vocab_size"], size, embedding_size=emb, **kw)
            gen = electra(
                info["vocab_size"],
                size,
                width=generator_width,
                embedding_size=disc.config.embedding_size,
                **kw,
            )
            return cls(
                TextEncoder(disc),
                TextEncoder(gen),
                info["vocab_size"],
                info["mask_token_id"],
                mask_prob=mask_prob,
                disc_weight=disc_weight,
                seed=seed,
            )
