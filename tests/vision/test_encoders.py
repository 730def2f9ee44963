"""Image encoders: output shapes and ``out_dim``."""

from __future__ import annotations

import pytest
import torch

from mmssl.vision.encoders import SmallResNet, build_encoder, resnet18_cifar, resnet50_cifar


@pytest.mark.parametrize(
    ("make", "dim"), [(SmallResNet, 256), (resnet18_cifar, 512), (resnet50_cifar, 2048)]
)
def test_encoder_shapes(make, dim):
    enc = make()
    assert enc.out_dim == dim
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, dim)


def test_cifar_stem_keeps_resolution():
    enc = resnet18_cifar()
    assert enc.net.conv1.kernel_size == (3, 3) and enc.net.conv1.stride == (1, 1)
    assert isinstance(enc.net.maxpool, torch.nn.Identity)


def test_small_resnet_options():
    enc = SmallResNet(in_channels=1, widths=(8, 16), blocks=(1, 2), stem_stride=1)
    assert enc(torch.randn(3, 1, 16, 16)).shape == (3, 16) and enc.out_dim == 16
    assert SmallResNet()(torch.randn(2, 3, 16, 16)).shape == (2, 256)  # digits' 16x16
    with pytest.raises(ValueError, match="one entry per stage"):
        SmallResNet(widths=(8, 16), blocks=(1, 1, 1))


def test_build_encoder():
    assert isinstance(build_encoder("small"), SmallResNet)
    assert build_encoder("resnet18", in_channels=1)(torch.randn(2, 1, 32, 32)).shape == (2, 512)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vgg")
