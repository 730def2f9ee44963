r"""Mutual-information estimators over a score matrix, and the discriminators that score pairs.

One estimator serves Deep InfoMax, DGI, InfoGraph and InfoWord. A score matrix ``scores``
of shape ``(N, M)`` holds a discriminator's score of every (local, global) pair, and
``pos_mask`` (same shape, boolean) says which pairs are drawn from the joint distribution;
the others are treated as draws from the product of marginals.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.objectives._common import check_positive, full_precision


def _check(scores: Tensor, pos_mask: Tensor) -> tuple[Tensor, Tensor]:
    if scores.shape != pos_mask.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and pos_mask {tuple(pos_mask.shape)} differ; "
            "pass a boolean mask of the score matrix's shape"
        )
    pos = pos_mask.bool()
    if not pos.any() or pos.all():
        raise ValueError("pos_mask needs at least one positive and one negative pair")
    return scores.float(), pos


@full_precision
def jensen_shannon_loss(scores: Tensor, pos_mask: Tensor) -> Tensor:
    r"""Negative Jensen-Shannon MI estimate (Hjelm et al. 2019, https://arxiv.org/abs/1808.06670).

    .. math::
        \mathcal{L} = \mathbb{E}_{P}[\mathrm{sp}(-T)] + \mathbb{E}_{N}[\mathrm{sp}(T)]

    with :math:`\mathrm{sp}` the softplus: the binary cross-entropy of DGI with positives
    labelled 1 and negatives 0, each set averaged separately (so twice DGI's single mean over
    :math:`N` positives and :math:`N` negatives).

    Args:
        scores: ``(N, M)`` discriminator scores :math:`T`.
        pos_mask: ``(N, M)`` boolean, True on positive pairs.
    """
    s, pos = _check(scores, pos_mask)
    return F.softplus(-s[pos]).mean() + F.softplus(s[~pos]).mean()


@full_precision
def donsker_varadhan_loss(scores: Tensor, pos_mask: Tensor) -> Tensor:
    r"""Negative Donsker-Varadhan bound (MINE, Belghazi et al. 2018, https://arxiv.org/abs/1801.04062).

    .. math::
        \mathcal{L} = -\mathbb{E}_{P}[T] + \log \mathbb{E}_{N}[e^{T}]

    Args:
        scores: ``(N, M)``; pos_mask: ``(N, M)`` boolean.
    """
    s, pos = _check(scores, pos_mask)
    neg = s[~pos]
    return -s[pos].mean() + torch.logsumexp(neg, dim=0) - math.log(neg.numel())


@full_precision
def nce_loss(scores: Tensor, pos_mask: Tensor) -> Tensor:
    r"""InfoNCE over a score matrix (DIM's NCE estimator; InfoWord).

    Each positive pair :math:`(i, j)` is contrasted with the negatives of its row:

    .. math::
        \mathcal{L} = -\mathbb{E}_{(i,j)\in P}\Big[T_{ij} - \log\big(e^{T_{ij}}
        + \sum_{k \notin P_i} e^{T_{ik}}\big)\Big]

    Args:
        scores: ``(N, M)``; pos_mask: ``(N, M)`` boolean; every row needs a negative.
    """
    s, pos = _check(scores, pos_mask)
    neg = s.masked_fill(pos, float("-inf"))  # (N, M) negatives only
    neg_lse = torch.logsumexp(neg, dim=1, keepdim=True).expand_as(s)  # (N, M)
    denom = torch.logaddexp(s, neg_lse)
    return -(s - denom)[pos].mean()


class BilinearDiscriminator(nn.Module):
    r"""Scores :math:`T(a, b) = a^\top W b` (DGI, InfoGraph's bilinear variant).

    Args:
        dim_a: size of the local features. dim_b: size of the global features (default dim_a).
    """

    def __init__(self, dim_a: int, dim_b: int | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim_a, dim_a if dim_b is None else dim_b))
        nn.init.xavier_uniform_(self.weight)

    @full_precision
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """``a`` ``(N, Da)``, ``b`` ``(M, Db)`` -> scores ``(N, M)`` in float32."""
        a, w, b = a.float(), self.weight.float(), b.float()
        n, da = a.shape
        m, db = b.shape
        # Multiply in the cheaper order: DGI scores N nodes against one summary (M = 1).
        if n * da * db + n * db * m <= da * db * m + n * da * m:
            return (a @ w) @ b.T
        return a @ (w @ b.T)


class DotDiscriminator(nn.Module):
    r"""Scores :math:`T(a, b) = a^\top b / \tau` (InfoGraph and DIM with projection heads)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        check_positive("temperature", temperature, "use 1.0 for plain dot products")
        self.temperature = temperature

    @full_precision
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """``a`` ``(N, D)``, ``b`` ``(M, D)`` -> scores ``(N, M)`` in float32."""
        return a.float() @ b.float().T / self.temperature
