r"""Context-instance pretext tasks that are classification: rotation prediction (RotNet) and
the cross-entropy every such task (jigsaw, relative patch, NSP/SOP) trains with."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.objectives._common import full_precision

NUM_ROTATIONS = 4  # 0, 90, 180 and 270 degrees


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
