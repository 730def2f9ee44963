r"""GRACE: Deep Graph Contrastive Representation Learning (Zhu et al. 2020,
https://arxiv.org/abs/2006.04131).

Two views of a graph are made by removing edges and masking feature columns, a shared GCN
:math:`f` embeds every node of both, a projection head :math:`g` (``Linear-ELU-Linear``) maps
them to :math:`u_i = g(f(\tilde G_1))_i`, :math:`v_i = g(f(\tilde G_2))_i`, and each node is
contrasted with every other node of both views (NT-Xent, :math:`\theta` the cosine):

.. math::
    \ell(u_i, v_i) = -\log \frac{e^{\theta(u_i, v_i)/\tau}}
    {e^{\theta(u_i, v_i)/\tau} + \sum_{k \ne i} e^{\theta(u_i, v_k)/\tau}
    + \sum_{k \ne i} e^{\theta(u_i, u_k)/\tau}}, \qquad
    \mathcal{J} = \frac{1}{2N}\sum_{i=1}^{N}\big[\ell(u_i, v_i) + \ell(v_i, u_i)\big].

This is the graph two-view method (:class:`~mmssl.graph.methods.two_view.GraphTwoView`) with
GRACE's own Cora settings as its defaults: edges removed with probability 0.2 / 0.4 and feature
columns masked with 0.3 / 0.4 in view 1 / view 2, :math:`\tau = 0.4`, a 2-layer GCN with ReLU
whose output is 128 wide (its hidden layer 256, as in the paper's code), Adam 5e-4 with weight
decay 1e-5 for 200 epochs. The frozen representation is
the encoder's output :math:`f(G)` ``(N, 128)`` on the unaugmented graph.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.registry import register
from mmssl.graph.augment import GraphViews
from mmssl.graph.encoders import GCN
from mmssl.graph.methods.two_view import GraphTwoView

__all__ = ["GRACE", "GRACEEncoder"]


class GRACEEncoder(nn.Module):
    """GRACE's GCN: ``num_layers`` graph convolutions, the hidden ones ``2 * out_dim`` wide and
    the last ``out_dim``, each followed by ``activation`` (the paper's code; Cora: 256, 128).
    ``data`` with ``x`` ``(N, F)`` -> ``(N, out_dim)``."""

    def __init__(
        self, in_dim: int, out_dim: int = 128, num_layers: int = 2, activation: str = "relu"
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [2 * out_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            GCN(a, b, 1, activation) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out_dim = out_dim

    def forward(self, data: Any) -> Tensor:
        for layer in self.layers:
            h = layer(data)  # (N, d_l)
            data = copy.copy(data)
            data.x = h
        return h


@register("grace")
class GRACE(GraphTwoView):
    """GRACE: the graph two-view method with the paper's Cora parts (see the module docstring).

    Construct it like :class:`GraphTwoView` (``encoder``, ``objective``, ``views``,
    ``projector``, ``dim``, ``proj_dim``, ``temperature``, ``seed``), or from data with
    :meth:`build`.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    # The paper's Cora run (its config.yaml): Adam 5e-4, weight decay 1e-5, 200 epochs, full
    # batch, no learning-rate schedule.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 200,
        "lr": 5e-4,
        "optimizer": "adam",
        "weight_decay": 1e-5,
        "batch_size": 0,
        "warmup_epochs": 0,
        "schedule": "constant",
    }

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int = 128,
        *,
        num_layers: int = 2,
        activation: str = "relu",
        drop_edge: Sequence[float] = (0.2, 0.4),
        mask_feature: Sequence[float] = (0.3, 0.4),
        temperature: float = 0.4,
        proj_dim: int = 128,
        seed: int = 0,
        **kw: Any,
    ) -> GRACE:
        """GRACE's Cora parts sized for node-level ``data``: a ``num_layers``-layer
        :class:`GRACEEncoder` with ``hidden_dim`` output units (hidden layers twice as wide) and
        ``activation``, :class:`GraphViews` with the given edge-drop
        and feature-mask probabilities per view, NT-Xent at ``temperature``. ``kw`` goes to the
        constructor (``objective``, ``projector``)."""
        if data.info.get("level", "node") != "node":
            raise ValueError(
                "grace embeds nodes of one graph; for graph-level data use the 'two-view' "
                "method (GraphCL-style) or 'graphcl'"
            )
        encoder = GRACEEncoder(data.info["num_features"], hidden_dim, num_layers, activation)
        views = GraphViews(drop_edge, mask_feature, seed=seed)
        return cls(
            encoder,
            views=views,
            dim=encoder.out_dim,
            proj_dim=proj_dim,
            temperature=temperature,
            seed=seed,
            **kw,
        )
