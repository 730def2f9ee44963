r"""MoCo: Momentum Contrast (He et al. 2020, https://arxiv.org/abs/1911.05722).

A query encoder :math:`f_q` is trained with InfoNCE against the key of the other view made by
a momentum encoder :math:`f_k` and against a queue of :math:`K` earlier keys:

.. math::
    \mathcal{L} = -\log \frac{\exp(q \cdot k_+ / T)}{\exp(q \cdot k_+ / T)
    + \sum_{i=1}^{K} \exp(q \cdot k_i / T)}, \qquad \theta_k \leftarrow m\,\theta_k
    + (1 - m)\,\theta_q

**Shuffling BN.** With batch norm, a query and its positive key normalised with the same
batch statistics let the model find the positive by its statistics instead of its content.
The paper shuffles the keys across GPUs before :math:`f_k`, so each key is normalised with a
different sub-batch than its query, and unshuffles after. In one process the same is done as
in MoCo's CIFAR-10 demo: both encoders run on ``bn_splits`` sub-batches (split batch norm),
the keys in a random order. Under ``torch.distributed`` the key batch is first gathered,
shuffled across ranks with a permutation every rank draws from the same seeded generator,
encoded in its rank's share, gathered back and unshuffled (one ``all_gather`` each way, the
helpers of :mod:`mmssl.core.distributed`); the queue receives the keys of every rank.

The momentum encoder is a frozen copy (never in the optimizer), updated in
:meth:`MoCo.after_step`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.distributed import gather_no_grad, rank
from mmssl.core.memory import Queue
from mmssl.core.momentum import ema_update, frozen_copy
from mmssl.core.objectives import info_nce
from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.simclr import projection_head
from mmssl.vision.methods.two_view import TwoView, augment_for

# MoCo v1's views: 20%-minimum crops, jitter 0.4 on all four (hue included) always applied,
# grayscale 0.2, flips. cj_hue 0.8 * cj_strength 0.5 = 0.4.
RECIPE_V1: dict[str, Any] = {"min_scale": 0.2, "cj_prob": 1.0, "cj_hue": 0.8}
CIFAR_K, CIFAR_M = 4096, 0.99  # MoCo's CIFAR-10 demo (and lightly's CIFAR benchmark queue)


@register("moco")
@register("mocov1")
class MoCo(TwoView):
    r"""MoCo v1: query encoder, momentum key encoder, a queue of keys, InfoNCE.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: head after the encoder; default a linear ``D -> dim`` (v1's fc), or
            ``D -> D -> dim`` with a ReLU when ``mlp`` (v2).
        augment: uint8 batch -> (query view, key view); default MoCo v1's views.
        dim: key size. K: queue length (65536). m: momentum (0.999). T: temperature (0.07).
        bn_splits: sub-batches for split batch norm in one process (MoCo's CIFAR demo: 8; 1
            turns it off, e.g. under DDP where each rank's batch is already its own split).
        mlp: the v2 MLP head. seed: seeds the queue's initial keys and the key shuffle (the
            same on every rank, so that every rank draws the same permutation).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    recipe: ClassVar[dict[str, Any]] = RECIPE_V1
    # TwoView's CPU budget (8 epochs, batch 256, AdamW, cosine) at a lower lr, chosen on
    # digits (kNN top-1, mean of seeds 0-2, the pretrain API on an H200):
    # v1 0.896 / v2 0.886 at 5e-4, v1 0.87 / v2 0.85 at 2e-3 (random init 0.72).
    defaults: ClassVar[dict[str, Any]] = {**TwoView.defaults, "lr": 5e-4}
    # The paper: SGD lr 0.03 (batch 256), weight decay 1e-4, 200 epochs, steps at 120 and 160.

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        augment: SimCLRAugment | None = None,
        *,
        dim: int = 128,
        K: int = 65536,
        m: float = 0.999,
        T: float = 0.07,
        bn_splits: int = 8,
        mlp: bool = False,
        seed: int = 0,
    ) -> None:
        if bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {bn_splits}; MoCo's CIFAR demo uses 8")
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"m must be in [0, 1], got {m}; MoCo uses 0.999 (CIFAR demo 0.99)")
        if not T > 0:
            raise ValueError(f"T must be > 0, got {T}; MoCo v1 uses 0.07, v2 0.2")
        d = encoder.out_dim
        if projector is None:
            projector = projection_head(d, d, dim) if mlp else nn.Linear(d, dim)
        views = augment or SimCLRAugment(**type(self).recipe)
        super().__init__(encoder, info_nce, views, projector, proj_dim=dim)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(projector)
        self.queue = Queue(dim, K, generator=torch.Generator().manual_seed(seed))
        self.shuffle_generator = torch.Generator().manual_seed(seed)
        self.K, self.m, self.T, self.bn_splits = K, m, T, bn_splits

    def _split_forward(self, encoder: nn.Module, projector: nn.Module, x: Tensor) -> Tensor:
        """``projector(encoder(x))`` with batch norm over ``bn_splits`` sub-batches."""
        n = max(1, min(self.bn_splits, x.shape[0] // 2))  # batch norm needs two rows a split
        return torch.cat([projector(encoder(c)) for c in x.tensor_split(n)])  # (B, dim)

    @torch.no_grad()
    def keys(self, x: Tensor) -> Tensor:
        """Normalised keys ``(B, dim)`` of the key views ``x`` with shuffled batch norm."""
        b = x.shape[0]
        x_all = gather_no_grad(x)  # (world * B, C, H, W)
        perm = torch.randperm(x_all.shape[0], generator=self.shuffle_generator).to(x.device)
        mine = perm[rank() * b : (rank() + 1) * b]  # this rank's share of the shuffled batch
        k = self._split_forward(self.target_encoder, self.target_projector, x_all[mine])
        k_all = gather_no_grad(F.normalize(k, dim=1))  # (world * B, dim), shuffled order
        k_all = k_all[torch.argsort(perm)]  # unshuffle
        return k_all[rank() * b : (rank() + 1) * b]  # (B, dim)

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x_q, x_k = batch
        q = self._split_forward(self.encoder, self.projector, x_q)  # (B, dim)
        k = self.keys(x_k)  # (B, dim)
        loss = self.objective(q, k, temperature=self.T, queue=self.queue.get())
        self.queue.enqueue(k)  # gathers every rank's keys
        return {"loss": loss}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Move the key encoder and its head toward the query side with momentum ``m``."""
        ema_update(self.target_encoder, self.encoder, self.m)
        ema_update(self.target_projector, self.projector, self.m)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        K: int = CIFAR_K,
        m: float = CIFAR_M,
        T: float | None = None,
        dim: int = 128,
        bn_splits: int = 8,
        seed: int | None = None,
        **augment: Any,
    ) -> MoCo:
        """MoCo for ``data``, at the CIFAR-10 demo's ``K`` = 4096 and ``m`` = 0.99.

        ``K`` is cut to half the training set when larger (1258 digits: 629), so that a query
        rarely meets a stale key of its own image among the negatives. ``T`` defaults to the
        class's (v1: 0.07, v2: 0.2). The dataset's hints, then ``augment``, override the views.
        """
        enc = build_encoder(encoder, data.info.get("in_channels", 3))
        opts = {**cls.recipe, **data.info.get("augment", {}), **augment}
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()))
        k = min(K, max(1, int(data.info.get("num_train", 2 * K)) // 2))
        temp = {} if T is None else {"T": T}
        return cls(
            enc,
            augment=augment_for(data, seed, **opts),
            dim=dim,
            K=k,
            m=m,
            bn_splits=bn_splits,
            seed=seed,
            **temp,
        )
