r"""Instance-discrimination objectives: InfoNCE and NT-Xent.

One InfoNCE serves SimCLR, MoCo, CPC, CMC, GCC, GRACE, SimCSE and InfoWord.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.distributed import gather_with_grad, rank


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; the papers use 0.07 to 0.5")


def info_nce(
    query: Tensor,
    key: Tensor,
    *,
    temperature: float = 0.07,
    queue: Tensor | None = None,
    symmetric: bool = False,
    normalize: bool = True,
    gather: bool = False,
) -> Tensor:
    r"""InfoNCE of van den Oord et al. 2018, https://arxiv.org/abs/1807.03748.

    Row :math:`i` of ``query`` is positive with row :math:`i` of ``key``; every other key in the
    batch (and every row of ``queue``) is a negative:

    .. math::
        \mathcal{L} = -\frac{1}{B}\sum_i \log
        \frac{\exp(q_i \cdot k_i / \tau)}{\sum_j \exp(q_i \cdot k_j / \tau)
        + \sum_m \exp(q_i \cdot n_m / \tau)}

    Args:
        query: ``(B, D)``.
        key: ``(B, D)``, the positives.
        temperature: :math:`\tau`.
        queue: optional ``(K, D)`` extra negatives (MoCo's queue), not back-propagated.
        symmetric: also score keys against queries and average (CLIP, MoCo v3).
        normalize: L2-normalise inputs first (cosine similarity).
        gather: use the keys of every process as negatives (changes the math in DDP).

    Returns:
        scalar loss. Logits and softmax are computed in float32 even under autocast.
    """
    _check_temperature(temperature)
    if query.shape != key.shape or query.ndim != 2:
        raise ValueError(f"query and key must both be (B, D), got {tuple(query.shape)} and {tuple(key.shape)}")
    q, k = query.float(), key.float()
    if normalize:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    offset = 0
    if gather:
        k_all = gather_with_grad(k)
        offset = rank() * q.shape[0]
    else:
        k_all = k
    logits = q @ k_all.T / temperature  # (B, B_global)
    if queue is not None:
        n = queue.detach().float()
        n = F.normalize(n, dim=1) if normalize else n
        logits = torch.cat([logits, q @ n.T / temperature], dim=1)  # (B, B_global + K)
    targets = torch.arange(q.shape[0], device=q.device) + offset
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        loss = 0.5 * (loss + info_nce(key, query, temperature=temperature, normalize=normalize, gather=gather))
    return loss


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.5, gather: bool = False) -> Tensor:
    r"""NT-Xent of SimCLR (Chen et al. 2020, https://arxiv.org/abs/2002.05709).

    The :math:`2B` views of a batch; each view's positive is the other view of the same image,
    its negatives the other :math:`2B - 2` views (self-similarity excluded):

    .. math::
        \ell_{i} = -\log \frac{\exp(\mathrm{sim}(z_i, z_{p(i)})/\tau)}
        {\sum_{j \ne i} \exp(\mathrm{sim}(z_i, z_j)/\tau)}

    Args:
        z1: ``(B, D)`` projections of the first views.
        z2: ``(B, D)`` projections of the second views.
        temperature: :math:`\tau` (SimCLR: 0.5 on CIFAR-10, 0.1 on ImageNet).
        gather: take negatives from every process.

    Returns:
        scalar loss averaged over the :math:`2B` views.
    """
    _check_temperature(temperature)
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D)
    if gather:
        z1_all, z2_all = gather_with_grad(z[:b]), gather_with_grad(z[b:])
        keys = torch.cat([z1_all, z2_all])  # (2B_global, D)
        big_b = z1_all.shape[0]
        start = rank() * b
    else:
        keys, big_b, start = z, b, 0
    logits = z @ keys.T / temperature  # (2B, 2B_global)
    rows = torch.arange(2 * b, device=z.device)
    own = torch.cat([rows[:b] + start, rows[:b] + start + big_b])  # column of each row's self
    pos = torch.cat([rows[:b] + start + big_b, rows[:b] + start])  # column of its positive
    logits[rows, own] = float("-inf")
    return F.cross_entropy(logits, pos)
