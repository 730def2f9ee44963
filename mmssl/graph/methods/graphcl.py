r"""GraphCL (You et al. 2020, https://arxiv.org/abs/2010.13902).

Two views of every graph of a batch are made by graph augmentations (node dropping, subgraph,
edge dropping, attribute masking), encoded by a shared GIN with sum readout, projected by a
two-layer MLP :math:`g` and contrasted with NT-Xent over the batch of graphs:

.. math::
    \ell_n = -\log \frac{\exp(\mathrm{sim}(z_{n,i}, z_{n,j}) / \tau)}
    {\sum_{n' \ne n} \exp(\mathrm{sim}(z_{n,i}, z_{n',j}) / \tau)}, \qquad z = g(f(\hat G)).

The paper's pick for biochemical graphs (MUTAG, PROTEINS) pairs node dropping with subgraph,
each at ratio 0.2. The frozen representation is the readout :math:`f(G)` ``(num_graphs, D)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import TwoViewMethod
from mmssl.core.objectives import nt_xent
from mmssl.core.registry import register, resolve_callable
from mmssl.graph.augment import (
    SeededGenerators,
    drop_edges,
    drop_nodes_batched,
    mask_features,
    subgraph_batched,
)
from mmssl.graph.encoders import GIN

__all__ = ["AUGMENTATIONS", "GraphCL", "GraphCLViews"]

AUGMENTATIONS: dict[str, Callable[..., Any]] = {
    "drop_nodes": drop_nodes_batched,
    "subgraph": subgraph_batched,
    "drop_edges": drop_edges,
    "mask_features": functools.partial(mask_features, per_node=True),
    "identity": lambda data, ratio, generator: data,
}


class GraphCLViews:
    """Two views of a batch of graphs: augmentation ``augmentations[k]`` at ``ratio`` for view k.

    Each augmentation draws per graph (a different node set in every graph); the generator is
    seeded, so the views are reproducible. Names: see :data:`AUGMENTATIONS`.
    """

    def __init__(
        self,
        augmentations: Sequence[str] = ("drop_nodes", "subgraph"),
        ratio: float = 0.2,
        *,
        seed: int = 0,
    ) -> None:
        if isinstance(augmentations, str):
            augmentations = augmentations.split("+")
        if len(augmentations) != 2 or any(a not in AUGMENTATIONS for a in augmentations):
            raise ValueError(
                f"augmentations takes two names (one per view) from {', '.join(AUGMENTATIONS)}, "
                f"e.g. 'drop_nodes+subgraph'; got {augmentations!r}"
            )
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"ratio must be in [0, 1), got {ratio}")
        self.augmentations, self.ratio = tuple(augmentations), ratio
        self.generators = SeededGenerators(seed)

    def __call__(self, data: Any) -> tuple[Any, Any]:
        g = self.generators(data.x.device)
        v1, v2 = (AUGMENTATIONS[a](data, self.ratio, g) for a in self.augmentations)
        return v1, v2

    def __repr__(self) -> str:
        return f"GraphCLViews(augmentations={self.augmentations}, ratio={self.ratio})"


@register("graphcl")
class GraphCL(TwoViewMethod):
    """GraphCL: augmented views of each graph, a GIN, a projection head and NT-Xent.

    Args:
        encoder: PyG ``Batch`` -> graph embeddings ``(G, D)``.
        dim: ``D``.
        objective: ``(z1 (G, P), z2 (G, P)) -> loss``; default NT-Xent at ``temperature``.
        views: ``batch -> (view1, view2)``; default :class:`GraphCLViews` with
            ``augmentations`` at ``ratio``.
        projector: default ``Linear(D, D)-ReLU-Linear(D, D)`` as in the paper's code.
        temperature: :math:`\\tau` (the paper: 0.2).
        augmentations: the two views' augmentations (the paper for MUTAG/PROTEINS: node
            dropping and subgraph), a pair or a ``"a+b"`` string.
        ratio: the augmentation strength (the paper: 0.2).
        seed: seeds the views' generator.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    modality: ClassVar[str] = "graph"
    # The paper's unsupervised TU setting (its code's run script): Adam 0.01, batch 128,
    # 20 epochs, constant rate.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 20,
        "lr": 0.01,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "batch_size": 128,
        "warmup_epochs": 0,
        "schedule": "constant",
    }

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        objective: Callable[[Tensor, Tensor], Tensor] | str | None = None,
        views: Callable[[Any], tuple[Any, Any]] | None = None,
        projector: nn.Module | None = None,
        *,
        temperature: float = 0.2,
        augmentations: Sequence[str] | str = ("drop_nodes", "subgraph"),
        ratio: float = 0.2,
        seed: int = 0,
    ) -> None:
        if objective is None:
            objective = functools.partial(nt_xent, temperature=temperature, gather=True)
        if projector is None:
            projector = nn.Sequential(
                nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim)
            )
        views = views or GraphCLViews(augmentations, ratio, seed=seed)
        super().__init__(encoder, resolve_callable(objective), views, projector, dim=dim)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int = 32,
        *,
        num_layers: int = 3,
        activation: str = "relu",
        **kw: Any,
    ) -> GraphCL:
        """The paper's parts for graph-level data: a GIN of ``num_layers`` x ``hidden_dim``
        (its TU runs: 3 x 32) with every layer concatenated and sum readout."""
        if data.info.get("level") != "graph":
            raise ValueError(
                "graphcl learns graph embeddings: give graph-level data (mutag, proteins)"
            )
        f = data.info["num_features"]
        encoder = GIN(f, hidden_dim, num_layers, activation, readout="sum")
        return cls(encoder, encoder.out_dim, **kw)
