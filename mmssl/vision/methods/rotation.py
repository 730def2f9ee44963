r"""RotNet: rotation prediction (Gidaris et al. 2018, https://arxiv.org/abs/1803.07728).

Every image :math:`x` goes through the encoder :math:`f` under all four rotations
:math:`\mathrm{rot}_r`, :math:`r \in \{0, 90, 180, 270\}` degrees, in the same batch (the
paper's best setting), and a classifier :math:`g` predicts which one it saw:

.. math::
    \mathcal{L} = -\frac{1}{4B}\sum_{b=1}^{B}\sum_{r=0}^{3}
    \log \operatorname{softmax}\big(g(f(\mathrm{rot}_r(x_b)))\big)_r

To tell the rotations apart the network must find where the objects' heads, feet and horizon
are. Light augmentation only, as the paper: a padded random crop and a horizontal flip.
Probes use :math:`f(x)`, before the classifier.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import all_rotations, pretext_loss
from mmssl.core.objectives.pretext import NUM_ROTATIONS
from mmssl.core.registry import register
from mmssl.vision.augment import CropFlipAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.heads import mlp_head


def crop_flip_for(data: DataBundle, seed: int | None = None, **overrides: Any) -> CropFlipAugment:
    """:class:`CropFlipAugment` sized and normalised for ``data.info``, with the dataset's own
    flip hint (digits: no flips); ``seed=None`` draws it from torch's global generator."""
    info = data.info
    if seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    hints = {k: v for k, v in info.get("augment", {}).items() if k == "hflip_prob"}
    return CropFlipAugment(
        info.get("image_size", 32),
        mean=info["mean"],
        std=info["std"],
        seed=seed,
        **{**hints, **overrides},
    )


@register("rotation")
@register("rotnet")
class RotNet(Method):
    r"""RotNet: a 4-way rotation classifier on the encoder.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        head: ``(4B, D) -> (4B, 4)`` rotation logits; default ``mlp_head(D, D, 4)``, which plays
            the part of the paper's last conv block so that :math:`f` stays less task-specific
            (the paper's best features are below its last block).
        augment: uint8 batch -> one float view; default :class:`CropFlipAugment`.
        label_smoothing: of the rotation cross-entropy (0: the paper's).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/relative-position"
    modality: ClassVar[str] = "vision"
    # The paper (CIFAR-10, NIN): 100 epochs, batch 128 images (x4 rotations), SGD lr 0.1,
    # momentum 0.9, weight decay 5e-4. Cut to a CPU budget: every step encodes 4B images, so
    # 4 epochs of batch 128 with AdamW cost about SimCLR's 8 epochs of 2 views at batch 256.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 4,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 5e-4,
        "warmup_epochs": 0.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module | None = None,
        augment: CropFlipAugment | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        dim = encoder.out_dim
        self.encoder = encoder
        self.head = head if head is not None else mlp_head(dim, dim, NUM_ROTATIONS)
        self.views = augment if augment is not None else CropFlipAugment()
        self.normalize = self.views.normalize
        self.label_smoothing = label_smoothing

    def augment(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` -> the four rotations of one view ``(4B, C, S, S)`` and their
        classes ``(4B,)``, rotation-major."""
        return all_rotations(self.views.view(images))

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, targets = batch
        logits = self.head(self.encoder(x))  # (4B, 4)
        loss = pretext_loss(logits, targets, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(1) == targets).float().mean()
        return {"loss": loss, "accuracy": accuracy.detach()}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or [0, 1] float images ``(B, C, H, W)`` -> encoder features ``(B, D)``."""
        return self.encoder(self.normalize(images))

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        head_layers: int = 2,
        label_smoothing: float = 0.0,
        seed: int | None = None,
        **augment: Any,
    ) -> RotNet:
        """RotNet for ``data``: the ``encoder`` named, a classifier of ``head_layers`` linear
        layers, light crop-and-flip views sized by ``data.info``; ``augment`` overrides
        :class:`CropFlipAugment` (``padding``, ``hflip_prob``)."""
        info = data.info
        enc = build_encoder(encoder, info.get("in_channels", 3), info.get("image_size", 32))
        head = mlp_head(enc.out_dim, enc.out_dim, NUM_ROTATIONS, layers=head_layers)
        views = crop_flip_for(data, seed, **augment)
        return cls(enc, head, views, label_smoothing=label_smoothing)
