"""BiGAN/ALI: each player gets only its own gradient from one backward; grids; a smoke run."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mmssl.core import registry
from mmssl.vision.data import load
from mmssl.vision.methods import BiGAN, JointDiscriminator


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=32, seed=0)


def _grads(loss, params):
    return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)


def _zero(grads) -> bool:
    return all(g is None or g.abs().sum() == 0 for g in grads)


def test_registered_under_both_names():
    assert registry.get("vision", "bigan") is BiGAN and registry.get("vision", "ali") is BiGAN
    assert BiGAN.family == "generative-contrastive" and BiGAN.kind == "adversarial"
    assert BiGAN.defaults["betas"] == (0.5, 0.999)


def test_parts_shapes(digits):
    torch.manual_seed(0)
    m = BiGAN.build(digits, latent_dim=16, seed=0)
    x_enc, x = m.augment(next(iter(digits.train)))
    assert x_enc.shape == x.shape == (32, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert m.encode(x_enc).shape == (32, 16)
    fake = m.generator(torch.randn(5, 16))
    assert fake.shape == (5, 3, 16, 16) and fake.abs().max() <= 1
    assert m.discriminator(x, torch.randn(32, 16)).shape == (32,)
    d32 = JointDiscriminator(3, 32, 8)
    assert d32(torch.randn(2, 3, 32, 32), torch.randn(2, 8)).shape == (2,)


def test_one_backward_routes_each_players_gradient(digits):
    torch.manual_seed(0)
    m = BiGAN.build(digits, latent_dim=16, seed=0)
    out = m(m.augment(next(iter(digits.train))))
    disc = list(m.discriminator.parameters())
    players = [*m.encoder.parameters(), *m.to_latent.parameters(), *m.generator.parameters()]
    # D learns from L_D only, E and G from L_EG only
    assert _zero(_grads(out["gen_loss"], disc)) and _zero(_grads(out["disc_loss"], players))
    assert not _zero(_grads(out["disc_loss"], disc))
    assert not _zero(_grads(out["gen_loss"], list(m.encoder.parameters())))
    assert not _zero(_grads(out["gen_loss"], list(m.generator.parameters())))
    for total, part in zip(_grads(out["loss"], disc), _grads(out["disc_loss"], disc), strict=True):
        assert torch.allclose(total, part, atol=1e-6)
    for total, part in zip(
        _grads(out["loss"], players), _grads(out["gen_loss"], players), strict=True
    ):
        assert torch.allclose(total, part, atol=1e-6)


def test_smoke_each_player_improves(digits):
    torch.manual_seed(0)
    m = BiGAN.build(digits, latent_dim=16, seed=0)
    batch = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_losses = []
    for _ in range(6):
        out = m(batch)
        assert torch.isfinite(out["loss"]) and 0.0 <= float(out["disc_acc"]) <= 1.0
        d_losses.append(float(out["disc_loss"].detach()))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert d_losses[-1] < d_losses[0], d_losses
    # with D held fixed, a gradient step on L_EG lowers L_EG
    m.eval()  # no dropout or batch statistics; the same prior draw for both evaluations
    before = m.generators(torch.device("cpu")).get_state()
    first = m(batch)["gen_loss"]
    m.zero_grad()
    first.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.discriminator.parameters())
    torch.optim.SGD(m.parameters(), lr=1e-3).step()
    m.generators(torch.device("cpu")).set_state(before)
    assert float(m(batch)["gen_loss"].detach()) < float(first.detach())


def test_save_artifacts_writes_grids(digits, tmp_path):
    torch.manual_seed(0)
    m = BiGAN.build(digits, latent_dim=16, seed=0)
    names = m.save_artifacts(tmp_path, digits)
    assert names == ["samples.png", "reconstructions.png"] and m.training
    side = 8 * 17 + 1  # 8 images of 16 px a row, 1 px padding
    assert Image.open(tmp_path / "samples.png").size == (side, side)
    # 4 rows of 16 images, each row above its G(E(x))
    assert Image.open(tmp_path / "reconstructions.png").size == (16 * 17 + 1, 8 * 17 + 1)
    images, _ = next(iter(digits.probe.splits["test"]))
    assert m.embed(images[:5]).shape == (5, m.encoder.out_dim)


def test_ali_stochastic_encoder_draws_around_its_mean(digits):
    torch.manual_seed(0)
    x_enc, _ = BiGAN.build(digits, latent_dim=16, seed=0).augment(next(iter(digits.train)))
    bigan = BiGAN.build(digits, latent_dim=16, seed=0)
    g = torch.Generator().manual_seed(1)
    assert torch.equal(bigan.sample_code(x_enc, g), bigan.encode(x_enc))  # deterministic
    ali = BiGAN.build(digits, latent_dim=16, stochastic=True, seed=0)
    assert ali.to_latent.out_features == 32  # (mu, log sigma)
    mu, log_sigma = ali.to_latent(ali.encoder(x_enc)).chunk(2, dim=1)
    assert torch.equal(ali.encode(x_enc), mu)
    draw = ali.sample_code(x_enc, torch.Generator().manual_seed(1))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(draw, mu + log_sigma.exp() * eps, atol=1e-6)
    assert not torch.allclose(draw, ali.sample_code(x_enc, torch.Generator().manual_seed(2)))
    # the reparameterised draw carries the discriminator's gradient into sigma's head too
    draw.sum().backward()
    assert ali.to_latent.weight.grad[16:].abs().sum() > 0


def test_discriminator_lr_scale_and_spectral_norm(digits):
    from torch.nn.utils import parametrize

    from mmssl.core.trainer import TrainConfig, build_optimizer, warmup_cosine

    with pytest.raises(ValueError, match="disc_lr_scale"):
        BiGAN.build(digits, disc_lr_scale=0.0)
    m = BiGAN.build(digits, latent_dim=16, disc_lr_scale=0.25, spectral_norm=True, seed=0)
    opt = build_optimizer(m, TrainConfig(lr=1e-3))
    disc = {id(p) for p in m.discriminator.parameters()}
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in m.parameters())  # each parameter once
    for g in opt.param_groups:
        in_d = {id(p) in disc for p in g["params"]}
        assert len(in_d) == 1 and g["lr"] == (2.5e-4 if in_d.pop() else 1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2, 10))
    for _ in range(5):
        opt.step()
        sched.step()
    lrs = {g["lr"] for g in opt.param_groups}
    assert len(lrs) == 2 and abs(min(lrs) / max(lrs) - 0.25) < 1e-9  # the schedule keeps it
    layers = [
        mod
        for mod in m.discriminator.modules()
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    assert layers and all(parametrize.is_parametrized(mod, "weight") for mod in layers)
    plain = BiGAN.build(digits, latent_dim=16, seed=0)
    assert not any(parametrize.is_parametrized(mod) for mod in plain.discriminator.modules())
