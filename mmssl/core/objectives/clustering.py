r"""Clustering objectives: SwAV's Sinkhorn-Knopp codes and swapped prediction, and a batched
k-means for DeepCluster's pseudo-labels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.distributed import gather_no_grad, world_size
from mmssl.core.objectives._common import check_positive, full_precision


def _global_logsumexp_rows(x: Tensor, gather: bool) -> Tensor:
    """``logsumexp`` over the batch axis of ``(B, K)``, over every process when ``gather``."""
    lse = torch.logsumexp(x, dim=0, keepdim=True)  # (1, K)
    if gather:
        lse = torch.logsumexp(gather_no_grad(lse), dim=0, keepdim=True)  # (1, K) over ranks
    return lse


@torch.no_grad()
@full_precision
def sinkhorn_knopp(
    scores: Tensor, *, epsilon: float = 0.05, iterations: int = 3, gather: bool = False
) -> Tensor:
    r"""Equipartitioned soft codes by Sinkhorn-Knopp (SwAV, Caron et al. 2020,
    https://arxiv.org/abs/2006.09882).

    Solves :math:`\max_{Q \in \mathcal{Q}} \mathrm{Tr}(Q^\top C^\top Z) + \epsilon H(Q)` over
    the transportation polytope where every prototype gets :math:`1/K` and every sample
    :math:`1/B` of the mass, by alternately normalising the columns and rows of
    :math:`\exp(\text{scores}/\epsilon)`; computed in the log domain, without gradients.

    .. math::
        Q = \operatorname{diag}(u)\,\exp(S/\epsilon)\,\operatorname{diag}(v)

    Args:
        scores: ``(B, K)`` prototype scores :math:`z^\top c_k`.
        epsilon: entropy weight :math:`\epsilon` (0.05).
        iterations: Sinkhorn iterations (3).
        gather: equipartition over the global batch (sums taken over every process).

    Returns:
        ``(B, K)`` float32 codes, each row summing to 1.
    """
    check_positive("epsilon", epsilon, "SwAV uses 0.05")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}; SwAV uses 3")
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, K), got {tuple(scores.shape)}")
    b, k = scores.shape
    b_total = b * (world_size() if gather else 1)
    log_q = scores.float() / epsilon  # (B, K)
    for _ in range(iterations):
        log_q = log_q - _global_logsumexp_rows(log_q, gather) - math.log(k)  # prototypes: 1/K
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(b_total)  # 1/B
    return torch.exp(log_q + math.log(b_total))


@full_precision
def swav_loss(
    scores: Sequence[Tensor], codes: Sequence[Tensor], *, temperature: float = 0.1
) -> Tensor:
    r"""SwAV's swapped prediction (Caron et al. 2020, https://arxiv.org/abs/2006.09882).

    The code :math:`q_i` of view :math:`i` is predicted from every other view :math:`v`:

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{P}|}\sum_{(i, v) \in \mathcal{P}} \frac{1}{B}\sum_b
        -\sum_k q_{i,bk} \log\operatorname{softmax}(s_{v,b} / \tau)_k

    Args:
        scores: per view ``(B, K)`` prototype scores (gradients flow here).
        codes: per view ``(B, K)`` codes from :func:`sinkhorn_knopp` for the first
            ``len(codes)`` views (SwAV: the two global crops); detached here.
        temperature: :math:`\tau` (0.1).

    Returns:
        scalar in float32.
    """
    check_positive("temperature", temperature, "SwAV uses 0.1")
    scores, codes = list(scores), list(codes)
    if len(scores) < 2 or not 1 <= len(codes) <= len(scores):
        raise ValueError(
            f"need >= 2 views of scores and 1..len(scores) codes, got {len(scores)} and "
            f"{len(codes)}; codes belong to the first views"
        )
    for x in scores + codes:
        if x.ndim != 2 or x.shape != scores[0].shape:
            raise ValueError(
                f"every view must be (B, K) = {tuple(scores[0].shape)}, got {tuple(x.shape)}"
            )
    log_p = [F.log_softmax(s.float() / temperature, dim=1) for s in scores]  # each (B, K)
    terms = [
        -(q.detach().float() * log_p[v]).sum(dim=1).mean()
        for i, q in enumerate(codes)
        for v in range(len(scores))
        if v != i
    ]
    return torch.stack(terms).mean()


@torch.no_grad()
@full_precision
def kmeans(
    x: Tensor, k: int, *, iterations: int = 20, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    r"""Lloyd's k-means on the device, for DeepCluster's pseudo-labels (Caron et al. 2018,
    https://arxiv.org/abs/1807.05520). Empty clusters are re-seeded with a random point.

    .. math::
        \min_{C} \sum_n \min_{j} \lVert x_n - c_j \rVert_2^2

    Args:
        x: ``(N, D)`` features. k: number of clusters (``<= N``). iterations: Lloyd steps.
        generator: seeds the initial centroids and re-seeding.

    Returns:
        ``(assignments (N,) long, centroids (k, D) float32)``.
    """
    if x.ndim != 2 or not 1 <= k <= x.shape[0]:
        raise ValueError(f"need x (N, D) and 1 <= k <= N, got {tuple(x.shape)} and k={k}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    x = x.float()
    gen_dev = generator.device if generator is not None else x.device
    centroids = x[torch.randperm(x.shape[0], generator=generator, device=gen_dev)[:k].to(x.device)]
    for _ in range(iterations):
        assign = torch.cdist(x, centroids).argmin(dim=1)  # (N,)
        counts = torch.bincount(assign, minlength=k).float()  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, D)
        empty = counts == 0
        reseed = torch.randint(x.shape[0], (k,), generator=generator, device=gen_dev).to(x.device)
        centroids = torch.where(empty[:, None], x[reseed], sums / counts.clamp_min(1)[:, None])
    return torch.cdist(x, centroids).argmin(dim=1), centroids
