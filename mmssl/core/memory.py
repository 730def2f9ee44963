r"""Stores of past embeddings used as negatives: MoCo's FIFO queue (also GCC's) and the
memory bank of InstDisc and PIRL. Both gather from every process before writing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.distributed import gather_no_grad


def _random_unit_rows(n: int, dim: int, generator: torch.Generator | None) -> Tensor:
    return F.normalize(torch.randn(n, dim, generator=generator), dim=1)  # (n, dim)


class Queue(nn.Module):
    r"""MoCo's dictionary as a queue (He et al. 2020, https://arxiv.org/abs/1911.05722).

    Holds the ``K`` most recent keys, oldest overwritten first; starts as random unit vectors.
    Read it with :meth:`get` (a copy, safe to pass to ``info_nce(queue=...)`` and enqueue
    before ``backward``), write with :meth:`enqueue` after computing the loss.

    Args:
        dim: key size ``D``.
        size: ``K`` (MoCo: 65536; GCC: 16384).
        generator: seeds the initial random keys.
    """

    queue: Tensor
    ptr: Tensor

    def __init__(self, dim: int, size: int = 65536, generator: torch.Generator | None = None):
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"dim and size must be >= 1, got {dim} and {size}")
        self.register_buffer("queue", _random_unit_rows(size, dim, generator))  # (K, D)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    def get(self) -> Tensor:
        """The ``(K, D)`` keys, a detached copy."""
        return self.queue.detach().clone()

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` ``(B, D)`` from every process (``world * B`` rows) over the oldest.

        When more keys than ``K`` arrive, only the last ``K`` are kept.
        """
        if keys.ndim != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ValueError(f"keys must be (B, {self.queue.shape[1]}), got {tuple(keys.shape)}")
        keys = gather_no_grad(keys.detach()).to(self.queue.dtype)[-self.size :]  # (n, D)
        n, start = keys.shape[0], int(self.ptr)
        slots = (start + torch.arange(n, device=self.queue.device)) % self.size  # (n,)
        self.queue[slots] = keys
        self.ptr.fill_((start + n) % self.size)


class MemoryBank(nn.Module):
    r"""A memory bank of one normalised feature per training item (InstDisc, Wu et al. 2018,
    https://arxiv.org/abs/1805.01978; PIRL, Misra and van der Maaten 2020,
    https://arxiv.org/abs/1912.01991), updated by a running average:

    .. math::
        v_i \leftarrow \frac{m\,v_i + (1 - m)\,f_i}{\lVert m\,v_i + (1 - m)\,f_i \rVert_2}

    Args:
        num_items: ``N``, the dataset size; items are addressed by their dataset index.
        dim: feature size ``D``.
        momentum: :math:`m` (0.5 in InstDisc and PIRL).
        generator: seeds the initial random unit features.
    """

    bank: Tensor

    def __init__(
        self,
        num_items: int,
        dim: int,
        momentum: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_items < 1 or dim < 1:
            raise ValueError(f"num_items and dim must be >= 1, got {num_items} and {dim}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}; InstDisc uses 0.5")
        self.momentum = momentum
        self.register_buffer("bank", _random_unit_rows(num_items, dim, generator))  # (N, D)

    def _check_idx(self, idx: Tensor) -> Tensor:
        if idx.ndim != 1 or idx.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"idx must be a 1-D integer tensor, got {idx.dtype} {tuple(idx.shape)}"
            )
        return idx.to(self.bank.device, torch.long)

    def get(self, idx: Tensor) -> Tensor:
        """Features of the items ``idx`` ``(B,)`` -> ``(B, D)``, a detached copy."""
        return self.bank[self._check_idx(idx)].detach().clone()

    def all(self) -> Tensor:
        """Every item's feature ``(N, D)``, a detached copy (safe to update before ``backward``)."""
        return self.bank.detach().clone()

    @torch.no_grad()
    def update(self, idx: Tensor, feats: Tensor) -> None:
        """Blend ``feats`` ``(B, D)`` into the items ``idx`` ``(B,)`` of every process.

        Features are L2-normalised first; with repeated indices one of the updates wins.
        """
        idx = self._check_idx(idx)
        if feats.shape != (idx.shape[0], self.bank.shape[1]):
            raise ValueError(
                f"feats must be (B, D) = ({idx.shape[0]}, {self.bank.shape[1]}), "
                f"got {tuple(feats.shape)}"
            )
        idx = gather_no_grad(idx)  # (world * B,)
        feats = F.normalize(gather_no_grad(feats.detach()).to(self.bank.dtype), dim=1)
        mixed = self.momentum * self.bank[idx] + (1.0 - self.momentum) * feats  # (world * B, D)
        self.bank[idx] = F.normalize(mixed, dim=1)

    def sample_negatives(
        self, n: int | tuple[int, ...], *, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` items drawn uniformly with replacement -> ``(*n, D)``, a detached copy.

        Pass ``n=(B, K)`` for ``K`` negatives per example, or an int for shared negatives.
        """
        shape = (n,) if isinstance(n, int) else tuple(n)
        if any(s < 1 for s in shape):
            raise ValueError(f"n must be positive, got {n}")
        gen_dev = generator.device if generator is not None else self.bank.device
        idx = torch.randint(self.bank.shape[0], shape, generator=generator, device=gen_dev)
        return self.bank[idx.to(self.bank.device)].detach().clone()
