r"""AMDIM: Augmented Multiscale Deep InfoMax (Bachman et al. 2019, https://arxiv.org/abs/1906.00910).

Deep InfoMax across two augmented views, at several scales. One encoder gives, for each view,
a global vector (the paper's 1x1 features) and two local maps from its stages: a finer one
(the paper's 7x7) and a coarser one (5x5). :class:`~mmssl.vision.methods.infomax.EmbeddingHead`
embeds each into :math:`\mathbb{R}^E`. Three InfoNCE tasks, each from view 1 to view 2 and back:
global -> coarse, global -> fine, and coarse -> coarse (one random coarse location per image
as the source). A task scores its source :math:`a_i` against every target position
:math:`b_{j,p}` of the batch; with :math:`s = a_i^\top b_{j,p} / \sqrt{E}`,

.. math::
    \mathcal{L} = \tfrac12 \sum_{\mathrm{dirs}} \sum_{\mathrm{tasks}} \Big[
    \mathrm{NCE}\big(c \tanh(s / c)\big) + \lambda\, \mathbb{E}[s^2] \Big],

where positives are the pairs of one image (core :func:`~mmssl.core.objectives.nce_loss`,
each positive against its row's negatives), and the squared-score penalty and the soft
clipping :math:`c \tanh(s / c)` are the paper's stabilisers (values from the authors' code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives import nce_loss
from mmssl.core.registry import register
from mmssl.vision.augment import Normalize, SimCLRAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.infomax import (
    EmbeddingHead,
    encode_with_maps,
    local_global_scores,
    stage_outputs,
)
from mmssl.vision.methods.two_view import TwoView, augment_for

__all__ = ["AMDIM", "clipped_nce"]


def clipped_nce(
    src: Tensor, target: Tensor, *, tclip: float = 20.0, score_reg: float = 5e-2
) -> tuple[Tensor, Tensor]:
    r"""AMDIM's NCE from sources ``(B, E)`` to target maps ``(B, E, H, W)``: returns the NCE
    loss over the soft-clipped scores :math:`c \tanh(s / c)` and the penalty
    :math:`\lambda\,\mathbb{E}[s^2]` on the raw scores :math:`s = a^\top b / \sqrt{E}`."""
    scores, pos = local_global_scores(src, target, math.sqrt(src.shape[1]))  # (B, B * H * W)
    clipped = tclip * torch.tanh(scores / tclip)
    return nce_loss(clipped, pos), score_reg * scores.pow(2).mean()


@register("amdim")
class AMDIM(Method):
    """AMDIM: global-to-local and local-to-local InfoNCE across two views, at two scales.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        augment: uint8 batch -> two float views; default :class:`SimCLRAugment`.
        layers: the (fine, coarse) local maps: indices into
            :func:`~mmssl.vision.methods.infomax.stage_outputs` or module names (default the
            second and third stages: 8x8 and 4x4 for 32x32 images).
        image_shape: ``(C, H, W)`` of the training images, to size the embeddings.
        n_rkhs: embedding size :math:`E` (the authors' code: 1024).
        tclip: :math:`c`, the soft-clipping range (20). score_reg: :math:`\\lambda` (5e-2).
        seed: seeds the random source locations of the local-to-local task.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/mutual-information"
    modality: ClassVar[str] = "vision"
    # The authors' code: Adam (amsgrad) lr 2e-4, betas (0.8, 0.999), batch 200, 150 epochs.
    # Cut to a CPU budget: TwoView's (8 epochs, AdamW lr 2e-3, cosine) at batch 64. On digits
    # (seed 0, kNN top-1; random init 73.8): 90.7 at batch 64 (152 steps, 5 CPU minutes),
    # 84.6 at batch 256 (32 steps).
    defaults: ClassVar[dict[str, Any]] = {**TwoView.defaults, "batch_size": 64}

    def __init__(
        self,
        encoder: nn.Module,
        augment: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
        *,
        layers: Sequence[int | str] = (1, 2),
        image_shape: Sequence[int] = (3, 32, 32),
        n_rkhs: int = 1024,
        tclip: float = 20.0,
        score_reg: float = 5e-2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not tclip > 0 or score_reg < 0:
            raise ValueError(f"need tclip > 0 and score_reg >= 0, got {tclip} and {score_reg}")
        stages = dict(stage_outputs(encoder, image_shape))
        names = [list(stages)[i] if isinstance(i, int) else i for i in layers]
        if len(names) != 2 or any(n not in stages for n in names):
            raise ValueError(f"layers must name two stage outputs of {list(stages)}, got {layers}")
        self.encoder, self.layers = encoder, names
        self.global_head = EmbeddingHead(encoder.out_dim, n_rkhs, layer_norm=False)
        self.local_heads = nn.ModuleList(
            EmbeddingHead(stages[n][0], n_rkhs, layer_norm=False) for n in names
        )
        self.views = augment if augment is not None else SimCLRAugment(image_shape[-1])
        self.normalize = getattr(self.views, "normalize", None) or Normalize()
        self.tclip, self.score_reg = tclip, score_reg
        self.generators = SeededGenerators(seed)

    def augment(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.views(images)

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Embedded global ``(B, E)``, fine ``(B, E, H1, W1)`` and coarse ``(B, E, H2, W2)``."""
        y, maps = encode_with_maps(self.encoder, x, self.layers)
        fine, coarse = (head(m) for head, m in zip(self.local_heads, maps, strict=True))
        return self.global_head(y), fine, coarse

    def _random_location(self, fmap: Tensor) -> Tensor:
        """One random position's vector per image of ``fmap`` ``(B, E, H, W)`` -> ``(B, E)``."""
        b, _, h, w = fmap.shape
        g = self.generators(fmap.device)
        idx = torch.randint(h * w, (b,), generator=g, device=g.device).to(fmap.device)
        return fmap.flatten(2)[torch.arange(b, device=fmap.device), :, idx]  # (B, E)

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        f1, f2 = (self._features(v) for v in batch)
        terms: dict[str, Tensor] = {}
        for (g_a, _, c_a), (_, fine_b, coarse_b) in ((f1, f2), (f2, f1)):
            tasks = {
                "global_coarse": (g_a, coarse_b),
                "global_fine": (g_a, fine_b),
                "coarse_coarse": (self._random_location(c_a), coarse_b),
            }
            for name, (src, tgt) in tasks.items():
                nce, reg = clipped_nce(src, tgt, tclip=self.tclip, score_reg=self.score_reg)
                terms[name] = terms.get(name, 0.0) + 0.5 * nce
                terms["score_reg"] = terms.get("score_reg", 0.0) + 0.5 * reg
        return {"loss": sum(terms.values()), **terms}

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
        layers: Sequence[int | str] = (1, 2),
        n_rkhs: int = 1024,
        tclip: float = 20.0,
        score_reg: float = 5e-2,
        seed: int | None = None,
        **augment: Any,
    ) -> AMDIM:
        """AMDIM for ``data``: SimCLR views (``augment`` overrides
        :class:`~mmssl.vision.augment.SimCLRAugment`)."""
        info = data.info
        c, s = info.get("in_channels", 3), info.get("image_size", 32)
        views = augment_for(data, seed, **augment)
        return cls(
            build_encoder(encoder, c, s),
            views,
            layers=layers,
            image_shape=(c, s, s),
            n_rkhs=n_rkhs,
            tclip=tclip,
            score_reg=score_reg,
            seed=int(torch.randint(2**31 - 1, ())) if seed is None else seed,
        )
