r"""BERT's masked language model (Devlin et al. 2019, https://arxiv.org/abs/1810.04805).

Pick 15% of the non-special tokens; replace 80% of them with ``[MASK]``, 10% with a random
token, keep 10%; predict the original tokens at the picked positions :math:`M`:

.. math::
    \mathcal{L} = -\frac{1}{|M|} \sum_{i \in M} \log p_\theta(x_i \mid \tilde{x})

The vocabulary projection runs only on the picked positions (about 15% of the tokens).

BERT ties the decoder to the input embeddings; here the decoder is untied by default
(``tie_weights=True`` restores BERT). On a small budget the tied softmax drags every rare token's
input embedding along one shared direction (the representation degeneration of Gao et al. 2019,
https://arxiv.org/abs/1907.12009): on MR after 600 steps the mean embedding held 70% of the
squared row norm (untied: 0.3%) and the frozen sentence embeddings probed below random init.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle, to_device
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives.masked import IGNORE_INDEX, mask_tokens, masked_cross_entropy
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, bert


class MLMHead(nn.Module):
    """BERT's prediction head: dense, GELU, LayerNorm, then a decoder tied to the input embeddings.

    Args:
        embedding: the encoder's input embedding table ``(V, D)``; its weight is the decoder's.
        tie: share the decoder weight with ``embedding`` (BERT); False gives the decoder its own.
        init_std: normal init of the dense layer (BERT's ``initializer_range``).
        eps: LayerNorm epsilon (BERT: 1e-12).
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        *,
        tie: bool = True,
        init_std: float = 0.02,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        vocab, dim = embedding.weight.shape
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.decoder = nn.Linear(dim, vocab)
        if tie:
            self.decoder.weight = embedding.weight  # tied, as in BERT
        else:
            nn.init.normal_(self.decoder.weight, std=init_std)
        nn.init.normal_(self.dense.weight, std=init_std)
        nn.init.zeros_(self.dense.bias)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, h: Tensor) -> Tensor:
        """``(M, D) -> (M, V)`` logits."""
        return self.decoder(self.norm(F.gelu(self.dense(h))))


@register("mlm", modality="text")
class MLM(Method):
    """Masked language modelling on a BERT encoder.

    Args:
        encoder: a :class:`TextEncoder` (token states and mean-pooled sentence embeddings).
        vocab_size: ``V``, for random replacement tokens.
        mask_token_id: the tokenizer's ``[MASK]`` id.
        mask_prob, replace_prob, random_prob: BERT's 15% / 80% / 10%.
        tie_weights: tie the decoder to the input embeddings (BERT); off by default, see above.
        seed: seeds the masking generator (made on the batch's device at first use).
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "auto-encoding"
    modality: ClassVar[str] = "text"
    # BERT-base: AdamW lr 1e-4, weight decay 0.01, 10k warmup steps, batch 256, 1M steps. A small
    # BERT from scratch on a CPU budget needs a larger rate: on MR, BERT-tiny learned fastest at
    # 1e-3 to 2e-3 and diverged at 5e-3. Epochs: a few minutes of CPU on a SentEval-sized corpus.
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
        *,
        mask_prob: float = 0.15,
        replace_prob: float = 0.8,
        random_prob: float = 0.1,
        tie_weights: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = MLMHead(encoder.word_embeddings, tie=tie_weights)
        self.vocab_size, self.mask_token_id, self.seed = vocab_size, mask_token_id, seed
        self.mask_args = {
            "mask_prob": mask_prob,
            "replace_prob": replace_prob,
            "random_prob": random_prob,
        }
        self.generators = SeededGenerators(seed)

    def mask(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Return the batch with masked ``input_ids`` and ``labels`` (``-100`` where not picked)."""
        ids = batch["input_ids"]
        special = batch.get("special_tokens_mask")
        if special is None:
            special = batch["attention_mask"] == 0 if "attention_mask" in batch else None
        inputs, labels = mask_tokens(
            ids,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            special_mask=special,
            generator=generator or self.generators(ids.device),
            **self.mask_args,
        )
        return {**batch, "input_ids": inputs, "labels": labels}

    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.mask(batch)

    def predict(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Logits ``(M, V)`` at the ``M`` masked positions only, and their targets ``(M,)``."""
        h = self.encoder.token_states(batch["input_ids"], batch.get("attention_mask"))  # (B, T, D)
        picked = batch["labels"] != IGNORE_INDEX  # (B, T)
        return self.head(h[picked]), batch["labels"][picked]  # (M, V), (M,)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits, targets = self.predict(batch)
        if targets.numel() == 0:  # nothing picked in this batch: a zero loss that keeps the graph
            zero = logits.sum() * 0.0
            return {"loss": zero, "mlm_acc": zero.detach()}
        acc = (logits.detach().argmax(-1) == targets).float().mean()
        return {"loss": masked_cross_entropy(logits, targets), "mlm_acc": acc}

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean-pooled last-layer states ``(B, D)`` (no masking)."""
        return self.encoder(inputs)

    @torch.no_grad()
    def masked_token_accuracy(
        self, batches: Iterable[dict[str, Tensor]], *, seed: int = 0
    ) -> float:
        """Top-1 accuracy at masked positions of held-out batches, with a fixed-seed masking."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        correct = total = 0
        try:
            for batch in batches:
                logits, targets = self.predict(self.mask(to_device(batch, device), gen))
                correct += int((logits.argmax(-1) == targets).sum())
                total += targets.numel()
        finally:
            self.train(was_training)
        return correct / max(total, 1)

    def evaluate(self, data: DataBundle) -> dict[str, float]:
        """Masked-token accuracy on the held-out text, next to always guessing the most
        frequent training token."""
        held = data.info.get("heldout")
        if not held:
            return {}
        return {
            "masked_token_acc": self.masked_token_accuracy(held),
            "majority_token_acc": float(data.info.get("heldout_majority_acc", float("nan"))),
        }

    @classmethod
    def build(
        cls,
        data: DataBundle,
        size: str = "mini",
        *,
        mask_prob: float = 0.15,
        tie_weights: bool = False,
        seed: int = 0,
        **bert_kw: Any,
    ) -> MLM:
        """A ``size`` BERT (``tiny``/``mini``/``small``/``base``) sized from ``data.info``;
        ``bert_kw`` go to :func:`~mmssl.text.encoders.bert` (``dropout=``, ...)."""
        info = data.info
        with torch.random.fork_rng(devices=[]):  # same seed, same init; global RNG untouched
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
                mask_prob=mask_prob,
                tie_weights=tie_weights,
                seed=seed,
            )
