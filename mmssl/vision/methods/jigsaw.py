r"""Jigsaw puzzles (Noroozi and Favaro 2016, https://arxiv.org/abs/1603.09246).

Each image is cut into a 3x3 grid of cells and a tile is taken at a random offset inside each
cell, which leaves a random gap between neighbours so that edges and lines running across
cells give no shortcut. The nine tiles are shuffled by one of :math:`N` fixed permutations
:math:`P` (core :func:`hamming_permutations`, far apart in Hamming distance), each goes through
the same encoder :math:`f` and a per-tile layer :math:`h`, and the context-free network
classifies the concatenation :math:`[h(f(t_{P_{y,1}})), \dots, h(f(t_{P_{y,9}}))]` into the
permutation index :math:`y`:

.. math::
    \mathcal{L} = -\frac{1}{B}\sum_b \log \operatorname{softmax}\big(g([h(f(t_{b,P_{y_b,i}}))]_{i=1}^{9})\big)_{y_b}

Every tile is standardised on its own (zero mean, unit variance), as the paper does so that
low-level statistics cannot locate it. Probes use :math:`f` on the whole image, standardised
per image in the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import hamming_permutations, pretext_loss, shuffle_tiles
from mmssl.core.registry import register
from mmssl.vision.augment import horizontal_flip, random_crop, to_float
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.pirl import jigsaw_cells

_PAPER_TILE_FRACTION = 64 / 75  # a 64x64 tile out of each 75x75 cell of a 225x225 crop


def standardize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Each image ``(N, C, H, W)`` to zero mean and unit variance over its own pixels."""
    mean = x.mean((1, 2, 3), keepdim=True)
    std = x.std((1, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


@register("jigsaw")
class Jigsaw(Method):
    r"""The context-free jigsaw network on a shared encoder.

    Args:
        encoder: float images ``(N, C, h, w)`` of any size -> ``(N, D)``, with ``out_dim``.
        image_size: side of the training images (a ``grid * cell`` crop is cut from them).
        grid: tiles per side (3).
        num_permutations: :math:`N`, the classes (1000 in the paper).
        tile_size: tile side; default the paper's 64/75 of a cell, rounded down (8 px of a
            10 px cell at 32 px: gaps of 2 px, the paper's 11 of 75).
        tile_dim: width of the per-tile layer :math:`h` (512, the paper's fc6).
        hidden: width of the classifier's hidden layer (4096, the paper's fc7).
        hflip_prob: horizontal flip of the whole image before cutting.
        seed: picks the permutation set and seeds the crops and the permutations drawn.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/relative-position"
    modality: ClassVar[str] = "vision"
    # The paper (ImageNet, AlexNet per tile): 350k steps of batch 256, SGD lr 0.01. Cut to a
    # CPU budget: 8 epochs of batch 128 with AdamW (nine small tiles cost about two images).
    # Digits are upscaled to 32 px: at the default 16 px a tile is 4x4 pixels (2x2 of the
    # original 8x8 digit) and the trained encoder fell below random init (kNN 77.9 vs 81.3);
    # at 32 px it scores 82.4 vs 65.3 (`mmssl pretrain vision --method jigsaw --seed 0`).
    defaults: ClassVar[dict[str, Any]] = {
        "data_options": {"image_size": 32},
        "epochs": 8,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "warmup_epochs": 0.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: nn.Module,
        image_size: int = 32,
        *,
        grid: int = 3,
        num_permutations: int = 1000,
        tile_size: int | None = None,
        tile_dim: int = 512,
        hidden: int = 4096,
        hflip_prob: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        cell = image_size // grid
        tile = int(cell * _PAPER_TILE_FRACTION) if tile_size is None else tile_size
        if grid < 2 or not 1 <= tile <= cell:
            raise ValueError(
                f"need grid >= 2 and 1 <= tile_size <= image_size // grid = {cell}, got grid "
                f"{grid} and tile_size {tile}; the paper uses 3 and 64/75 of a cell"
            )
        self.encoder = encoder
        self.tile_head = nn.Sequential(nn.Linear(encoder.out_dim, tile_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(
            nn.Linear(grid * grid * tile_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_permutations),
        )
        self.register_buffer(
            "permutations", hamming_permutations(num_permutations, grid**2, seed=seed)
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.grid, self.cell, self.tile, self.hflip_prob = grid, cell, tile, hflip_prob

    def augment(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` -> shuffled standardised tiles ``(B, grid², C, t, t)`` and the
        permutation indices ``(B,)``."""
        g = self.generator
        x = random_crop(to_float(images), self.grid * self.cell, generator=g)  # (B, C, 3c, 3c)
        if self.hflip_prob > 0:
            x = horizontal_flip(x, p=self.hflip_prob, generator=g)
        cells = jigsaw_cells(x, self.grid)  # (B, 9, C, c, c)
        b, n = cells.shape[:2]
        tiles = standardize(random_crop(cells.flatten(0, 1), self.tile, generator=g))
        targets = torch.randint(self.permutations.shape[0], (b,), generator=g).to(x.device)
        return shuffle_tiles(tiles.unflatten(0, (b, n)), self.permutations, targets), targets

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        tiles, targets = batch
        h = self.tile_head(self.encoder(tiles.flatten(0, 1)))  # (B * 9, tile_dim)
        logits = self.classifier(h.unflatten(0, tiles.shape[:2]).flatten(1))  # (B, N)
        loss = pretext_loss(logits, targets)
        accuracy = (logits.argmax(1) == targets).float().mean()
        return {"loss": loss, "accuracy": accuracy.detach()}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or [0, 1] float images ``(B, C, H, W)`` -> encoder features ``(B, D)`` of the
        whole image, standardised per image as the tiles were."""
        return self.encoder(standardize(to_float(images)))

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        grid: int = 3,
        num_permutations: int = 1000,
        tile_size: int | None = None,
        tile_dim: int = 512,
        hidden: int = 1024,
        hflip_prob: float | None = None,
        seed: int | None = None,
    ) -> Jigsaw:
        """Jigsaw for ``data``: the ``encoder`` named; the paper's 1000 permutations and a
        1024-wide hidden layer at CPU scale (the paper: 4096); flips as the dataset allows."""
        info = data.info
        size = info.get("image_size", 32)
        enc = build_encoder(encoder, info.get("in_channels", 3), size)
        flip = info.get("augment", {}).get("hflip_prob", 0.5) if hflip_prob is None else hflip_prob
        return cls(
            enc,
            size,
            grid=grid,
            num_permutations=num_permutations,
            tile_size=tile_size,
            tile_dim=tile_dim,
            hidden=hidden,
            hflip_prob=flip,
            seed=int(torch.randint(2**31 - 1, ())) if seed is None else seed,
        )
