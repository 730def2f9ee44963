r"""SimCLR v2: Big Self-Supervised Models are Strong Semi-Supervised Learners (Chen et al.
2020, https://arxiv.org/abs/2006.10029).

SimCLR (:class:`~mmssl.vision.methods.simclr.SimCLR`, NT-Xent over :math:`2B` views) with
a deeper projection head: three layers, batch norm on each, the hidden layers as wide as the
encoder, and a temperature of 0.1. The paper fine-tunes from the projector's first layer
rather than the encoder output; ``probe_layer=1`` makes :meth:`SimCLRv2.embed` do the same.
(Its optional MoCo-style memory, worth about 1% on ImageNet, is left out: see
:class:`~mmssl.vision.methods.mocov1.MoCo` for a queue.)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.heads import mlp_head
from mmssl.vision.methods.simclr import SimCLR
from mmssl.vision.methods.two_view import augment_for

_MODULES_PER_LAYER = 3  # Linear, BatchNorm1d, ReLU in each hidden layer of mlp_head


@register("simclrv2")
class SimCLRv2(SimCLR):
    r"""SimCLR v2: :class:`SimCLR` with a 3-layer batch-normalised projector and ``tau`` 0.1.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: default ``mlp_head(D, D, proj_dim, layers=proj_layers, last_bn=True)``.
        augment: uint8 batch -> two views; default :class:`SimCLRAugment` (CIFAR recipe).
        temperature: :math:`\tau` of NT-Xent (0.1 in the paper).
        proj_dim: projector output size (128). proj_layers: projector depth (3).
        probe_layer: how many projector layers :meth:`embed` applies after the encoder (0: the
            encoder output, the linear-evaluation protocol; 1: the paper's fine-tuning point).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    # defaults: inherited from TwoView (a CPU budget: 8 epochs, batch 256, AdamW 2e-3, cosine).
    # The paper: LARS lr 0.3 * batch / 256 (batch 4096), weight decay 1e-4, 800 epochs.

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        augment: SimCLRAugment | None = None,
        *,
        temperature: float = 0.1,
        proj_dim: int = 128,
        proj_layers: int = 3,
        probe_layer: int = 0,
    ) -> None:
        if not 0 <= probe_layer < proj_layers:
            raise ValueError(
                f"probe_layer must be in [0, proj_layers) = [0, {proj_layers}), got "
                f"{probe_layer}; 0 probes the encoder, 1 the projector's first layer"
            )
        dim = encoder.out_dim
        if projector is None:
            projector = mlp_head(dim, dim, proj_dim, layers=proj_layers, last_bn=True)
        super().__init__(encoder, projector, augment, temperature=temperature, proj_dim=proj_dim)
        self.probe_layer = probe_layer

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or [0, 1] float images ``(B, C, H, W)`` -> features ``(B, D)``: the encoder's,
        then the first ``probe_layer`` projector layers."""
        h = self.encoder(self.normalize(images))  # (B, D)
        for layer in list(self.projector)[: self.probe_layer * _MODULES_PER_LAYER]:
            h = layer(h)
        return h

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        temperature: float = 0.1,
        proj_dim: int = 128,
        proj_layers: int = 3,
        probe_layer: int = 0,
        seed: int | None = None,
        **augment: Any,
    ) -> SimCLRv2:
        """SimCLR v2 for ``data``: the ``encoder`` named, SimCLR's views sized by ``data.info``
        (``augment`` overrides :class:`SimCLRAugment`)."""
        enc = build_encoder(encoder, data.info.get("in_channels", 3))
        return cls(
            enc,
            augment=augment_for(data, seed, **augment),
            temperature=temperature,
            proj_dim=proj_dim,
            proj_layers=proj_layers,
            probe_layer=probe_layer,
        )
