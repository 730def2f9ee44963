r"""Autoregressive objectives: the causal language-model loss and CPC's predictive coding.

``next_token_loss`` serves GPT, pixel AR models (iGPT-style) and GPT-GNN's attribute
generation; ``cpc_loss`` is CPC's future-latent prediction scored with InfoNCE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.objectives._common import check_positive, full_precision
from mmssl.core.objectives.contrastive import info_nce
from mmssl.core.objectives.masked import IGNORE_INDEX, masked_cross_entropy

CPC_NEGATIVES = ("all", "batch")


@full_precision
def next_token_loss(logits: Tensor, tokens: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    r"""Shifted causal language-model cross-entropy (GPT, Radford et al. 2018,
    https://cdn.openai.com/research-covers/language-unsupervised/language_understanding_paper.pdf).

    The logits at position :math:`t` predict token :math:`t + 1`:

    .. math::
        \mathcal{L} = -\frac{1}{|V|}\sum_{b}\sum_{t=1}^{T-1}
        \log \operatorname{softmax}(s_{b,t-1})_{x_{b,t}}

    over the valid targets :math:`V` (those not equal to ``ignore_index``, e.g. padding).

    Args:
        logits: ``(B, T, V)`` from a causal model fed ``tokens``.
        tokens: ``(B, T)`` the input ids; ``ignore_index`` marks positions not to predict.

    Returns:
        scalar in float32.
    """
    if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be (B, T, V) and tokens (B, T), got {tuple(logits.shape)} and "
            f"{tuple(tokens.shape)}"
        )
    if tokens.shape[1] < 2:
        raise ValueError(
            f"need sequences of length >= 2 to predict a next token, got {tokens.shape[1]}"
        )
    return masked_cross_entropy(logits[:, :-1], tokens[:, 1:], ignore_index=ignore_index)


class CPCPredictor(nn.ModuleList):
    r"""CPC's step-specific linear predictors :math:`W_k c_t`, :math:`k = 1..K`
    (van den Oord et al. 2018, https://arxiv.org/abs/1807.03748).

    A list of ``steps`` bias-free linear maps ``context_dim -> latent_dim``; pass it as
    ``predictors`` to :func:`cpc_loss`.
    """

    def __init__(self, context_dim: int, latent_dim: int, steps: int = 12) -> None:
        if context_dim < 1 or latent_dim < 1:
            raise ValueError(f"dimensions must be >= 1, got {context_dim} and {latent_dim}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}; CPC predicts 12 steps (audio)")
        super().__init__(nn.Linear(context_dim, latent_dim, bias=False) for _ in range(steps))


@full_precision
def cpc_loss(
    context: Tensor,
    latents: Tensor,
    predictors: nn.ModuleList | Sequence[Callable[[Tensor], Tensor]],
    *,
    temperature: float = 1.0,
    negatives: str = "all",
) -> Tensor:
    r"""Contrastive predictive coding (van den Oord et al. 2018, https://arxiv.org/abs/1807.03748).

    The context :math:`c_t` predicts the latent :math:`k` steps ahead through :math:`W_k`; the
    true :math:`z_{t+k}` is scored against negatives with the log-bilinear critic
    :math:`f_k(z, c_t) = z^\top W_k c_t` and InfoNCE, averaged over :math:`k = 1..K`:

    .. math::
        \mathcal{L} = -\frac{1}{K}\sum_{k=1}^{K}\mathbb{E}_{b,t}\Big[\log
        \frac{\exp(z_{b,t+k}^\top W_k c_{b,t} / \tau)}
        {\sum_{z' \in \mathcal{N}_{b,t,k}} \exp(z'^\top W_k c_{b,t} / \tau)}\Big]

    Args:
        context: ``(B, T, C)`` outputs of the autoregressive context network.
        latents: ``(B, T, D)`` encoder outputs (gradients flow to both).
        predictors: ``K`` callables ``(B, T-k, C) -> (B, T-k, D)``, one per step (e.g.
            :class:`CPCPredictor`); ``K < T``.
        temperature: :math:`\tau` (1.0 in CPC: plain dot products).
        negatives: ``"all"``: every other position of every sequence
            (:math:`B(T-k) - 1` negatives); ``"batch"``: the other sequences at the same target
            position (:math:`B - 1`, cheaper for long sequences).

    Returns:
        scalar in float32.
    """
    check_positive("temperature", temperature, "CPC uses 1.0")
    if negatives not in CPC_NEGATIVES:
        raise ValueError(f"negatives must be one of {CPC_NEGATIVES}, got {negatives!r}")
    if context.ndim != 3 or latents.ndim != 3 or context.shape[:2] != latents.shape[:2]:
        raise ValueError(
            f"context must be (B, T, C) and latents (B, T, D) with the same B and T, got "
            f"{tuple(context.shape)} and {tuple(latents.shape)}"
        )
    steps, t = len(predictors), context.shape[1]
    if not 1 <= steps < t:
        raise ValueError(f"need 1 <= len(predictors) < T = {t}, got {steps}; shorten K")
    z = latents.float()
    losses = []
    for k, predict in enumerate(predictors, start=1):
        pred = predict(context[:, :-k]).float()  # (B, T-k, D)
        target = z[:, k:]  # (B, T-k, D)
        if pred.shape != target.shape:
            raise ValueError(
                f"predictor {k} gave {tuple(pred.shape)}, expected {tuple(target.shape)}"
            )
        if negatives == "all":
            d = pred.shape[-1]
            losses.append(
                info_nce(
                    pred.reshape(-1, d),
                    target.reshape(-1, d),
                    temperature=temperature,
                    normalize=False,
                )
            )
        else:
            logits = torch.einsum("btd,ctd->tbc", pred, target) / temperature  # (T-k, B, B)
            labels = torch.arange(pred.shape[0], device=pred.device).repeat(logits.shape[0])
            losses.append(F.cross_entropy(logits.reshape(-1, pred.shape[0]), labels))
    return torch.stack(losses).mean()
