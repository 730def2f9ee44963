r"""BYOL: Bootstrap Your Own Latent (Grill et al. 2020, https://arxiv.org/abs/2006.07733).

An online network (encoder :math:`f_\theta`, projector :math:`g_\theta`, predictor
:math:`q_\theta`) predicts the target network's projection of the other view; the target
(:math:`f_\xi, g_\xi`) is an exponential moving average of the online network, and there are
no negatives:

.. math::
    \mathcal{L} = \lVert \bar q_\theta(z^1_\theta) - \bar z^2_\xi \rVert^2
    + \lVert \bar q_\theta(z^2_\theta) - \bar z^1_\xi \rVert^2, \qquad
    \xi \leftarrow m_k\,\xi + (1 - m_k)\,\theta

with :math:`m_k` rising from ``base_momentum`` to 1 on a cosine over the run. The target is
a frozen copy: never in the optimizer, updated only in :meth:`BYOL.after_step`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.momentum import MomentumSchedule, ema_update, frozen_copy
from mmssl.core.objectives import byol_loss
from mmssl.core.registry import register
from mmssl.vision.augment import BYOLAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.heads import mlp_head
from mmssl.vision.methods.two_view import TwoView


def byol_views(data: DataBundle, seed: int | None = None, **overrides: Any) -> BYOLAugment:
    """BYOL's asymmetric views sized and normalised for ``data.info``, with the dataset's own
    hints (digits: no flips), then ``overrides``. ``seed=None`` draws from torch's generator."""
    info = data.info
    if seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    options = {**info.get("augment", {}), **overrides}
    return BYOLAugment(
        info.get("image_size", 32), mean=info["mean"], std=info["std"], seed=seed, **options
    )


@register("byol")
class BYOL(TwoView):
    r"""BYOL: online encoder + projector + predictor against an EMA target.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: default ``mlp_head(D, proj_hidden, proj_dim)`` (Linear-BN-ReLU-Linear).
        predictor: default ``mlp_head(proj_dim, pred_hidden, proj_dim)``.
        augment: uint8 batch -> two views; default :class:`BYOLAugment` (CIFAR recipe).
        proj_hidden, proj_dim, pred_hidden: head sizes (paper: 4096, 256, 4096).
        base_momentum: :math:`m_0` of the target (paper: 0.996), rising to ``final_momentum``.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/no-negatives"
    # TwoView's CPU budget (8 epochs, batch 256, AdamW, cosine) at a lower lr, chosen on
    # digits (kNN top-1, mean of seeds 0-2, the pretrain API on an H200):
    # 0.847 at 5e-4, 0.814 at 1e-3, 0.71 at 2e-3 (random init 0.72).
    defaults: ClassVar[dict[str, Any]] = {**TwoView.defaults, "lr": 5e-4}
    # The paper: LARS lr 0.2 * batch / 256, weight decay 1.5e-6, batch 4096, 1000 epochs.

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
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
    ) -> None:
        dim = encoder.out_dim
        projector = projector if projector is not None else mlp_head(dim, proj_hidden, proj_dim)
        super().__init__(encoder, byol_loss, augment or BYOLAugment(), projector)
        self.predictor = (
            predictor if predictor is not None else mlp_head(proj_dim, pred_hidden, proj_dim)
        )
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(projector)
        self.momentum = MomentumSchedule(base_momentum, final_momentum)

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        v1, v2 = batch
        p1 = self.predictor(self.projector(self.encoder(v1)))  # (B, P)
        p2 = self.predictor(self.projector(self.encoder(v2)))  # (B, P)
        with torch.no_grad():
            z1 = self.target_projector(self.target_encoder(v1))  # (B, P)
            z2 = self.target_projector(self.target_encoder(v2))  # (B, P)
        loss = self.objective(p1, z2) + self.objective(p2, z1)  # the paper sums both ways
        return {"loss": loss}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Move the target toward the online network with this step's momentum."""
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
        base_momentum: float = 0.99,
        final_momentum: float = 1.0,
        seed: int | None = None,
        **augment: Any,
    ) -> BYOL:
        """BYOL for ``data``: the ``encoder`` named, the paper's heads, BYOL views sized by
        ``data.info`` (``augment`` overrides :class:`BYOLAugment`). ``base_momentum`` 0.99 is
        solo-learn's CIFAR setting (the paper's 0.996 is for ImageNet)."""
        enc = build_encoder(encoder, data.info.get("in_channels", 3))
        return cls(
            enc,
            augment=byol_views(data, seed, **augment),
            proj_hidden=proj_hidden,
            proj_dim=proj_dim,
            pred_hidden=pred_hidden,
            base_momentum=base_momentum,
            final_momentum=final_momentum,
        )
