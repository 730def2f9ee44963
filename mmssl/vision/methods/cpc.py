r"""CPC v2: contrastive predictive coding on a grid of patches (Hénaff et al. 2020,
https://arxiv.org/abs/1905.09272; CPC, van den Oord et al. 2018, https://arxiv.org/abs/1807.03748).

Each image is cut into a ``G x G`` grid of overlapping patches (a quarter of the image side,
at half-patch stride: 7x7, as 64-pixel patches of a 256 crop in the paper). The encoder maps
every patch to a latent :math:`z_{i,j}`; a masked convolutional context network sees only the
rows at and above :math:`i` and gives :math:`c_{i,j}`; a linear map :math:`W_k` per offset
predicts the latent :math:`k` rows below, scored by InfoNCE against every other patch latent
of the batch (core :func:`cpc_loss`, negatives ``"all"``):

.. math::
    \mathcal{L} = -\frac{1}{K}\sum_{k}\mathbb{E}_{b,i,j}\Big[\log
    \frac{\exp(z_{b,i+k,j}^\top W_k c_{b,i,j})}{\sum_{z_l}\exp(z_l^\top W_k c_{b,i,j})}\Big]

Each column of the grid is one sequence over its rows; the latents are projected linearly
(to 64 dimensions) before scoring, as in CPC v2's pseudo-code. CPC v2's changes kept here:
layer norm in place of batch norm in the encoder (batch statistics would let patches see each
other), per-patch augmentation (random horizontal flip, and colour dropping: two of three
channels zeroed, off in :meth:`CPC.build`, see there), and optionally prediction in more than
one direction (the grid rotated, one context network, predictors per direction, losses
averaged). Offsets start two rows below by default (``skip``). :meth:`embed` is the mean of
the patch latents :math:`z_{i,j}` over the grid of the whole, unaugmented image (not the
context vectors, not the encoder on the whole image).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import CPCPredictor, cpc_loss
from mmssl.core.registry import register
from mmssl.vision.augment import CropFlipAugment, horizontal_flip
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.rotation import crop_flip_for

PATCH_FRACTION = 64 / 256  # the paper's 64-pixel patches of a 256-pixel crop
DIRECTIONS = {1: (0,), 2: (0, 2), 4: (0, 1, 2, 3)}  # quarter turns of the grid; 0: top-down


def patch_grid(x: Tensor, patch: int, stride: int) -> Tensor:
    """``(B, C, H, W)`` -> overlapping patches ``(B, G, G', C, patch, patch)``, row-major."""
    grid = x.unfold(2, patch, stride).unfold(3, patch, stride)  # (B, C, G, G', p, p)
    return grid.permute(0, 2, 3, 1, 4, 5)


def columns(grid: Tensor) -> Tensor:
    """A grid ``(B, D, G, G')`` -> its columns as sequences over the rows, ``(B * G', G, D)``."""
    return grid.permute(0, 3, 2, 1).flatten(0, 1)


def layer_norm_(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by layer norm over (C, H, W) (``GroupNorm``
    with one group), in place; returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(1, child.num_features))
        else:
            layer_norm_(child)
    return module


class MaskedContext(nn.Module):
    """CPC v2's PixelCNN-style context network: ``(B, D, G, G) -> (B, D, G, G)``, where the
    output at row ``i`` depends only on rows ``<= i``. Each residual block is 1x1 -> ReLU ->
    1x3 -> 2x1 over the row above and the row itself -> ReLU -> 1x1."""

    def __init__(self, dim: int, hidden: int = 256, layers: int = 5) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [
                    nn.Conv2d(dim, hidden, 1),
                    nn.Conv2d(hidden, hidden, (1, 3), padding=(0, 1)),
                    nn.Conv2d(hidden, hidden, (2, 1)),
                    nn.Conv2d(hidden, dim, 1),
                ]
            )
            for _ in range(layers)
        )

    def forward(self, z: Tensor) -> Tensor:
        c = z
        for inp, row, up, out in self.blocks:
            h = row(F.relu(inp(c)))
            h = up(F.pad(h, (0, 0, 1, 0)))  # pad one row on top: row i sees rows i - 1 and i
            c = c + out(F.relu(h))
        return F.relu(c)


@register("cpc")
@register("cpcv2")
class CPC(Method):
    r"""CPC v2 on images.

    Args:
        encoder: float patches ``(N, C, p, p)`` -> ``(N, D)``, with ``out_dim`` (layer norm in
            CPC v2: see :func:`layer_norm_`).
        augment: the whole image's view before cutting; default :class:`CropFlipAugment`.
        patch: patch side; default a quarter of the view. stride: default half a patch.
        steps: :math:`K`, offsets predicted. skip: nearest rows left out, so that offsets run
            ``skip + 1 .. skip + K``. The default 1 predicts 2..4 rows below: the next row's
            patches overlap the context's own row by half a patch, a low-level shortcut (CPC
            v2's pseudo-code also skips the nearest offsets); 0 predicts from the next row on.
        directions: 1 (top-down, CPC v1), 2 (and bottom-up) or 4 (and both sideways, CPC v2).
        context_hidden, context_layers: the context network's width (256) and blocks (5).
        target_dim: the latents are projected linearly to this size before they are scored
            (64, CPC v2's pseudo-code); the predictors :math:`W_k` map ``D -> target_dim``.
        temperature: of the InfoNCE scores (1: plain dot products).
        flip_prob, color_drop_prob: per-patch flip and colour dropping (CPC v2: each patch).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/mutual-information"
    modality: ClassVar[str] = "vision"
    # The paper (ImageNet, ResNet-161 per patch): batch 512, Adam, ~200 epochs. Cut to a CPU
    # budget: 49 patches an image through the encoder, so 4 epochs of batch 32 with AdamW at
    # lr 5e-4 (at 2e-3 the loss barely left chance). On a 2000-image CIFAR-10 subset
    # (`--data cifar10 --subset 2000 --seed 0`) the grid-mean kNN is 27.8 vs 25.6 at random init.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 4,
        "batch_size": 32,
        "optimizer": "adamw",
        "lr": 5e-4,
        "weight_decay": 1e-4,
        "warmup_epochs": 0.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: nn.Module,
        augment: CropFlipAugment | None = None,
        *,
        patch: int | None = None,
        stride: int | None = None,
        steps: int = 3,
        skip: int = 1,
        directions: int = 1,
        context_hidden: int = 256,
        context_layers: int = 5,
        target_dim: int = 64,
        temperature: float = 1.0,
        flip_prob: float = 0.5,
        color_drop_prob: float = 1.0,
    ) -> None:
        super().__init__()
        self.views = augment if augment is not None else CropFlipAugment()
        self.normalize = self.views.normalize
        size = self.views.image_size
        self.patch = patch or round(size * PATCH_FRACTION)
        self.stride = stride or max(1, self.patch // 2)
        rows = (size - self.patch) // self.stride + 1
        if directions not in DIRECTIONS or steps < 1 or skip < 0 or skip + steps >= rows:
            raise ValueError(
                f"need directions in {tuple(DIRECTIONS)}, steps >= 1, skip >= 0 and "
                f"skip + steps < {rows} grid rows; got {directions}, {steps}, {skip}"
            )
        dim = encoder.out_dim
        self.encoder = encoder
        self.context = MaskedContext(dim, context_hidden, context_layers)
        self.target = nn.Linear(dim, target_dim)  # the pseudo-code's 1x1 conv on the latents
        self.predictors = nn.ModuleList(
            CPCPredictor(dim, target_dim, steps) for _ in range(directions)
        )
        self.turns, self.skip, self.temperature = DIRECTIONS[directions], skip, temperature
        self.flip_prob, self.color_drop_prob = flip_prob, color_drop_prob

    def latents(self, patches: Tensor) -> Tensor:
        """Patches ``(B, G, G', C, p, p)`` -> latents ``(B, D, G, G')``."""
        z = self.encoder(patches.flatten(0, 2))  # (B * G * G', D)
        return z.unflatten(0, patches.shape[:3]).permute(0, 3, 1, 2)

    def augment(self, images: Tensor) -> Tensor:
        """uint8 ``(B, C, H, W)`` -> augmented patches ``(B, G, G', C, p, p)``, normalised."""
        g = self.views.generator
        patches = patch_grid(self.views.view(images), self.patch, self.stride)
        flat = patches.flatten(0, 2)  # (N, C, p, p)
        if self.flip_prob > 0:
            flat = horizontal_flip(flat, p=self.flip_prob, generator=g)
        if self.color_drop_prob > 0 and flat.shape[1] > 1:
            n, c = flat.shape[:2]
            keep = torch.randint(c, (n,), generator=g).to(flat.device)  # (N,)
            drop = (torch.rand(n, generator=g) < self.color_drop_prob).to(flat.device)
            mask = (torch.arange(c, device=flat.device) == keep[:, None]) | ~drop[:, None]
            flat = flat * mask[:, :, None, None]  # (N, C, p, p), dropped channels at the mean
        return flat.view_as(patches)

    def forward(self, patches: Tensor) -> dict[str, Tensor]:
        z = self.latents(patches)  # (B, D, G, G)
        losses = []
        for turn, predictors in zip(self.turns, self.predictors, strict=True):
            zd = torch.rot90(z, turn, dims=(2, 3))  # this direction's "down" is down the rows
            ctx = columns(self.context(zd))  # (B * G, G, D)
            tgt = self.target(columns(zd))  # (B * G, G, target_dim)
            rows = ctx.shape[1]
            losses.append(
                cpc_loss(
                    ctx[:, : rows - self.skip],
                    tgt[:, self.skip :],
                    predictors,
                    temperature=self.temperature,
                )
            )
        return {"loss": torch.stack(losses).mean()}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or [0, 1] float images ``(B, C, H, W)`` -> the mean of the patch latents over
        the grid of the whole image, ``(B, D)``."""
        patches = patch_grid(self.normalize(images), self.patch, self.stride)
        return self.latents(patches).mean((2, 3))

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        layer_norm: bool = True,
        patch: int | None = None,
        stride: int | None = None,
        steps: int = 3,
        skip: int = 1,
        directions: int = 1,
        context_hidden: int = 64,
        color_drop_prob: float = 0.0,
        temperature: float = 1.0,
        seed: int | None = None,
        **augment: Any,
    ) -> CPC:
        """CPC v2 for ``data``: the ``encoder`` named (with layer norm unless ``layer_norm`` is
        False), a grid of the crop-and-flip view (default 7x7: ``patch`` a quarter of the view,
        ``stride`` half a patch); ``augment`` overrides
        :class:`CropFlipAugment`; patches flip as the dataset allows.

        At CPU scale the context network is 64 wide (the paper: 256) and colour dropping is
        off: on the CIFAR-10 subset above it lowered kNN from 27.8 to 25.1 (the encoder never
        sees a full-colour patch in training, but probes see only those)."""
        info = data.info
        enc = build_encoder(encoder, info.get("in_channels", 3), info.get("image_size", 32))
        views = crop_flip_for(data, seed, **augment)
        return cls(
            layer_norm_(enc) if layer_norm else enc,
            views,
            patch=patch,
            stride=stride,
            steps=steps,
            skip=skip,
            directions=directions,
            context_hidden=context_hidden,
            temperature=temperature,
            flip_prob=views.hflip_prob,
            color_drop_prob=color_drop_prob,
        )
