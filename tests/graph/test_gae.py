"""GAE and VGAE: the losses against hand-written references, smoke training, embeddings."""

from __future__ import annotations

import random

import pytest
import torch
from torch import Tensor

from mmssl.core import registry
from mmssl.core.data import DataBundle
from mmssl.graph.data import load
from mmssl.graph.methods.gae import GAE, VGAE, GCNEncoder, inner_product


def _fixed_negatives(edge_index: Tensor, num_nodes: int, num: int) -> Tensor:
    """A deterministic 'sampler': pairs (i, i + 2) mod N, for comparing against a reference."""
    u = torch.arange(num) % num_nodes
    return torch.stack([u, (u + 2) % num_nodes])  # (2, num)


def _train(method: GAE, graph, steps: int, lr: float = 0.01) -> list[dict[str, float]]:
    opt = torch.optim.Adam(method.parameters(), lr=lr)
    logs = []
    for _ in range(steps):
        out = method(graph)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        logs.append({k: float(v.detach()) for k, v in out.items()})
    return logs


def test_registered_with_paper_defaults() -> None:
    gae, vgae = registry.get("graph", "gae"), registry.get("graph", "vgae")
    assert gae is GAE and vgae is VGAE
    assert gae.family == vgae.family == "generative"
    assert gae.kind == "auto-encoding" and vgae.kind == "variational"
    assert vgae.defaults["lr"] == 0.01 and vgae.defaults["epochs"] == 200
    assert vgae.defaults["optimizer"] == "adam" and vgae.defaults["schedule"] == "constant"


def test_encoder_is_32_16() -> None:
    data = load("karate", None)
    vgae = VGAE.build(data)
    assert isinstance(vgae.encoder, GCNEncoder) and vgae.encoder.out_dim == 16
    assert vgae.encoder.hidden.out_dim == 32
    mu, logvar = vgae.encoder(data.train[0])
    assert mu.shape == logvar.shape == (34, 16)
    assert GAE.build(data).encoder(data.train[0]).shape == (34, 16)


def test_recon_loss_matches_bce_reference() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GAE.build(data, negative_sampler=_fixed_negatives)
    graph = data.train[0]
    z = method.encoder(graph)  # (N, 16)
    ei = graph.edge_index
    neg = _fixed_negatives(ei, 34, ei.shape[1])
    pos_logit = (z[ei[0]] * z[ei[1]]).sum(1)
    neg_logit = (z[neg[0]] * z[neg[1]]).sum(1)
    expected = (
        -torch.log(torch.sigmoid(pos_logit)).mean() - torch.log(1 - torch.sigmoid(neg_logit)).mean()
    )
    assert torch.allclose(method(graph)["loss"], expected, atol=1e-5)
    assert torch.allclose(inner_product(z, ei), pos_logit)


def test_vgae_kl_weight_is_one_over_n() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = VGAE.build(data, negative_sampler=_fixed_negatives, seed=3)
    graph = data.train[0]
    terms, z = method.elbo(graph)
    mu, logvar = method.encoder(graph)
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    assert torch.allclose(terms["kl"], kl, atol=1e-5)
    assert torch.allclose(terms["loss"], terms["recon"] + kl / 34, atol=1e-5)
    assert torch.allclose(terms["recon"], method.recon_loss(z, graph.edge_index), atol=1e-5)
    again = VGAE.build(data, negative_sampler=_fixed_negatives, seed=3)
    again.load_state_dict(method.state_dict())
    assert torch.equal(again.elbo(graph)[1], z)  # the noise is seeded


@pytest.mark.parametrize("cls", [GAE, VGAE])
def test_smoke_karate_loss_decreases(cls: type[GAE]) -> None:
    data = load("karate", None)
    random.seed(0)  # PyG's negative sampling draws from Python's random
    torch.manual_seed(0)
    method = cls.build(data)
    logs = _train(method, data.train[0], steps=40)
    losses = torch.tensor([r["loss"] for r in logs])
    assert torch.isfinite(losses).all()
    assert losses[-5:].mean() < losses[:5].mean()
    emb = method.embed(data.train[0])
    assert emb.shape == (34, 16) and torch.isfinite(emb).all()


def test_vgae_embeds_the_mean_and_keeps_no_state() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = VGAE.build(data)
    graph = data.train[0]
    before = method.embed(graph)
    method(graph)  # a training forward must not change what embed returns
    assert torch.equal(method.embed(graph), before)
    assert torch.equal(before, method.encoder(graph)[0])
    assert not any(k.startswith("__") for k in vars(method))


def test_bad_settings_are_refused() -> None:
    data = load("karate", None)
    with pytest.raises(ValueError, match="num_negatives"):
        GAE.build(data, num_negatives=0)
    with pytest.raises(ValueError, match="kl_weight"):
        VGAE.build(data, kl_weight=-1.0)
    graphs = DataBundle("mutag", "graph", [], info={"num_features": 7, "level": "graph"})
    with pytest.raises(ValueError, match="node-level"):
        VGAE.build(graphs)


def test_kl_weight_override_changes_the_loss() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    a = VGAE.build(data, negative_sampler=_fixed_negatives, kl_weight=1.0)
    terms, _ = a.elbo(data.train[0])
    assert torch.allclose(terms["loss"], terms["recon"] + terms["kl"], atol=1e-5)
