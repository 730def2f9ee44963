r"""The graph two-view method: GRACE by default, any objective on request.

Two views of a graph are made by dropping edges and masking feature columns
(:class:`~mmssl.graph.augment.GraphViews`), encoded by a shared GNN, projected, and compared
by an objective ``(z1, z2) -> loss``. The default is GRACE (Zhu et al. 2020,
https://arxiv.org/abs/2006.04131): node embeddings of a 2-layer GCN, an ELU projection head
and NT-Xent with :math:`\tau = 0.4`, whose negatives are the other nodes of both views:

.. math::
    \ell(u_i, v_i) = -\log \frac{e^{\theta(u_i, v_i)/\tau}}
    {e^{\theta(u_i, v_i)/\tau} + \sum_{k \ne i} e^{\theta(u_i, v_k)/\tau}
    + \sum_{k \ne i} e^{\theta(u_i, u_k)/\tau}}

On graph-level data (a batch of graphs) the encoder is a GIN with sum readout, so the same
method contrasts graph embeddings (GraphCL-style, https://arxiv.org/abs/2010.13902).

NT-Xent builds a ``(2N, 2N)`` similarity matrix: fine for Cora/CiteSeer (``N`` < 4k); for
larger graphs train on sampled subgraphs (``num_neighbors``) or pass a cheaper objective.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import TwoViewMethod
from mmssl.core.objectives import nt_xent
from mmssl.core.registry import register, resolve_callable
from mmssl.graph.augment import GraphViews
from mmssl.graph.encoders import GCN, GIN

__all__ = ["GraphTwoView"]


@register("two-view")
class GraphTwoView(TwoViewMethod):
    """Two augmented views of a graph, a shared encoder, a projector and any objective.

    Args:
        encoder: PyG ``Data`` -> ``(N, D)`` node (or ``(G, D)`` graph) embeddings.
        objective: ``(z1 (B, P), z2 (B, P)) -> scalar``; default NT-Xent with ``temperature``.
        views: ``data -> (view1, view2)``; default :class:`GraphViews` (GRACE's Cora rates).
        projector: head after the encoder; default GRACE's ``Linear-ELU-Linear`` when ``dim``
            is given, else the identity.
        dim: the encoder's output size ``D``.
        proj_dim: the projector's hidden and output size ``P`` (GRACE: 128).
        temperature: :math:`\\tau` of the default objective (GRACE on Cora: 0.4).
        seed: seeds the default views' generator.
    """

    modality: ClassVar[str] = "graph"
    # GRACE on Cora: Adam 5e-4, weight decay 1e-5, 200 epochs, full batch.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 200,
        "lr": 5e-4,
        "optimizer": "adam",
        "weight_decay": 1e-5,
        "batch_size": 0,
        "warmup_epochs": 0,
    }

    def __init__(
        self,
        encoder: nn.Module,
        objective: Callable[[Tensor, Tensor], Tensor] | str | None = None,
        views: Callable[[Any], tuple[Any, Any]] | None = None,
        projector: nn.Module | None = None,
        *,
        dim: int | None = None,
        proj_dim: int = 128,
        temperature: float = 0.4,
        seed: int = 0,
    ) -> None:
        if objective is None:
            objective = functools.partial(nt_xent, temperature=temperature, gather=True)
        objective = resolve_callable(objective)
        if projector is None and dim is not None:
            projector = nn.Sequential(
                nn.Linear(dim, proj_dim), nn.ELU(), nn.Linear(proj_dim, proj_dim)
            )
        super().__init__(encoder, objective, views or GraphViews(seed=seed), projector, dim=dim)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int | None = None,
        *,
        num_layers: int | None = None,
        activation: str = "relu",
        **kw: Any,
    ) -> GraphTwoView:
        """GRACE's Cora parts (2-layer GCN, 128 units, ReLU) for node-level data; a 5-layer
        GIN (32 units, sum readout, GraphCL's encoder) for graph-level data. ``kw`` goes to
        the constructor (``objective``, ``views``, ``temperature``, ``proj_dim``, ``seed``)."""
        f = data.info["num_features"]
        if data.info.get("level", "node") == "node":
            encoder: nn.Module = GCN(f, hidden_dim or 128, num_layers or 2, activation)
        else:
            encoder = GIN(f, hidden_dim or 32, num_layers or 5, activation, readout="sum")
        return cls(encoder, dim=encoder.out_dim, **kw)  # type: ignore[arg-type]
