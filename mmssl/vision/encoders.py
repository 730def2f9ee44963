"""Image encoders: float normalised images ``(B, C, H, W)`` -> pooled features ``(B, D)``.

Every encoder has an ``out_dim`` attribute (``D``). The CIFAR ResNets follow SimCLR's CIFAR-10
variant (Chen et al. 2020, https://arxiv.org/abs/2002.05709, appendix B.9): the 7x7 stride-2
stem becomes a 3x3 stride-1 convolution and the max-pool is dropped, so 32x32 images keep their
resolution in the first stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

__all__ = [
    "ENCODERS",
    "ResNetCIFAR",
    "SmallResNet",
    "VisionTransformer",
    "build_encoder",
    "resnet18_cifar",
    "resnet50_cifar",
    "vit_small",
    "vit_tiny",
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


class _ViTBlock(nn.Module):
    """Pre-norm transformer block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, d / heads)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d / heads)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))  # (B, N, D)
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al. 2021, https://arxiv.org/abs/2010.11929): ``(B, C, H, W) -> (B, D)``.

    Non-overlapping ``patch_size`` patches, a class token, learned position embeddings,
    ``depth`` pre-norm blocks, and the final-norm class token as the representation. Position
    embeddings are made for ``image_size`` and interpolated bicubically for other sizes, so
    DINO's and SwAV's small local crops go through the same network.

    Args:
        image_size: side length the position embeddings are made for.
        patch_size: patch side (4 for 32x32 CIFAR: an 8x8 grid of 64 tokens).
        in_channels: image channels.
        dim: token width ``D``. depth: blocks. heads: attention heads. mlp_ratio: MLP width / D.
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        in_channels: int = 3,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size or dim % heads:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size}) "
                f"and dim ({dim}) a multiple of heads ({heads})"
            )
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, dim))
        self.blocks = nn.ModuleList(_ViTBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim: int = dim
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _pos_embed(self, h: int, w: int) -> Tensor:
        """Position embeddings ``(1, 1 + h * w, D)`` for an ``h x w`` patch grid."""
        if (h, w) == (self.grid, self.grid):
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)  # (1, 1 + h * w, D)

    def tokens(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """Final-norm tokens ``(B, 1 + L, D)``: the class token, then the patch tokens.

        ``keep`` ``(B, K)`` (patch indices in ``[0, h * w)``, raster order) runs the blocks on
        those ``K`` patches only, each with its own position embedding (MAE's encoder sees
        the visible patches alone): then ``L = K``, else ``L = h * w``.
        """
        x = self.patch_embed(x)  # (B, D, H / p, W / p)
        b, d, h, w = x.shape
        pos = self._pos_embed(h, w)  # (1, 1 + h * w, D)
        x = x.flatten(2).transpose(1, 2) + pos[:, 1:]  # (B, h * w, D)
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, d))  # (B, K, D)
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.tokens(x)[:, 0]  # (B, D), the class token


def vit_tiny(in_channels: int = 3, image_size: int = 32, patch_size: int = 4) -> VisionTransformer:
    """ViT-Tiny (DeiT): D=192, 12 blocks, 3 heads; 5.4 M parameters."""
    return VisionTransformer(image_size, patch_size, in_channels, dim=192, depth=12, heads=3)


def vit_small(in_channels: int = 3, image_size: int = 32, patch_size: int = 4) -> VisionTransformer:
    """ViT-Small (DeiT, DINO): D=384, 12 blocks, 6 heads; 21.3 M parameters."""
    return VisionTransformer(image_size, patch_size, in_channels, dim=384, depth=12, heads=6)


ENCODERS = ("small", "resnet18", "resnet50", "vit_tiny", "vit_small")


def build_encoder(name: str, in_channels: int = 3, image_size: int = 32) -> nn.Module:
    """``small`` (:class:`SmallResNet`), ``resnet18`` or ``resnet50`` (CIFAR stem), ``vit_tiny``
    or ``vit_small`` (patch 4, position embeddings for ``image_size``; ResNets ignore it)."""
    if name == "small":
        return SmallResNet(in_channels)
    if name == "resnet18":
        return resnet18_cifar(in_channels)
    if name == "resnet50":
        return resnet50_cifar(in_channels)
    if name == "vit_tiny":
        return vit_tiny(in_channels, image_size)
    if name == "vit_small":
        return vit_small(in_channels, image_size)
    raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")
