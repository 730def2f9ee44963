"""Image encoders: float normalised images ``(B, C, H, W)`` -> pooled features ``(B, D)``.

Every encoder has an ``out_dim`` attribute (``D``). The CIFAR ResNets follow SimCLR's CIFAR-10
variant (Chen et al. 2020, https://arxiv.org/abs/2002.05709, appendix B.9): the 7x7 stride-2
stem becomes a 3x3 stride-1 convolution and the max-pool is dropped, so 32x32 images keep their
resolution in the first stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn

__all__ = [
    "ENCODERS",
    "ResNetCIFAR",
    "SmallResNet",
    "build_encoder",
    "resnet18_cifar",
    "resnet50_cifar",
]


class ResNetCIFAR(nn.Module):
    """A torchvision ResNet with the CIFAR stem and no classifier: ``(B, C, H, W) -> (B, D)``."""

    def __init__(self, arch: str = "resnet18", in_channels: int = 3) -> None:
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        net.conv1 = nn.Conv2d(
            in_channels, net.conv1.out_channels, 3, stride=1, padding=1, bias=False
        )
        net.maxpool = nn.Identity()
        self.out_dim: int = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, D)


def resnet18_cifar(in_channels: int = 3) -> ResNetCIFAR:
    """ResNet-18 with the CIFAR stem, ``(B, C, 32, 32) -> (B, 512)``; 11.2 M parameters."""
    return ResNetCIFAR("resnet18", in_channels)


def resnet50_cifar(in_channels: int = 3) -> ResNetCIFAR:
    """ResNet-50 with the CIFAR stem, ``(B, C, 32, 32) -> (B, 2048)``; 23.5 M parameters."""
    return ResNetCIFAR("resnet50", in_channels)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet sized for CPU work: ``(B, C, H, W) -> (B, widths[-1])``.

    A 3x3 stem (stride ``stem_stride``), then one stage per width of ``blocks`` basic blocks,
    each stage after the first halving the resolution, then global average pooling. The
    default (widths 32/64/128/256, one block each, stride-2 stem) has 1.2 M parameters and
    costs about 1/35 of the CIFAR ResNet-18's multiply-adds at 32x32.

    Args:
        in_channels: image channels.
        widths: channels of each stage.
        blocks: basic blocks per stage (one int for all stages, or one per stage).
        stem_stride: stride of the stem convolution (1 keeps full resolution in stage 1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: int | Sequence[int] = 1,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        depth = [blocks] * len(widths) if isinstance(blocks, int) else list(blocks)
        if len(depth) != len(widths):
            raise ValueError(f"blocks needs one entry per stage ({len(widths)}), got {len(depth)}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        c = widths[0]
        for i, (w, n) in enumerate(zip(widths, depth, strict=True)):
            for j in range(n):
                layers.append(_BasicBlock(c, w, stride=2 if i > 0 and j == 0 else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim: int = c

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, D)


ENCODERS = ("small", "resnet18", "resnet50")


def build_encoder(name: str, in_channels: int = 3) -> nn.Module:
    """``small`` (:class:`SmallResNet`), ``resnet18`` or ``resnet50`` (CIFAR stem)."""
    if name == "small":
        return SmallResNet(in_channels)
    if name == "resnet18":
        return resnet18_cifar(in_channels)
    if name == "resnet50":
        return resnet50_cifar(in_channels)
    raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")
