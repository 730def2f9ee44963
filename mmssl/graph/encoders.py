"""Graph encoders: GCN (Kipf & Welling 2017), GIN (Xu et al. 2019), GAT (Velickovic et al.
2018) and GraphSAGE (Hamilton et al. 2017), plus graph readouts.

One convention for every encoder here: ``encoder(data)`` takes a PyG ``Data`` or ``Batch``
(``x``, ``edge_index`` and, for batches of graphs, ``batch``) and returns

* node embeddings ``(N, D)`` when ``readout=None``, or
* graph embeddings ``(num_graphs, D)`` when ``readout`` is ``"mean"``, ``"sum"``, ``"max"`` or
  ``"attention"`` (a learned gate, see :class:`Readout`),

with ``D = encoder.out_dim``. So a node encoder and a graph encoder both plug straight into
``Method.embed`` and :class:`~mmssl.core.method.TwoViewMethod`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import (
    GATConv,
    GCNConv,
    GINConv,
    SAGEConv,
    global_add_pool,
    global_max_pool,
    global_mean_pool,
)
from torch_geometric.nn.aggr import AttentionalAggregation
from torch_geometric.nn.conv.gcn_conv import gcn_norm

__all__ = [
    "ENCODERS",
    "GAT",
    "GCN",
    "GIN",
    "READOUTS",
    "READOUT_KINDS",
    "GraphSAGE",
    "Readout",
    "SparseFeatures",
    "build_encoder",
    "make_activation",
    "readout",
    "sparse_adjacency",
]

READOUTS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}
READOUT_KINDS = (*READOUTS, "attention")  # "attention" has parameters: use :class:`Readout`


def readout(
    h: Tensor, batch: Tensor | None, kind: str = "mean", num_graphs: int | None = None
) -> Tensor:
    """Pool node features ``h`` ``(N, D)`` into graph features ``(num_graphs, D)``.

    ``batch`` ``(N,)`` gives each node's graph; ``None`` means one graph (``(1, D)``).
    """
    if kind not in READOUTS:
        hint = "; the attention readout has parameters: use Readout('attention', D)"
        raise ValueError(
            f"readout must be one of {', '.join(READOUTS)}, got {kind!r}"
            + (hint if kind == "attention" else "")
        )
    return READOUTS[kind](h, batch, num_graphs)


class Readout(nn.Module):
    r"""A graph readout as a module: ``(h (N, D), batch (N,) | None, num_graphs) -> (G, D)``.

    ``"mean"``, ``"sum"`` and ``"max"`` are the parameter-free pools of :func:`readout`;
    ``"attention"`` is global attention pooling (Li et al. 2016,
    https://arxiv.org/abs/1511.05493): a learned gate scores each node and the graph embedding
    is the softmax-weighted sum over its nodes,

    .. math::
        r_G = \sum_{i \in G} \operatorname{softmax}_{i \in G}(w^\top h_i + b)\, h_i.

    Args:
        kind: one of :data:`READOUT_KINDS`.
        dim: ``D``, the size of the node embeddings (sizes the attention gate).
    """

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind not in READOUT_KINDS:
            raise ValueError(f"readout must be one of {', '.join(READOUT_KINDS)}, got {kind!r}")
        self.kind = kind
        self.attention = (
            AttentionalAggregation(gate_nn=nn.Linear(dim, 1)) if kind == "attention" else None
        )

    def forward(self, h: Tensor, batch: Tensor | None, num_graphs: int | None = None) -> Tensor:
        if self.attention is None:
            return readout(h, batch, self.kind, num_graphs)  # (G, D)
        if batch is None:
            num_graphs = 1
        return self.attention(h, batch, dim_size=num_graphs)  # (G, D)

    def extra_repr(self) -> str:
        return repr(self.kind)


def _fp32(x: Tensor) -> torch.autocast:
    """Autocast off on ``x``'s device: the sparse products run in fp32 (CSR kernels do not
    exist for bf16 on every device; the graphs' dense layers are small either way)."""
    return torch.autocast(x.device.type, enabled=False)


def sparse_adjacency(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> Tensor:
    """A graph's weighted adjacency as a sparse CSR ``(N, N)`` matrix whose entry ``[i, j]`` is
    the weight of edge ``j -> i`` (so ``A @ h`` sums each node's incoming messages); one sparse
    product per layer instead of one message per edge."""
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.shape[1], device=edge_index.device)
    coo = torch.sparse_coo_tensor(
        edge_index.flip(0), edge_weight.float(), (num_nodes, num_nodes), check_invariants=False
    ).coalesce()
    with warnings.catch_warnings():  # "CSR support is in beta": the products used here work
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return coo.to_sparse_csr()


class SparseFeatures:
    """Node features as a sparse CSR matrix when that makes the first projection cheaper.

    Bag-of-words features (Cora: 1.3% non-zero) make :math:`XW` a sparse product, several times
    faster than the dense one, forward and backward, on the CPU. ``x`` goes sparse when it is a
    float matrix on the CPU that needs no gradient and at most ``max_density`` of it is
    non-zero; the CSR copy of the last ``x`` is kept, so a graph that every step reuses
    (full-batch training) converts once. On a GPU the dense product of a graph this size takes
    microseconds, and the sparse one's backward (a transposed CSR product) costs more: ``x``
    stays dense there.
    """

    def __init__(self, max_density: float = 0.1) -> None:
        self.max_density = max_density
        self._last: tuple[Tensor, Tensor] | None = None

    def __call__(self, x: Tensor) -> Tensor:
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        if (
            x.dim() != 2
            or x.device.type != "cpu"
            or x.layout != torch.strided
            or not x.is_floating_point()
            or (x.requires_grad and torch.is_grad_enabled())
            or x.numel() == 0
            or torch.count_nonzero(x) > self.max_density * x.numel()
        ):
            return x
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
            sparse = x.detach().to_sparse_csr()
        self._last = (x, sparse)  # holds x: identity is safe
        return sparse


def _check_readout(kind: str | None) -> None:
    if kind is not None and kind not in READOUT_KINDS:
        raise ValueError(f"readout must be None or one of {', '.join(READOUT_KINDS)}, got {kind!r}")


def make_activation(name: str, dim: int) -> nn.Module:
    """``prelu`` (one slope per channel, as PyG's DGI), ``relu``, ``elu`` or ``identity``."""
    acts = {"prelu": lambda: nn.PReLU(dim), "relu": nn.ReLU, "elu": nn.ELU, "identity": nn.Identity}
    if name not in acts:
        raise ValueError(f"activation must be one of {', '.join(acts)}, got {name!r}")
    return acts[name]()


def _inputs(data: Any) -> tuple[Tensor, Tensor, Tensor | None, int | None]:
    x = getattr(data, "x", None)
    if x is None or getattr(data, "edge_index", None) is None:
        raise TypeError("graph encoders take a PyG Data/Batch with x and edge_index set")
    batch = getattr(data, "batch", None)
    return (
        x,
        data.edge_index,
        batch,
        getattr(data, "num_graphs", None) if batch is not None else None,
    )


class GCN(nn.Module):
    r"""Graph convolutional network, https://arxiv.org/abs/1609.02907.

    Each layer computes :math:`\sigma(\hat D^{-1/2} (A + I) \hat D^{-1/2} X W)`. DGI on Cora
    uses one layer of 512 units with PReLU; GRACE two layers with ReLU.

    The normalised adjacency is computed once per graph and cached: it is reused for as long
    as ``forward`` sees the same ``edge_index`` tensor (a corruption that only permutes ``x``,
    full-batch training), and recomputed when a new one comes (dropped edges, a new batch).

    Args:
        in_dim: input feature size ``F``.
        hidden_dim: output size ``D`` of every layer.
        num_layers: number of graph convolutions.
        activation: applied after every layer (see :func:`make_activation`).
        dropout: dropout on the input of every layer.
        readout: ``None`` for node embeddings ``(N, D)``, else the pooling for ``(G, D)``.
        add_self_loops: use :math:`A + I`.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 512,
        num_layers: int = 1,
        activation: str = "prelu",
        dropout: float = 0.0,
        *,
        readout: str | None = None,
        add_self_loops: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        _check_readout(readout)
        dims = [in_dim] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(
            GCNConv(a, b, normalize=False) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.acts = nn.ModuleList(
            make_activation(activation, hidden_dim) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.readout, self.add_self_loops, self.out_dim = readout, add_self_loops, hidden_dim
        self.pool = Readout(readout, hidden_dim) if readout is not None else None
        self._cache: tuple[Tensor, int, Tensor, Tensor, Tensor] | None = None
        self.features = SparseFeatures()

    def _normalize(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
        c = self._cache
        if c is None or c[0] is not edge_index or c[1] != num_nodes:
            ei, ew = gcn_norm(edge_index, None, num_nodes, add_self_loops=self.add_self_loops)
            adj = sparse_adjacency(ei, ew, num_nodes)
            self._cache = (edge_index, num_nodes, ei, ew, adj)  # holds edge_index: identity is safe
        return self._cache[2:]  # type: ignore[return-value]

    def normalized_adjacency(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        """``(edge_index (2, E'), edge_weight (E',))`` of the normalised adjacency, cached."""
        ei, ew, _ = self._normalize(edge_index, num_nodes)
        return ei, ew

    def adjacency(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """The normalised adjacency as a sparse CSR ``(N, N)`` matrix (row = target), cached."""
        return self._normalize(edge_index, num_nodes)[2]

    def _layers(self, h: Tensor, adj: Tensor, start: int) -> Tensor:
        """Layers ``start, start + 1, ...`` on ``h``; the first one's input goes through
        :class:`SparseFeatures` (a CSR matrix when the features are sparse)."""
        for i, (conv, act) in enumerate(zip(self.convs, self.acts, strict=True)):
            if i >= start:
                h = self.dropout(h)
                h = act(conv(self.features(h) if i == 0 else h, adj))  # (N, D)
        return h

    def forward(self, data: Any) -> Tensor:
        """``data`` with ``x`` ``(N, F)`` -> ``(N, D)``, or ``(G, D)`` with a readout."""
        x, edge_index, batch, num_graphs = _inputs(data)
        adj = self.adjacency(edge_index, x.shape[0])
        with _fp32(x):  # sparse products: fp32 (no bf16 kernels for CSR on every device)
            h = self._layers(x.float(), adj, 0)
        if self.pool is None:
            return h
        return self.pool(h, batch, num_graphs)  # (G, D)

    def forward_permuted(self, data: Any, perm: Tensor) -> tuple[Tensor, Tensor]:
        """Node embeddings of ``data`` and of ``data`` with the rows of ``x`` permuted by
        ``perm`` (DGI's corruption), ``((N, D), (N, D))``, in one pass.

        A row permutation commutes with the first layer's projection,
        :math:`(PX)W = P(XW)`, so :math:`XW` (the costly product, ``F`` wide) is computed once
        and both views are propagated together. Equal to ``forward`` on the permuted data;
        with input dropout in training (the views' masks would differ) it is two passes.
        """
        x, edge_index, batch, _ = _inputs(data)
        if batch is not None or (self.training and self.dropout.p > 0):
            permuted = copy.copy(data)
            permuted.x = x[perm]  # (N, F)
            return self(data), self(permuted)
        adj = self.adjacency(edge_index, x.shape[0])
        conv = self.convs[0]
        d = self.out_dim
        with _fp32(x):
            xw = conv.lin(self.features(x.float()))  # (N, D)
            both = adj @ torch.cat([xw, xw[perm]], dim=1)  # (N, 2D): one sparse product
            if conv.bias is not None:
                both = both + conv.bias.repeat(2)
            act = self.acts[0]
            h, h_perm = act(both[:, :d]), act(both[:, d:])  # the first layer's output, each
            return self._layers(h, adj, 1), self._layers(h_perm, adj, 1)


class GIN(nn.Module):
    r"""Graph isomorphism network, https://arxiv.org/abs/1810.00826, as InfoGraph/GraphCL use it.

    Layer :math:`k`: :math:`h^{k} = \mathrm{BN}(\sigma(\mathrm{MLP}((1 + \epsilon) h^{k-1}
    + \sum_{u \in N(v)} h_u^{k-1})))`. With ``jk="cat"`` the outputs of all layers are
    concatenated (``D = num_layers * hidden_dim``), the graph embedding of InfoGraph
    (https://arxiv.org/abs/1908.01000) and GraphCL (https://arxiv.org/abs/2010.13902).

    Args:
        in_dim: input feature size ``F``.
        hidden_dim: width of every layer (InfoGraph/GraphCL: 32).
        num_layers: number of GIN layers (InfoGraph/GraphCL: 5).
        activation: inside each MLP and after each layer.
        batch_norm: batch-normalise every layer's output.
        jk: ``"cat"`` (concatenate every layer) or ``"last"``.
        readout: ``"sum"`` (the papers' choice), ``"mean"``, ``"max"``, ``"attention"``, or
            ``None`` for nodes.
        train_eps: learn :math:`\epsilon`.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 32,
        num_layers: int = 5,
        activation: str = "relu",
        *,
        batch_norm: bool = True,
        jk: str = "cat",
        readout: str | None = "sum",
        train_eps: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if jk not in ("cat", "last"):
            raise ValueError(f"jk must be 'cat' or 'last', got {jk!r}")
        _check_readout(readout)
        dims = [in_dim] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(
            GINConv(
                nn.Sequential(nn.Linear(a, b), make_activation(activation, b), nn.Linear(b, b)),
                train_eps=train_eps,
            )
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.acts = nn.ModuleList(
            make_activation(activation, hidden_dim) for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(hidden_dim) if batch_norm else nn.Identity() for _ in range(num_layers)
        )
        self.jk, self.readout = jk, readout
        self.out_dim = hidden_dim * num_layers if jk == "cat" else hidden_dim
        self.pool = Readout(readout, self.out_dim) if readout is not None else None

    def forward(self, data: Any) -> Tensor:
        """``data`` with ``x`` ``(N, F)`` -> ``(N, D)``, or ``(G, D)`` with a readout."""
        x, edge_index, batch, num_graphs = _inputs(data)
        layers = []
        for conv, act, norm in zip(self.convs, self.acts, self.norms, strict=True):
            x = norm(act(conv(x, edge_index)))  # (N, hidden_dim)
            layers.append(x)
        h = torch.cat(layers, dim=1) if self.jk == "cat" else x  # (N, D)
        if self.pool is None:
            return h
        return self.pool(h, batch, num_graphs)  # (G, D)


class GAT(nn.Module):
    r"""Graph attention network, https://arxiv.org/abs/1710.10903.

    Each layer attends over the neighbours with ``heads`` independent heads whose outputs are
    concatenated:
    :math:`h_i' = \Vert_{k=1}^{K} \sigma(\sum_{j \in N(i) \cup \{i\}} \alpha^k_{ij} W^k h_j)`,
    :math:`\alpha^k_{ij} = \operatorname{softmax}_j(\mathrm{LeakyReLU}(a^{k\top}[W^k h_i \Vert
    W^k h_j]))`. The paper's Cora model: 8 heads of 8 units, ELU, dropout 0.6.

    Args:
        in_dim: input feature size ``F``.
        hidden_dim: output size ``D`` of every layer, split over the heads (``D / heads`` each).
        num_layers: number of attention layers.
        heads: attention heads per layer; must divide ``hidden_dim``.
        activation: applied after every layer (the paper: ELU).
        dropout: dropout on every layer's input (and on the attention coefficients unless
            ``attn_dropout`` is given).
        readout: ``None`` for node embeddings ``(N, D)``, else the pooling for ``(G, D)``.
        attn_dropout: dropout on the attention coefficients; ``None``: ``dropout``.
        init_gain: ``None`` keeps PyG's Glorot-uniform initialisation; a number draws the
            projections and attention vectors Xavier-normal with that gain instead (DGL's
            ``GATConv``, and so GraphMAE's released code: :math:`\sqrt 2`, the ReLU gain).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 64,
        num_layers: int = 2,
        heads: int = 8,
        activation: str = "elu",
        dropout: float = 0.0,
        *,
        readout: str | None = None,
        attn_dropout: float | None = None,
        init_gain: float | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if heads < 1 or hidden_dim % heads:
            raise ValueError(
                f"heads must be >= 1 and divide hidden_dim, got heads={heads}, "
                f"hidden_dim={hidden_dim}; e.g. hidden_dim=64 with heads=8"
            )
        _check_readout(readout)
        dims = [in_dim] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(
            GATConv(
                a,
                b // heads,
                heads=heads,
                dropout=dropout if attn_dropout is None else attn_dropout,
            )
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        if init_gain is not None:
            for conv in self.convs:
                for w in (conv.lin.weight, conv.att_src, conv.att_dst):  # (H*C, F), (1, H, C)
                    nn.init.xavier_normal_(w, gain=init_gain)
        self.acts = nn.ModuleList(
            make_activation(activation, hidden_dim) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.readout, self.out_dim = readout, hidden_dim
        self.pool = Readout(readout, hidden_dim) if readout is not None else None

    def forward(self, data: Any) -> Tensor:
        """``data`` with ``x`` ``(N, F)`` -> ``(N, D)``, or ``(G, D)`` with a readout."""
        x, edge_index, batch, num_graphs = _inputs(data)
        for conv, act in zip(self.convs, self.acts, strict=True):
            x = act(conv(self.dropout(x), edge_index))  # (N, heads * D / heads)
        if self.pool is None:
            return x
        return self.pool(x, batch, num_graphs)  # (G, D)


class GraphSAGE(nn.Module):
    r"""GraphSAGE, https://arxiv.org/abs/1706.02216, full-neighbourhood form.

    Layer: :math:`h_i' = \sigma(W_1 h_i + W_2 \operatorname{agg}_{j \in N(i)} h_j)` with
    ``aggr`` the mean (the paper's GraphSAGE-mean), ``"max"`` or ``"sum"``; pair it with
    PyG's ``NeighborLoader`` for the paper's sampled neighbourhoods.

    Args:
        in_dim: input feature size ``F``.
        hidden_dim: output size ``D`` of every layer.
        num_layers: number of layers (the paper: 2).
        activation: applied after every layer.
        dropout: dropout on the input of every layer.
        aggr: neighbour aggregation.
        normalize: L2-normalise every layer's output (the paper's line 7 of Algorithm 1).
        readout: ``None`` for node embeddings ``(N, D)``, else the pooling for ``(G, D)``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        aggr: str = "mean",
        normalize: bool = False,
        readout: str | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if aggr not in ("mean", "max", "sum"):
            raise ValueError(f"aggr must be 'mean', 'max' or 'sum', got {aggr!r}")
        _check_readout(readout)
        dims = [in_dim] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(
            SAGEConv(a, b, aggr=aggr, normalize=normalize)
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.acts = nn.ModuleList(
            make_activation(activation, hidden_dim) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.readout, self.out_dim = readout, hidden_dim
        self.pool = Readout(readout, hidden_dim) if readout is not None else None

    def forward(self, data: Any) -> Tensor:
        """``data`` with ``x`` ``(N, F)`` -> ``(N, D)``, or ``(G, D)`` with a readout."""
        x, edge_index, batch, num_graphs = _inputs(data)
        for conv, act in zip(self.convs, self.acts, strict=True):
            x = act(conv(self.dropout(x), edge_index))  # (N, D)
        if self.pool is None:
            return x
        return self.pool(x, batch, num_graphs)  # (G, D)


ENCODERS: dict[str, type[nn.Module]] = {"gcn": GCN, "gin": GIN, "gat": GAT, "sage": GraphSAGE}


def build_encoder(name: str, in_dim: int, **kwargs: Any) -> nn.Module:
    """``build_encoder("gat", F, hidden_dim=64, heads=8)``: an encoder of :data:`ENCODERS` by name."""
    if name not in ENCODERS:
        raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
    return ENCODERS[name](in_dim, **kwargs)
