r"""CMC: Contrastive Multiview Coding (Tian et al. 2019, https://arxiv.org/abs/1906.05849).

An image converted to CIE Lab is split into two views, its lightness :math:`L` and its colour
:math:`ab`. Each view has its own encoder (each half the width of one full encoder) and
linear head; the two embeddings of an image are contrasted with the other images' in both
directions:

.. math::
    \mathcal{L} = \tfrac12\big(\mathcal{L}_{\mathrm{NCE}}(z^L, z^{ab})
    + \mathcal{L}_{\mathrm{NCE}}(z^{ab}, z^L)\big)

with core :func:`info_nce` (``symmetric=True``). **Departure**: the paper draws 16384
negatives from a memory bank per view; here the negatives are the other images of the batch
(in-batch InfoNCE, as most later reimplementations). Probes use the concatenation
:math:`[f_L(x), f_{ab}(x)]`, as the paper. On grayscale data (sklearn digits) the
:math:`ab` view is empty and CMC cannot learn: measure it on colour images.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import info_nce
from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment, rgb_to_lab, to_float
from mmssl.vision.encoders import SmallResNet, build_encoder
from mmssl.vision.methods.two_view import TwoView

# CMC's normalisation of Lab: the centre and half-range of each channel over sRGB.
LAB_MEAN = (50.0, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2)
LAB_STD = (50.0, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2)
HALF_WIDTHS = (16, 32, 64, 128)  # half of SmallResNet's (32, 64, 128, 256)


def lab_views(images: Tensor) -> tuple[Tensor, Tensor]:
    """RGB uint8 or ``[0, 1]`` float ``(B, 3, H, W)`` -> normalised ``L`` ``(B, 1, H, W)``
    and ``ab`` ``(B, 2, H, W)``."""
    lab = rgb_to_lab(to_float(images))
    lab = (lab - lab.new_tensor(LAB_MEAN).view(1, 3, 1, 1)) / lab.new_tensor(LAB_STD).view(
        1, 3, 1, 1
    )
    return lab[:, :1], lab[:, 1:]


@register("cmc")
class CMC(Method):
    r"""CMC with the L and ab views of Lab colour space.

    Args:
        encoder_l: ``(B, 1, H, W) -> (B, D_L)``, with ``out_dim``.
        encoder_ab: ``(B, 2, H, W) -> (B, D_ab)``, with ``out_dim``.
        augment: the crop and flip shared by both views, an RGB ``[0, 1]`` view (no colour
            jitter, no normalisation); default :class:`SimCLRAugment` so configured.
        feat_dim: embedding size of each head (128).
        temperature: :math:`\tau` (0.07).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    modality: ClassVar[str] = "vision"
    # Paper: 240 epochs, batch 256, SGD lr 0.03. Cut to a CPU budget as SimCLR (TwoView).
    defaults: ClassVar[dict[str, Any]] = dict(TwoView.defaults)

    def __init__(
        self,
        encoder_l: nn.Module,
        encoder_ab: nn.Module,
        augment: SimCLRAugment | None = None,
        *,
        feat_dim: int = 128,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; CMC uses 0.07")
        self.encoder_l, self.encoder_ab = encoder_l, encoder_ab
        self.head_l = nn.Linear(encoder_l.out_dim, feat_dim)
        self.head_ab = nn.Linear(encoder_ab.out_dim, feat_dim)
        self.views = augment if augment is not None else crop_and_flip()
        self.temperature = temperature

    def augment(self, images: Tensor) -> Tensor:
        return self.views.view(images)  # (B, 3, S, S) RGB in [0, 1]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        l_view, ab_view = lab_views(x)
        z_l = self.head_l(self.encoder_l(l_view))  # (B, feat_dim)
        z_ab = self.head_ab(self.encoder_ab(ab_view))  # (B, feat_dim)
        loss = info_nce(z_l, z_ab, temperature=self.temperature, symmetric=True, gather=True)
        return {"loss": loss}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """RGB uint8 or [0, 1] float ``(B, 3, H, W)`` -> ``[f_L, f_ab]`` ``(B, D_L + D_ab)``."""
        l_view, ab_view = lab_views(images)
        return torch.cat([self.encoder_l(l_view), self.encoder_ab(ab_view)], dim=1)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        feat_dim: int = 128,
        temperature: float = 0.07,
        seed: int | None = None,
        **augment: Any,
    ) -> CMC:
        """CMC for RGB ``data``. ``encoder="small"`` gives two half-width :class:`SmallResNet`
        (as the paper halves its networks); other names give two full-width encoders."""
        info = data.info
        if info.get("in_channels", 3) != 3:
            raise ValueError(
                f"CMC's L/ab views need RGB images, got {info['in_channels']} channels"
            )
        size = info.get("image_size", 32)

        def make(channels: int) -> nn.Module:
            if encoder == "small":
                return SmallResNet(channels, widths=HALF_WIDTHS)
            return build_encoder(encoder, channels, size)

        options = {**info.get("augment", {}), **augment}
        views = crop_and_flip(size, seed, **options)
        return cls(make(1), make(2), views, feat_dim=feat_dim, temperature=temperature)


def crop_and_flip(image_size: int = 32, seed: int | None = None, **overrides: Any) -> SimCLRAugment:
    """CMC's augmentation: random resized crop and flip only, RGB kept in ``[0, 1]``."""
    if seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    options = {"cj_prob": 0.0, "gray_prob": 0.0, **overrides}
    return SimCLRAugment(image_size, mean=(0.0,) * 3, std=(1.0,) * 3, seed=seed, **options)
