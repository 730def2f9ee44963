"""RotNet on tiny real data (sklearn digits): registration, the four-rotation batch, learning."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.methods import RotNet


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=32)


def test_registered_as_rotation_and_rotnet(digits):
    for name in ("rotation", "rotnet"):
        cls = registry.get("vision", name)
        assert cls is RotNet and cls.family == "contrastive" and cls.modality == "vision"
        assert cls.kind == "context-instance/relative-position"
    torch.manual_seed(0)
    m = RotNet.build(digits)
    assert m.views.hflip_prob == 0.0 and m.views.padding == 2  # digits: no flips; 16 px
    assert m.head[-1].out_features == 4
    assert len(RotNet.build(digits, head_layers=1).head) == 1


def test_augment_holds_all_four_rotations(digits):
    torch.manual_seed(0)
    m = RotNet.build(digits, padding=0)  # no crop: the view is the image itself
    images = next(iter(digits.train))
    x, y = m.augment(images)
    assert x.shape == (128, 3, 16, 16) and y.tolist() == sum(([r] * 32 for r in range(4)), [])
    assert torch.equal(x[:32], m.normalize(images))
    assert torch.equal(x[64:96], torch.rot90(x[:32], 2, dims=(2, 3)))


def test_loss_finite_decreasing_and_embed(digits, fixed_batch_losses):
    torch.manual_seed(0)
    m = RotNet.build(digits)
    images = next(iter(digits.train))
    losses = fixed_batch_losses(m, images)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] == pytest.approx(1.386, abs=0.3)  # about log 4 at the start
    assert losses[-1] < losses[0] - 0.3, losses
    with torch.no_grad():  # a fresh view of the same images, in its four rotations
        assert float(m(m.augment(images))["accuracy"]) > 0.5
    m.eval()
    x, _ = next(iter(digits.probe.splits["test"]))
    z = m.embed(x[:8])
    assert z.shape == (8, m.encoder.out_dim)
    assert torch.allclose(z, m.embed(x[:8].float() / 255), atol=1e-5)


def test_same_seed_same_views(digits):
    images = next(iter(digits.train))
    views = []
    for _ in range(2):
        torch.manual_seed(0)
        views.append(RotNet.build(digits).augment(images)[0])
    assert torch.equal(*views)
