r"""Masked autoencoder (He et al. 2022, https://arxiv.org/abs/2111.06377).

Split the image into :math:`L` patches, keep a random 25% of them per image, run the ViT
encoder on the kept patches only, then a lightweight transformer decoder on the encoded
patches plus a shared learned mask token at every removed position (each with its position
embedding), and regress the pixels of the removed patches :math:`M` (:func:`masked_mse`):

.. math::
    \mathcal{L} = \frac{1}{|M|}\sum_{i \in M}\frac{1}{P}\lVert \hat x_i - t_i \rVert^2,
    \qquad t_i = \frac{x_i - \bar x_i}{\sqrt{\operatorname{var}(x_i) + 10^{-6}}}

with the per-patch normalised target :math:`t_i` (the paper's ``norm_pix_loss``; else
:math:`t_i = x_i`, pixels in ``[0, 1]``). The masks come from :func:`random_mask` with the
method's seeded generator. The representation is the mean of the encoder's patch tokens on the
whole, unmasked image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives import masked_mse, random_mask
from mmssl.core.registry import register
from mmssl.vision.augment import Normalize, to_float
from mmssl.vision.encoders import VisionTransformer, _ViTBlock, vit_small, vit_tiny
from mmssl.vision.methods.generative import heldout_images, save_rows

VITS = {"vit_tiny": vit_tiny, "vit_small": vit_small}


def patchify(x: Tensor, p: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, L, p * p * C)``, patches in raster order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: Tensor, p: int, c: int) -> Tensor:
    """``(B, L, p * p * C)`` -> ``(B, C, H, W)`` for a square grid."""
    b, length, _ = x.shape
    g = int(length**0.5)
    x = x.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)  # (B, C, g, p, g, p)
    return x.reshape(b, c, g * p, g * p)


class MAEDecoder(nn.Module):
    """Encoded visible tokens ``(B, 1 + K, D)`` -> patch predictions ``(B, L, patch_dim)``.

    ``Linear(D, dim)``, mask tokens put back at the removed positions, learned position
    embeddings, ``depth`` pre-norm blocks, ``LayerNorm``, ``Linear(dim, patch_dim)``.
    """

    def __init__(
        self, in_dim: int, num_patches: int, patch_dim: int, dim: int, depth: int, heads: int
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, dim))
        self.blocks = nn.ModuleList(_ViTBlock(dim, heads, 4.0) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, patch_dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: Tensor, keep: Tensor) -> Tensor:
        h = self.embed(tokens)  # (B, 1 + K, dim)
        b, _, d = h.shape
        full = self.mask_token.expand(b, self.pos_embed.shape[1] - 1, d).clone()  # (B, L, dim)
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, d), h[:, 1:])  # visible back in place
        x = torch.cat([h[:, :1], full], dim=1) + self.pos_embed  # (B, 1 + L, dim)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))[:, 1:]  # (B, L, patch_dim)


@register("mae")
class MAE(Method):
    """Masked autoencoder on a :class:`VisionTransformer`.

    Args:
        encoder: a :class:`VisionTransformer`.
        normalize: what the encoder's inputs go through (the dataset's mean and std).
        mask_ratio: share of patches removed per image (the paper: 0.75).
        norm_pix: per-patch normalised pixel targets (the paper's best setting).
        decoder_dim, decoder_depth, decoder_heads: the decoder (the paper: 512, 8, 16; here
            128, 4, 4 for a CPU).
        seed: seeds the mask generator.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "auto-encoding"
    modality: ClassVar[str] = "vision"
    # The paper (ImageNet, ViT-B/L/H): AdamW lr 1.5e-4 * batch / 256, betas (0.9, 0.95),
    # weight decay 0.05, batch 4096, 40 warmup epochs, 800-1600 epochs. CPU budget: ViT-Tiny,
    # batch 128, lr 1e-3, 60 epochs with 2 of warmup (7 minutes on digits on a busy 2-core
    # CPU). On digits 30 epochs with a 2-block decoder left the linear probe below random init
    # (0.75 vs 0.87); 60 epochs and a 4-block decoder (the paper's Table 1a: a deeper decoder
    # helps linear probing) give 0.90.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 60,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 1e-3,
        "betas": (0.9, 0.95),
        "weight_decay": 0.05,
        "warmup_epochs": 2.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: VisionTransformer,
        normalize: Normalize | None = None,
        *,
        mask_ratio: float = 0.75,
        norm_pix: bool = True,
        decoder_dim: int = 128,
        decoder_depth: int = 4,
        decoder_heads: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, VisionTransformer):
            raise TypeError(
                f"MAE masks patch tokens: the encoder must be a VisionTransformer, got "
                f"{type(encoder).__name__}"
            )
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}; the paper: 0.75")
        self.encoder, self.normalize = encoder, normalize or Normalize()
        self.patch = encoder.patch_embed.kernel_size[0]
        self.channels = encoder.patch_embed.in_channels
        self.num_patches = encoder.grid**2
        self.mask_ratio, self.norm_pix = mask_ratio, norm_pix
        self.decoder = MAEDecoder(
            encoder.out_dim,
            self.num_patches,
            self.patch**2 * self.channels,
            decoder_dim,
            decoder_depth,
            decoder_heads,
        )
        self.generators = SeededGenerators(seed)

    def mask(
        self, b: int, device: torch.device, generator: torch.Generator | None = None
    ) -> Tensor:
        """``(B, L)`` boolean, True at the removed patches (exactly ``round(ratio * L)`` a row)."""
        g = generator or self.generators(device)
        return random_mask((b, self.num_patches), self.mask_ratio, generator=g, device=device)

    def augment(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` -> ``(images in [0, 1], masked (B, L))``."""
        return to_float(images), self.mask(images.shape[0], images.device)

    def target(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` -> the regression target ``(B, L, p * p * C)``."""
        t = patchify(x, self.patch)
        if self.norm_pix:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
        return t

    def predict(self, x: Tensor, masked: Tensor) -> Tensor:
        """Patch predictions ``(B, L, p * p * C)`` from the visible patches of ``x``."""
        b = x.shape[0]
        keep = (~masked).nonzero()[:, 1].view(b, -1)  # (B, K) visible patch indices, sorted
        tokens = self.encoder.tokens(self.normalize(x), keep)  # (B, 1 + K, D)
        return self.decoder(tokens, keep)

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, masked = batch
        return {"loss": masked_mse(self.predict(x, masked), self.target(x), masked)}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or ``[0, 1]`` images ``(B, C, H, W)`` -> mean patch token ``(B, D)``, unmasked."""
        return self.encoder.tokens(self.normalize(images))[:, 1:].mean(1)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def evaluate(self, data: DataBundle, *, limit: int = 2000, seed: int = 0) -> dict[str, float]:
        """Masked-patch MSE (the training loss) on held-out images with fixed-seed masks."""
        images = heldout_images(data, limit)
        if images.numel() == 0:
            return {}
        was_training, dev = self.training, self._device()
        self.eval()
        g = torch.Generator(device=dev).manual_seed(seed)
        total = 0.0
        try:
            for chunk in images.split(250):
                x = to_float(chunk.to(dev))
                masked = self.mask(x.shape[0], dev, g)
                total += float(self((x, masked))["loss"]) * x.shape[0]
        finally:
            self.train(was_training)
        return {"masked_patch_mse": total / images.shape[0]}

    @torch.no_grad()
    def save_artifacts(self, out: Path, data: DataBundle, *, n: int = 16) -> list[str]:
        """``mae_reconstructions.png``: original, masked (removed patches grey) and the
        reconstruction (visible patches pasted back; normalised predictions rescaled by each
        true patch's mean and std, as the paper's figures do)."""
        images = heldout_images(data, n)
        if images.numel() == 0:
            return []
        was_training, dev = self.training, self._device()
        self.eval()
        try:
            x = to_float(images.to(dev))
            masked = self.mask(x.shape[0], dev, torch.Generator(device=dev).manual_seed(0))
            pred, patches = self.predict(x, masked), patchify(x, self.patch)
            if self.norm_pix:
                mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
                pred = pred * (var + 1e-6).sqrt() + mean
            m = masked.unsqueeze(-1)  # (B, L, 1)
            grey = torch.full_like(patches, 0.5)
            rows = [
                x,
                unpatchify(torch.where(m, grey, patches), self.patch, self.channels),
                unpatchify(torch.where(m, pred, patches), self.patch, self.channels),
            ]
        finally:
            self.train(was_training)
        return [save_rows(Path(out) / "mae_reconstructions.png", rows)]

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "vit_tiny",
        patch_size: int = 4,
        seed: int | None = None,
        **options: Any,
    ) -> MAE:
        """A ViT (``vit_tiny`` or ``vit_small``) with ``patch_size`` patches: an 8x8 grid at
        32x32, 4x4 on 16x16 digits (whose 2x2 patches, bilinear upsampling of 8x8 images, are
        filled in from their neighbours without knowing the digit); ``options`` go to
        :class:`MAE`."""
        if encoder not in VITS:
            raise ValueError(
                f"MAE masks ViT patch tokens: encoder must be one of {', '.join(VITS)}, got "
                f"{encoder!r} (a ResNet has no patches to drop)"
            )
        info = data.info
        c, size = info.get("in_channels", 3), info.get("image_size", 32)
        enc = VITS[encoder](c, size, patch_size)
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()))
        return cls(enc, Normalize(info["mean"], info["std"]), seed=seed, **options)
