r"""SimSiam: Exploring Simple Siamese Representation Learning (Chen and He 2021,
https://arxiv.org/abs/2011.10566).

BYOL without the momentum encoder: one shared encoder and projector :math:`f`, a predictor
:math:`h` on one side and a stop-gradient on the other:

.. math::
    \mathcal{L} = \tfrac12\,\mathcal{D}(p_1, \mathrm{sg}(z_2)) + \tfrac12\,\mathcal{D}(p_2,
    \mathrm{sg}(z_1)), \qquad z_i = f(x_i),\; p_i = h(z_i)

with :math:`\mathcal{D}` the negative cosine similarity (:func:`negative_cosine`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.objectives import negative_cosine
from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment
from mmssl.vision.data import small_images
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.heads import mlp_head
from mmssl.vision.methods.two_view import TwoView, augment_for

# SimSiam's views (appendix A): SimCLR's, crops of at least 20% of the image, jitter
# 0.4/0.4/0.4/0.1 (SimCLRAugment's default), no blur at 32x32 as in lightly's CIFAR recipe.
RECIPE: dict[str, Any] = {"min_scale": 0.2}


@register("simsiam")
class SimSiam(TwoView):
    r"""SimSiam: shared encoder and projector, a predictor, stop-gradient, negative cosine.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: default the paper's ``proj_layers``-layer MLP ``D -> proj_hidden ->
            proj_dim`` with batch norm on every layer, the output's without affine.
        predictor: default the bottleneck ``proj_dim -> pred_hidden -> proj_dim``.
        augment: uint8 batch -> two views; default SimCLR's views at 20% minimum crop.
        proj_hidden, proj_dim, pred_hidden, proj_layers: paper sizes 2048, 2048, 512, 3
            (ImageNet; its CIFAR projector has 2 layers).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/no-negatives"
    # TwoView's CPU budget (8 epochs, batch 256, AdamW, cosine) at a lower lr, chosen on
    # digits (kNN top-1, mean of seeds 0-2, the pretrain API on an H200):
    # 0.840 at 5e-4, 0.813 at 1e-3, 0.77 at 2e-3 (random init 0.72).
    defaults: ClassVar[dict[str, Any]] = {**TwoView.defaults, "lr": 5e-4}
    # The paper: SGD lr 0.05 * batch / 256 (0.03 on CIFAR), weight decay 1e-4 (5e-4 on CIFAR).

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        predictor: nn.Module | None = None,
        augment: SimCLRAugment | None = None,
        *,
        proj_hidden: int = 2048,
        proj_dim: int = 2048,
        pred_hidden: int = 512,
        proj_layers: int = 3,
    ) -> None:
        if projector is None:
            projector = mlp_head(
                encoder.out_dim,
                proj_hidden,
                proj_dim,
                layers=proj_layers,
                last_bn=True,
                last_bn_affine=False,
                bias=False,
            )
        views = augment or SimCLRAugment(**RECIPE)
        super().__init__(encoder, negative_cosine, views, projector, proj_dim=proj_dim)
        self.predictor = (
            predictor
            if predictor is not None
            else mlp_head(proj_dim, pred_hidden, proj_dim, bias=False)
        )

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        v1, v2 = batch
        z1 = self.projector(self.encoder(v1))  # (B, P)
        z2 = self.projector(self.encoder(v2))  # (B, P)
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (B, P)
        loss = 0.5 * (self.objective(p1, z2) + self.objective(p2, z1))  # targets detached inside
        return {"loss": loss}

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        proj_hidden: int = 2048,
        proj_dim: int = 2048,
        pred_hidden: int = 512,
        proj_layers: int | None = None,
        seed: int | None = None,
        **augment: Any,
    ) -> SimSiam:
        """SimSiam for ``data``: the ``encoder`` named, the paper's heads, SimSiam's views sized
        by ``data.info`` (the dataset's hints, then ``augment``, override the recipe).

        ``proj_layers`` defaults to the paper's per-dataset choice: 2 for CIFAR-sized images (up
        to 64 px), 3 for larger ones (ImageNet). On the 10,000-image CIFAR-10 subset, 16 epochs,
        the small ResNet gained 10.1 kNN points over random init with 2 layers and 9.7 with 3.
        """
        if proj_layers is None:
            proj_layers = 2 if small_images(data.info) else 3
        enc = build_encoder(encoder, data.info.get("in_channels", 3))
        views = augment_for(data, seed, **{**RECIPE, **data.info.get("augment", {}), **augment})
        return cls(
            enc,
            augment=views,
            proj_hidden=proj_hidden,
            proj_dim=proj_dim,
            pred_hidden=pred_hidden,
            proj_layers=proj_layers,
        )
