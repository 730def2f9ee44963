r"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks",
https://arxiv.org/abs/1601.06759): an autoregressive model of pixels in raster order.

.. math::
    p(x) = \prod_{i=1}^{HW} \prod_{c=1}^{C} p(x_{i,c} \mid x_{<i}),
    \qquad \mathcal{L} = -\frac{1}{BCHW}\sum \log p(x_{i,c} \mid x_{<i})

Masked convolutions keep it causal: the first ``7x7`` convolution uses mask A (a pixel does
not see itself), the residual blocks' ``3x3`` convolutions mask B (a position sees its own
features, which only hold the past). Each sub-pixel gets a 256-way softmax over the quantised
levels, scored with the core :func:`masked_cross_entropy` (no ignored positions: the masked
convolutions already shift the targets, so :func:`next_token_loss`'s one-step shift does not
fit). The channels of one pixel are conditioned on the spatial context only, not on each
other (the paper's R -> G -> B order is left out): still an exact likelihood, reported as bits
per dimension :math:`\mathcal{L} / \ln 2`.

The representation, as iGPT's linear probes (Chen et al. 2020, https://proceedings.mlr.press/v119/chen20s.html)
do with intermediate layers, is the global average pool of the hidden feature maps after the
middle residual block, on the whole image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives import masked_cross_entropy
from mmssl.core.registry import register
from mmssl.vision.augment import to_float
from mmssl.vision.methods.generative import heldout_images, save_rows

LEVELS = 256


class MaskedConv2d(nn.Conv2d):
    """A square convolution that sees only the pixels before the centre in raster order
    (``mask="A"``) or also the centre (``"B"``), every channel alike."""

    def __init__(self, c_in: int, c_out: int, kernel: int, mask: str) -> None:
        if mask not in ("A", "B"):
            raise ValueError(f"mask must be 'A' (first layer) or 'B', got {mask!r}")
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        m = torch.ones_like(self.weight)  # (c_out, c_in, k, k)
        k = kernel // 2
        m[:, :, k, k + (mask == "B") :] = 0  # the centre row from the centre (A) or after it (B)
        m[:, :, k + 1 :] = 0  # every row below
        self.register_buffer("mask", m, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    """The paper's PixelCNN residual block: ``ReLU, 1x1 (2h -> h), ReLU, 3x3 mask B (h -> h),
    ReLU, 1x1 (h -> 2h)``, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        h = channels // 2
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, h, 1),
            nn.ReLU(),
            MaskedConv2d(h, h, 3, "B"),
            nn.ReLU(),
            nn.Conv2d(h, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


@register("pixelcnn")
@register("pixel-ar")
class PixelCNN(Method):
    """PixelCNN: mask-A ``7x7`` stem, mask-B residual blocks, two ``1x1`` output layers,
    a 256-way softmax per sub-pixel.

    Args:
        channels: image channels ``C``.
        hidden: feature maps ``2h`` (the paper: 256 on CIFAR-10).
        blocks: residual blocks (the paper: 15 layers).
        embed_block: which block's output :meth:`embed` pools (default the middle one).
        seed: seeds the sampler of :meth:`save_artifacts`.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "autoregressive"
    modality: ClassVar[str] = "vision"
    # The paper: RMSProp, 2h = 256 feature maps, 15 layers, many epochs on CIFAR-10 (3.14
    # bits/dim). CPU budget: 64 feature maps, 6 blocks, AdamW lr 3e-3, batch 64, 20 epochs
    # (2 minutes on digits at their native 8x8, `--data-opt image_size=8`; the default 16x16
    # digits are bilinear upsamplings, which a pixel model predicts from the neighbours alone).
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 0.0,
        "warmup_epochs": 0.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        channels: int = 3,
        *,
        hidden: int = 64,
        blocks: int = 6,
        embed_block: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if hidden % 2 or blocks < 1:
            raise ValueError(f"hidden must be even and blocks >= 1, got {hidden} and {blocks}")
        self.channels = channels
        self.embed_block = max(1, blocks // 2) if embed_block is None else embed_block
        if not 1 <= self.embed_block <= blocks:
            raise ValueError(f"embed_block must be in [1, {blocks}], got {embed_block}")
        self.stem = MaskedConv2d(channels, hidden, 7, "A")
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(blocks))
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(hidden, hidden, 1, "B"),
            nn.ReLU(),
            nn.Conv2d(hidden, channels * LEVELS, 1),
        )
        self.generators = SeededGenerators(seed)

    @staticmethod
    def scale(x: Tensor) -> Tensor:
        """``[0, 1]`` pixels -> the network's input in ``[-1, 1]``."""
        return x * 2.0 - 1.0

    def features(self, x: Tensor, upto: int | None = None) -> Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` -> hidden maps ``(B, 2h, H, W)`` after ``upto`` blocks."""
        h = self.stem(self.scale(x))
        for block in self.blocks[: len(self.blocks) if upto is None else upto]:
            h = block(h)
        return h

    def logits(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, H, W, 256)`` logits of every sub-pixel."""
        b, c, hh, ww = x.shape
        out = self.head(self.features(x))  # (B, C * 256, H, W)
        return out.view(b, c, LEVELS, hh, ww).permute(0, 1, 3, 4, 2)  # (B, C, H, W, 256)

    def nll(self, images: Tensor) -> Tensor:
        """Mean negative log-likelihood in nats per sub-pixel of uint8 ``(B, C, H, W)``."""
        return masked_cross_entropy(self.logits(to_float(images)), images.long())

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        loss = self.nll(images)
        return {"loss": loss, "bits_per_dim": loss.detach() / math.log(2)}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or ``[0, 1]`` images -> pooled hidden maps of block ``embed_block``, ``(B, 2h)``."""
        return self.features(to_float(images), self.embed_block).mean(dim=(2, 3))

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def evaluate(self, data: DataBundle, *, limit: int = 2000) -> dict[str, float]:
        """Negative log-likelihood of the held-out images, in bits per dimension and in nats
        per image."""
        images = heldout_images(data, limit)
        if images.numel() == 0:
            return {}
        was_training, dev = self.training, self._device()
        self.eval()
        total = 0.0
        try:
            for chunk in images.split(250):
                total += float(self.nll(chunk.to(dev))) * chunk.shape[0]
        finally:
            self.train(was_training)
        nats = total / images.shape[0]  # per sub-pixel
        return {"bits_per_dim": nats / math.log(2), "nll_nats": nats * images[0].numel()}

    @torch.no_grad()
    def sample(self, n: int, size: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images uint8 ``(n, C, size, size)`` drawn pixel by pixel in raster order
        (all channels of a pixel at once: they are independent given the past)."""
        dev = self._device()
        g = generator or self.generators(dev)
        x = torch.zeros((n, self.channels, size, size), dtype=torch.uint8, device=dev)
        for i in range(size):
            for j in range(size):
                probs = self.logits(to_float(x))[:, :, i, j].float().softmax(-1)  # (n, C, 256)
                draw = torch.multinomial(probs.view(-1, LEVELS), 1, generator=g)  # (n * C, 1)
                x[:, :, i, j] = draw.view(n, self.channels).to(torch.uint8)
        return x

    @torch.no_grad()
    def save_artifacts(self, out: Path, data: DataBundle, *, n: int = 16) -> list[str]:
        """``pixelcnn_samples.png``: ``n`` images sampled autoregressively (slow on a CPU:
        one forward pass per pixel)."""
        was_training, dev = self.training, self._device()
        self.eval()
        try:
            x = self.sample(n, data.info.get("image_size", 32), torch.Generator(dev).manual_seed(0))
        finally:
            self.train(was_training)
        return [save_rows(Path(out) / "pixelcnn_samples.png", [to_float(x)], nrow=8)]

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "pixelcnn",
        hidden: int = 64,
        blocks: int = 6,
        embed_block: int | None = None,
        seed: int | None = None,
    ) -> PixelCNN:
        """A PixelCNN for ``data.info``'s channels. The network is its own encoder: ``encoder``
        is accepted for the benchmark's sake and must be ``"pixelcnn"`` or ``"small"``."""
        if encoder not in ("pixelcnn", "small"):
            raise ValueError(
                f"the PixelCNN is its own encoder (masked convolutions); got encoder={encoder!r}"
            )
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()))
        return cls(
            data.info.get("in_channels", 3),
            hidden=hidden,
            blocks=blocks,
            embed_block=embed_block,
            seed=seed,
        )
