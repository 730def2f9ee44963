r"""MoCo v3 (Chen, Xie and He 2021, https://arxiv.org/abs/2104.02057).

MoCo without the queue: the keys are the momentum encoder's projections of the other view of
the same batch. The online network is encoder, projector and predictor; the momentum network
encoder and projector, an EMA of the online ones with the momentum rising from 0.99 to 1 on a
cosine. The loss is symmetric InfoNCE (core :func:`info_nce`) at :math:`\tau = 0.2`, each
term scaled by :math:`2\tau` as in the paper's code:

.. math::
    \mathcal{L} = 2\tau\,\big(\mathrm{ctr}(q_1, k_2) + \mathrm{ctr}(q_2, k_1)\big)

Works with a ResNet or a ViT (``encoder="vit_tiny"``/``"vit_small"``); for a ViT the random
patch projection is frozen (the paper's stability trick) and the projector has 3 layers
(ResNet: 2). The momentum network is a frozen copy, never in the optimizer, updated in
:meth:`MoCoV3.after_step`. For a ViT, lower the learning rate (the paper: AdamW
1.5e-4 * batch / 256, weight decay 0.1, 40 warmup epochs).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.momentum import MomentumSchedule, ema_update, frozen_copy
from mmssl.core.objectives import info_nce
from mmssl.core.registry import register
from mmssl.vision.augment import BYOLAugment
from mmssl.vision.encoders import VisionTransformer, build_encoder
from mmssl.vision.methods.byol import byol_views
from mmssl.vision.methods.heads import mlp_head
from mmssl.vision.methods.two_view import TwoView


@register("mocov3")
class MoCoV3(TwoView):
    r"""MoCo v3: symmetric InfoNCE between predictor outputs and momentum keys, no queue.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: default ``mlp_head(D, proj_hidden, proj_dim, layers=proj_layers)`` with a
            last batch norm without affine (the paper's).
        predictor: default ``mlp_head(proj_dim, pred_hidden, proj_dim)``.
        augment: uint8 batch -> two views; default :class:`BYOLAugment` (the paper uses BYOL's).
        proj_hidden, proj_dim, pred_hidden: head sizes (paper: 4096, 256, 4096).
        proj_layers: projector depth; ``None``: 3 for a ViT, 2 otherwise (the paper's).
        temperature: :math:`\tau` (0.2).
        base_momentum: momentum at step 0 (0.99), rising to ``final_momentum`` (1.0).
        freeze_patch_embed: keep a ViT's random patch projection fixed (True).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    # defaults: inherited from TwoView (a CPU budget: 8 epochs, batch 256, AdamW 2e-3, cosine).
    # The paper: ResNet-50 LARS lr 0.3 * batch / 256 (wd 1.5e-6); ViT AdamW (see above).

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        predictor: nn.Module | None = None,
        augment: BYOLAugment | None = None,
        *,
        proj_hidden: int = 4096,
        proj_dim: int = 256,
        pred_hidden: int = 4096,
        proj_layers: int | None = None,
        temperature: float = 0.2,
        base_momentum: float = 0.99,
        final_momentum: float = 1.0,
        freeze_patch_embed: bool = True,
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; MoCo v3 uses 0.2")
        is_vit = isinstance(encoder, VisionTransformer)
        if projector is None:
            layers = proj_layers or (3 if is_vit else 2)
            projector = mlp_head(
                encoder.out_dim,
                proj_hidden,
                proj_dim,
                layers=layers,
                last_bn=True,
                last_bn_affine=False,
                bias=False,
            )
        super().__init__(encoder, info_nce, augment or BYOLAugment(), projector)
        if predictor is None:
            predictor = mlp_head(proj_dim, pred_hidden, proj_dim, bias=False)
        self.predictor = predictor
        if is_vit and freeze_patch_embed:
            encoder.patch_embed.requires_grad_(False)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(projector)
        self.momentum = MomentumSchedule(base_momentum, final_momentum)
        self.temperature = temperature

    def contrast(self, q: Tensor, k: Tensor) -> Tensor:
        """``ctr(q, k)`` of the paper: InfoNCE with in-batch keys, scaled by :math:`2\\tau`."""
        return (
            2 * self.temperature * self.objective(q, k, temperature=self.temperature, gather=True)
        )

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        v1, v2 = batch
        q1 = self.predictor(self.projector(self.encoder(v1)))  # (B, P)
        q2 = self.predictor(self.projector(self.encoder(v2)))  # (B, P)
        with torch.no_grad():
            k1 = self.target_projector(self.target_encoder(v1))  # (B, P)
            k2 = self.target_projector(self.target_encoder(v2))  # (B, P)
        return {"loss": self.contrast(q1, k2) + self.contrast(q2, k1)}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Move the momentum network toward the online one with this step's momentum."""
        m = self.momentum(step, total_steps)
        ema_update(self.target_encoder, self.encoder, m)
        ema_update(self.target_projector, self.projector, m)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        proj_hidden: int = 4096,
        proj_dim: int = 256,
        pred_hidden: int = 4096,
        temperature: float = 0.2,
        base_momentum: float = 0.99,
        seed: int | None = None,
        **augment: Any,
    ) -> MoCoV3:
        """MoCo v3 for ``data``: the ``encoder`` named (a ResNet or ``vit_tiny``/``vit_small``),
        BYOL's views sized by ``data.info`` (``augment`` overrides :class:`BYOLAugment`)."""
        info = data.info
        enc = build_encoder(encoder, info.get("in_channels", 3), info.get("image_size", 32))
        return cls(
            enc,
            augment=byol_views(data, seed, **augment),
            proj_hidden=proj_hidden,
            proj_dim=proj_dim,
            pred_hidden=pred_hidden,
            temperature=temperature,
            base_momentum=base_momentum,
        )
