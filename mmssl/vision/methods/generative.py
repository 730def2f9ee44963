"""Parts the generative vision methods share: the deconvolutional decoder, the held-out images
their ``evaluate`` scores, and the PNG grids their ``save_artifacts`` write.

:class:`ConvDecoder` is the denoising autoencoder's and the VAE's decoder: a linear map to a
``4 x 4`` feature map, then transposed convolutions that double the side until the image size
(DCGAN's generator, Radford et al. 2016, https://arxiv.org/abs/1511.06434, sized for a CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle

__all__ = ["ConvDecoder", "heldout_images", "save_rows"]


class ConvDecoder(nn.Module):
    """``(B, in_dim) -> (B, out_channels, image_size, image_size)``, unbounded outputs.

    ``Linear -> (widths[0], 4, 4)``, then one ``ConvTranspose2d(4, stride 2) -> BatchNorm ->
    ReLU`` per doubling (each halving the width, down to ``widths[-1]``), then a ``3x3``
    convolution to ``out_channels``. Sides that are not ``4 * 2^k`` are resized at the end.

    Args:
        in_dim: code size. out_channels: output channels (e.g. ``C``, or ``2C`` for a mean and
            a log-scale per pixel). image_size: output side.
        widths: channels of the first and the last feature map.
    """

    def __init__(
        self, in_dim: int, out_channels: int, image_size: int, widths: Sequence[int] = (256, 32)
    ) -> None:
        super().__init__()
        if image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {image_size}")
        self.image_size, self.start = image_size, 4
        ups = max(0, math.ceil(math.log2(image_size / self.start)))
        first, last = widths[0], widths[-1]
        self.fc = nn.Linear(in_dim, first * self.start * self.start)
        layers: list[nn.Module] = [nn.BatchNorm2d(first), nn.ReLU(inplace=True)]
        c = first
        for _ in range(ups):
            c_out = max(last, c // 2)
            layers += [
                nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c = c_out
        layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.first = first

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(z.shape[0], self.first, self.start, self.start)  # (B, W0, 4, 4)
        x = self.net(x)  # (B, out, 4 * 2^k, 4 * 2^k)
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        return x


def heldout_images(data: DataBundle, limit: int = 2000) -> Tensor:
    """The first ``limit`` test images of ``data`` (``data.probe``'s test split), uint8
    ``(N, C, H, W)`` on the CPU; an empty tensor when the data has no test split."""
    probe = data.probe
    if probe is None or "test" not in probe.splits:
        return torch.empty(0, dtype=torch.uint8)
    out, n = [], 0
    for images, _ in probe.splits["test"]:
        out.append(images[: limit - n])
        n += out[-1].shape[0]
        if n >= limit:
            break
    return torch.cat(out)


def save_rows(path: Path, rows: Sequence[Tensor], *, nrow: int | None = None) -> str:
    """Write ``rows`` (each ``(n, C, H, W)`` in ``[0, 1]``, same ``n``) as one PNG grid, one row
    each (or ``nrow`` images a row); returns the file name."""
    from torchvision.utils import save_image

    images = torch.cat([r.detach().float().cpu().clamp(0, 1) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, path, nrow=nrow or rows[0].shape[0], padding=1, pad_value=1.0)
    return path.name
