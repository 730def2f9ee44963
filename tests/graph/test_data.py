"""Graph data loading: bundled, shared-folder, file and object inputs, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

from mmssl.core.data import DataError
from mmssl.graph.data import degree_features, load, read_edge_list, stratified_masks


def _check_masks(masks: dict[str, torch.Tensor], y: torch.Tensor) -> None:
    tr, va, te = masks["train"], masks["val"], masks["test"]
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
    assert set(y[tr].tolist()) == set(y[y >= 0].tolist())  # every class in train


def test_karate_is_the_offline_default() -> None:
    b = load(None, None)
    assert b.modality == "graph" and b.name == "karate"
    assert b.info == {"num_features": 34, "num_classes": 4, "level": "node", "num_nodes": 34}
    (graph,) = b.train
    assert graph.x.shape == (34, 34) and graph.y is None  # no labels in pretraining data
    ((inputs, y),) = b.probe.splits["all"]
    assert inputs is graph and y.shape == (34,)
    _check_masks(b.probe.masks, y)
    assert b.probe.protocol == "linear"
    again = load("karate", None, seed=0).probe.masks
    other = load("karate", None, seed=1).probe.masks
    assert all(torch.equal(again[s], b.probe.masks[s]) for s in again)
    assert any(not torch.equal(other[s], again[s]) for s in again)


def test_cora_public_split(data_root: Path) -> None:
    b = load("cora", str(data_root))
    assert b.info["num_features"] == 1433 and b.info["num_classes"] == 7
    assert {s: int(m.sum()) for s, m in b.probe.masks.items()} == {
        "train": 140,
        "val": 500,
        "test": 1000,
    }
    x = b.train[0].x
    assert torch.allclose(x.sum(1)[x.sum(1) > 0], torch.ones(1))  # row-normalised like DGI
    assert not (data_root / "planetoid" / "Cora" / "processed").exists()  # shared data untouched


def test_mutag_graph_level(data_root: Path) -> None:
    b = load("mutag", str(data_root), batch_size=32, seed=0)
    assert b.info == {"num_features": 7, "num_classes": 2, "level": "graph", "num_graphs": 188}
    batch = next(iter(b.train))
    assert batch.num_graphs == 32 and batch.x.shape[1] == 7
    assert b.probe.protocol == "svm-cv"
    ys = torch.cat([y for _, y in b.probe.splits["all"]])
    assert ys.shape == (188,)
    first = [next(iter(load("mutag", str(data_root), batch_size=32, seed=0).train)).y for _ in "ab"]
    assert torch.equal(first[0], first[1])  # seeded shuffling


def test_bad_folders_give_one_line_data_errors(tmp_path: Path) -> None:
    raw = tmp_path / "planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)
    with pytest.raises(DataError, match="is empty") as err:
        load("cora", str(tmp_path))
    assert "\n" not in str(err.value)
    (raw / "ind.cora.x").write_text("")
    with pytest.raises(DataError, match="lacks ind.cora.tx"):
        load("cora", str(tmp_path))
    with pytest.raises(DataError, match="TUDataset/MUTAG/raw"):
        load("mutag", str(tmp_path), download=False)
    with pytest.raises(DataError, match="unknown graph dataset"):
        load("not-a-dataset", None)


def test_edge_list_file(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("source,target\n# a comment\na,b\nb,c\nc,a,0.5\n")
    labels = tmp_path / "labels.txt"
    labels.write_text("a x\nb x\nc y\nd y\ne y\nf x\n")  # d, e, f: isolated nodes
    b = load(str(path), None, labels=str(labels), split=(0.4, 0.2, 0.4))
    g = b.train[0]
    assert g.num_nodes == 6 and g.edge_index.shape == (2, 6)  # undirected
    assert g.x.shape == (6, 65) and torch.equal(g.x.argmax(1), torch.tensor([2, 2, 2, 0, 0, 0]))
    _check_masks(b.probe.masks, b.probe.splits["all"][0][1])
    unlabelled = load(str(path), None)
    assert unlabelled.probe is None and unlabelled.info["num_nodes"] == 3


def test_malformed_and_empty_edge_lists(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n2\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 'source target'"):
        load(str(bad), None)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(DataError, match="no edges"):
        read_edge_list(empty)


def test_pyg_objects_without_edges_or_features() -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    b = load(Data(edge_index=torch.empty(2, 0, dtype=torch.long), y=y, num_nodes=6), None)
    assert b.info["num_features"] == 65 and b.train[0].x[:, 0].eq(1).all()
    _check_masks(b.probe.masks, y)

    class Tiny(InMemoryDataset):
        def __init__(self) -> None:
            super().__init__(None)
            ring = torch.tensor([[0, 1, 2], [1, 2, 0]])
            graphs = [Data(edge_index=ring, y=torch.tensor([i % 2]), num_nodes=3) for i in range(6)]
            self._data, self.slices = self.collate(graphs)

    gb = load(Tiny(), None, batch_size=4)
    assert gb.info["level"] == "graph" and gb.info["num_classes"] == 2
    batch = next(iter(gb.train))
    assert batch.x.shape == (12, 2)  # one-hot degree, capped at the largest degree (1)


def test_helpers() -> None:
    x = degree_features(torch.tensor([[0, 0, 1], [1, 2, 0]]), 4, max_degree=1)
    assert x.tolist() == [[0, 1], [0, 1], [1, 0], [1, 0]]
    y = torch.tensor([0] * 10 + [1] * 3 + [-1])
    m = stratified_masks(y, (0.5, 0.2, 0.3), generator=torch.Generator().manual_seed(0))
    assert int(m["train"].sum()) == 7 and not (m["train"] | m["val"] | m["test"])[-1]
    with pytest.raises(ValueError, match="three non-negative"):
        stratified_masks(y, (0.5, 0.5))
    with pytest.raises(ValueError, match="unknown options"):
        load("karate", None, bogus=1)


def test_neighbour_sampling_batches_or_refuses_at_load_time() -> None:
    """Mini-batch node training: seed batches with their sampled neighbourhoods, or, without
    pyg-lib/torch-sparse, a clear error when the data is loaded (PyG itself would fail only at
    the first batch, mid-run)."""
    import torch_geometric.typing as pyg_typing

    if pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE:
        data = load("karate", None, batch_size=8, num_neighbors=[5, 5])
        batch = next(iter(data.train))
        assert batch.batch_size == 8 and batch.num_nodes >= 8
        assert batch.x.shape[1] == data.info["num_features"]
    else:
        with pytest.raises(ImportError, match="pyg-lib or torch-sparse"):
            load("karate", None, batch_size=8, num_neighbors=[5, 5])
