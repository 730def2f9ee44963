r"""PIRL: pretext-invariant representations (Misra and van der Maaten 2020,
https://arxiv.org/abs/1912.01991).

An image :math:`I` and its jigsaw transform :math:`I^t` (a 3x3 grid of patches, each randomly
cropped and coloured, in a random order) should map to the same representation. The image
goes through the encoder and a head :math:`f`; each patch through the same encoder and a
head, their features concatenated in the shuffled order and projected by :math:`g`. Both are
contrasted with the image's memory-bank entry :math:`m_I` against :math:`K` bank negatives:

.. math::
    \mathcal{L} = \lambda\,\mathcal{L}_{\mathrm{NCE}}(m_I, g(v_{I^t}))
    + (1 - \lambda)\,\mathcal{L}_{\mathrm{NCE}}(m_I, f(v_I))

with the softmax NCE of InstDisc (core :func:`nce_loss`), and the bank updated from
:math:`f(v_I)` by :math:`m_I \leftarrow \mathrm{norm}(0.5\,m_I + 0.5\,f(v_I))`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.memory import MemoryBank
from mmssl.core.method import Method
from mmssl.core.objectives import nce_loss
from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment, to_float
from mmssl.vision.data import with_indices
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.instdisc import InstDisc, bank_scores, first_column_mask
from mmssl.vision.methods.two_view import augment_for

_PAPER_PATCH_AREA = (64 / 75) ** 2  # PIRL crops 64x64 out of each 75x75 grid cell


def jigsaw_cells(x: Tensor, grid: int = 3) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, grid * grid, C, H // grid, W // grid)``, row-major cells
    (pixels beyond a multiple of ``grid`` are dropped)."""
    b, c, hgt, wid = x.shape
    h, w = hgt // grid, wid // grid
    cells = x[:, :, : h * grid, : w * grid].reshape(b, c, grid, h, grid, w)
    return cells.permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, h, w)


@register("pirl")
class PIRL(Method):
    r"""PIRL with the jigsaw transform and a memory bank.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``;
            shared by images and patches.
        num_items: ``N``, the number of training images (bank rows).
        augment: the image's view; default :class:`SimCLRAugment`.
        patch_augment: each patch's crop (resized back to the cell size) and colour; default
            :class:`SimCLRAugment` of the cell size with PIRL's crop area.
        grid: jigsaw grid side (3: nine patches).
        feat_dim: size of :math:`f` and :math:`g` (128).
        negatives: :math:`K` bank negatives per step (32000).
        temperature: :math:`\tau` (0.07). mix: :math:`\lambda` (0.5). momentum: bank update (0.5).
        seed: seeds the bank, the negatives and the patch order.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    modality: ClassVar[str] = "vision"
    # Paper: 800 epochs, batch 1024, SGD lr 0.12. Cut to a CPU budget: the nine patches cost
    # the encoder's deep stages nine images' worth, so 8 epochs of batch 128 with AdamW.
    defaults: ClassVar[dict[str, Any]] = {**InstDisc.defaults, "epochs": 8}

    def __init__(
        self,
        encoder: nn.Module,
        num_items: int,
        augment: SimCLRAugment | None = None,
        patch_augment: SimCLRAugment | None = None,
        *,
        grid: int = 3,
        feat_dim: int = 128,
        negatives: int = 32000,
        temperature: float = 0.07,
        mix: float = 0.5,
        momentum: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= mix <= 1.0 or not temperature > 0 or negatives < 1 or grid < 2:
            raise ValueError(
                f"need 0 <= mix <= 1, temperature > 0, negatives >= 1, grid >= 2; got {mix}, "
                f"{temperature}, {negatives}, {grid}; PIRL uses 0.5, 0.07, 32000, 3"
            )
        self.encoder = encoder
        self.views = augment if augment is not None else SimCLRAugment()
        cell = self.views.image_size // grid
        self.patch_views = patch_augment or SimCLRAugment(cell, min_scale=_PAPER_PATCH_AREA)
        self.normalize = self.views.normalize
        self.head_image = nn.Linear(encoder.out_dim, feat_dim)  # f
        self.head_patch = nn.Linear(encoder.out_dim, feat_dim)  # per patch, before concatenation
        self.head_jigsaw = nn.Linear(grid * grid * feat_dim, feat_dim)  # g
        self.generator = torch.Generator().manual_seed(seed)
        self.bank = MemoryBank(num_items, feat_dim, momentum, generator=self.generator)
        self.grid, self.negatives, self.temperature, self.mix = grid, negatives, temperature, mix

    def augment(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` and indices -> image view ``(B, C, S, S)``, shuffled
        patches ``(B, grid², C, s, s)``, indices ``(B,)``."""
        images, idx = batch
        cells = jigsaw_cells(to_float(images), self.grid)  # (B, P, C, h, w)
        b, p = cells.shape[:2]
        patches = self.patch_views.view(cells.flatten(0, 1)).unflatten(0, (b, p))
        order = torch.rand(b, p, generator=self.generator).argsort(1).to(patches.device)
        patches = patches[torch.arange(b, device=patches.device)[:, None], order]  # shuffled
        return self.views.view(images), patches, idx

    def forward(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        x, patches, idx = batch
        v_image = F.normalize(self.head_image(self.encoder(x)).float(), dim=1)  # (B, F)
        h = self.head_patch(self.encoder(patches.flatten(0, 1)))  # (B * P, F)
        h = h.unflatten(0, patches.shape[:2]).flatten(1)  # (B, P * F) in the shuffled order
        v_jigsaw = F.normalize(self.head_jigsaw(h).float(), dim=1)  # (B, F)
        negatives = self.bank.sample_negatives(self.negatives, generator=self.generator)
        positives = self.bank.get(idx)  # (B, F)
        s_jig = bank_scores(v_jigsaw, positives, negatives, self.temperature)  # (B, 1 + K)
        s_img = bank_scores(v_image, positives, negatives, self.temperature)
        mask = first_column_mask(s_jig)
        loss_jig, loss_img = nce_loss(s_jig, mask), nce_loss(s_img, mask)
        if self.training:
            self.bank.update(idx, v_image.detach())
        loss = self.mix * loss_jig + (1.0 - self.mix) * loss_img
        return {"loss": loss, "loss_jigsaw": loss_jig.detach(), "loss_image": loss_img.detach()}

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
        grid: int = 3,
        feat_dim: int = 128,
        negatives: int = 32000,
        temperature: float = 0.07,
        mix: float = 0.5,
        momentum: float = 0.5,
        seed: int | None = None,
        **augment: Any,
    ) -> PIRL:
        """PIRL for ``data`` (its batches gain dataset indices); ``augment`` overrides the
        image view's :class:`SimCLRAugment` (patches get the same colour settings)."""
        info = with_indices(data).info
        enc = build_encoder(encoder, info.get("in_channels", 3), info.get("image_size", 32))
        views = augment_for(data, seed, **augment)
        colour = {**info.get("augment", {}), **augment}
        colour.pop("min_scale", None)  # patches use PIRL's crop area
        patch_views = SimCLRAugment(
            views.image_size // grid,
            mean=info["mean"],
            std=info["std"],
            min_scale=_PAPER_PATCH_AREA,
            seed=views.generator.initial_seed() + 1,
            **colour,
        )
        return cls(
            enc,
            info["num_train"],
            views,
            patch_views,
            grid=grid,
            feat_dim=feat_dim,
            negatives=min(negatives, info["num_train"]),  # more would only repeat items
            temperature=temperature,
            mix=mix,
            momentum=momentum,
            seed=int(torch.randint(2**31 - 1, ())) if seed is None else seed,
        )
