r"""XLNet's permutation language model (Yang et al. 2019, https://arxiv.org/abs/1906.08237).

Sample a factorisation order :math:`z` of each row; predict only its last :math:`1/K` tokens
(partial prediction), each from the tokens before it in :math:`z`, with two-stream attention:

.. math::
    \mathcal{L} = -\mathbb{E}_{z}\Big[\sum_{t > c} \log p_\theta(x_{z_t} \mid x_{z_{<t}})\Big]

The order reaches the model as XLNet's ``perm_mask`` ``(B, T, T)`` (1: query :math:`i` may not
see token :math:`j`) and ``target_mapping`` ``(B, P, T)`` (one-hot rows of the :math:`P`
positions to predict); the output layer is tied to the input embeddings (XLNetLMHeadModel's).
Special and non-target tokens come first in every order, so every query sees them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives.masked import IGNORE_INDEX, masked_cross_entropy
from mmssl.core.registry import register
from mmssl.text.encoders import TextEncoder, xlnet


def permutation_targets(
    input_ids: Tensor, special: Tensor, *, K: float = 6.0, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """XLNet's factorisation-order masks for a batch ``(B, T)``.

    Args:
        special: ``(B, T)`` True where a token is never predicted (CLS, SEP, PAD).
        K: predict ``round(n / K)`` (at least 1) of each row's ``n`` ordinary tokens (XLNet: 6).

    Returns:
        ``perm_mask`` ``(B, T, T)`` float, ``target_mapping`` ``(B, P, T)`` float and
        ``target_labels`` ``(B, P)`` (``-100`` in rows with fewer than ``P`` targets).
    """
    if K < 1:
        raise ValueError(f"K must be >= 1 (predict 1/K of the tokens; XLNet: 6 or 7), got {K}")
    b, t = input_ids.shape
    dev = input_ids.device
    gen_dev = generator.device if generator is not None else dev
    noise = torch.rand(b, t, generator=generator, device=gen_dev).to(dev)
    noise = noise.masked_fill(special, -1.0)  # specials first in every order
    rank = noise.argsort(1).argsort(1)  # (B, T) place of each token in the order
    n = (~special).sum(1)  # (B,)
    n_pred = torch.where(n > 0, (n.float() / K).round().long().clamp_min(1), 0)  # (B,)
    target = (rank >= t - n_pred[:, None]) & ~special  # the last n_pred of each order
    r = torch.where(target, rank, -1)  # non-targets: before every target
    # query i may not see target j placed at or after it (the content stream adds i itself back)
    perm_mask = (target[:, None, :] & (r[:, None, :] >= r[:, :, None])).float()  # (B, T, T)
    p = max(int(n_pred.max()), 1)
    pos = (
        (~target).to(torch.int8).argsort(dim=1, stable=True)[:, :p]
    )  # (B, P) targets, in place order
    valid = torch.arange(p, device=dev)[None] < n_pred[:, None]  # (B, P)
    mapping = F.one_hot(pos, t).float() * valid[..., None]  # (B, P, T)
    labels = input_ids.gather(1, pos).masked_fill(~valid, IGNORE_INDEX)  # (B, P)
    return {"perm_mask": perm_mask, "target_mapping": mapping, "target_labels": labels}


@register("plm", modality="text")
class PLM(Method):
    """Permutation language modelling on an XLNet encoder.

    Args:
        encoder: a :class:`TextEncoder` over an :class:`~transformers.XLNetModel`.
        K: the partial-prediction constant (XLNet: 6).
        seed: seeds the order generator (made on the batch's device at first use).
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "hybrid"
    modality: ClassVar[str] = "text"
    # XLNet-Large: Adam 1e-5 x batch 8192 (lr 4e-4 for base ablations); small from scratch: MLM's.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 10,
        "lr": 1e-3,
        "batch_size": 128,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 1,
    }

    def __init__(self, encoder: TextEncoder, *, K: float = 6.0, seed: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        vocab, dim = encoder.word_embeddings.weight.shape
        self.lm_head = nn.Linear(dim, vocab)
        self.lm_head.weight = encoder.word_embeddings.weight  # tied, as XLNetLMHeadModel
        nn.init.zeros_(self.lm_head.bias)
        self.K, self.seed = K, seed
        self.generators = SeededGenerators(seed)

    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ids = batch["input_ids"]
        gen = self.generators(ids.device)
        special = batch["special_tokens_mask"].bool() | (batch["attention_mask"] == 0)
        return {**batch, **permutation_targets(ids, special, K=self.K, generator=gen)}

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        g = self.encoder.token_states(
            batch["input_ids"],
            batch["attention_mask"],
            perm_mask=batch["perm_mask"],
            target_mapping=batch["target_mapping"],
        )  # (B, P, D): the query stream at the targets
        logits = self.lm_head(g)  # (B, P, V)
        labels = batch["target_labels"]
        loss = masked_cross_entropy(logits, labels)
        picked = labels != IGNORE_INDEX
        acc = (logits.detach()[picked].argmax(-1) == labels[picked]).float().mean()
        return {"loss": loss, "plm_acc": acc}

    @torch.no_grad()
    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean-pooled content-stream states ``(B, D)`` (full bidirectional attention)."""
        return self.encoder(inputs)

    @classmethod
    def build(
        cls, data: DataBundle, size: str = "mini", *, K: float = 6.0, seed: int = 0, **xlnet_kw: Any
    ) -> PLM:
        """A ``size`` XLNet sized from ``data.info``; ``xlnet_kw`` go to
        :func:`~mmssl.text.encoders.xlnet`."""
        info = data.info
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = xlnet(info["vocab_size"], size, pad_token_id=info["pad_token_id"], **xlnet_kw)
            return cls(TextEncoder(model), K=K, seed=seed)
