r"""Context-instance pretext tasks that are classification: rotation prediction (RotNet), the
jigsaw puzzle's permutation set and tile shuffling, and the cross-entropy every such task
(jigsaw, relative patch, NSP/SOP) trains with."""

from __future__ import annotations

import functools
import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.objectives._common import full_precision

NUM_ROTATIONS = 4  # 0, 90, 180 and 270 degrees
MAX_PERMUTED_ITEMS = 10  # 10! = 3.6 M candidate permutations; more would not fit in memory


def rotation_targets(
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random rotation classes in ``{0, 1, 2, 3}`` (multiples of 90 degrees), ``(B,)`` long."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    gen_dev = generator.device if generator is not None else device
    return torch.randint(NUM_ROTATIONS, (batch_size,), generator=generator, device=gen_dev).to(
        device
    )


def rotate_batch(images: Tensor, targets: Tensor) -> Tensor:
    """Rotate each image ``(B, C, H, W)`` counter-clockwise by ``targets * 90`` degrees.

    Args:
        images: ``(B, C, H, W)`` with ``H == W``. targets: ``(B,)`` in ``{0, 1, 2, 3}``.

    Returns:
        ``(B, C, H, W)`` rotated images.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(
            f"images must be square (B, C, H, W), got {tuple(images.shape)}; crop to H == W first"
        )
    if targets.shape != images.shape[:1]:
        raise ValueError(f"targets must be (B,) = ({images.shape[0]},), got {tuple(targets.shape)}")
    out = images.clone()
    for r in range(1, NUM_ROTATIONS):
        sel = targets == r  # (B,)
        out[sel] = torch.rot90(images[sel], r, dims=(-2, -1))
    return out


def all_rotations(images: Tensor) -> tuple[Tensor, Tensor]:
    """Every image under all four rotations, as RotNet trains (Gidaris et al. 2018,
    https://arxiv.org/abs/1803.07728).

    Args:
        images: ``(B, C, H, W)`` with ``H == W``.

    Returns:
        ``(rotated (4B, C, H, W), targets (4B,))``, rotation-major: rows ``r*B .. r*B + B - 1``
        are rotated by ``r * 90`` degrees.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(
            f"images must be square (B, C, H, W), got {tuple(images.shape)}; crop to H == W first"
        )
    b = images.shape[0]
    rotated = torch.cat([torch.rot90(images, r, dims=(-2, -1)) for r in range(NUM_ROTATIONS)])
    targets = torch.arange(NUM_ROTATIONS, device=images.device).repeat_interleave(b)  # (4B,)
    return rotated, targets


@functools.lru_cache(maxsize=2)
def _all_permutations(length: int) -> Tensor:
    """Every permutation of ``range(length)`` in lexicographic order, ``(length!, length)`` int8
    (cached: read only)."""
    perms = torch.tensor(list(itertools.permutations(range(length))), dtype=torch.int8)
    return perms.view(math.factorial(length), length)


def hamming_permutations(num: int, length: int = 9, *, seed: int = 0) -> Tensor:
    r"""The jigsaw puzzle's permutation set (Noroozi and Favaro 2016,
    https://arxiv.org/abs/1603.09246, Algorithm 1): ``num`` permutations of ``length`` tiles
    chosen greedily for maximal Hamming distance.

    The first is drawn uniformly (from ``seed``) among all ``length!`` permutations; each next
    one is the remaining permutation :math:`p` with the largest summed Hamming distance to those
    chosen, :math:`\arg\max_p \sum_{q \in P} d_H(p, q)` (ties: the first in lexicographic
    order), so the set is the same for the same ``seed`` on every machine.

    Args:
        num: how many permutations (the paper: 1000 of 9 tiles; ``1 <= num <= length!``).
        length: tiles per puzzle (9 for a 3x3 grid; at most 10).
        seed: picks the first permutation.

    Returns:
        ``(num, length)`` long, each row a permutation of ``0 .. length - 1`` (the search,
        about 10 ms a permutation for 9 tiles, is cached per arguments).
    """
    return _hamming_permutations(num, length, seed).clone()


@functools.lru_cache(maxsize=8)
def _hamming_permutations(num: int, length: int, seed: int) -> Tensor:
    if not 1 <= length <= MAX_PERMUTED_ITEMS:
        raise ValueError(f"length must be in [1, {MAX_PERMUTED_ITEMS}], got {length}")
    total = math.factorial(length)
    if not 1 <= num <= total:
        raise ValueError(f"num must be in [1, {length}! = {total}], got {num}")
    perms = _all_permutations(length)  # (length!, length)
    first = int(torch.randint(total, (), generator=torch.Generator().manual_seed(seed)))
    chosen = [first]
    summed = torch.zeros(total, dtype=torch.int32)  # (length!,) distance to the chosen set
    free = torch.ones(total, dtype=torch.bool)
    free[first] = False
    for _ in range(num - 1):
        summed += (perms != perms[chosen[-1]]).sum(1, dtype=torch.int32)
        nxt = int(torch.where(free, summed, -1).argmax())  # argmax returns the first maximum
        chosen.append(nxt)
        free[nxt] = False
    return perms[chosen].long()


def shuffle_tiles(tiles: Tensor, permutations: Tensor, targets: Tensor) -> Tensor:
    """Reorder each puzzle's tiles by its permutation: ``out[b, i] = tiles[b, P[y_b, i]]``.

    Args:
        tiles: ``(B, T, ...)``, the ``T`` tiles of each image in grid (row-major) order.
        permutations: ``(N, T)`` long, e.g. :func:`hamming_permutations`.
        targets: ``(B,)`` indices into ``permutations``: the class a jigsaw network predicts.

    Returns:
        ``(B, T, ...)`` shuffled tiles.
    """
    if tiles.ndim < 2 or permutations.ndim != 2 or permutations.shape[1] != tiles.shape[1]:
        raise ValueError(
            f"tiles must be (B, T, ...) and permutations (N, T) with the same T, got "
            f"{tuple(tiles.shape)} and {tuple(permutations.shape)}"
        )
    if targets.shape != tiles.shape[:1]:
        raise ValueError(f"targets must be (B,) = ({tiles.shape[0]},), got {tuple(targets.shape)}")
    order = permutations.to(tiles.device)[targets.to(tiles.device)]  # (B, T)
    rows = torch.arange(tiles.shape[0], device=tiles.device)[:, None]  # (B, 1)
    return tiles[rows, order]


@full_precision
def pretext_loss(logits: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    r"""Cross-entropy of a pretext classifier (rotation, jigsaw permutation, relative patch
    position, next-sentence or sentence-order prediction), in float32:

    .. math::
        \mathcal{L} = -\frac{1}{B}\sum_b \log\operatorname{softmax}(s_b)_{y_b}

    Args:
        logits: ``(B, C)``. targets: ``(B,)`` class ids in ``[0, C)``.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (B, C) and targets (B,), got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
