"""ARGVA: each player gets only its own gradient from the one summed loss; smoke training."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.graph.data import load
from mmssl.graph.methods.argva import ARGVA, latent_discriminator
from mmssl.graph.methods.gae import VGAE


def _grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def test_registered() -> None:
    cls = registry.get("graph", "argva")
    assert cls is ARGVA and issubclass(cls, VGAE)
    assert cls.family == "generative-contrastive" and cls.kind == "adversarial"


def test_discriminator_is_the_authors_mlp() -> None:
    d = latent_discriminator(16)
    widths = [m.out_features for m in d if isinstance(m, nn.Linear)]
    assert widths == [64, 32, 1] and d(torch.zeros(5, 16)).shape == (5, 1)
    method = ARGVA.build(load("karate", None))
    assert method.discriminator[0].in_features == method.encoder.out_dim == 16


def test_one_backward_routes_each_players_gradient() -> None:
    data = load("karate", None)
    random.seed(0)
    torch.manual_seed(0)
    method = ARGVA.build(data, adversarial_weight=0.5)
    out = method(data.train[0])
    disc = list(method.discriminator.parameters())
    enc = list(method.encoder.parameters())
    # the discriminator learns from L_D only: the generator loss does not reach it
    for g_total, g_d in zip(_grads(out["loss"], disc), _grads(out["disc_loss"], disc), strict=True):
        assert torch.allclose(g_total, g_d, atol=1e-6)
    assert all(g.abs().sum() == 0 for g in _grads(out["gen_loss"], disc))
    # the encoder learns from -ELBO + lambda * L_G only: L_D does not reach it
    assert all(g.abs().sum() == 0 for g in _grads(out["disc_loss"], enc))
    enc_only = out["loss"] - out["disc_loss"]
    for g_total, g_e in zip(_grads(out["loss"], enc), _grads(enc_only, enc), strict=True):
        assert torch.allclose(g_total, g_e, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in _grads(out["gen_loss"], enc))


def test_smoke_karate() -> None:
    data = load("karate", None)
    random.seed(0)
    torch.manual_seed(0)
    method = ARGVA.build(data)
    graph = data.train[0]
    opt = torch.optim.Adam(method.parameters(), lr=0.01)
    recon = []
    for _ in range(40):
        out = method(graph)
        assert torch.isfinite(out["loss"]) and 0.0 <= float(out["disc_acc"]) <= 1.0
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        recon.append(float(out["recon"].detach()))
    assert sum(recon[-5:]) < sum(recon[:5])
    assert method.embed(graph).shape == (34, 16)


def test_custom_discriminator_and_checks() -> None:
    data = load("karate", None)
    d = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))
    method = ARGVA.build(data, discriminator=d)
    assert method.discriminator is d
    with pytest.raises(ValueError, match="adversarial_weight"):
        ARGVA.build(data, adversarial_weight=-1.0)
