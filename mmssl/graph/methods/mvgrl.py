r"""MVGRL: Contrastive Multi-View Representation Learning on Graphs (Hassani & Khasahmadi
2020, https://arxiv.org/abs/2006.05582), node level.

Two structural views of one graph: the adjacency (a GCN :math:`g_\theta` on
:math:`\hat D^{-1/2}\hat A\hat D^{-1/2}`) and the personalised-PageRank diffusion
:math:`S = \alpha(I - (1-\alpha)\hat D^{-1/2}\hat A\hat D^{-1/2})^{-1}` (a second GCN
:math:`g_\omega` propagating with :math:`S`, see :func:`~mmssl.graph.augment.ppr_diffusion`).
Each view's node embeddings :math:`h^\alpha_i, h^\beta_i` are contrasted with the *other*
view's summary :math:`s = \sigma(\frac{1}{N}\sum_i h_i)`, against the nodes of a corrupted
graph (features shuffled across nodes, DGI's corruption) embedded in the same view:

.. math::
    \mathcal{L} = \mathbb{E}_i\big[\mathrm{sp}(-\mathcal{D}(h^\alpha_i, s^\beta))
    + \mathrm{sp}(-\mathcal{D}(h^\beta_i, s^\alpha))\big]
    + \mathbb{E}_i\big[\mathrm{sp}(\mathcal{D}(\tilde h^\alpha_i, s^\beta))
    + \mathrm{sp}(\mathcal{D}(\tilde h^\beta_i, s^\alpha))\big],
    \qquad \mathcal{D}(h, s) = h^\top W s,

the Jensen-Shannon estimator of :mod:`mmssl.core.objectives.mutual_info` (the paper's binary
cross-entropy up to a factor 2). The frozen representation is
:math:`h^\alpha + h^\beta` ``(N, D)``. The diffusion of a graph is computed once and cached,
and by default sparsified to each node's 64 largest weights (the paper thresholds it; a
dense :math:`S` is ``top_k=None``). Full batch here; the paper samples 2000-node subgraphs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import BilinearDiscriminator, jensen_shannon_loss
from mmssl.core.registry import register
from mmssl.graph.augment import SeededGenerators, ppr_diffusion, shuffle_features
from mmssl.graph.encoders import GCN, SparseFeatures, make_activation, sparse_adjacency
from mmssl.graph.methods.dgi import mean_summary

__all__ = ["MVGRL", "WeightedGCN"]


class WeightedGCN(nn.Module):
    r"""One GCN layer that propagates with the graph's own ``edge_weight`` as given (no
    normalisation, no self-loops added): :math:`\sigma(S X W)` for a diffusion ``S``.
    ``data`` with ``x`` ``(N, F)``, ``edge_index`` ``(2, E)``, ``edge_weight`` ``(E,)`` ->
    ``(N, D)``. ``S`` is kept as a sparse CSR matrix, built once per edge set (a sparse
    product, not one message per edge: a diffusion has many edges)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, activation: str = "prelu") -> None:
        super().__init__()
        self.conv = GCNConv(in_dim, hidden_dim, normalize=False)
        self.act = make_activation(activation, hidden_dim)
        self.out_dim = hidden_dim
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None
        self.features = SparseFeatures()  # bag-of-words features: a sparse first product

    def adjacency(self, edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> Tensor:
        """``S`` as a sparse ``(N, N)`` CSR matrix, ``S[i, j]`` the weight of edge ``j -> i``."""
        c = self._cache
        if c is None or c[0] is not edge_index or c[1] is not edge_weight:
            self._cache = (
                edge_index,
                edge_weight,
                sparse_adjacency(edge_index, edge_weight, num_nodes),
            )
        return self._cache[2]  # type: ignore[index]

    def forward(self, data: Any) -> Tensor:
        adj = self.adjacency(data.edge_index, data.edge_weight, data.x.shape[0])
        with torch.autocast(data.x.device.type, enabled=False):  # sparse products in fp32
            return self.act(self.conv(self.features(data.x.float()), adj))  # (N, D)


def _with_edges(data: Any, edge_index: Tensor, edge_weight: Tensor) -> Any:
    """A shallow copy of ``data`` with other weighted edges (``edge_attr`` dropped)."""
    out = copy.copy(data)
    out.edge_index, out.edge_weight = edge_index, edge_weight  # (2, E'), (E',)
    if getattr(data, "edge_attr", None) is not None:
        out.edge_attr = None
    return out


@register("mvgrl")
class MVGRL(Method):
    """MVGRL, node level: adjacency and PPR-diffusion views, cross-view local-global MI.

    Args:
        encoder: the adjacency view's encoder, ``data -> (N, D)`` (the paper: one GCN layer).
        diffusion_encoder: the diffusion view's encoder, ``diffused data -> (N, D)``, which
            must use ``edge_weight`` (default parts: :class:`WeightedGCN`).
        hidden_dim: ``D``.
        alpha: the PPR teleport probability (paper: 0.2).
        top_k: keep each node's ``top_k`` largest diffusion weights; ``None``: dense.
        summary: ``(h (N, D), batch, num_graphs) -> (1, D)``; default DGI's sigmoid of the mean.
        corruption: ``(data, generator) -> data`` with the same nodes; default row shuffling.
        discriminator: ``(h (N, D), s (1, D)) -> (N, 1)``, shared by both directions.
        seed: seeds the corruption's generator.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/mutual-information"
    modality: ClassVar[str] = "graph"
    # The paper's node-level runs: Adam 1e-3, no weight decay, early stopping on the training
    # loss with patience 20 (at most 3000 epochs).
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 3000,
        "lr": 1e-3,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "batch_size": 0,
        "warmup_epochs": 0,
        "schedule": "constant",
        "patience": 20,
    }

    def __init__(
        self,
        encoder: nn.Module,
        diffusion_encoder: nn.Module,
        hidden_dim: int,
        *,
        alpha: float = 0.2,
        top_k: int | None = 64,
        summary: Callable[..., Tensor] = mean_summary,
        corruption: Callable[..., Any] = shuffle_features,
        discriminator: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder, self.diffusion_encoder = encoder, diffusion_encoder
        self.alpha, self.top_k = alpha, top_k
        self.summary, self.corruption = summary, corruption
        self.discriminator = discriminator or BilinearDiscriminator(hidden_dim)
        self.generators = SeededGenerators(seed)
        self._cache: tuple[Tensor, int, Any] | None = None

    def diffusion(self, data: Any) -> Any:
        """``data`` with the PPR diffusion as its weighted edges; computed once per graph (the
        cache holds the last graph's, matched by its ``edge_index`` values and device)."""
        ei, n = data.edge_index, int(data.num_nodes)
        c = self._cache
        stale = c is None or c[1] != n or c[0].shape != ei.shape or c[0].device != ei.device
        if stale or not torch.equal(c[0], ei):  # type: ignore[index]
            diffused = ppr_diffusion(data, self.alpha, top_k=self.top_k)
            self._cache = (ei, n, (diffused.edge_index, diffused.edge_weight))
        return _with_edges(data, *self._cache[2])  # type: ignore[index]

    def augment(self, batch: Any) -> tuple[Any, Any, Any, Any]:
        """``data`` -> ``(data, diffused, corrupted data, corrupted diffused)``; the corrupted
        views share one permutation of the node features."""
        if getattr(batch, "batch", None) is not None and int(batch.num_graphs) > 1:
            raise ValueError("mvgrl here is node level: give it one graph, not a batch of graphs")
        diffused = self.diffusion(batch)
        corrupted = self.corruption(batch, self.generators(batch.x.device))
        return batch, diffused, corrupted, _with_edges(corrupted, *self._cache[2])  # type: ignore[index]

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """The four views of :meth:`augment` (or a plain ``data``) -> loss and accuracy."""
        data, diffused, corrupted, corrupted_diffused = (
            batch if isinstance(batch, tuple) else self.augment(batch)
        )
        h_a, h_b = self.encoder(data), self.diffusion_encoder(diffused)  # (N, D) each
        neg_a = self.encoder(corrupted)  # (N, D)
        neg_b = self.diffusion_encoder(corrupted_diffused)  # (N, D)
        s_a, s_b = self.summary(h_a, None, 1), self.summary(h_b, None, 1)  # (1, D) each
        pos = torch.cat([self.discriminator(h_a, s_b), self.discriminator(h_b, s_a)])  # (2N, 1)
        neg = torch.cat([self.discriminator(neg_a, s_b), self.discriminator(neg_b, s_a)])
        scores = torch.cat([pos, neg])  # (4N, 1)
        is_pos = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).bool()  # (4N, 1)
        loss = jensen_shannon_loss(scores, is_pos)
        acc = ((scores > 0) == is_pos).float().mean()
        return {"loss": loss, "disc_acc": acc.detach()}

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """:math:`h^\\alpha + h^\\beta`, the sum of both views' node embeddings ``(N, D)``."""
        return self.encoder(inputs) + self.diffusion_encoder(self.diffusion(inputs))

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int = 512,
        *,
        activation: str = "prelu",
        **kw: Any,
    ) -> MVGRL:
        """The paper's node-level parts for ``data``: one GCN layer of 512 units with PReLU per
        view. ``kw`` goes to :class:`MVGRL` (``alpha``, ``top_k``, ``seed``, ...)."""
        if data.info.get("level", "node") != "node":
            raise ValueError("mvgrl here is node level; give it a node-level graph (cora, ...)")
        f = data.info["num_features"]
        encoder = GCN(f, hidden_dim, 1, activation)
        return cls(encoder, WeightedGCN(f, hidden_dim, activation), hidden_dim, **kw)
