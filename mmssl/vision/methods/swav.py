r"""SwAV: swapping assignments between views (Caron et al. 2020, https://arxiv.org/abs/2006.09882).

Each crop's normalised projection :math:`z` is scored against :math:`K` learnable unit
prototypes :math:`C`. The codes :math:`q` of the global crops come from Sinkhorn-Knopp on the
detached scores (equal mass for every prototype over the batch, plus an optional queue of
earlier projections), and every other crop must predict them (core :func:`sinkhorn_knopp`,
:func:`swav_loss`):

.. math::
    \mathcal{L} = \frac{1}{|\mathcal{P}|}\sum_{(i, v) \in \mathcal{P}}
    -\sum_k q_{i,k} \log \operatorname{softmax}(z_v^\top C / \tau)_k

Multi-crop (:class:`MultiCropAugment`): two crops at full size and six local crops at half
size (the paper: 2x224 + 6x96), e.g. 2x32 + 6x16 on CIFAR-10; on digits' 16 px images the
8 px local crops carry too little and are left out (:func:`multicrop_for`). The
prototypes get no gradient during the first epoch and are renormalised after every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.memory import Queue
from mmssl.core.method import Method
from mmssl.core.objectives import sinkhorn_knopp, swav_loss
from mmssl.core.registry import register
from mmssl.vision.augment import MultiCropAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.heads import mlp_head
from mmssl.vision.methods.two_view import TwoView

_SWAV_GLOBAL_MIN, _SWAV_LOCAL = 0.14, (0.05, 0.14)  # the paper's crop areas
# Local crops of digits' 16 px images are 8 px: too little to predict the global crops' code.
# In 40-step runs on digits they cut kNN top-1 from 0.79 to 0.71 (SwAV) and 0.78 to 0.71 (DINO).
MIN_LOCAL_SIZE = 12


def multicrop_for(data: DataBundle, seed: int | None = None, **overrides: Any) -> MultiCropAugment:
    """Multi-crop views for ``data.info``: global crops of the image size, local crops of half.

    A dataset hint ``min_scale`` (digits: 0.25) raises the global crops' smallest area to it
    and scales the local crops' range by the same factor. Local crops smaller than
    ``MIN_LOCAL_SIZE`` pixels are dropped unless ``n_local`` is given (digits: two crops). ``seed=None`` draws from torch's
    generator, so a seeded run gets the same views.
    """
    info = data.info
    if seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    options = {**info.get("augment", {}), **overrides}
    lo = max(_SWAV_GLOBAL_MIN, options.pop("min_scale", _SWAV_GLOBAL_MIN))
    factor = lo / _SWAV_GLOBAL_MIN
    options.setdefault("global_scale", (lo, 1.0))
    options.setdefault("local_scale", (_SWAV_LOCAL[0] * factor, _SWAV_LOCAL[1] * factor))
    size = info.get("image_size", 32)
    options.setdefault("local_size", size // 2)
    if options["local_size"] < MIN_LOCAL_SIZE:
        options.setdefault("n_local", 0)
    return MultiCropAugment(size, mean=info["mean"], std=info["std"], seed=seed, **options)


def encode_multicrop(encoder: nn.Module, crops: Sequence[Tensor]) -> list[Tensor]:
    """``encoder`` over crops of mixed sizes, one call per run of same-sized crops (as the
    paper's code, so batch norm sees them together) -> one ``(B, D)`` per crop."""
    out: list[Tensor] = []
    start = 0
    while start < len(crops):
        end = start + 1
        while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
            end += 1
        out.extend(encoder(torch.cat(list(crops[start:end]))).chunk(end - start))
        start = end
    return out


@register("swav")
class SwAV(Method):
    r"""SwAV with multi-crop, online Sinkhorn codes and an optional queue.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: default ``mlp_head(D, proj_hidden, proj_dim)`` (paper: 2048, 128).
        augment: uint8 batch -> crops, global first; default :class:`MultiCropAugment`.
        num_prototypes: :math:`K` (3000). temperature: :math:`\tau` (0.1).
        epsilon, sinkhorn_iterations: Sinkhorn's :math:`\epsilon` (0.05) and iterations (3).
        queue_size: projections of earlier batches per global crop added to Sinkhorn's batch
            once that many have been stored (0: none; the paper: 3840 for small batches).
        freeze_prototypes_steps: optimizer steps with no gradient to the prototypes (one epoch).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/clustering"
    modality: ClassVar[str] = "vision"
    # Paper: LARS lr 4.8 at batch 4096, 400+ epochs. Cut to a CPU budget as SimCLR (TwoView).
    defaults: ClassVar[dict[str, Any]] = dict(TwoView.defaults)
    steps_done: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        augment: MultiCropAugment | None = None,
        *,
        proj_hidden: int = 2048,
        proj_dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_size: int = 0,
        freeze_prototypes_steps: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        if projector is None:
            projector = mlp_head(encoder.out_dim, proj_hidden, proj_dim)
        self.projector = projector
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.views = augment if augment is not None else MultiCropAugment()
        self.normalize = self.views.normalize
        self.queues = nn.ModuleList(
            Queue(proj_dim, queue_size) for _ in range(self.views.n_global if queue_size else 0)
        )
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.temperature, self.epsilon, self.iterations = temperature, epsilon, sinkhorn_iterations
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.normalize_prototypes()

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        w = self.prototypes.weight
        w.copy_(F.normalize(w, dim=1))

    def augment(self, images: Tensor) -> list[Tensor]:
        return self.views(images)

    def forward(self, crops: list[Tensor]) -> dict[str, Tensor]:
        z = [F.normalize(self.projector(h), dim=1) for h in encode_multicrop(self.encoder, crops)]
        w = self.prototypes.weight  # (K, P), unit rows
        if int(self.steps_done) < self.freeze_prototypes_steps:
            w = w.detach()
        scores = [zi @ w.T for zi in z]  # each (B, K)
        codes = []
        for i in range(self.views.n_global):
            s = scores[i].detach()
            # equal partition over every process's batch; a queue (the same on every process,
            # it stores gathered keys) already spans the processes, so it is not gathered again
            gather = True
            if self.queues and int(self.steps_done) * s.shape[0] >= self.queues[i].size:
                s = torch.cat([s, self.queues[i].get() @ w.detach().T])  # (B + Q, K)
                gather = False
            codes.append(
                sinkhorn_knopp(s, epsilon=self.epsilon, iterations=self.iterations, gather=gather)
            )
        codes = [q[: z[0].shape[0]] for q in codes]  # (B, K) each: this batch's rows
        if self.training:
            for queue, zi in zip(self.queues, z, strict=False):
                queue.enqueue(zi.detach())
        return {"loss": swav_loss(scores, codes, temperature=self.temperature)}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Count the step (for the prototype freeze and the queue) and renormalise prototypes."""
        self.steps_done.fill_(step)
        self.normalize_prototypes()

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
        proj_hidden: int = 2048,
        proj_dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.03,
        queue_size: int = 0,
        seed: int | None = None,
        **augment: Any,
    ) -> SwAV:
        """SwAV for ``data``: multi-crop sized by ``data.info`` (``augment`` overrides
        :class:`MultiCropAugment`, e.g. ``n_local=4``), prototypes frozen for one epoch.

        ``epsilon`` 0.03 (the paper's 0.05 is for batch 4096; its code's advice for small
        batches is to lower it): in 32-step runs of batch 256 on digits 0.05 gives codes too
        flat to leave random-init features (kNN 0.79), 0.03 reaches 0.88."""
        info = data.info
        enc = build_encoder(encoder, info.get("in_channels", 3), info.get("image_size", 32))
        return cls(
            enc,
            augment=multicrop_for(data, seed, **augment),
            proj_hidden=proj_hidden,
            proj_dim=proj_dim,
            num_prototypes=num_prototypes,
            temperature=temperature,
            epsilon=epsilon,
            queue_size=queue_size,
            freeze_prototypes_steps=len(data.train),  # type: ignore[arg-type]
        )
