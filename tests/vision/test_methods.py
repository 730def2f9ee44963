"""SimCLR and the generic two-view method on tiny real data (sklearn digits)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmssl.core import registry
from mmssl.core.evaluate import run_probe
from mmssl.vision.data import load
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import SimCLR, TwoView


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=64, seed=0)


def test_simclr_registered_and_built(digits):
    cls = registry.get("vision", "simclr")
    assert cls is SimCLR and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination" and cls.modality == "vision"
    assert {"epochs", "lr", "batch_size", "optimizer", "weight_decay"} <= set(cls.defaults)
    torch.manual_seed(0)
    m = cls.build(digits)
    assert isinstance(m.encoder, SmallResNet) and m.temperature == 0.5
    assert m.projector[-1].out_features == 128 and m.projector[0].in_features == m.encoder.out_dim
    torch.manual_seed(0)
    m2 = cls.build(digits)
    batch = next(iter(digits.train))
    assert torch.equal(m.augment(batch)[0], m2.augment(batch)[0])  # seeded views


def test_simclr_loss_finite_and_decreasing(digits, fixed_batch_losses):
    torch.manual_seed(0)
    m = SimCLR.build(digits)
    losses = fixed_batch_losses(m, next(iter(digits.train)))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.1, losses


def test_simclr_embed_uint8_or_float(digits):
    torch.manual_seed(0)
    m = SimCLR.build(digits).eval()
    x, _ = next(iter(digits.probe.splits["test"]))
    z = m.embed(x[:8])
    assert z.shape == (8, m.encoder.out_dim)
    assert torch.allclose(z, m.embed(x[:8].float() / 255), atol=1e-5)
    result = run_probe(m, digits.probe, "knn")
    assert 0.1 < result["knn"]["top1"] <= 1.0


def test_simclr_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        SimCLR(SmallResNet(), temperature=0.0)


def test_two_view_with_user_objective(digits, fixed_batch_losses):
    def cosine_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return (1 - F.cosine_similarity(z1, z2)).mean()

    torch.manual_seed(0)
    m = TwoView(SmallResNet(widths=(16, 32)), objective=lambda z1, z2: cosine_loss(z1, z2))
    batch = next(iter(digits.train))
    losses = fixed_batch_losses(m, batch)
    assert losses[-1] < losses[0], losses
    assert registry.get("vision", "two-view") is TwoView


def test_two_view_build_with_objective_path(digits, fixed_batch_losses):
    torch.manual_seed(0)
    m = TwoView.build(digits, objective="mmssl.core.objectives:nt_xent", min_scale=0.5)
    assert m.views.min_scale == 0.5 and m.views.hflip_prob == 0.0  # digits' own hint kept
    losses = fixed_batch_losses(m, next(iter(digits.train)), steps=4)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="module:function"):
        TwoView.build(digits, objective="nt_xent")
