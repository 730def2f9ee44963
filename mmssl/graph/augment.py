"""Batched, on-device graph augmentations and corruptions.

Each function takes a PyG ``Data``/``Batch`` already on its device and returns a new one that
shares every untouched tensor with the input (a shallow copy; the input is never modified).
Randomness comes from the ``generator`` argument: with the same seeded generator the same
call gives the same view. A generator on another device than the data (a CPU generator for
CUDA data) is fine: the random numbers are drawn on the generator's device and moved.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mmssl.core.method import SeededGenerators

__all__ = [
    "GraphViews",
    "SeededGenerators",
    "drop_edges",
    "drop_nodes",
    "drop_nodes_batched",
    "feature_permutation",
    "keep_nodes_batched",
    "mask_features",
    "ppr_diffusion",
    "rwr_subgraph",
    "rwr_subgraphs",
    "shuffle_features",
    "subgraph_batched",
]


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    if generator is None:
        return torch.rand(n, device=device)
    return torch.rand(n, generator=generator, device=generator.device).to(device)  # (n,)


def _check_p(p: float, what: str) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{what} probability must be in [0, 1), got {p}")


def feature_permutation(data: Any, generator: torch.Generator | None = None) -> Tensor:
    """The random node order ``(N,)`` that :func:`shuffle_features` applies to ``x``."""
    n = data.x.shape[0]
    device = data.x.device
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=generator.device).to(device)  # (N,)


def shuffle_features(data: Any, generator: torch.Generator | None = None) -> Any:
    """DGI's corruption (https://arxiv.org/abs/1809.10341): permute the rows of ``x``.

    The graph is kept, so node :math:`i` gets the features of another node; ``x`` ``(N, F)``.
    """
    out = copy.copy(data)
    out.x = data.x[feature_permutation(data, generator)]  # (N, F)
    return out


def drop_edges(data: Any, p: float, generator: torch.Generator | None = None) -> Any:
    """Remove each (directed) edge independently with probability ``p`` (GRACE's edge removal).

    Edge-level tensors (``edge_attr``, ``edge_weight``) are cut with the same mask.
    """
    _check_p(p, "edge drop")
    e = data.edge_index.shape[1]
    keep = _rand(e, generator, data.edge_index.device) >= p  # (E,)
    out = copy.copy(data)
    out.edge_index = data.edge_index[:, keep]  # (2, E')
    for key in ("edge_attr", "edge_weight"):
        value = getattr(data, key, None)
        if isinstance(value, Tensor) and value.shape[0] == e:
            setattr(out, key, value[keep])
    return out


def mask_features(
    data: Any, p: float, generator: torch.Generator | None = None, *, per_node: bool = False
) -> Any:
    """Zero feature dimensions with probability ``p`` (GRACE's feature masking).

    By default one mask over the ``F`` columns is shared by all nodes, as in GRACE
    (https://arxiv.org/abs/2006.04131); ``per_node=True`` draws an ``(N, F)`` mask instead.
    """
    _check_p(p, "feature mask")
    n, f = data.x.shape
    if per_node:
        keep = (_rand(n * f, generator, data.x.device) >= p).view(n, f)  # (N, F)
    else:
        keep = (_rand(f, generator, data.x.device) >= p).view(1, f)  # (1, F)
    out = copy.copy(data)
    out.x = data.x * keep.to(data.x.dtype)  # (N, F)
    return out


class GraphViews:
    """Two augmented views of a graph batch: edge dropping then feature masking, per view.

    Defaults are GRACE's Cora setting (https://arxiv.org/abs/2006.04131): edges dropped with
    probability 0.2 / 0.4 and feature columns masked with 0.3 / 0.4 in view 1 / view 2.

    Args:
        drop_edge: the edge-drop probability of each view.
        mask_feature: the feature-mask probability of each view.
        seed: seeds the generator (one per device), so views are reproducible.
    """

    def __init__(
        self,
        drop_edge: Sequence[float] = (0.2, 0.4),
        mask_feature: Sequence[float] = (0.3, 0.4),
        *,
        seed: int = 0,
    ) -> None:
        if len(drop_edge) != 2 or len(mask_feature) != 2:
            raise ValueError(
                "drop_edge and mask_feature take one probability per view, e.g. (0.2, 0.4)"
            )
        for p in (*drop_edge, *mask_feature):
            _check_p(p, "augmentation")
        self.drop_edge, self.mask_feature = tuple(drop_edge), tuple(mask_feature)
        self.generators = SeededGenerators(seed)

    def __call__(self, data: Any) -> tuple[Any, Any]:
        g = self.generators(data.x.device)
        return tuple(  # type: ignore[return-value]
            mask_features(drop_edges(data, pe, g), pf, g)
            for pe, pf in zip(self.drop_edge, self.mask_feature, strict=True)
        )

    def __repr__(self) -> str:
        return f"GraphViews(drop_edge={self.drop_edge}, mask_feature={self.mask_feature})"


# Per-graph node augmentations of GraphCL (You et al. 2020, https://arxiv.org/abs/2010.13902)
# for whole PyG batches at once: every graph of the batch gets its own random choice, with no
# Python loop over graphs. A plain ``Data`` counts as a batch of one graph.


def _graphs_of(data: Any) -> tuple[Tensor, int]:
    """Each node's graph ``(N,)`` and the number of graphs ``G`` (one for a plain ``Data``)."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(data.x.shape[0], dtype=torch.long, device=data.x.device), 1
    return batch, int(data.num_graphs)


def keep_nodes_batched(data: Any, keep: Tensor) -> Any:
    """The subgraph induced by the nodes where ``keep`` ``(N,)`` is True, nodes relabelled.

    Edges (and ``edge_attr``/``edge_weight``) survive when both ends are kept; ``x``, ``batch``
    and ``ptr`` are cut to the kept nodes, and the number of graphs is unchanged (a graph that
    keeps no node pools to zeros).
    """
    n, keep = data.x.shape[0], keep.bool()
    new_id = torch.cumsum(keep, 0) - 1  # (N,) position of each kept node in the output
    ei = data.edge_index
    edge_keep = keep[ei[0]] & keep[ei[1]]  # (E,)
    out = copy.copy(data)
    out.edge_index = new_id[ei[:, edge_keep]]  # (2, E')
    for key in ("edge_attr", "edge_weight"):
        value = getattr(data, key, None)
        if isinstance(value, Tensor) and value.shape[0] == ei.shape[1]:
            setattr(out, key, value[edge_keep])
    for key in ("x", "pos"):
        value = getattr(data, key, None)
        if isinstance(value, Tensor) and value.shape[0] == n:
            setattr(out, key, value[keep])  # (N', ...)
    if "num_nodes" in data:  # a stored count would still include the dropped nodes
        out.num_nodes = int(keep.sum())
    batch = getattr(data, "batch", None)
    if batch is not None:
        out.batch = batch[keep]  # (N',)
        counts = torch.bincount(out.batch, minlength=int(data.num_graphs))  # (G,)
        out.ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # (G + 1,)
        _fix_batch_slices(out, data, edge_keep)
        if getattr(data, "_num_nodes", None) is not None:  # per-graph stored counts
            out._num_nodes = counts.tolist()
    return out


def _fix_batch_slices(out: Any, data: Any, edge_keep: Tensor) -> None:
    """Keep a cut ``Batch``'s bookkeeping right, so ``out.to_data_list()`` still works."""
    slices, incs = getattr(data, "_slice_dict", None), getattr(data, "_inc_dict", None)
    if slices is None or incs is None:
        return
    e_counts = torch.bincount(data.batch[data.edge_index[0]][edge_keep], minlength=len(out.ptr) - 1)
    e_ptr = torch.cat([e_counts.new_zeros(1), e_counts.cumsum(0)]).cpu()  # (G + 1,)
    out._slice_dict, out._inc_dict = dict(slices), dict(incs)
    for key in slices:
        if key in ("x", "pos"):
            out._slice_dict[key] = out.ptr.cpu()
        elif key in ("edge_index", "edge_attr", "edge_weight"):
            out._slice_dict[key] = e_ptr
    if "edge_index" in incs:
        out._inc_dict["edge_index"] = out.ptr[:-1].cpu()


def _rank_in_graph(score: Tensor, graph: Tensor, counts: Tensor) -> Tensor:
    """Each node's rank ``(N,)`` by ascending ``score`` (in ``[0, 2)``) within its own graph."""
    order = (graph.double() * 2 + score.double()).argsort()  # (N,) by graph, by score inside
    start = counts.cumsum(0) - counts  # (G,) first position of each graph
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device) - start[graph[order]]
    return rank


def drop_nodes_batched(data: Any, p: float, generator: torch.Generator | None = None) -> Any:
    """GraphCL's node dropping: remove ``floor(p * n_g)`` random nodes of every graph ``g``
    (at least one node is kept), with their edges.
    """
    _check_p(p, "node drop")
    graph, num_graphs = _graphs_of(data)
    counts = torch.bincount(graph, minlength=num_graphs)  # (G,)
    rank = _rank_in_graph(_rand(graph.numel(), generator, graph.device), graph, counts)  # (N,)
    n_drop = torch.minimum((counts * p).floor().long(), (counts - 1).clamp(min=0))  # (G,)
    return keep_nodes_batched(data, rank >= n_drop[graph])


def subgraph_batched(
    data: Any, p: float, generator: torch.Generator | None = None, *, rounds: int = 32
) -> Any:
    """GraphCL's subgraph: a connected part of every graph holding ``ceil((1 - p) * n_g)`` nodes.

    A random walk that always extends: from a random seed node, each step adds a random
    unvisited neighbour of the visited set (or a random unvisited node once the seed's
    component is exhausted), all graphs of the batch stepping together. So that a batch with a
    large graph needs no more than about ``rounds`` steps, a graph of ``n_g`` nodes adds up to
    ``ceil(n_g / rounds)`` random neighbours per step (one for graphs up to ``rounds`` nodes).
    """
    _check_p(p, "subgraph drop")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    graph, num_graphs = _graphs_of(data)
    n, device = graph.numel(), graph.device
    src, dst = data.edge_index  # (E,), (E,)
    counts = torch.bincount(graph, minlength=num_graphs)  # (G,)
    target = torch.ceil(counts * (1.0 - p)).long().clamp(min=1).minimum(counts)  # (G,)
    per_step = torch.ceil(counts / rounds).long().clamp(min=1)  # (G,)
    seed = _rank_in_graph(_rand(n, generator, device), graph, counts) == 0  # (N,) one per graph
    visited, size = seed, (counts > 0).long()  # (N,), (G,)
    while bool((size < target).any()):
        frontier = torch.zeros_like(visited)
        frontier[dst[visited[src] & ~visited[dst]]] = True  # (N,) unvisited neighbours of the set
        has_frontier = torch.zeros_like(counts).index_add_(0, graph, frontier.long()) > 0  # (G,)
        candidates = ~visited & (frontier | ~has_frontier[graph])  # (N,)
        score = _rand(n, generator, device) + (~candidates).float()  # (N,) candidates first
        take = torch.minimum(per_step, target - size)  # (G,)
        visited = visited | (candidates & (_rank_in_graph(score, graph, counts) < take[graph]))
        size = torch.bincount(graph[visited], minlength=num_graphs)  # (G,)
    return keep_nodes_batched(data, visited)


def drop_nodes(data: Any, p: float, generator: torch.Generator | None = None) -> Any:
    """Node dropping (GraphCL, https://arxiv.org/abs/2010.13902): remove each node
    independently with probability ``p``, with its edges; kept nodes are relabelled in order
    (see :func:`keep_nodes_batched`, which also keeps a ``Batch``'s bookkeeping right)."""
    _check_p(p, "node drop")
    keep = _rand(data.x.shape[0], generator, data.x.device) >= p  # (N,)
    out = keep_nodes_batched(data, keep)
    out.num_nodes = out.x.shape[0]  # a stored num_nodes would still count the dropped nodes
    return out


def _csr(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(rowptr (N + 1,), col (E,), order (E,))``: the out-neighbours of node ``i`` are
    ``col[rowptr[i]:rowptr[i + 1]]``, and ``col = edge_index[1, order]``."""
    src, dst = edge_index
    deg = torch.bincount(src, minlength=num_nodes)  # (N,)
    rowptr = torch.cat([deg.new_zeros(1), deg.cumsum(0)])  # (N + 1,)
    order = torch.argsort(src, stable=True)  # (E,)
    return rowptr, dst[order], order


def rwr_subgraphs(
    data: Any,
    starts: Tensor,
    restart_prob: float = 0.8,
    walk_length: int = 256,
    generator: torch.Generator | None = None,
) -> list[Any]:
    r"""Subgraphs sampled by random walk with restart, one per start node, all walked at once.

    GCC's augmentation (Qiu et al. 2020, https://arxiv.org/abs/2006.09963): from the start node,
    each step moves to a uniformly random neighbour and then, with probability
    ``restart_prob``, jumps back to the start. A walk from start :math:`s` makes
    :math:`S = \max(L, \lceil d_s\, e / ((e - 1)\, p_{restart}) \rceil)` steps (GCC's rule, so
    a hub's neighbourhood gets covered), and its subgraph is the one induced by the visited
    nodes. With GCC's ``restart_prob=0.8`` that is the ego network plus some 2- and 3-hop nodes.

    The walk is cut at its restarts into traces of geometric length, which are independent, so
    all traces of all walks step in parallel (a few steps) instead of :math:`S` steps in a row.

    Args:
        data: a PyG ``Data``/``Batch`` (a batch walks inside each graph: it has no edges across).
        starts: ``(B,)`` start node indices.
        restart_prob: probability of jumping back to the start after each step (GCC: 0.8).
        walk_length: :math:`L`, the least number of steps (GCC's ``rw_hops``: 256).
        generator: seeds the walks.

    Returns:
        ``B`` ``Data`` objects: node 0 is the start node, the others follow in increasing index;
        ``node_ids`` ``(n,)`` maps them back to ``data``; ``x`` and edge-level tensors are cut
        to the subgraph when ``data`` has them. A start node without edges gives a one-node graph.
    """
    from torch_geometric.data import Data

    if not 0.0 < restart_prob <= 1.0:
        raise ValueError(f"restart_prob must be in (0, 1], got {restart_prob}; GCC uses 0.8")
    if walk_length < 1:
        raise ValueError(f"walk_length must be >= 1, got {walk_length}; GCC uses 256")
    n_all, device = int(data.num_nodes), data.edge_index.device
    starts = starts.to(device=device, dtype=torch.long).view(-1)  # (B,)
    b = starts.numel()
    rowptr, col, order = _csr(data.edge_index, n_all)
    col = torch.cat([col, col.new_zeros(1)])  # (E + 1,): a safe slot for nodes without edges
    deg = rowptr[1:] - rowptr[:-1]  # (N,)
    ratio = math.e / (math.e - 1) / restart_prob
    steps = torch.clamp(torch.ceil(deg[starts] * ratio).long(), min=walk_length)  # (B,)
    w = int(steps.max()) if b else 0  # traces per walk: each has >= 1 step, so w always suffice
    # Trace lengths ~ Geometric(restart_prob) on {1, 2, ...}, cut so each walk makes S steps.
    u = _rand(b * w, generator, device).view(b, w).clamp_min(1e-12)  # (B, W)
    length = 1 + (u.log() / math.log1p(-restart_prob)).floor().long() if restart_prob < 1 else 1
    length = torch.as_tensor(length, device=device).expand(b, w).clamp(max=w)  # (B, W)
    before = length.cumsum(1) - length  # (B, W) steps the earlier traces made
    length = torch.minimum(length, (steps.view(-1, 1) - before).clamp(min=0))  # (B, W)
    walk = torch.arange(b, device=device).view(-1, 1).expand(b, w)[length > 0]  # (K,) traces
    length = length[length > 0]  # (K,)
    pos = starts[walk]  # (K,) every trace leaves from its walk's start
    seen_walk, seen_node = [torch.arange(b, device=device)], [starts]
    for i in range(int(length.max()) if b else 0):
        live = length > i  # only the traces still going take step i
        walk, length, pos = walk[live], length[live], pos[live]  # (K_i,)
        d = deg[pos]  # (K_i,)
        r = _rand(pos.numel(), generator, device)
        nxt = col[rowptr[pos] + torch.minimum((r * d).long(), (d - 1).clamp(min=0))]
        pos = torch.where(d > 0, nxt, pos)  # (K_i,) a node without edges stays put
        seen_walk.append(walk)
        seen_node.append(pos)

    # One sorted key per (walk, visited node), the start node first inside its walk.
    def key(walk: Tensor, node: Tensor) -> Tensor:
        return walk * (n_all + 1) + torch.where(node == starts[walk], 0, node + 1)

    keys = torch.unique(key(torch.cat(seen_walk), torch.cat(seen_node)))  # (M,)
    owner = keys // (n_all + 1)  # (M,) walk of each subgraph node
    nodes = torch.where(keys % (n_all + 1) == 0, starts[owner], keys % (n_all + 1) - 1)  # (M,)
    sizes = torch.bincount(owner, minlength=b)  # (B,)
    first = sizes.cumsum(0) - sizes  # (B,)
    # Induced edges: each out-edge of a subgraph node whose other end is in the same subgraph.
    d = deg[nodes]  # (M,)
    src = torch.repeat_interleave(torch.arange(keys.numel(), device=device), d)  # (C,)
    within = torch.arange(src.numel(), device=device) - (d.cumsum(0) - d)[src]  # (C,)
    eid = rowptr[nodes][src] + within  # (C,) position among the source-sorted edges
    dst_key = key(owner[src], col[eid])  # (C,)
    dst = torch.searchsorted(keys, dst_key).clamp(max=max(keys.numel() - 1, 0))  # (C,)
    hit = keys[dst] == dst_key if keys.numel() else dst_key.new_zeros(0, dtype=torch.bool)
    src, dst, eid = src[hit], dst[hit], order[eid[hit]]  # eid: index into data.edge_index
    local = torch.stack([src, dst]) - first[owner[src]]  # (2, E') node ids inside each subgraph
    n_sizes, e_sizes = sizes.tolist(), torch.bincount(owner[src], minlength=b).tolist()
    parts: dict[str, Any] = {
        "node_ids": nodes.split(n_sizes),
        "edge_index": local.split(e_sizes, dim=1),
    }
    if isinstance(getattr(data, "x", None), Tensor):
        parts["x"] = data.x[nodes].split(n_sizes)  # (n, F) each
    for name in ("edge_attr", "edge_weight"):
        value = getattr(data, name, None)
        if isinstance(value, Tensor) and value.shape[0] == order.numel():
            parts[name] = value[eid].split(e_sizes)
    return [
        Data(num_nodes=n, **{name: part[k] for name, part in parts.items()})
        for k, n in enumerate(n_sizes)
    ]


def rwr_subgraph(
    data: Any,
    start: int,
    restart_prob: float = 0.8,
    walk_length: int = 256,
    generator: torch.Generator | None = None,
) -> Any:
    """The subgraph induced by a random walk with restart from ``start`` (node 0 of the result);
    see :func:`rwr_subgraphs`."""
    return rwr_subgraphs(data, torch.tensor([start]), restart_prob, walk_length, generator)[0]


def ppr_diffusion(data: Any, alpha: float = 0.2, *, top_k: int | None = None) -> Any:
    r"""The personalised-PageRank diffusion of a graph, as a new weighted graph (MVGRL's
    second view, Hassani & Khasahmadi 2020, https://arxiv.org/abs/2006.05582):

    .. math::
        S = \alpha \big(I - (1 - \alpha)\, \hat D^{-1/2} \hat A \hat D^{-1/2}\big)^{-1},
        \qquad \hat A = A + I,\ \hat D = \operatorname{diag}(\hat A \mathbf{1}).

    Dense: an ``N x N`` inverse, ``O(N^3)`` once (Cora, ``N = 2708``: about a second), so cache
    the result (MVGRL does). Node ``i`` aggregates ``S[i, j] x_j``: the output has one edge
    ``j -> i`` (``edge_index[:, e] = (j, i)``) with ``edge_weight[e] = S[i, j]`` for every
    non-zero entry, or only for the ``top_k`` largest entries of each row ``i`` (a sparsified
    diffusion, ``N * top_k`` edges). ``x`` and the node-level tensors are shared with ``data``.

    Args:
        data: one graph (``x``/``num_nodes``, ``edge_index``); duplicate edges count once.
        alpha: the teleport (restart) probability :math:`\alpha` (MVGRL: 0.2).
        top_k: keep the ``top_k`` largest weights per node; ``None`` keeps all.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}; MVGRL uses 0.2")
    n = int(data.num_nodes)
    if top_k is not None and not 1 <= top_k:
        raise ValueError(f"top_k must be >= 1 or None (dense), got {top_k}")
    ei = data.edge_index
    a = torch.zeros(n, n, device=ei.device)  # (N, N), a[i, j]: edge j -> i
    a[ei[1], ei[0]] = 1.0
    a.fill_diagonal_(1.0)  # A + I
    d_inv_sqrt = a.sum(1).pow(-0.5)  # (N,)
    t = d_inv_sqrt.view(-1, 1) * a * d_inv_sqrt.view(1, -1)  # (N, N)
    eye = torch.eye(n, device=ei.device)
    # I - (1 - alpha) T has eigenvalues in [alpha, 2 - alpha]: well conditioned in float32.
    s = torch.linalg.inv(eye - (1.0 - alpha) * t).mul_(alpha)  # (N, N)
    if top_k is None or top_k >= n:
        dst, src = s.nonzero(as_tuple=True)  # (E,), (E,)
        weight = s[dst, src]  # (E,)
    else:
        weight, src = s.topk(top_k, dim=1)  # (N, k), (N, k)
        dst = torch.arange(n, device=ei.device).repeat_interleave(top_k)  # (N * k,)
        weight, src = weight.reshape(-1), src.reshape(-1)  # (N * k,)
    out = copy.copy(data)
    out.edge_index = torch.stack([src, dst])  # (2, E')
    out.edge_weight = weight
    if getattr(data, "edge_attr", None) is not None:
        out.edge_attr = None
    return out
