r"""Instance-discrimination objectives: InfoNCE and NT-Xent.

One InfoNCE serves SimCLR, MoCo, CPC, CMC, GCC, GRACE, SimCSE and InfoWord.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.distributed import gather_with_grad, rank
from mmssl.core.objectives._common import check_pair, check_positive, full_precision

_TEMP_HINT = "the papers use 0.07 to 0.5"


@full_precision
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
        temperature: :math:`\tau` (MoCo: 0.07; MoCo v2: 0.2; SimCSE: 0.05).
        queue: optional ``(K, D)`` extra negatives (MoCo's queue), not back-propagated; a copy is
            taken, so the queue may be updated in place before ``backward``.
        symmetric: also score keys against queries and average (CLIP, MoCo v3); the queue is
            used on the query side only.
        normalize: L2-normalise inputs first (cosine similarity).
        gather: use the keys of every process as negatives (changes the math in DDP). The loss
            is each process's mean over its own queries; DDP's gradient averaging then gives
            the gradient of the mean over the global batch.

    Returns:
        scalar loss. Logits and softmax are computed in float32 even under autocast.
    """
    check_positive("temperature", temperature, _TEMP_HINT)
    check_pair(query, key, "query and key")
    if queue is not None and (queue.ndim != 2 or queue.shape[1] != query.shape[1]):
        raise ValueError(
            f"queue must be (K, D) with D = {query.shape[1]}, got {tuple(queue.shape)}"
        )
    q, k = query.float(), key.float()
    if normalize:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    offset = 0
    if gather:
        k_all = gather_with_grad(k)  # (B_global, D)
        offset = rank() * q.shape[0]
    else:
        k_all = k
    logits = q @ k_all.T / temperature  # (B, B_global)
    if queue is not None:
        n = queue.detach().to(torch.float32, copy=True)  # (K, D)
        n = F.normalize(n, dim=1) if normalize else n
        logits = torch.cat([logits, q @ n.T / temperature], dim=1)  # (B, B_global + K)
    targets = torch.arange(q.shape[0], device=q.device) + offset
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        other = info_nce(key, query, temperature=temperature, normalize=normalize, gather=gather)
        loss = 0.5 * (loss + other)
    return loss


@full_precision
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
        gather: take negatives from every process (each process averages over its own
            :math:`2B` views; DDP's averaging gives the global-batch gradient).

    Returns:
        scalar loss averaged over the :math:`2B` views, computed in float32.
    """
    check_positive("temperature", temperature, _TEMP_HINT)
    check_pair(z1, z2)
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
    logits = logits.index_put((rows, own), torch.tensor(float("-inf"), device=z.device))
    return F.cross_entropy(logits, pos)
