r"""Masking and masked-prediction losses: one family for BERT's MLM, MAE and GraphMAE.

The masks are made here as pure functions (called from the data pipeline or a method's
``augment`` step); the losses only compare predictions with targets where the mask says.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.objectives._common import full_precision

IGNORE_INDEX = -100


def mask_tokens(
    input_ids: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    mask_prob: float = 0.15,
    replace_prob: float = 0.8,
    random_prob: float = 0.1,
    special_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's masking (Devlin et al. 2019, https://arxiv.org/abs/1810.04805).

    Picks ``mask_prob`` of the tokens; of those, ``replace_prob`` become ``[MASK]``,
    ``random_prob`` a random token, the rest stay as they are.

    Args:
        input_ids: ``(B, T)`` token ids.
        special_mask: ``(B, T)`` boolean, True where tokens must never be picked (CLS, SEP, PAD).
        generator: for reproducible masks.

    Returns:
        ``(inputs, labels)``, both ``(B, T)``; labels hold the original id at picked positions
        and ``-100`` elsewhere.
    """
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}; BERT uses 0.15")
    if replace_prob < 0 or random_prob < 0 or replace_prob + random_prob > 1:
        raise ValueError(
            "replace_prob and random_prob must be >= 0 and sum to at most 1 (BERT: 0.8, 0.1)"
        )
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}; pass the tokenizer's size")
    dev = input_ids.device
    gen_dev = generator.device if generator is not None else dev

    def rand(shape: torch.Size) -> Tensor:
        return torch.rand(shape, generator=generator, device=gen_dev).to(dev)

    picked = rand(input_ids.shape) < mask_prob
    if special_mask is not None:
        picked &= ~special_mask.bool()
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    u = rand(input_ids.shape)
    to_mask = picked & (u < replace_prob)
    to_random = picked & (u >= replace_prob) & (u < replace_prob + random_prob)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=gen_dev).to(
        dev
    )
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


def random_mask(
    shape: tuple[int, ...],
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Mask exactly ``round(ratio * L)`` of the ``L`` positions along the last axis, per row.

    Serves MAE's patch masking (``(B, L)``), GraphMAE's node masking (``(N,)``) and feature
    masking. Returns a boolean tensor of ``shape``, True where masked.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
    *lead, length = shape
    n_mask = int(round(ratio * length))
    gen_dev = generator.device if generator is not None else device
    noise = torch.rand((*lead, length), generator=generator, device=gen_dev)
    ranks = noise.argsort(dim=-1).argsort(dim=-1)
    return (ranks < n_mask).to(device)


@full_precision
def masked_cross_entropy(
    logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    r"""Cross-entropy on the masked positions only (BERT's MLM, https://arxiv.org/abs/1810.04805).

    .. math::
        \mathcal{L} = -\frac{1}{|M|}\sum_{i \in M} \log \operatorname{softmax}(s_i)_{y_i}

    Args:
        logits: ``(..., V)``, either for every position or already gathered at the masked ones.
        labels: ``(...)`` with ``ignore_index`` at unmasked positions.

    Returns:
        scalar, in float32; 0 (still attached to the graph) when no position is masked.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits (..., V) {tuple(logits.shape)} and labels (...) {tuple(labels.shape)} "
            "disagree; labels must match logits without the vocabulary axis"
        )
    flat = labels.reshape(-1)  # (N,)
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        flat,
        ignore_index=ignore_index,
        reduction="sum",
    )
    count = (flat != ignore_index).sum().clamp_min(1)  # no host sync: 0 / 1 when none masked
    return total / count


@full_precision
def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Mean squared error averaged over masked rows only (MAE on pixels,
    He et al. 2021, https://arxiv.org/abs/2111.06377).

    .. math::
        \mathcal{L} = \frac{1}{|M|}\sum_{i \in M} \frac{1}{D}\lVert \hat x_i - x_i \rVert^2

    Args:
        pred, target: ``(..., D)``. mask: ``(...)`` boolean or 0/1, True where the loss counts.

    Returns:
        scalar in float32; 0 when the mask is empty.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if mask is not None and mask.shape != pred.shape[:-1]:
        raise ValueError(
            f"mask must be pred's shape without the last axis, {tuple(pred.shape[:-1])}, "
            f"got {tuple(mask.shape)}"
        )
    err = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (...)
    if mask is None:
        return err.mean()
    m = mask.float()
    return (err * m).sum() / m.sum().clamp_min(1.0)


@full_precision
def scaled_cosine_error(
    pred: Tensor, target: Tensor, alpha: float = 2.0, mask: Tensor | None = None
) -> Tensor:
    r"""GraphMAE's scaled cosine error (Hou et al. 2022, https://arxiv.org/abs/2205.10803).

    .. math::
        \mathcal{L} = \frac{1}{|M|}\sum_{i \in M} \big(1 - \cos(x_i, z_i)\big)^{\alpha}

    Args:
        pred, target: ``(N, D)``. alpha: :math:`\alpha \ge 1` sharpens toward hard rows.
        mask: optional ``(N,)`` boolean of the rows to score.

    Returns:
        scalar in float32; 0 when the mask is empty.
    """
    if alpha < 1:
        raise ValueError(f"alpha must be >= 1, got {alpha}; GraphMAE uses 1 to 3")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    err = (1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).pow(alpha)  # (N,)
    if mask is None:
        return err.mean()
    m = mask.float()
    return (err * m).sum() / m.sum().clamp_min(1.0)
