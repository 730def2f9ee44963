r"""InfoGraph (Sun et al. 2020, https://arxiv.org/abs/1908.01000).

Maximise the mutual information between a graph's embedding :math:`h_G` (the sum readout of
every GIN layer's node outputs, concatenated) and the patch embeddings :math:`h_u` of its own
nodes, against the nodes of the other graphs of the batch. Both pass through feedforward
heads :math:`\phi, \psi` and are scored by a dot product, :math:`T(u, G) = \phi(h_u)^\top
\psi(h_G)`; the Jensen-Shannon estimator of :mod:`mmssl.core.objectives.mutual_info` is

.. math::
    \mathcal{L} = \mathbb{E}_{(u, G): u \in G}[\mathrm{sp}(-T(u, G))]
    + \mathbb{E}_{(u, G'): u \notin G'}[\mathrm{sp}(T(u, G'))].

The frozen representation is :math:`h_G`, ``(num_graphs, num_layers * hidden_dim)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import jensen_shannon_loss
from mmssl.core.registry import register
from mmssl.graph.encoders import GIN, readout

__all__ = ["FeedForward", "InfoGraph"]


class FeedForward(nn.Module):
    """InfoGraph's head: three ``Linear-ReLU`` layers plus a linear shortcut, ``(*, D) -> (*, D)``."""

    def __init__(self, dim: int, depth: int = 3) -> None:
        super().__init__()
        self.block = nn.Sequential(
            *(m for _ in range(depth) for m in (nn.Linear(dim, dim), nn.ReLU()))
        )
        self.shortcut = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x) + self.shortcut(x)


@register("infograph")
class InfoGraph(Method):
    """InfoGraph: node (local) vs graph (global) mutual information over a batch of graphs.

    Args:
        encoder: PyG ``Batch`` -> node embeddings ``(N, D)`` (default: InfoGraph's GIN with
            every layer concatenated, ``readout=None``).
        dim: ``D``, the encoder's output size.
        local_head: :math:`\\phi`, ``(N, D) -> (N, P)``; default :class:`FeedForward`.
        global_head: :math:`\\psi`, ``(G, D) -> (G, P)``; default :class:`FeedForward`.
        objective: ``(scores (N, G), pos_mask (N, G)) -> loss``; default Jensen-Shannon.
        readout: pooling of node embeddings into :math:`h_G` (the paper: ``"sum"``).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/mutual-information"
    modality: ClassVar[str] = "graph"
    # The paper (and its code): Adam 1e-3 at a constant rate, batch 128, 20 epochs.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 20,
        "lr": 1e-3,
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
        local_head: nn.Module | None = None,
        global_head: nn.Module | None = None,
        objective: Any = jensen_shannon_loss,
        *,
        readout: str = "sum",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.local_head = local_head or FeedForward(dim)
        self.global_head = global_head or FeedForward(dim)
        self.objective = objective
        self.readout = readout

    def _encode(self, data: Any) -> tuple[Tensor, Tensor, Tensor]:
        """``data`` -> node embeddings ``(N, D)``, graph embeddings ``(G, D)``, graph ids ``(N,)``."""
        h = self.encoder(data)  # (N, D)
        graph = getattr(data, "batch", None)
        if graph is None:  # one graph
            graph = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        return h, readout(h, graph, self.readout, num_graphs), graph

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """A PyG ``Batch`` of at least two graphs -> loss and the discriminator's accuracy."""
        h, h_graph, graph = self._encode(batch)
        scores = self.local_head(h) @ self.global_head(h_graph).T  # (N, G)
        pos = graph.view(-1, 1) == torch.arange(scores.shape[1], device=h.device)  # (N, G)
        loss = self.objective(scores, pos)
        acc = ((scores > 0) == pos).float().mean()
        return {"loss": loss, "disc_acc": acc.detach()}

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """Graph embeddings :math:`h_G`, ``(num_graphs, D)``."""
        return self._encode(inputs)[1]

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int = 32,
        *,
        num_layers: int = 5,
        activation: str = "relu",
        **kw: Any,
    ) -> InfoGraph:
        """InfoGraph's parts for graph-level data: a GIN of ``num_layers`` x ``hidden_dim``
        (MUTAG: 5 x 32) with every layer's output concatenated. ``kw`` goes to the constructor."""
        if data.info.get("level") != "graph":
            raise ValueError(
                "infograph learns graph embeddings: give graph-level data (mutag, proteins)"
            )
        encoder = GIN(data.info["num_features"], hidden_dim, num_layers, activation, readout=None)
        return cls(encoder, encoder.out_dim, **kw)
