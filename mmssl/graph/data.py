"""Graph data: citation networks (node level), TU graph sets (graph level), edge lists, PyG objects.

:func:`load` turns a name, a file or a PyG object into a :class:`~mmssl.core.data.DataBundle`
with ``modality="graph"``:

* **node level** (Cora, CiteSeer, PubMed, Karate, an edge list, one PyG ``Data``): ``train`` is
  ``[graph]``, the full graph for full-batch training (or a ``NeighborLoader`` when
  ``batch_size > 0`` and ``num_neighbors`` is given); ``probe`` is transductive, one ``all``
  split ``[(graph, y)]`` cut by the ``train``/``val``/``test`` masks, protocol ``linear``.
* **link prediction** (``task="link"``, any node-level graph): the edges are split 85/5/10
  (:func:`link_split`, as Kipf & Welling 2016); ``train`` is ``[graph]`` holding only the
  training edges; ``probe`` has ``val`` and ``test`` splits ``[(graph, edge_label)]`` where the
  graph also carries ``edge_label_index`` ``(2, E)`` (PyG's convention) of held-out edges and as
  many non-edges, protocol ``link``.
* **graph level** (MUTAG, PROTEINS, a PyG ``Dataset`` of many graphs): ``train`` is a shuffled
  PyG ``DataLoader``; ``probe`` is one ``all`` split of ``(batch, y)``, protocol ``svm-cv``.

``info`` holds ``num_features``, ``num_classes``, ``level`` (``"node"`` or ``"graph"``) and
``num_nodes`` or ``num_graphs``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data, Dataset
from torch_geometric.loader import DataLoader
from torch_geometric.utils import degree, to_undirected

from mmssl.core.data import (
    DataBundle,
    DataError,
    ProbeData,
    cache_dir,
    did_you_mean,
    require_dir,
    writable_copy,
)

__all__ = [
    "NAMES",
    "TASKS",
    "degree_features",
    "link_split",
    "load",
    "read_edge_list",
    "stratified_masks",
]

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
TU = {"mutag": "MUTAG", "proteins": "PROTEINS"}
NAMES = ("karate", *PLANETOID, *TU)
TASKS = ("node", "link")
_PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_TU_FILES = ("A", "graph_indicator", "graph_labels")
_OPTIONS = {
    "split",
    "num_neighbors",
    "labels",
    "max_degree",
    "download",
    "num_workers",
    "normalize",
    "task",
    "link_split",
    "probe_data",
}
_HEADER_WORDS = {"source", "target", "src", "dst", "from", "to", "u", "v", "node1", "node2"}


def load(
    name: str | Data | Dataset | None = None,
    root: str | None = None,
    *,
    batch_size: int = 0,
    seed: int = 0,
    **options: Any,
) -> DataBundle:
    """Load a graph dataset.

    Args:
        name: ``cora``/``citeseer``/``pubmed`` (Planetoid), ``karate`` (ships with PyG; the
            default), ``mutag``/``proteins`` (TUDataset), a path to an edge-list or CSV file
            (``source target`` per line), or a PyG ``Data``/``Dataset`` object.
        root: folder holding ``planetoid/<Name>/raw`` and ``TUDataset/<NAME>/raw``
            (default ``$MMSSL_DATA``). Its dataset folder is copied into the cache before PyG
            writes ``processed/``; when it is missing PyG downloads into the cache.
        batch_size: graphs per batch for graph-level data (0: 128); nodes per seed batch for a
            node-level ``NeighborLoader`` (only with ``num_neighbors``).
        seed: seeds the random split and the loaders' shuffling.
        **options: ``split=(train, val, test)`` fractions for graphs without a public split
            (default ``(0.1, 0.1, 0.8)``, stratified, at least one node per class in each);
            ``num_neighbors=[25, 10]`` for mini-batch node training; ``labels=<file>`` with
            ``node label`` lines for an edge list; ``max_degree=64`` cap of the one-hot degree
            features made when a graph has none; ``normalize=True`` row-normalises Planetoid
            features (as DGI does); ``download=True``; ``num_workers=0``;
            ``task="link"`` for link prediction on a node-level graph (see the module doc),
            with ``link_split=(0.85, 0.05, 0.10)`` train/val/test edge fractions;
            ``probe_data=NAME`` (a name or path as ``name``) probes another dataset than the
            one pretrained on: transfer, for structure-only methods such as GCC; it is loaded
            with the same root, seed and options (``info["probe_data"]`` names it).
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"graph load: unknown options {sorted(unknown)}; use {sorted(_OPTIONS)}")
    probe_data = options.pop("probe_data", None)
    if probe_data is not None:
        bundle = load(name, root, batch_size=batch_size, seed=seed, **options)
        options.pop("num_neighbors", None)  # the probe embeds whole graphs
        target = load(probe_data, root, seed=seed, **options)
        if target.probe is None:
            raise DataError(f"probe_data {probe_data!r} has no labels to probe; pick labelled data")
        bundle.probe = target.probe
        bundle.info.update(probe_data=target.name, probe_info=target.info)
        return bundle
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    max_degree = int(options.get("max_degree", 64))
    split = tuple(options.get("split", (0.1, 0.1, 0.8)))
    task = str(options.get("task", "node"))
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    node_kw = {
        "batch_size": batch_size,
        "seed": seed,
        "split": split,
        "num_neighbors": options.get("num_neighbors"),
        "max_degree": max_degree,
        "task": task,
        "link_fractions": tuple(options.get("link_split", (0.85, 0.05, 0.10))),
    }
    graph_kw = {
        "batch_size": batch_size or 128,
        "seed": seed,
        "max_degree": max_degree,
        "num_workers": int(options.get("num_workers", 0)),
        "task": task,
    }
    if name is None:
        name = "karate"
    if isinstance(name, Data):
        return _node_bundle("data", name, **node_kw)
    if isinstance(name, Dataset):
        if len(name) == 0:
            raise DataError("the PyG dataset passed is empty; pass a dataset with graphs")
        if len(name) == 1:
            return _node_bundle(type(name).__name__, name[0], **node_kw)
        return _graph_bundle(type(name).__name__, name, **graph_kw)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a dataset name, a path or a PyG Data/Dataset, got {name!r}")
    key = str(name).lower()
    base = root if root is not None else os.environ.get("MMSSL_DATA")
    download = bool(options.get("download", True))
    if key == "karate":
        from torch_geometric.datasets import KarateClub

        return _node_bundle("karate", KarateClub()[0], public=False, **node_kw)
    if key in PLANETOID:
        from torch_geometric.datasets import Planetoid
        from torch_geometric.transforms import NormalizeFeatures

        sub = PLANETOID[key]
        files = [f"ind.{key}.{f}" for f in _PLANETOID_FILES]
        pyg_root, where = _pyg_root(key, base, "planetoid", sub, files, download)
        norm = NormalizeFeatures() if options.get("normalize", True) else None
        ds = _open(key, lambda: Planetoid(str(pyg_root), sub, transform=norm), where, files)
        return _node_bundle(key, ds[0], public=True, num_classes=ds.num_classes, **node_kw)
    if key in TU:
        from torch_geometric.datasets import TUDataset

        sub = TU[key]
        files = [f"{sub}_{f}.txt" for f in _TU_FILES]
        pyg_root, where = _pyg_root(key, base, "TUDataset", sub, files, download)
        ds = _open(key, lambda: TUDataset(str(pyg_root), sub), where, files)
        return _graph_bundle(key, ds, **graph_kw)
    path = Path(name)
    if path.is_file():
        graph = read_edge_list(path, labels=options.get("labels"))
        return _node_bundle(path.name, graph, **node_kw)
    if path.is_dir():
        raise DataError(f"{path} is a folder; pass an edge-list file or one of {', '.join(NAMES)}")
    raise DataError(
        f"unknown graph dataset {str(name)!r}: no such file; {did_you_mean(key, NAMES)}use one "
        f"of {', '.join(NAMES)}, an edge-list/CSV path, or a PyG Data/Dataset"
    )


def _pyg_root(
    key: str, base: str | None, layout: str, sub: str, files: list[str], download: bool
) -> tuple[Path, Path]:
    """PyG's ``root`` for ``layout/sub``, and the raw folder to name in errors.

    A local ``base/layout/sub`` is copied into the cache (keyed by its path and file stamps,
    so an edited folder gets a fresh copy); otherwise PyG downloads into the cache.
    """
    src = Path(base) / layout / sub if base is not None else None
    if src is not None and src.exists():
        raw = require_dir(src / "raw", key, f"the raw files {', '.join(files)}")
        missing = [f for f in files if not (raw / f).is_file()]
        if missing:
            raise DataError(
                f"{key}: {raw} lacks {', '.join(missing)}; put the {layout} raw files there"
            )
        stamp = hashlib.sha1(str(src.resolve()).encode())
        for p in sorted(raw.iterdir()):
            stamp.update(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode())
        return writable_copy(src, f"graph/{stamp.hexdigest()[:12]}/{layout}/{sub}").parent, raw
    dl_root = cache_dir() / "graph" / "download" / layout
    where = src / "raw" if src is not None else dl_root / sub / "raw"
    if not download and not (dl_root / sub / "processed").exists():
        raise DataError(
            f"{key}: no folder {where} and download=False; put {', '.join(files)} there"
        )
    return dl_root, where


def _open(key: str, make: Any, raw: Path, files: list[str]) -> Any:
    """Build a PyG dataset, turning download or parse failures into a one-line DataError."""
    try:
        return make()
    except Exception as err:  # PyG raises URLError, FileNotFoundError, parse errors...
        msg = str(err).splitlines()[0] if str(err) else ""
        raise DataError(
            f"{key}: could not load the data from {raw} or download it "
            f"({type(err).__name__}: {msg}); put {', '.join(files)} there"
        ) from err


def degree_features(edge_index: Tensor, num_nodes: int, max_degree: int = 64) -> Tensor:
    """One-hot node degree, capped at ``max_degree``: ``(N, max_degree + 1)`` float.

    The features given to graphs that have none (an edge list, a featureless TU set). A graph
    without edges gets the constant feature (every node in the degree-0 column).
    """
    deg = (
        degree(edge_index[0], num_nodes, dtype=torch.long)
        if edge_index.numel()
        else (torch.zeros(num_nodes, dtype=torch.long))
    )
    return F.one_hot(deg.clamp(max=max_degree), max_degree + 1).float()  # (N, max_degree + 1)


class _DegreeFeatures:
    """PyG transform: add one-hot degree features to graphs without ``x``."""

    def __init__(self, max_degree: int) -> None:
        self.max_degree = max_degree

    def __call__(self, data: Data) -> Data:
        if data.x is None:
            data.x = degree_features(data.edge_index, data.num_nodes, self.max_degree)
        return data


def stratified_masks(
    y: Tensor,
    fractions: Sequence[float] = (0.1, 0.1, 0.8),
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Random ``train``/``val``/``test`` boolean masks with every class split by ``fractions``.

    Each class gives at least one node to each split when it has three or more; nodes with a
    negative label are left out of every split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(
            f"split must be three non-negative fractions (train, val, test), got {fractions}"
        )
    total = float(sum(fractions))
    masks = {s: torch.zeros(y.shape[0], dtype=torch.bool) for s in ("train", "val", "test")}
    for c in torch.unique(y[y >= 0]):
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        n = idx.numel()
        n_tr = max(1, round(n * fractions[0] / total)) if fractions[0] > 0 else 0
        n_va = (
            max(1 if n - n_tr >= 2 else 0, round(n * fractions[1] / total))
            if fractions[1] > 0
            else 0
        )
        n_va = min(n_va, max(0, n - n_tr - 1))
        masks["train"][idx[:n_tr]] = True
        masks["val"][idx[n_tr : n_tr + n_va]] = True
        masks["test"][idx[n_tr + n_va :]] = True
    return masks


def _node_bundle(
    name: str,
    data: Data,
    *,
    batch_size: int,
    seed: int,
    split: tuple[float, ...],
    num_neighbors: list[int] | None,
    max_degree: int,
    public: bool | None = None,
    num_classes: int | None = None,
    task: str = "node",
    link_fractions: tuple[float, ...] = (0.85, 0.05, 0.10),
) -> DataBundle:
    if data.edge_index is None:
        data.edge_index = torch.empty(2, 0, dtype=torch.long)
    if data.num_nodes is None or data.num_nodes == 0:
        raise DataError(f"{name}: the graph has no nodes; pass a graph with at least one node")
    edges, link = data.edge_index, None
    if task == "link":  # message passing (and degree features) see only the training edges
        gen = torch.Generator().manual_seed(seed)
        link = link_split(data.edge_index, data.num_nodes, link_fractions, generator=gen)
        edges = link["train"]
    x = data.x if data.x is not None else degree_features(edges, data.num_nodes, max_degree)
    graph = Data(x=x.float(), edge_index=edges, num_nodes=data.num_nodes)
    probe, y = None, getattr(data, "y", None)
    if link is not None:
        probe = _link_probe(graph, link)
    elif y is not None and y.numel() == data.num_nodes:
        y = y.view(-1).long()
        has_public = all(
            isinstance(getattr(data, f"{s}_mask", None), Tensor) for s in ("train", "val", "test")
        )
        if public if public is not None else has_public:
            masks = {s: getattr(data, f"{s}_mask").bool() for s in ("train", "val", "test")}
        else:
            masks = stratified_masks(y, split, generator=torch.Generator().manual_seed(seed))
        # DGI's node-classification protocol: logistic regression on the raw embeddings, Adam
        # lr 0.01 for a fixed number of epochs (Velickovic et al. 2019, section 4.3), with the
        # weight decay and length chosen on the validation split. GRACE's and BGRL's released
        # evaluations L2-normalise every embedding first; the validation split picks between
        # the two for every method alike.
        dgi_probe = {
            "standardize": False,
            "lr": 0.01,
            "patience": None,
            "grid": {
                "weight_decay": [0.0, 1e-5, 1e-4, 1e-3],
                "epochs": [100, 300],
                "l2_normalize": [False, True],
            },
        }
        probe = ProbeData(
            splits={"all": [(graph, y)]},
            protocol="linear",
            masks=masks,
            options={"linear": dgi_probe},
        )
        num_classes = num_classes or int(y.max()) + 1
    train: Any = [graph]
    if batch_size > 0 and num_neighbors:
        import torch_geometric.typing as pyg_typing
        from torch_geometric.loader import NeighborLoader

        # PyG builds the loader without them and fails only at the first batch: check here
        if not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE):
            raise ImportError(
                "num_neighbors (mini-batch neighbour sampling) needs pyg-lib or torch-sparse: "
                "install one (https://pyg.org/whl), or drop num_neighbors to train full-batch"
            )
        train = NeighborLoader(
            graph,
            num_neighbors=list(num_neighbors),
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
    info = {
        "num_features": graph.num_features,
        "num_classes": num_classes or 0,
        "level": "node",
        "num_nodes": graph.num_nodes,
    }
    if link is not None:
        info["task"] = "link"
    return DataBundle(name=name, modality="graph", train=train, probe=probe, info=info)


def link_split(
    edge_index: Tensor,
    num_nodes: int,
    fractions: Sequence[float] = (0.85, 0.05, 0.10),
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Split a graph's edges for link prediction, the protocol of Kipf & Welling 2016
    (https://arxiv.org/abs/1611.07308): 85% train, 5% validation, 10% test edges.

    The graph is taken as undirected and without self-loops. Each edge goes to one split; val and
    test sizes are rounded down (as the paper's code), the rest is train. Val and test get as many
    distinct non-edges of the full graph as they have edges, drawn uniformly.

    Returns:
        ``train`` ``(2, 2 E_train)``: the training edges in both directions, the message-passing
        graph; ``val_pos``/``test_pos`` ``(2, E_s)``: held-out edges, once each (``u < v``);
        ``val_neg``/``test_neg`` ``(2, E_s)``: non-edges (``u < v``).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"link_split must be three fractions (train, val, test) summing to 1, got {fractions}"
        )
    und = to_undirected(edge_index, num_nodes=num_nodes)
    und = und[:, und[0] < und[1]]  # (2, E): every edge once, self-loops dropped
    e = und.shape[1]
    n_val, n_test = (int(math.floor(f * e + 1e-9)) for f in fractions[1:])
    if n_val < 1 or n_test < 1 or n_val + n_test >= e:
        raise DataError(
            f"a graph with {e} edges is too small for the link split {tuple(fractions)}: "
            "give a larger graph or larger val/test fractions"
        )
    perm = torch.randperm(e, generator=generator)
    neg = _non_edges(und, num_nodes, n_val + n_test, generator)  # (2, n_val + n_test)
    return {
        "train": to_undirected(und[:, perm[n_test + n_val :]], num_nodes=num_nodes),
        "val_pos": und[:, perm[n_test : n_test + n_val]],
        "val_neg": neg[:, :n_val],
        "test_pos": und[:, perm[:n_test]],
        "test_neg": neg[:, n_val:],
    }


def _non_edges(edges: Tensor, num_nodes: int, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` distinct pairs ``u < v`` not in ``edges`` ``(2, E)`` (``u < v``), drawn uniformly."""
    if num_nodes * (num_nodes - 1) // 2 - edges.shape[1] < k:
        raise DataError(f"the graph has fewer than {k} non-edges to sample for the link split")
    taken = edges[0] * num_nodes + edges[1]  # (E,) pair keys
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < k:
        u, v = torch.randint(num_nodes, (2, 2 * k), generator=generator)  # (2k,) each
        cand = torch.minimum(u, v) * num_nodes + torch.maximum(u, v)  # (2k,)
        keys = torch.cat([keys, cand[(u != v) & ~torch.isin(cand, taken)]])
        uniq, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full((uniq.numel(),), keys.numel()).scatter_reduce(
            0, inverse, torch.arange(keys.numel()), "amin"
        )  # first position of each distinct pair: keep the draw order, not sorted order
        keys = keys[first.sort().values]
    keys = keys[:k]
    return torch.stack([keys // num_nodes, keys % num_nodes])  # (2, k)


def _link_probe(graph: Data, link: dict[str, Tensor]) -> ProbeData:
    """``val``/``test`` splits of ``(graph, edge_label)``: the training graph carrying the
    held-out pairs as ``edge_label_index`` ``(2, E_s)`` and their 1/0 labels ``(E_s,)``."""
    splits = {}
    for s in ("val", "test"):
        pos, neg = link[f"{s}_pos"], link[f"{s}_neg"]
        held = Data(
            x=graph.x,
            edge_index=graph.edge_index,
            num_nodes=graph.num_nodes,
            edge_label_index=torch.cat([pos, neg], dim=1),  # (2, E_s)
            edge_label=torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])]),
        )
        splits[s] = [(held, held.edge_label)]
    return ProbeData(splits=splits, protocol="link")


class _Labelled:
    """Re-iterable ``(batch, y)`` pairs over a PyG loader, for the probes."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[tuple[Any, Tensor]]:
        for batch in self.loader:
            yield batch, batch.y.view(-1)

    def __len__(self) -> int:
        return len(self.loader)


def _graph_bundle(
    name: str,
    ds: Dataset,
    *,
    batch_size: int,
    seed: int,
    max_degree: int,
    num_workers: int,
    task: str = "node",
) -> DataBundle:
    if task == "link":
        raise DataError(f"{name}: task='link' needs one node-level graph, not a set of graphs")
    first = ds[0]
    if first.x is None:
        cap = max(
            int(degree(g.edge_index[0], g.num_nodes).max()) if g.edge_index.numel() else 0
            for g in ds
        )
        ds.transform = _DegreeFeatures(min(cap, max_degree))
        first = ds[0]
    train = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    probe = None
    if getattr(first, "y", None) is not None:
        probe = ProbeData(
            splits={"all": _Labelled(DataLoader(ds, batch_size=batch_size))}, protocol="svm-cv"
        )
    num_classes = 0
    if probe is not None:
        try:  # an InMemoryDataset holds all labels in one tensor
            ys = ds.y.view(-1)
        except (AttributeError, KeyError):
            ys = torch.cat([g.y.view(-1) for g in ds])
        num_classes = int(ys.max()) + 1
    info = {
        "num_features": first.num_features,
        "num_classes": num_classes,
        "level": "graph",
        "num_graphs": len(ds),
    }
    return DataBundle(name=name, modality="graph", train=train, probe=probe, info=info)


def read_edge_list(path: str | Path, labels: str | Path | None = None) -> Data:
    """Read ``source target`` lines (whitespace, comma or semicolon separated) into a ``Data``.

    Lines starting with ``#`` or ``%`` are comments; a first line of column names is skipped;
    extra columns (weights) are ignored. Node ids (integers or strings) are mapped to
    ``0..N-1`` in sorted order; edges are made undirected; ``x`` is left unset. An optional
    ``labels`` file with ``node label`` lines sets ``y`` (``-1`` for unlabelled nodes) and may
    add isolated nodes.
    """
    rows = _read_rows(path, "source target")
    if rows and rows[0][0].lower() in _HEADER_WORDS and rows[0][1].lower() in _HEADER_WORDS:
        rows = rows[1:]
    label_rows = _read_rows(labels, "node label") if labels is not None else []
    if not rows and not label_rows:
        raise DataError(f"{path}: no edges found; put one 'source target' pair per line")
    ids = {t for r in rows for t in r[:2]} | {r[0] for r in label_rows}
    numeric = all(re.fullmatch(r"-?\d+", t) for t in ids)
    order = sorted(ids, key=int) if numeric else sorted(ids)
    index = {t: i for i, t in enumerate(order)}
    edge_index = torch.tensor(
        [[index[r[0]] for r in rows], [index[r[1]] for r in rows]], dtype=torch.long
    ).view(2, -1)  # (2, E)
    edge_index = to_undirected(edge_index, num_nodes=len(order)) if rows else edge_index
    data = Data(edge_index=edge_index, num_nodes=len(order))
    if label_rows:
        classes = {c: i for i, c in enumerate(sorted({r[1] for r in label_rows}))}
        y = torch.full((len(order),), -1, dtype=torch.long)
        for node, cls, *_ in label_rows:
            y[index[node]] = classes[cls]
        data.y = y
    return data


def _read_rows(path: str | Path, expect: str) -> list[list[str]]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found; give a text file with '{expect}' lines")
    rows = []
    with p.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith(("#", "%")):
                continue
            parts = [t for t in re.split(r"[,;\s]+", line) if t]
            if len(parts) < 2:
                raise DataError(f"{p}:{lineno}: expected '{expect}' (2 columns), got {line[:60]!r}")
            rows.append(parts)
    return rows
