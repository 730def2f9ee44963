r"""BGRL: Bootstrapped Graph Latents (Thakoor et al. 2021, https://arxiv.org/abs/2102.06514).

BYOL on graphs, without negatives. Two views of the graph (edges removed, feature columns
masked) go through an online GCN :math:`f_\theta` and its predictor :math:`p_\theta`, and
through a target GCN :math:`f_\phi`, an exponential moving average of the online one. Every
node's online prediction of one view is pulled toward the target embedding of the same node
in the other view:

.. math::
    \mathcal{L} = \frac{1}{N}\sum_{i=1}^{N}\big(2 - 2\cos(p_\theta(h^1_i), \mathrm{sg}(\tilde
    h^2_i))\big) + \big(2 - 2\cos(p_\theta(h^2_i), \mathrm{sg}(\tilde h^1_i))\big), \qquad
    \phi \leftarrow m_k\,\phi + (1 - m_k)\,\theta,

:math:`h^v = f_\theta(\tilde G_v)`, :math:`\tilde h^v = f_\phi(\tilde G_v)`, with
:math:`m_k` rising from 0.99 to 1 on a cosine over the run (the paper). There is no projector:
the predictor sits on the encoder's node embeddings, which are the frozen representation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.momentum import MomentumSchedule, ema_update, frozen_copy
from mmssl.core.objectives import byol_loss
from mmssl.core.registry import register
from mmssl.graph.augment import GraphViews
from mmssl.graph.encoders import GCN

__all__ = ["BGRL", "BGRLEncoder", "bgrl_predictor"]


class BGRLEncoder(nn.Module):
    """BGRL's GCN: every layer a graph convolution, batch norm, then PReLU (the paper's code).
    ``data`` with ``x`` ``(N, F)`` -> ``(N, dims[-1])``."""

    def __init__(self, in_dim: int, dims: Sequence[int] = (512, 256)) -> None:
        super().__init__()
        if not dims:
            raise ValueError("dims needs at least one layer width, e.g. (512, 256)")
        widths = [in_dim, *dims]
        self.convs = nn.ModuleList(
            GCN(a, b, 1, "identity") for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in dims)
        self.acts = nn.ModuleList(nn.PReLU() for _ in dims)
        self.out_dim = dims[-1]

    def forward(self, data: Any) -> Tensor:
        for conv, norm, act in zip(self.convs, self.norms, self.acts, strict=True):
            h = act(norm(conv(data)))  # (N, d_l)
            data = copy.copy(data)
            data.x = h
        return h


def bgrl_predictor(dim: int, hidden: int = 512) -> nn.Module:
    """BGRL's predictor: ``Linear-PReLU-Linear``, ``(N, D) -> (N, D)``."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.PReLU(1), nn.Linear(hidden, dim))


@register("bgrl")
class BGRL(Method):
    """BGRL: an online GCN and predictor against an EMA target GCN, two augmented views.

    Args:
        encoder: PyG ``Data`` -> node embeddings ``(N, D)``, with ``out_dim``.
        predictor: ``(N, D) -> (N, D)``; default :func:`bgrl_predictor`.
        views: ``data -> (view1, view2)``; default :class:`GraphViews` with ``drop_edge``
            and ``mask_feature``.
        objective: ``(prediction (N, D), target (N, D)) -> loss`` with the target detached;
            default BYOL's normalised MSE, :math:`2 - 2\\cos`.
        pred_hidden: the default predictor's hidden size (paper: 512).
        drop_edge, mask_feature: the default views' probabilities per view.
        base_momentum, final_momentum: the target's EMA momentum, cosine from base to final
            (paper: 0.99 to 1).
        seed: seeds the default views' generator.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/no-negatives"
    modality: ClassVar[str] = "graph"
    # The paper (small transductive sets): AdamW 5e-4 (1e-4 on some), weight decay 1e-5,
    # warmup then cosine, 10k epochs. Cora is far smaller: a shorter run gets there.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 500,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 1e-5,
        "batch_size": 0,
        "warmup_epochs": 50,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module | None = None,
        views: Callable[[Any], tuple[Any, Any]] | None = None,
        objective: Callable[[Tensor, Tensor], Tensor] = byol_loss,
        *,
        pred_hidden: int = 512,
        drop_edge: Sequence[float] = (0.2, 0.4),
        mask_feature: Sequence[float] = (0.3, 0.4),
        base_momentum: float = 0.99,
        final_momentum: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor or bgrl_predictor(encoder.out_dim, pred_hidden)  # type: ignore[arg-type]
        self.views = views or GraphViews(drop_edge, mask_feature, seed=seed)
        self.objective = objective
        self.target_encoder = frozen_copy(encoder)
        self.momentum = MomentumSchedule(base_momentum, final_momentum)

    def augment(self, batch: Any) -> tuple[Any, Any]:
        return self.views(batch)

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """``(view1, view2)`` from :meth:`augment` (or a plain ``data``) -> the loss."""
        v1, v2 = batch if isinstance(batch, tuple) else self.augment(batch)
        p1 = self.predictor(self.encoder(v1))  # (N, D)
        p2 = self.predictor(self.encoder(v2))  # (N, D)
        with torch.no_grad():
            t1, t2 = self.target_encoder(v1), self.target_encoder(v2)  # (N, D) each
        return {"loss": self.objective(p1, t2) + self.objective(p2, t1)}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Move the target toward the online encoder with this step's momentum."""
        ema_update(self.target_encoder, self.encoder, self.momentum(step, total_steps))

    @classmethod
    def build(
        cls,
        data: DataBundle,
        dims: Sequence[int] = (512, 256),
        **kw: Any,
    ) -> BGRL:
        """The paper's parts for node-level ``data``: a :class:`BGRLEncoder` with layers of
        ``dims`` units (the paper's encoder for WikiCS, Amazon Photos and Coauthor CS: 512,
        then 256). ``kw`` goes to :class:`BGRL`."""
        if data.info.get("level", "node") != "node":
            raise ValueError("bgrl embeds nodes of one graph; give it a node-level graph (cora)")
        return cls(BGRLEncoder(data.info["num_features"], tuple(dims)), **kw)
