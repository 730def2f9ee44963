"""Batched on-device augmentation: shapes, ranges, determinism, per-sample variety, references."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from mmssl.vision import augment as A


def _images(b: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_simclr_views_shape_dtype_range():
    aug = A.SimCLRAugment(24, seed=0)
    v1, v2 = aug(_images())
    assert v1.shape == v2.shape == (16, 3, 24, 24)
    assert v1.dtype == torch.float32
    raw = v1 * torch.tensor(A.CIFAR10_STD).view(1, 3, 1, 1) + torch.tensor(A.CIFAR10_MEAN).view(
        1, 3, 1, 1
    )
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    assert not torch.allclose(v1, v2)


def test_simclr_views_are_deterministic_given_generator():
    x = _images()
    aug = A.SimCLRAugment(32, blur_prob=0.5, solarize_prob=0.2)
    a1, a2 = aug(x, generator=_g(7))
    b1, b2 = aug(x, generator=_g(7))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    c1, _ = aug(x, generator=_g(8))
    assert not torch.equal(a1, c1)
    # the augmentation's own generator: same seed, same views; it can be deep-copied
    s1, s2 = A.SimCLRAugment(32, seed=3), A.SimCLRAugment(32, seed=3)
    s3 = copy.deepcopy(s1)
    first = s1(x)[0]
    assert torch.equal(first, s2(x)[0]) and torch.equal(first, s3(x)[0])


def test_per_sample_variety():
    same = _images(1).expand(32, -1, -1, -1)  # 32 copies of one image
    v, _ = A.SimCLRAugment(32)(same, generator=_g(0))
    flat = v.flatten(1)
    dist = torch.cdist(flat, flat)
    assert (dist + torch.eye(32) * 1e9).min() > 1e-3  # every copy got its own parameters


def test_full_crop_is_identity_and_flip():
    x = A.to_float(_images(4))
    y = A.random_resized_crop(x, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=_g())
    assert torch.allclose(y, x, atol=1e-5)
    assert torch.equal(A.horizontal_flip(x, p=1.0, generator=_g()), x.flip(-1))
    assert torch.equal(A.horizontal_flip(x, p=0.0, generator=_g()), x)


def test_crop_boxes_respect_scale():
    # a crop of a quarter of the area upsampled keeps only a quarter of a pixel ramp's range
    ramp = torch.linspace(0, 1, 64).expand(8, 3, 64, 64).contiguous()
    y = A.random_resized_crop(ramp, 64, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=_g())
    span = y[..., 0, -1] - y[..., 0, 0]
    assert torch.allclose(span, torch.full_like(span, 0.5), atol=0.03)


@pytest.mark.parametrize("op", ["brightness", "contrast", "saturation", "hue"])
def test_color_jitter_matches_torchvision(op):
    x = A.to_float(_images(6, 16))
    strength = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
    strength[op] = 0.3 if op != "hue" else 0.1
    y = A.color_jitter(x, p=1.0, generator=_g(1), **strength)
    # recover the factors the op drew from the same generator, apply torchvision's op per image
    g = _g(1)
    torch.rand(6, generator=g)  # the p draw
    draws = {k: torch.rand(6, generator=g) for k in ("brightness", "contrast", "saturation", "hue")}
    lo, hi = (-0.1, 0.1) if op == "hue" else (0.7, 1.3)
    factors = draws[op] * (hi - lo) + lo
    ref_fn = {
        "brightness": TF.adjust_brightness,
        "contrast": TF.adjust_contrast,
        "saturation": TF.adjust_saturation,
        "hue": TF.adjust_hue,
    }[op]
    ref = torch.stack([ref_fn(xi, float(f)) for xi, f in zip(x, factors, strict=True)])
    assert torch.allclose(y, ref, atol=1e-4)


def test_color_jitter_p0_and_grayscale():
    x = A.to_float(_images(8))
    assert torch.allclose(A.color_jitter(x, p=0.0, generator=_g()), x, atol=1e-6)
    gray = A.random_grayscale(x, p=1.0, generator=_g())
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert torch.allclose(gray[:, :1], TF.rgb_to_grayscale(x), atol=1e-5)
    assert torch.equal(A.random_grayscale(x, p=0.0, generator=_g()), x)


def test_blur_and_solarize():
    x = A.to_float(_images(4))
    assert torch.allclose(A.gaussian_blur(x, p=0.0, generator=_g()), x, atol=1e-6)
    y = A.gaussian_blur(x, p=1.0, sigma=(1.5, 1.5), generator=_g())
    assert y.shape == x.shape and y.std() < 0.6 * x.std()  # noise is smoothed
    assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=0.02)
    s = A.solarize(x, p=1.0, threshold=0.5, generator=_g())
    assert torch.equal(s, torch.where(x >= 0.5, 1 - x, x))


def test_normalize_accepts_uint8_and_float():
    x = _images(2)
    norm = A.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(norm(x), norm(x.float() / 255))
    assert torch.allclose(norm(torch.full((1, 3, 2, 2), 0.75)), torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match="one value per channel"):
        A.Normalize((0.5,), (0.2, 0.2))


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="min_scale"):
        A.SimCLRAugment(32, min_scale=0)
    with pytest.raises(ValueError, match="gray_prob"):
        A.SimCLRAugment(32, gray_prob=1.5)


def test_random_crop_matches_padded_window():
    x = _images(6, 8).float()
    out = A.random_crop(x, 8, padding=2, generator=_g(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    g = _g(3)
    top, left = torch.randint(5, (6,), generator=g), torch.randint(5, (6,), generator=g)
    for b in range(6):
        t, l = int(top[b]), int(left[b])
        assert torch.equal(out[b], padded[b, :, t : t + 8, l : l + 8])
    assert torch.equal(A.random_crop(x, 8, generator=_g(0)), x)  # no padding: the identity
    assert A.random_crop(x, 5, generator=_g(0)).shape == (6, 3, 5, 5)
    with pytest.raises(ValueError, match="size"):
        A.random_crop(x, 13, padding=2)


def test_crop_flip_augment():
    aug = A.CropFlipAugment(16, seed=0)
    assert aug.padding == 2  # 4 px at 32
    x = _images(32, 16)
    v = aug(x)
    assert v.shape == (32, 3, 16, 16) and v.dtype == torch.float32
    assert torch.equal(v, A.CropFlipAugment(16, seed=0).view(x))
    assert not torch.equal(v, aug.normalize(x))  # something moved
    still = A.CropFlipAugment(16, padding=0, hflip_prob=0.0)
    assert torch.equal(still.view(x), still.normalize(x))
