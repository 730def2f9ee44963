r"""GCC: Graph Contrastive Coding (Qiu et al. 2020, https://arxiv.org/abs/2006.09963).

Structure-only pretraining that transfers across graphs. An instance is the ego network of a
node; two subgraphs sampled around the same ego node by random walk with restart
(:func:`~mmssl.graph.augment.rwr_subgraphs`) are a positive pair, the other egos' subgraphs
(in the batch, or MoCo's queue of keys from a momentum encoder) the negatives:

.. math::
    \mathcal{L} = -\log \frac{\exp(q^\top k_+ / \tau)}
    {\exp(q^\top k_+ / \tau) + \sum_{j=1}^{K} \exp(q^\top k_j / \tau)}

(:func:`~mmssl.core.objectives.info_nce`). Node features are structural only, so a model
pretrained on one graph embeds any other: the top-``k`` eigenvectors of each subgraph's
normalised Laplacian (those of the smallest eigenvalues, row-normalised, zero-padded to ``k``,
signs flipped at random in training), a one-hot degree and an ego-node indicator.

:meth:`GCC.embed` of a graph embeds each node by its ego subgraph (seeded, so deterministic);
of a batch of graphs, each whole graph with its highest-degree node as the ego (as GCC does
for graph classification). Pretrain on one dataset and probe another with the data option
``probe_data``: ``mmssl pretrain graph --method gcc --data cora --data-opt probe_data=mutag``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import degree

from mmssl.core.data import DataBundle
from mmssl.core.memory import Queue
from mmssl.core.method import Method
from mmssl.core.momentum import ema_update, frozen_copy
from mmssl.core.objectives import info_nce
from mmssl.core.registry import register
from mmssl.graph.augment import SeededGenerators, rwr_subgraphs
from mmssl.graph.data import degree_features
from mmssl.graph.encoders import GIN

__all__ = ["GCC", "GCCEncoder", "laplacian_eigenvectors", "structural_features"]

_PAD_EIGENVALUE = 3.0  # above the normalised Laplacian's spectrum [0, 2]: padding sorts last


def laplacian_eigenvectors(
    edge_index: Tensor, sizes: list[int], k: int = 32, generator: torch.Generator | None = None
) -> Tensor:
    r"""GCC's positional features of a batch of graphs: ``(sum(sizes), k)``.

    For each graph, the eigenvectors of :math:`L = I - D^{-1/2} A D^{-1/2}` with the ``k``
    smallest eigenvalues (GCC's "top" eigenvectors of :math:`D^{-1/2} A D^{-1/2}`), each row
    L2-normalised, zero-padded to ``k`` columns when the graph has fewer than ``k`` nodes.
    With ``generator``, every graph's eigenvectors get random signs (GCC's sign flip).
    Graphs are padded to the next power of two and decomposed in one batched ``eigh`` per size.

    Args:
        edge_index: ``(2, E)`` of the graphs laid out one after another (a PyG ``Batch``).
        sizes: node count of each graph, in order.
    """
    device, n_total = edge_index.device, sum(sizes)
    sizes_t = torch.tensor(sizes, device=device, dtype=torch.long)  # (G,)
    graph = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes_t)  # (N,)
    local = torch.arange(n_total, device=device) - (sizes_t.cumsum(0) - sizes_t)[graph]  # (N,)
    out = torch.zeros(n_total, k, device=device)
    buckets = torch.clamp(torch.ceil(torch.log2(sizes_t.clamp(min=1).float())), min=3).long()
    for b in torch.unique(buckets).tolist():
        s, members = 2**b, (buckets == b).nonzero().view(-1)  # graphs padded to s nodes
        slot = torch.full((len(sizes),), -1, dtype=torch.long, device=device)
        slot[members] = torch.arange(members.numel(), device=device)
        a = torch.zeros(members.numel(), s, s, device=device)  # (G_s, s, s)
        e = edge_index[:, slot[graph[edge_index[0]]] >= 0]  # (2, E_s)
        a[slot[graph[e[0]]], local[e[0]], local[e[1]]] = 1.0
        inv_sqrt = a.sum(2).clamp(min=1).rsqrt()  # (G_s, s)
        real = torch.arange(s, device=device) < sizes_t[members].view(-1, 1)  # (G_s, s)
        eye = torch.diag_embed(torch.where(real, 1.0, _PAD_EIGENVALUE))
        lap = eye - inv_sqrt.unsqueeze(2) * a * inv_sqrt.unsqueeze(1)  # (G_s, s, s)
        vec = torch.linalg.eigh(lap).eigenvectors[:, :, :k]  # (G_s, s, min(s, k)) ascending
        cols = torch.arange(vec.shape[2], device=device)  # zero the padding's eigenvectors
        vec = vec * (cols < real.sum(1, keepdim=True)).unsqueeze(1)  # (G_s, s, min(s, k))
        vec = F.normalize(vec, dim=2)  # rows L2-normalised
        nodes = (slot[graph] >= 0).nonzero().view(-1)  # (N_s,)
        out[nodes, : vec.shape[2]] = vec[slot[graph[nodes]], local[nodes]]
    if generator is not None:
        signs = torch.rand(len(sizes), k, generator=generator, device=generator.device) < 0.5
        out = out * (1.0 - 2.0 * signs.to(device).float())[graph]  # (N, k)
    return out


def structural_features(
    graphs: Batch, egos: Tensor, k: int, max_degree: int, generator: torch.Generator | None
) -> Tensor:
    """``[eigenvectors (k) | one-hot degree (max_degree + 1) | is-ego (1)]`` per node, ``(N, F)``.

    ``egos`` ``(G,)`` are batch-level indices of each graph's ego node.
    """
    n = graphs.num_nodes
    sizes = torch.bincount(graphs.batch, minlength=graphs.num_graphs).tolist()
    pos = laplacian_eigenvectors(graphs.edge_index, sizes, k, generator)  # (N, k)
    deg = degree_features(graphs.edge_index, n, max_degree).to(pos.device)  # (N, max_degree + 1)
    is_ego = torch.zeros(n, 1, device=pos.device)
    is_ego[egos] = 1.0
    return torch.cat([pos, deg, is_ego], dim=1)


class GCCEncoder(nn.Module):
    """GCC's encoder: a GNN with a graph readout, a linear layer, L2-normalised (GCC's
    ``norm``). ``Batch`` -> ``(G, dim)``; ``gnn`` must have ``out_dim``."""

    def __init__(self, gnn: nn.Module, dim: int = 64, *, normalize: bool = True) -> None:
        super().__init__()
        self.gnn, self.head = gnn, nn.Linear(gnn.out_dim, dim)  # type: ignore[arg-type]
        self.normalize, self.out_dim = normalize, dim

    def forward(self, data: Any) -> Tensor:
        z = self.head(self.gnn(data))  # (G, dim)
        return F.normalize(z, dim=1) if self.normalize else z


@register("gcc")
class GCC(Method):
    """Graph Contrastive Coding with a MoCo queue (``moco=True``) or in-batch negatives.

    Args:
        encoder: a PyG ``Batch`` of subgraphs with structural ``x`` -> ``(G, D)``, contrasted
            and embedded as is (GCC: :class:`GCCEncoder`, a 5-layer GIN of 64 units with sum
            readouts and a linear layer to 64, normalised); :meth:`in_dim` gives its input size.
        k: eigenvector features per node (GCC: 32). max_degree: degree one-hot cap.
        restart_prob, walk_length: the random walk with restart (GCC: 0.8 and 256 steps).
        num_egos: ego nodes per step, sampled with probability proportional to degree^0.75.
        K, m, T: MoCo's queue size (GCC: 16384), key-encoder momentum (0.999), temperature
            (0.07). moco: ``False`` uses the in-batch keys of the same encoder as negatives.
        embed_chunk: ego subgraphs encoded at once by :meth:`embed`. seed: seeds the sampling.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    modality: ClassVar[str] = "graph"
    # GCC: Adam lr 0.005, weight decay 1e-5, gradient clipping 1.0, linear warmup (over 10% of
    # its 75k steps). Sized for a CPU here: on one graph an epoch is one step of num_egos egos;
    # on a set of graphs (PROTEINS) an epoch is a pass over its batches.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 500,
        "lr": 5e-3,
        "optimizer": "adam",
        "weight_decay": 1e-5,
        "grad_clip": 1.0,
        "warmup_epochs": 10,
        "batch_size": 0,
    }

    def __init__(
        self,
        encoder: nn.Module,
        *,
        k: int = 32,
        max_degree: int = 512,
        restart_prob: float = 0.8,
        walk_length: int = 256,
        num_egos: int = 32,
        K: int = 16384,
        m: float = 0.999,
        T: float = 0.07,
        moco: bool = True,
        embed_chunk: int = 512,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_egos < 2:
            raise ValueError(
                f"num_egos must be >= 2 (the other egos are negatives), got {num_egos}"
            )
        self.encoder = encoder
        self.k, self.max_degree, self.T, self.m, self.moco = k, max_degree, T, m, moco
        self.restart_prob, self.walk_length, self.num_egos = restart_prob, walk_length, num_egos
        self.embed_chunk, self.seed = embed_chunk, seed
        self.generators = SeededGenerators(seed)
        if moco:
            self.key_encoder = frozen_copy(encoder)
            self.queue = Queue(encoder.out_dim, K, torch.Generator().manual_seed(seed))

    @staticmethod
    def in_dim(k: int = 32, max_degree: int = 512) -> int:
        """The encoder's input size: ``k + max_degree + 2``."""
        return k + max_degree + 2

    def subgraphs(self, data: Any, egos: Tensor, generator: torch.Generator | None) -> Batch:
        """RWR subgraphs around ``egos`` ``(B,)`` with structural features, as one ``Batch``."""
        bare = Data(edge_index=data.edge_index, num_nodes=data.num_nodes)  # structure only
        subs = rwr_subgraphs(bare, egos, self.restart_prob, self.walk_length, generator)
        batch = Batch.from_data_list(subs)
        flip = generator if self.training else None
        batch.x = structural_features(batch, batch.ptr[:-1], self.k, self.max_degree, flip)
        return batch

    def augment(self, batch: Any) -> tuple[Batch, Batch]:
        """A graph (or batch of graphs) -> two RWR views of ``num_egos`` sampled ego nodes."""
        g = self.generators(batch.edge_index.device)
        weight = degree(batch.edge_index[0], batch.num_nodes).pow(0.75)  # (N,) GCC's sampling
        weight = weight if weight.sum() > 0 else torch.ones_like(weight)
        egos = torch.multinomial(weight.to(g.device), self.num_egos, True, generator=g)
        egos = egos.to(batch.edge_index.device)  # (B,)
        return self.subgraphs(batch, egos, g), self.subgraphs(batch, egos, g)

    def forward(self, batch: tuple[Batch, Batch]) -> dict[str, Tensor]:
        view_q, view_k = batch
        q = self.encoder(view_q)  # (B, D)
        if not self.moco:
            k = self.encoder(view_k)  # (B, D)
            return {"loss": info_nce(q, k, temperature=self.T, symmetric=True)}
        with torch.no_grad():
            k = F.normalize(self.key_encoder(view_k).float(), dim=1)  # (B, D)
        loss = info_nce(q, k, temperature=self.T, queue=self.queue.get())
        self.queue.enqueue(k)
        return {"loss": loss}

    def after_step(self, step: int, total_steps: int) -> None:
        if self.moco:
            ema_update(self.key_encoder, self.encoder, self.m)

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """A graph -> ``(N, D)``, each node by its seeded RWR ego subgraph; a ``Batch`` of
        graphs -> ``(G, D)``, each whole graph with its highest-degree node as the ego."""
        if getattr(inputs, "batch", None) is None:
            device = inputs.edge_index.device
            g = torch.Generator(device=device).manual_seed(self.seed)
            nodes = torch.arange(inputs.num_nodes, device=device)
            return torch.cat(
                [self.encoder(self.subgraphs(inputs, c, g)) for c in nodes.split(self.embed_chunk)]
            )
        n, num_graphs, graph = inputs.num_nodes, inputs.num_graphs, inputs.batch
        graphs = Data(edge_index=inputs.edge_index, batch=graph, num_nodes=n)
        graphs.num_graphs = num_graphs
        deg = degree(inputs.edge_index[0], n)  # (N,)
        best = deg.new_full((num_graphs,), -1.0).scatter_reduce(0, graph, deg, "amax")  # (G,)
        idx = torch.arange(n, device=deg.device)
        first_best = torch.where(deg == best[graph], idx, n)  # (N,)
        egos = idx.new_full((num_graphs,), n).scatter_reduce(0, graph, first_best, "amin")
        graphs.x = structural_features(graphs, egos, self.k, self.max_degree, None)
        return self.encoder(graphs)  # (G, D)

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int = 64,
        *,
        num_layers: int = 5,
        readout: str = "sum",
        k: int = 32,
        max_degree: int = 512,
        **kw: Any,
    ) -> GCC:
        """GCC's encoder: a GIN (``num_layers`` x ``hidden_dim``, every layer's readout
        concatenated) on structural features, then a linear layer to ``hidden_dim``; ``data``
        is used for nothing but its structure. ``kw`` goes to :class:`GCC`."""
        gin = GIN(cls.in_dim(k, max_degree), hidden_dim, num_layers, readout=readout)
        return cls(GCCEncoder(gin, hidden_dim), k=k, max_degree=max_degree, **kw)
