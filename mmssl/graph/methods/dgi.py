r"""Deep Graph Infomax (Velickovic et al. 2019, https://arxiv.org/abs/1809.10341).

Maximise the mutual information between node embeddings :math:`h_i` and a summary
:math:`s = \sigma(\frac{1}{N}\sum_i h_i)` of the graph, against node embeddings
:math:`\tilde h_i` of a corrupted graph (features shuffled across nodes):

.. math::
    \mathcal{L} = \mathbb{E}_i[\mathrm{sp}(-\mathcal{D}(h_i, s))]
    + \mathbb{E}_i[\mathrm{sp}(\mathcal{D}(\tilde h_i, s))],
    \qquad \mathcal{D}(h, s) = h^\top W s,

the Jensen-Shannon estimator of :mod:`mmssl.core.objectives.mutual_info` (equal to the
paper's binary cross-entropy up to a factor 2).

Batches of many graphs (a PyG ``Batch``, e.g. MUTAG) are supported: each graph gets its own
summary and its nodes are scored against it (negatives are the corrupted nodes of the same
graph against that summary). With ``level="graph"`` :meth:`DGI.embed` returns the readout of
each graph's node embeddings, ``(num_graphs, D)``; with ``level="node"`` the node embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import BilinearDiscriminator, jensen_shannon_loss
from mmssl.core.registry import register
from mmssl.graph.augment import SeededGenerators, feature_permutation, shuffle_features
from mmssl.graph.encoders import GCN, GIN, readout

__all__ = ["DGI", "mean_summary"]


def mean_summary(h: Tensor, batch: Tensor | None, num_graphs: int | None = None) -> Tensor:
    """DGI's readout :math:`\\sigma(\\mathrm{mean}_i h_i)` per graph: ``(N, D)`` -> ``(G, D)``."""
    return torch.sigmoid(readout(h, batch, "mean", num_graphs))


@register("dgi")
class DGI(Method):
    """Deep Graph Infomax.

    Args:
        encoder: PyG ``Data`` -> node embeddings ``(N, D)`` (default parts: one GCN layer).
        hidden_dim: ``D``.
        summary: ``(h (N, D), batch (N,) | None, num_graphs) -> (G, D)``.
        corruption: ``(data, generator) -> corrupted data`` with the same nodes and graph(s).
        discriminator: ``(h (N, D), s (G, D)) -> scores (N, G)``; default bilinear.
        level: ``"node"`` (embed nodes) or ``"graph"`` (embed graphs by ``readout``).
        readout: pooling of node embeddings for ``level="graph"`` embeddings.
        seed: seeds the corruption's generator.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "context-instance/mutual-information"
    modality: ClassVar[str] = "graph"
    # The paper (Cora): Adam 1e-3, no weight decay, full batch, early stopping on the training
    # loss with patience 20; PyG's recipe runs 300 epochs.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 300,
        "lr": 1e-3,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "batch_size": 0,
        "warmup_epochs": 0,
        "schedule": "constant",  # the paper and PyG keep Adam at a fixed 1e-3
        "patience": 20,
    }

    def __init__(
        self,
        encoder: nn.Module,
        hidden_dim: int,
        summary: Callable[..., Tensor] = mean_summary,
        corruption: Callable[..., Any] = shuffle_features,
        discriminator: nn.Module | None = None,
        *,
        level: str = "node",
        readout: str = "mean",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if level not in ("node", "graph"):
            raise ValueError(f"level must be 'node' or 'graph', got {level!r}")
        self.encoder = encoder
        self.summary = summary
        self.corruption = corruption
        self.discriminator = discriminator or BilinearDiscriminator(hidden_dim)
        self.level, self.readout = level, readout
        self.generators = SeededGenerators(seed)

    def augment(self, batch: Any) -> tuple[Any, Any]:
        """``data`` -> ``(data, corrupted data)``, the corruption made on the data's device.

        With the default corruption (row shuffling) and an encoder that can embed a
        permutation of its input in the same pass (:meth:`GCN.forward_permuted
        <mmssl.graph.encoders.GCN.forward_permuted>`), the second item is the permutation
        ``(N,)`` itself: the same corruption, without encoding the shuffled features anew.
        """
        generator = self.generators(batch.x.device)
        if self.corruption is shuffle_features and hasattr(self.encoder, "forward_permuted"):
            return batch, feature_permutation(batch, generator)
        return batch, self.corruption(batch, generator)

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """``(data, corrupted)`` from :meth:`augment` (or a plain ``data``) -> loss and accuracy."""
        data, corrupted = batch if isinstance(batch, tuple) else self.augment(batch)
        if isinstance(corrupted, Tensor):  # a row permutation of data.x
            h, h_neg = self.encoder.forward_permuted(data, corrupted)  # (N, D) each
        else:
            h = self.encoder(data)  # (N, D)
            h_neg = self.encoder(corrupted)  # (N, D)
        graph = getattr(data, "batch", None)
        num_graphs = getattr(data, "num_graphs", None) if graph is not None else 1
        if graph is None:
            graph = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)  # (N,)
        s = self.summary(h, graph, num_graphs)  # (G, D)
        own = graph.view(-1, 1)  # (N, 1): each node's graph
        pos = self.discriminator(h, s).gather(1, own)  # (N, 1)
        neg = self.discriminator(h_neg, s).gather(1, own)  # (N, 1)
        scores = torch.cat([pos, neg])  # (2N, 1)
        is_pos = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).bool()  # (2N, 1)
        loss = jensen_shannon_loss(scores, is_pos)
        acc = ((scores > 0) == is_pos).float().mean()
        return {"loss": loss, "disc_acc": acc.detach()}

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """Node embeddings ``(N, D)``, or graph embeddings ``(G, D)`` when ``level="graph"``."""
        h = self.encoder(inputs)  # (N, D)
        if self.level == "node":
            return h
        graph = getattr(inputs, "batch", None)
        num_graphs = getattr(inputs, "num_graphs", None) if graph is not None else None
        return readout(h, graph, self.readout, num_graphs)  # (G, D)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int | None = None,
        *,
        num_layers: int | None = None,
        activation: str | None = None,
        **kw: Any,
    ) -> DGI:
        """The paper's parts sized for ``data``.

        Node level: one GCN layer of 512 units with PReLU (the paper's Cora encoder).
        Graph level: a 5-layer GIN of 32 units (InfoGraph's encoder) with every layer's output
        concatenated, ReLU, embedded by mean readout. ``kw`` goes to :class:`DGI`.
        """
        level = data.info.get("level", "node")
        f = data.info["num_features"]
        if level == "node":
            encoder: nn.Module = GCN(f, hidden_dim or 512, num_layers or 1, activation or "prelu")
        else:
            encoder = GIN(f, hidden_dim or 32, num_layers or 5, activation or "relu", readout=None)
        return cls(encoder, encoder.out_dim, level=level, **kw)  # type: ignore[arg-type]
