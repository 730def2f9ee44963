"""Link prediction: the seeded 85/5/10 edge split, the link data bundle, the ``link`` probe."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import stochastic_blockmodel_graph

from mmssl.cli import main
from mmssl.core.data import DataError, ProbeData
from mmssl.core.evaluate import link_prediction, run_probe
from mmssl.graph.data import link_split, load
from mmssl.graph.methods.dgi import DGI
from mmssl.graph.methods.gae import GAE


def _pairs(edge_index: Tensor) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in edge_index.t().tolist()}


class _Fixed(nn.Module):
    """A 'method' whose embedding is a fixed tensor."""

    def __init__(self, z: Tensor) -> None:
        super().__init__()
        self.z = z

    def embed(self, inputs: Data) -> Tensor:
        return self.z


def test_split_sizes_and_disjointness() -> None:
    karate = load("karate", None).train[0]
    full = _pairs(karate.edge_index)
    split = link_split(karate.edge_index, 34, generator=torch.Generator().manual_seed(0))
    assert len(full) == 78
    assert split["val_pos"].shape == (2, 3) and split["test_pos"].shape == (2, 7)  # floor, as Kipf
    assert split["train"].shape == (2, 2 * (78 - 10))  # both directions
    train, val, test = _pairs(split["train"]), _pairs(split["val_pos"]), _pairs(split["test_pos"])
    assert train | val | test == full and not (train & test) and not (train & val)
    assert not (val & test)
    for s in ("val", "test"):
        neg = split[f"{s}_neg"]
        assert neg.shape == split[f"{s}_pos"].shape
        assert (neg[0] < neg[1]).all()  # no self-loops, canonical order
        assert not (_pairs(neg) & full)  # true non-edges of the full graph
    assert not (_pairs(split["val_neg"]) & _pairs(split["test_neg"]))


def test_split_is_seeded() -> None:
    ei = load("karate", None).train[0].edge_index
    a = link_split(ei, 34, generator=torch.Generator().manual_seed(1))
    b = link_split(ei, 34, generator=torch.Generator().manual_seed(1))
    c = link_split(ei, 34, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["test_pos"], c["test_pos"])


def test_split_checks() -> None:
    ei = load("karate", None).train[0].edge_index
    with pytest.raises(ValueError, match="summing to 1"):
        link_split(ei, 34, (0.8, 0.05, 0.05))
    with pytest.raises(DataError, match="too small"):
        link_split(torch.tensor([[0, 1], [1, 2]]), 3)


def test_link_bundle_trains_on_train_edges_only() -> None:
    b = load("karate", None, task="link", seed=0)
    assert b.info["task"] == "link" and b.probe.protocol == "link"
    (graph,) = b.train
    assert set(b.probe.splits) == {"val", "test"}
    train = _pairs(graph.edge_index)
    for s in ("val", "test"):
        ((held, y),) = b.probe.splits[s]
        assert held.edge_index is graph.edge_index and held.x is graph.x
        pos = held.edge_label_index[:, y == 1]
        assert y.sum() * 2 == y.numel()  # as many non-edges as edges
        assert not (_pairs(pos) & train)  # no held-out edge in the message-passing graph
    assert graph.edge_index.shape[1] == 2 * 68
    with pytest.raises(ValueError, match="task"):
        load("karate", None, task="edges")


def test_featureless_graph_gets_degrees_of_the_train_graph() -> None:
    ei = load("karate", None).train[0].edge_index
    b = load(Data(edge_index=ei, num_nodes=34), task="link", seed=0, max_degree=40)
    graph = b.train[0]
    deg = torch.bincount(graph.edge_index[0], minlength=34)
    assert torch.equal(graph.x.argmax(1), deg)  # not the full graph's degrees


def test_graph_sets_refuse_the_link_task(data_root: Path) -> None:
    with pytest.raises(DataError, match="node-level"):
        load("mutag", str(data_root), task="link")


def test_protocol_scores_the_inner_product() -> None:
    b = load("karate", None, task="link", seed=0)
    z = torch.randn(34, 8, generator=torch.Generator().manual_seed(0))
    res = run_probe(_Fixed(z), b.probe)["link"]
    assert set(res) == {"val_auc", "val_ap", "test_auc", "test_ap"}
    ((held, y),) = b.probe.splits["test"]
    u, v = held.edge_label_index
    p = torch.sigmoid((z[u] * z[v]).sum(1))
    assert res["test_auc"] == pytest.approx(roc_auc_score(y, p))
    assert res["test_ap"] == pytest.approx(average_precision_score(y, p))


def test_protocol_works_for_any_node_method_and_checks_the_data() -> None:
    link = load("karate", None, task="link", seed=0)
    torch.manual_seed(0)
    res = run_probe(DGI.build(link, hidden_dim=16), link.probe)["link"]
    assert all(0.0 <= v <= 1.0 for v in res.values())
    with pytest.raises(DataError, match="only probe is 'link'"):
        run_probe(DGI.build(link, hidden_dim=16), link.probe, "linear")
    node = load("karate", None)
    with pytest.raises(DataError, match="task='link'"):
        run_probe(DGI.build(node, hidden_dim=16), node.probe, "link")
    one_class = ProbeData(splits={"test": [(link.probe.splits["test"][0][0], torch.ones(14))]})
    with pytest.raises(DataError, match="both"):
        link_prediction(_Fixed(torch.zeros(34, 2)), one_class)


def test_gae_learns_links_of_a_block_graph() -> None:
    torch.manual_seed(0)  # the block graph draws from torch's global generator
    ei = stochastic_blockmodel_graph([40, 40], [[0.3, 0.01], [0.01, 0.3]])
    graph = Data(x=torch.eye(80), edge_index=ei, num_nodes=80)
    b = load(graph, task="link", seed=0)
    random.seed(0)
    method = GAE.build(b)
    before = run_probe(method, b.probe)["link"]["test_auc"]
    opt = torch.optim.Adam(method.parameters(), lr=0.01)
    for _ in range(60):
        loss = method(b.train[0])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = run_probe(method, b.probe)["link"]["test_auc"]
    assert after > 0.8 and after > before, (before, after)


def test_cli_link_task(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["pretrain", "graph", "--method", "vgae", "--data", "karate", "--data-opt", "task=link"]
    assert main([*args, "--epochs", "3", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["probe"]["link"]) == {"val_auc", "val_ap", "test_auc", "test_ap"}
    assert set(res["random_init"]["link"]) == set(res["probe"]["link"])
