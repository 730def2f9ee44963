"""Graph data: citation networks (node level), TU graph sets (graph level), edge lists, PyG objects.

:func:`load` turns a name, a file or a PyG object into a :class:`~mmssl.core.data.DataBundle`
with ``modality="graph"``:

* **node level** (Cora, CiteSeer, PubMed, Karate, an edge list, one PyG ``Data``): ``train`` is
  ``[graph]``, the full graph for full-batch training (or a ``NeighborLoader`` when
  ``batch_size > 0`` and ``num_neighbors`` is given); ``probe`` is transductive, one ``all``
  split ``[(graph, y)]`` cut by the ``train``/``val``/``test`` masks, protocol ``linear``.
* **graph level** (MUTAG, PROTEINS, a PyG ``Dataset`` of many graphs): ``train`` is a shuffled
  PyG ``DataLoader``; ``probe`` is one ``all`` split of ``(batch, y)``, protocol ``svm-cv``.

``info`` holds ``num_features``, ``num_classes``, ``level`` (``"node"`` or ``"graph"``) and
``num_nodes`` or ``num_graphs``.
"""

from __future__ import annotations

import hashlib
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

from mmssl.core.data import DataBundle, DataError, ProbeData, cache_dir, require_dir, writable_copy

__all__ = ["NAMES", "degree_features", "load", "read_edge_list", "stratified_masks"]

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
TU = {"mutag": "MUTAG", "proteins": "PROTEINS"}
NAMES = ("karate", *PLANETOID, *TU)
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
            features (as DGI does); ``download=True``; ``num_workers=0``.
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"graph load: unknown options {sorted(unknown)}; use {sorted(_OPTIONS)}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    max_degree = int(options.get("max_degree", 64))
    split = tuple(options.get("split", (0.1, 0.1, 0.8)))
    node_kw = {
        "batch_size": batch_size,
        "seed": seed,
        "split": split,
        "num_neighbors": options.get("num_neighbors"),
        "max_degree": max_degree,
    }
    graph_kw = {
        "batch_size": batch_size or 128,
        "seed": seed,
        "max_degree": max_degree,
        "num_workers": int(options.get("num_workers", 0)),
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
        f"unknown graph dataset {str(name)!r}: no such file; use one of "
        f"{', '.join(NAMES)}, an edge-list/CSV path, or a PyG Data/Dataset"
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
) -> DataBundle:
    if data.edge_index is None:
        data.edge_index = torch.empty(2, 0, dtype=torch.long)
    if data.num_nodes is None or data.num_nodes == 0:
        raise DataError(f"{name}: the graph has no nodes; pass a graph with at least one node")
    x = (
        data.x
        if data.x is not None
        else degree_features(data.edge_index, data.num_nodes, max_degree)
    )
    graph = Data(x=x.float(), edge_index=data.edge_index, num_nodes=data.num_nodes)
    probe, y = None, getattr(data, "y", None)
    if y is not None and y.numel() == data.num_nodes:
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
        # weight decay and length chosen on the validation split.
        dgi_probe = {
            "standardize": False,
            "lr": 0.01,
            "patience": None,
            "grid": {"weight_decay": [0.0, 1e-5, 1e-4, 1e-3], "epochs": [100, 300]},
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
        from torch_geometric.loader import NeighborLoader

        try:
            train = NeighborLoader(
                graph,
                num_neighbors=list(num_neighbors),
                batch_size=batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(seed),
            )
        except ImportError as err:
            raise ImportError(
                f"num_neighbors sampling needs pyg-lib or torch-sparse ({err})"
            ) from err
    info = {
        "num_features": graph.num_features,
        "num_classes": num_classes or 0,
        "level": "node",
        "num_nodes": graph.num_nodes,
    }
    return DataBundle(name=name, modality="graph", train=train, probe=probe, info=info)


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
    name: str, ds: Dataset, *, batch_size: int, seed: int, max_degree: int, num_workers: int
) -> DataBundle:
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
