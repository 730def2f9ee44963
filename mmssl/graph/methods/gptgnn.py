r"""GPT-GNN: generative pre-training of graph neural networks (Hu et al. 2020,
https://arxiv.org/abs/2006.15437).

The graph is generated node by node in a random order :math:`\pi`, each node's attributes
first, then its edges to the nodes generated before it:

.. math::
    \log p(X, E) = \sum_i \log p(X_i \mid X_{<i}, E_{<i})
    + \log p(E_i \mid X_{\le i}, E_{<i}).

As in the paper's practical version, each step draws one order and generates its last
``gen_ratio`` nodes (the *new* nodes) given the others (the *observed* nodes): new nodes see
only observed nodes, observed nodes never see new ones, and edges among new nodes are
dropped. Of a new node's edges to observed nodes, ``edge_mask`` are held out (the edges to
generate) and the rest are observed. Each new node enters the GNN twice, both copies receiving
only its observed edges: an *attribute* copy with its features replaced by a dummy token, and
an *edge* copy with its true features (so attribute generation cannot peek at the
features it predicts). The losses, weighted by ``attr_weight`` and ``1 - attr_weight``:

* attribute generation: a linear decoder of the attribute copy's embedding against the true
  features, cosine error (the paper's decoder for vector features;
  :func:`~mmssl.core.objectives.scaled_cosine_error` with :math:`\alpha = 1`);
* edge generation: the edge copy's embedding, through a linear matcher, scores its held-out
  neighbour against the other held-out edges' observed ends, InfoNCE on cosine similarity
  with the matcher's temperature 0.1 (:func:`~mmssl.core.objectives.info_nce`).

:meth:`GPTGNN.embed` runs the encoder on the whole graph.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from mmssl.core.data import DataBundle
from mmssl.core.method import Method
from mmssl.core.objectives import info_nce, scaled_cosine_error
from mmssl.core.registry import register
from mmssl.graph.augment import SeededGenerators
from mmssl.graph.encoders import GCN, GIN, readout

__all__ = ["GPTGNN", "generation_step"]


def _check_ratios(gen_ratio: float, edge_mask: float) -> None:
    if not 0.0 < gen_ratio < 1.0 or not 0.0 <= edge_mask < 1.0:
        raise ValueError(
            f"gen_ratio must be in (0, 1) and edge_mask in [0, 1), got {gen_ratio}, {edge_mask}"
        )


def generation_step(
    data: Any, gen_ratio: float, edge_mask: float, generator: torch.Generator | None = None
) -> Data:
    """One random generation order as a graph the GNN can run on.

    Returns a ``Data`` with ``x`` ``(N, F)`` (the input's), ``edge_index`` ``(2, E')`` over
    ``N + G`` nodes (nodes ``N + j`` are the attribute copies of ``new[j]``), ``new`` ``(G,)``
    the new nodes and ``held`` ``(2, M)`` the held-out edges ``(new node, observed node)``.
    """
    _check_ratios(gen_ratio, edge_mask)
    n, device = data.x.shape[0], data.x.device
    gen_dev = generator.device if generator is not None else device
    order = torch.randperm(n, generator=generator, device=gen_dev).to(device)  # (N,)
    is_new = torch.zeros(n, dtype=torch.bool, device=device)
    is_new[order[n - max(1, round(gen_ratio * n)) :]] = True
    new = order[is_new[order]]  # (G,) in generation order
    copy_of = torch.full((n,), -1, dtype=torch.long, device=device)
    copy_of[new] = n + torch.arange(new.numel(), device=device)  # node -> its attribute copy

    a, b = to_undirected(data.edge_index, num_nodes=n)  # every edge in both directions
    old_to_old = ~is_new[a] & ~is_new[b]
    old_to_new = ~is_new[a] & is_new[b]  # (E,) each cross edge once, observed end first
    r = torch.rand(int(old_to_new.sum()), generator=generator, device=gen_dev).to(device)
    held = r < edge_mask  # (E_cross,)
    src, dst = a[old_to_new], b[old_to_new]  # (E_cross,)
    seen_src, seen_dst = src[~held], dst[~held]
    edge_index = torch.cat(
        [
            torch.stack([a[old_to_old], b[old_to_old]]),  # observed part of the graph
            torch.stack([seen_src, seen_dst]),  # observed edges into the edge copies
            torch.stack([seen_src, copy_of[seen_dst]]),  # and into the attribute copies
        ],
        dim=1,
    )  # (2, E')
    out = Data(x=data.x, edge_index=edge_index, num_nodes=n + new.numel())
    out.new, out.held = new, torch.stack([dst[held], src[held]])  # (G,), (2, M)
    return out


@register("gpt-gnn")
class GPTGNN(Method):
    """GPT-GNN's attribute and edge generation on one random order per step.

    Args:
        encoder: PyG ``Data`` -> node embeddings ``(N, D)``.
        in_dim: ``F``, the node feature size (sizes the dummy token and the decoder).
        dim: ``D``.
        gen_ratio: fraction of nodes generated per step (the rest are observed).
        edge_mask: fraction of a new node's edges to observed nodes held out to generate
            (the paper: 0.5).
        attr_weight: weight of the attribute loss (the paper's ``attr_ratio``: 0.5).
        temperature: the edge matcher's cosine temperature (the paper: 0.1).
        learn_dummy: learn the dummy token, as the paper does; that makes the GNN compute the
            gradient of its whole input (``(N + G, F)``, a third of a step on Cora), so by
            default the dummy is fixed at zeros.
        level: ``"node"`` embeds nodes; ``"graph"`` pools them with ``readout``.
        seed: seeds the generation orders.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "autoregressive"
    modality: ClassVar[str] = "graph"
    # The paper: AdamW lr 1e-3, weight decay 1e-2, gradient clipping 0.5; here one full-batch
    # step per epoch, and 100 of them (Cora: 82.2 vs 72.7 at random init, seed 0).
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 100,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 1e-2,
        "grad_clip": 0.5,
        "warmup_epochs": 0,
        "batch_size": 0,
    }

    def __init__(
        self,
        encoder: nn.Module,
        in_dim: int,
        dim: int,
        *,
        gen_ratio: float = 0.5,
        edge_mask: float = 0.5,
        attr_weight: float = 0.5,
        temperature: float = 0.1,
        learn_dummy: bool = False,
        level: str = "node",
        readout: str = "mean",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= attr_weight <= 1.0:
            raise ValueError(f"attr_weight must be in [0, 1], got {attr_weight}; the paper: 0.5")
        if level not in ("node", "graph"):
            raise ValueError(f"level must be 'node' or 'graph', got {level!r}")
        _check_ratios(gen_ratio, edge_mask)
        self.encoder = encoder
        dummy = torch.zeros(in_dim)  # the attribute copies' input features
        if learn_dummy:
            self.dummy = nn.Parameter(dummy)
        else:
            self.register_buffer("dummy", dummy)
        self.attr_decoder = nn.Linear(dim, in_dim)
        self.matcher = nn.Linear(dim, dim)
        self.gen_ratio, self.edge_mask, self.attr_weight = gen_ratio, edge_mask, attr_weight
        self.temperature, self.level, self.readout = temperature, level, readout
        self.generators = SeededGenerators(seed)

    def augment(self, batch: Any) -> Data:
        """A graph -> one generation order (:func:`generation_step`), on the graph's device."""
        g = self.generators(batch.x.device)
        return generation_step(batch, self.gen_ratio, self.edge_mask, g)

    def forward(self, batch: Data) -> dict[str, Tensor]:
        n, new, held = batch.x.shape[0], batch.new, batch.held
        x = torch.cat([batch.x, self.dummy.expand(new.numel(), -1)])  # (N + G, F)
        h = self.encoder(Data(x=x, edge_index=batch.edge_index))  # (N + G, D)
        attr = scaled_cosine_error(self.attr_decoder(h[n:]), batch.x[new], alpha=1.0)
        edge = (
            info_nce(self.matcher(h[held[0]]), h[held[1]], temperature=self.temperature)
            if held.shape[1] > 1
            else h.sum() * 0.0
        )
        loss = self.attr_weight * attr + (1.0 - self.attr_weight) * edge
        return {"loss": loss, "attr_loss": attr.detach(), "edge_loss": edge.detach()}

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """Node embeddings ``(N, D)`` of the whole graph, or ``(G, D)`` when ``level="graph"``."""
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
        dropout: float = 0.2,
        **kw: Any,
    ) -> GPTGNN:
        """Node level: a 2-layer GCN of 512 units with PReLU and the paper's dropout 0.2 (the
        paper's HGT is for heterogeneous graphs); graph level: InfoGraph's 5-layer GIN."""
        f, level = data.info["num_features"], data.info.get("level", "node")
        if level == "node":
            encoder: nn.Module = GCN(f, hidden_dim or 512, num_layers or 2, "prelu", dropout)
        else:
            encoder = GIN(f, hidden_dim or 32, num_layers or 5, readout=None)
        return cls(encoder, f, encoder.out_dim, level=level, **kw)  # type: ignore[arg-type]
