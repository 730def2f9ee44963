r"""MoCo v2: Improved Baselines with Momentum Contrastive Learning (Chen et al. 2020,
https://arxiv.org/abs/2003.04297).

MoCo v1 (:class:`~mmssl.vision.methods.mocov1.MoCo`: queue, momentum encoder, shuffled batch
norm) with SimCLR's two improvements: an MLP projection head (``D -> D -> 128`` with a ReLU)
and stronger views (colour jitter with probability 0.8, plus Gaussian blur on ImageNet, none
at 32x32 as in lightly's CIFAR recipe), a temperature of 0.2 and a cosine learning rate.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment
from mmssl.vision.methods.mocov1 import MoCo

# MoCo v2's views: SimCLR's (jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale 0.2) at 20% crops.
RECIPE_V2: dict[str, Any] = {"min_scale": 0.2}


@register("mocov2")
class MoCoV2(MoCo):
    """MoCo v2: :class:`MoCo` with the MLP head, ``T`` = 0.2 and SimCLR-style views.

    Args: as :class:`MoCo`; only the defaults differ (``mlp=True``, ``T=0.2``, the views).
    """

    recipe: ClassVar[dict[str, Any]] = RECIPE_V2
    # defaults: inherited from MoCo (TwoView's CPU budget at AdamW lr 5e-4).
    # The paper: SGD lr 0.03 (batch 256), weight decay 1e-4, 200 or 800 epochs, cosine.

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        augment: SimCLRAugment | None = None,
        *,
        dim: int = 128,
        K: int = 65536,
        m: float = 0.999,
        T: float = 0.2,
        bn_splits: int = 8,
        mlp: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            encoder,
            projector,
            augment,
            dim=dim,
            K=K,
            m=m,
            T=T,
            bn_splits=bn_splits,
            mlp=mlp,
            seed=seed,
        )
