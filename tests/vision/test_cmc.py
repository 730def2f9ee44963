"""CMC: Lab conversion, the L/ab views, two half-width encoders; learning on colour images."""

from __future__ import annotations

import os

import pytest
import torch

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.augment import rgb_to_lab
from mmssl.vision.methods import CMC
from mmssl.vision.methods.cmc import lab_views


def test_rgb_to_lab_known_colours():
    rgb = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]).float()
    lab = rgb_to_lab(rgb.T.reshape(1, 3, 5, 1))[0, :, :, 0].T  # (5, 3)
    expected = torch.tensor(
        [
            [100.0, 0.0, 0.0],
            [53.24, 80.09, 67.20],
            [87.73, -86.18, 83.18],
            [32.30, 79.19, -107.86],
            [0.0, 0.0, 0.0],
        ]
    )  # the CIE values of scikit-image's rgb2lab
    assert torch.allclose(lab, expected, atol=0.02)


def test_registered_views_and_embed_on_digits():
    cls = registry.get("vision", "cmc")
    assert cls is CMC and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination"
    digits = load_data("vision", None, None, batch_size=32)
    torch.manual_seed(0)
    m = cls.build(digits)
    assert m.encoder_l.out_dim == m.encoder_ab.out_dim == 128  # half of SmallResNet's 256
    x = m.augment(next(iter(digits.train)))
    l_view, ab_view = lab_views(x)
    assert l_view.shape == (32, 1, 16, 16) and ab_view.shape == (32, 2, 16, 16)
    # Digits are gray: the ab view is constant, so CMC has nothing to learn there.
    assert float(ab_view.std(dim=(0, 2, 3)).max()) < 1e-3
    assert torch.isfinite(m(x)["loss"])
    assert m.embed(x).shape == (32, 256)


@pytest.mark.skipif(not os.environ.get("MMSSL_DATA"), reason="needs CIFAR-10 under $MMSSL_DATA")
def test_loss_decreasing_on_cifar():
    data = load_data("vision", "cifar10", os.environ["MMSSL_DATA"], batch_size=64, subset=128)
    torch.manual_seed(0)
    m = CMC.build(data)
    with torch.no_grad():
        x = m.augment(next(iter(data.train)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = m(x)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5, losses
