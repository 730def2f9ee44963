r"""GPT's causal language model (Radford et al. 2018/2019), a GPT-2 decoder built from scratch.

Each token is predicted from the tokens before it:

.. math::
    \mathcal{L} = -\frac{1}{|V|}\sum_{b}\sum_{t \ge 1} \log p_\theta(x_{b,t} \mid x_{b,<t})

over the non-padding targets :math:`V`, with the output layer tied to the input embeddings.
``embed`` mean-pools the last layer's (causal) token states.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle, to_device
from mmssl.core.method import Method
from mmssl.core.objectives.autoregressive import next_token_loss
from mmssl.core.objectives.masked import IGNORE_INDEX
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, gpt2


@register("clm", modality="text")
class CLM(Method):
    """Causal language modelling on a GPT-2 decoder.

    Args:
        encoder: a :class:`TextEncoder` over a causal model (GPT-2).
        tie_weights: share the output layer with the input embeddings (GPT-2).
        init_std: normal init of an untied output layer.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "autoregressive"
    modality: ClassVar[str] = "text"
    # GPT: Adam 2.5e-4, batch 64 x 512 tokens, 100 epochs; GPT-2 tuned the rate per size. A small
    # decoder from scratch on a CPU budget takes MLM's larger rate.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 10,
        "lr": 1e-3,
        "batch_size": 128,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 1,
    }

    def __init__(
        self, encoder: TextEncoder, *, tie_weights: bool = True, init_std: float = 0.02
    ) -> None:
        super().__init__()
        self.encoder = encoder
        vocab, dim = encoder.word_embeddings.weight.shape
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tie_weights:
            self.lm_head.weight = encoder.word_embeddings.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=init_std)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ids, att = batch["input_ids"], batch["attention_mask"]
        logits = self.lm_head(self.encoder.token_states(ids, att))  # (B, T, V)
        loss = next_token_loss(logits, ids.masked_fill(att == 0, IGNORE_INDEX))
        return {"loss": loss, "perplexity": loss.detach().exp()}

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean-pooled last-layer states ``(B, D)``."""
        return self.encoder(inputs)

    @torch.no_grad()
    def heldout_loss(self, batches: Iterable[dict[str, Tensor]]) -> float:
        """Mean next-token cross-entropy (nats per token) over held-out batches."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        total = count = 0.0
        try:
            for batch in batches:
                b = to_device(batch, device)
                n = float((b["attention_mask"][:, 1:] != 0).sum())
                total += float(self(b)["loss"]) * n
                count += n
        finally:
            self.train(was_training)
        return total / max(count, 1.0)

    def evaluate(self, data: DataBundle) -> dict[str, float]:
        """Held-out next-token loss (nats) and its perplexity."""
        held = data.info.get("heldout")
        if not held:
            return {}
        nll = self.heldout_loss(held)
        return {"heldout_nll": nll, "heldout_perplexity": float(torch.tensor(nll).exp())}

    @classmethod
    def build(
        cls,
        data: DataBundle,
        size: str = "mini",
        *,
        tie_weights: bool = True,
        seed: int = 0,
        **gpt2_kw: Any,
    ) -> CLM:
        """A ``size`` GPT-2 sized from ``data.info``; ``gpt2_kw`` go to
        :func:`~mmssl.text.encoders.gpt2` (``dropout=``, ...)."""
        info = data.info
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = gpt2(
                info["vocab_size"],
                size,
                max_length=info["max_length"],
                pad_token_id=info["pad_token_id"],
                **gpt2_kw,
            )
            return cls(TextEncoder(model), tie_weights=tie_weights)
