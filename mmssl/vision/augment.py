"""Image augmentation batched on the device: per-sample random parameters, tensor ops only.

Every op takes a float batch ``(B, C, H, W)`` with values in ``[0, 1]`` and a
``torch.Generator``. Random parameters (a few numbers per image) are drawn on the CPU from
that generator and then moved to the batch's device, so the same seed gives the same views on
the CPU and on a GPU, and no op ever touches PIL. :class:`SimCLRAugment` chains them into the
SimCLR view pipeline (Chen et al. 2020, https://arxiv.org/abs/2002.05709, appendix A) with
the CIFAR settings of lightly's benchmark: ``SimCLRTransform(input_size=32, cj_strength=0.5,
gaussian_blur=0.0)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "BYOLAugment",
    "CropFlipAugment",
    "MultiCropAugment",
    "Normalize",
    "SimCLRAugment",
    "color_jitter",
    "gaussian_blur",
    "horizontal_flip",
    "normalize",
    "random_crop",
    "random_grayscale",
    "random_resized_crop",
    "rgb_to_lab",
    "solarize",
    "to_float",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601 grayscale weights, as torchvision uses
_CROP_TRIES = 10  # torchvision's RandomResizedCrop rejection-sampling attempts


def _uniform(n: int, low: float, high: float, g: torch.Generator | None, device) -> Tensor:
    """``n`` draws from U(low, high), made on the CPU from ``g`` and moved to ``device``."""
    return (torch.rand(n, generator=g) * (high - low) + low).to(device)


def _bernoulli(n: int, p: float, g: torch.Generator | None, device) -> Tensor:
    return (torch.rand(n, generator=g) < p).to(device)


def to_float(images: Tensor) -> Tensor:
    """uint8 ``(B, C, H, W)`` in ``[0, 255]`` -> float32 in ``[0, 1]``; floats pass unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def _gray(x: Tensor) -> Tensor:
    """Luma of an RGB batch, ``(B, 1, H, W)``; single-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def random_resized_crop(
    x: Tensor,
    size: int | tuple[int, int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop a random box per image (area ``scale``, aspect ``ratio``) and resize it to ``size``.

    As torchvision's ``RandomResizedCrop``: area and log-aspect are sampled uniformly, ``10``
    tries per image for a box that fits, else the whole image. Boxes are continuous and the
    resize is bilinear, done for the whole batch by one ``grid_sample``.
    """
    b = x.shape[0]
    out_h, out_w = (size, size) if isinstance(size, int) else size
    area = torch.empty(b, _CROP_TRIES).uniform_(*scale, generator=generator)
    log_r = torch.empty(b, _CROP_TRIES).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    w = (area * log_r.exp()).sqrt()  # (B, tries), width as a fraction of the image
    h = (area / log_r.exp()).sqrt()
    fits = (w <= 1) & (h <= 1)
    first = fits.float().argmax(1, keepdim=True)  # first box that fits (0 if none)
    ok = fits.any(1)
    w = torch.where(ok, w.gather(1, first).squeeze(1), torch.ones(b))  # (B,)
    h = torch.where(ok, h.gather(1, first).squeeze(1), torch.ones(b))
    cx = (torch.rand(b, generator=generator) * (1 - w) + w / 2) * 2 - 1  # centre in [-1, 1]
    cy = (torch.rand(b, generator=generator) * (1 - h) + h / 2) * 2 - 1
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_crop(
    x: Tensor, size: int, *, padding: int = 0, generator: torch.Generator | None = None
) -> Tensor:
    """torchvision's ``RandomCrop(size, padding)`` per image: zero-pad each side by ``padding``,
    then cut a ``size x size`` window at a random integer offset (pixels are copied, not
    resampled). ``(B, C, H, W) -> (B, C, size, size)``."""
    b, _, hgt, wid = x.shape
    if padding < 0 or not 1 <= size <= min(hgt, wid) + 2 * padding:
        raise ValueError(
            f"need padding >= 0 and 1 <= size <= {min(hgt, wid)} + 2 * padding, got size {size} "
            f"and padding {padding}"
        )
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    top = torch.randint(hgt + 2 * padding - size + 1, (b,), generator=generator).to(x.device)
    left = torch.randint(wid + 2 * padding - size + 1, (b,), generator=generator).to(x.device)
    span = torch.arange(size, device=x.device)
    rows = (top[:, None] + span)[:, :, None]  # (B, S, 1)
    cols = (left[:, None] + span)[:, None, :]  # (B, 1, S)
    batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, S, S)


def horizontal_flip(
    x: Tensor, *, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = _bernoulli(x.shape[0], p, generator, x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-8)
    h = torch.where(
        maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d)
    )
    h = torch.where(delta > 0, (h / 6) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(1)
    n = hsv.new_tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)  # R, G, B offsets on the hue circle
    k = (n + h.unsqueeze(1) * 6) % 6  # (B, 3, H, W)
    f = torch.minimum(k, 4 - k).clamp(0, 1)
    return v.unsqueeze(1) - v.unsqueeze(1) * s.unsqueeze(1) * f


def color_jitter(
    x: Tensor,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """torchvision's ``ColorJitter`` applied with probability ``p``, per image.

    Factors are drawn per image: brightness and contrast and saturation from
    ``U(1 - s, 1 + s)``, hue shift from ``U(-hue, hue)`` (a fraction of the hue circle); images
    not selected get the identity. The four ops run in one random order per batch (torchvision
    draws the order per image). Saturation and hue are no-ops on single-channel images.
    """
    b, dev = x.shape[0], x.device
    on = _bernoulli(b, p, generator, dev)
    factors = {
        "brightness": _uniform(b, 1 - brightness, 1 + brightness, generator, dev),
        "contrast": _uniform(b, 1 - contrast, 1 + contrast, generator, dev),
        "saturation": _uniform(b, 1 - saturation, 1 + saturation, generator, dev),
        "hue": _uniform(b, -hue, hue, generator, dev),
    }
    order = torch.randperm(4, generator=generator).tolist()
    names = list(factors)
    for i in order:
        name = names[i]
        identity = 0.0 if name == "hue" else 1.0
        f = torch.where(on, factors[name], torch.full_like(factors[name], identity))
        f = f.to(x.dtype).view(-1, 1, 1, 1)
        if name == "brightness":
            x = (x * f).clamp(0, 1)
        elif name == "contrast":
            mean = _gray(x).mean((1, 2, 3), keepdim=True)
            x = (f * x + (1 - f) * mean).clamp(0, 1)
        elif x.shape[1] == 3 and name == "saturation":
            x = (f * x + (1 - f) * _gray(x)).clamp(0, 1)
        elif x.shape[1] == 3 and name == "hue":
            hsv = _rgb_to_hsv(x)
            hsv = torch.cat([(hsv[:, :1] + f) % 1.0, hsv[:, 1:]], 1)
            x = _hsv_to_rgb(hsv).clamp(0, 1)
    return x


def random_grayscale(
    x: Tensor, *, p: float = 0.2, generator: torch.Generator | None = None
) -> Tensor:
    """Replace each image by its luma (kept at ``C`` channels) with probability ``p``."""
    pick = _bernoulli(x.shape[0], p, generator, x.device).view(-1, 1, 1, 1)
    return torch.where(pick, _gray(x).expand_as(x), x)


def gaussian_blur(
    x: Tensor,
    *,
    p: float = 0.5,
    sigma: tuple[float, float] = (0.1, 2.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Blur each image with probability ``p`` by a Gaussian of ``sigma ~ U(sigma)`` pixels.

    Separable, one grouped convolution per axis for the whole batch; the kernel covers
    ``3 sigma_max`` each side (at most the image), with reflect padding.
    """
    b, c, hgt, wid = x.shape
    on = _bernoulli(b, p, generator, x.device)
    s = _uniform(b, *sigma, generator, x.device)
    radius = min(math.ceil(3 * sigma[1]), min(hgt, wid) - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * s.view(-1, 1).to(x.dtype) ** 2))  # (B, K)
    k = k / k.sum(1, keepdim=True)
    delta = (t == 0).to(x.dtype).expand_as(k)
    k = torch.where(on.view(-1, 1), k, delta).repeat_interleave(c, 0)  # (B*C, K)
    y = x.reshape(1, b * c, hgt, wid)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)  # along W
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)  # along H
    return y.view(b, c, hgt, wid)


def solarize(
    x: Tensor, *, p: float = 0.0, threshold: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Invert the pixels above ``threshold`` with probability ``p`` per image (BYOL's view 2)."""
    on = _bernoulli(x.shape[0], p, generator, x.device).view(-1, 1, 1, 1)
    return torch.where(on & (x >= threshold), 1 - x, x)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(x - mean) / std`` per channel."""
    m = x.new_tensor(mean).view(1, -1, 1, 1)
    s = x.new_tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


class Normalize:
    """uint8 or ``[0, 1]`` float images ``(B, C, H, W)`` -> float32 normalised per channel.

    What ``embed`` applies to probe images: no augmentation, only scaling and normalisation.
    """

    def __init__(self, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD):
        if len(mean) != len(std):
            raise ValueError(
                f"mean and std need one value per channel, got {len(mean)} and {len(std)}"
            )
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, images: Tensor) -> Tensor:
        return normalize(to_float(images), self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class CropFlipAugment:
    """The light augmentation of the pretext-task papers (RotNet's CIFAR recipe): a random
    ``image_size`` crop after zero-padding by ``padding``, a horizontal flip with probability
    ``hflip_prob``, then normalisation. ``padding=None`` pads by ``image_size / 8`` (4 px at 32).

    Args:
        image_size: output side (at most the input side plus twice the padding).
        padding: zero padding on each side before the crop.
        hflip_prob: probability of a horizontal flip.
        mean, std: per-channel normalisation. seed: the augmentation's own generator.
    """

    PAD_FRACTION = 4 / 32  # RandomCrop(32, padding=4), the CIFAR recipe

    def __init__(
        self,
        image_size: int = 32,
        *,
        padding: int | None = None,
        hflip_prob: float = 0.5,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        seed: int = 0,
    ) -> None:
        if not 0 <= hflip_prob <= 1:
            raise ValueError(f"hflip_prob must be a probability in [0, 1], got {hflip_prob}")
        self.image_size = image_size
        self.padding = round(image_size * self.PAD_FRACTION) if padding is None else padding
        self.hflip_prob = hflip_prob
        self.normalize = Normalize(mean, std)
        self.generator = torch.Generator().manual_seed(seed)

    def view(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 or ``[0, 1]`` float ``(B, C, H, W)`` -> normalised float ``(B, C, S, S)``."""
        g = generator if generator is not None else self.generator
        x = random_crop(to_float(images), self.image_size, padding=self.padding, generator=g)
        if self.hflip_prob > 0:
            x = horizontal_flip(x, p=self.hflip_prob, generator=g)
        return self.normalize(x)

    __call__ = view


class SimCLRAugment:
    """SimCLR's two views of a uint8 batch ``(B, C, H, W)``, made on the batch's device.

    Per view: random resized crop, horizontal flip, colour jitter (with probability
    ``cj_prob``), random grayscale, Gaussian blur, solarisation, normalisation. Defaults are
    the CIFAR-10 recipe (lightly's ``SimCLRTransform(input_size=32, cj_strength=0.5,
    gaussian_blur=0.0)``: jitter 0.4/0.4/0.4/0.1, no blur at 32x32).

    Args:
        image_size: output side length.
        mean, std: per-channel normalisation.
        min_scale: smallest crop area fraction (SimCLR: 0.08).
        hflip_prob: probability of a horizontal flip.
        cj_prob: probability of colour jitter.
        cj_strength: multiplies ``cj_bright``, ``cj_contrast``, ``cj_sat``, ``cj_hue``.
        gray_prob: probability of grayscale.
        blur_prob: probability of Gaussian blur, ``blur_sigma`` its sigma range in pixels.
        solarize_prob: probability of solarisation.
        seed: seeds the augmentation's own generator (used when a call passes none).
    """

    def __init__(
        self,
        image_size: int = 32,
        *,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        min_scale: float = 0.08,
        hflip_prob: float = 0.5,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        gray_prob: float = 0.2,
        blur_prob: float = 0.0,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}; SimCLR uses 0.08")
        for name, p in [
            ("hflip_prob", hflip_prob),
            ("cj_prob", cj_prob),
            ("gray_prob", gray_prob),
            ("blur_prob", blur_prob),
            ("solarize_prob", solarize_prob),
        ]:
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if cj_hue * cj_strength > 0.5:
            raise ValueError(f"cj_hue * cj_strength must be <= 0.5, got {cj_hue * cj_strength}")
        self.image_size = image_size
        self.normalize = Normalize(mean, std)
        self.min_scale, self.hflip_prob = min_scale, hflip_prob
        self.cj_prob = cj_prob
        self.jitter = {
            "brightness": cj_strength * cj_bright,
            "contrast": cj_strength * cj_contrast,
            "saturation": cj_strength * cj_sat,
            "hue": cj_strength * cj_hue,
        }
        self.gray_prob, self.blur_prob, self.blur_sigma = gray_prob, blur_prob, blur_sigma
        self.solarize_prob = solarize_prob
        self.generator = torch.Generator().manual_seed(seed)

    def view(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One augmented, normalised float view ``(B, C, S, S)`` of uint8 or [0, 1] ``images``."""
        g = generator if generator is not None else self.generator
        x = random_resized_crop(
            to_float(images), self.image_size, scale=(self.min_scale, 1.0), generator=g
        )
        return self.photometric(x, g)

    def photometric(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Everything after the crop, on a float ``[0, 1]`` batch of any size: flip, colour
        jitter, grayscale, blur, solarisation, normalisation (what multi-crop reuses)."""
        g = generator if generator is not None else self.generator
        if self.hflip_prob > 0:
            x = horizontal_flip(x, p=self.hflip_prob, generator=g)
        if self.cj_prob > 0:
            x = color_jitter(x, p=self.cj_prob, generator=g, **self.jitter)
        if self.gray_prob > 0:
            x = random_grayscale(x, p=self.gray_prob, generator=g)
        if self.blur_prob > 0:
            x = gaussian_blur(x, p=self.blur_prob, sigma=self.blur_sigma, generator=g)
        if self.solarize_prob > 0:
            x = solarize(x, p=self.solarize_prob, generator=g)
        return self.normalize(x)

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` -> two float views ``(B, C, S, S)``, normalised."""
        return self.view(images, generator), self.view(images, generator)


class BYOLAugment:
    """BYOL's asymmetric pair of views (Grill et al. 2020, https://arxiv.org/abs/2006.07733,
    table 6): the same crop, flip, jitter and grayscale for both views, but Gaussian blur and
    solarisation with a different probability in each.

    The paper's ImageNet recipe is ``blur_probs=(1.0, 0.1)``, ``solarize_probs=(0.0, 0.2)``,
    colour jitter 0.4/0.4/0.2/0.1 with probability 0.8. The defaults here are the CIFAR-10
    recipe of lightly's ``BYOLTransform`` at ``input_size=32`` (``gaussian_blur=0.0``): no blur
    at 32x32, solarisation of the second view only.

    Args:
        image_size, mean, std, seed: as :class:`SimCLRAugment`.
        blur_probs: Gaussian-blur probability of view 1 and view 2.
        solarize_probs: solarisation probability of view 1 and view 2.
        cj_bright, cj_contrast, cj_sat, cj_hue: colour-jitter strengths (``cj_strength`` 1).
        **common: any other :class:`SimCLRAugment` setting, applied to both views.
    """

    def __init__(
        self,
        image_size: int = 32,
        *,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        blur_probs: tuple[float, float] = (0.0, 0.0),
        solarize_probs: tuple[float, float] = (0.0, 0.2),
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.2,
        cj_hue: float = 0.1,
        seed: int = 0,
        **common: object,
    ) -> None:
        if len(blur_probs) != 2 or len(solarize_probs) != 2:
            raise ValueError(
                f"blur_probs and solarize_probs need one value per view, got {blur_probs} "
                f"and {solarize_probs}; BYOL uses (1.0, 0.1) and (0.0, 0.2)"
            )
        jitter = {"cj_strength": 1.0, "cj_bright": cj_bright, "cj_contrast": cj_contrast}
        jitter |= {"cj_sat": cj_sat, "cj_hue": cj_hue}
        self.view1, self.view2 = (
            SimCLRAugment(
                image_size,
                mean=mean,
                std=std,
                blur_prob=blur,
                solarize_prob=sol,
                **jitter,
                **common,  # type: ignore[arg-type]
            )
            for blur, sol in zip(blur_probs, solarize_probs, strict=True)
        )
        self.image_size, self.normalize = image_size, self.view1.normalize
        self.generator = torch.Generator().manual_seed(seed)  # one stream for both views

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` -> (view 1, view 2), float ``(B, C, S, S)``, normalised."""
        g = generator if generator is not None else self.generator
        return self.view1.view(images, g), self.view2.view(images, g)


class MultiCropAugment:
    """Multi-crop views (SwAV, Caron et al. 2020, https://arxiv.org/abs/2006.09882; DINO,
    https://arxiv.org/abs/2104.14294) of a uint8 batch ``(B, C, H, W)``, made on its device.

    ``n_global`` crops of side ``global_size`` covering ``global_scale`` of the image, then
    ``n_local`` crops of side ``local_size`` covering ``local_scale``; each crop gets SimCLR's
    photometric chain (:meth:`SimCLRAugment.photometric`) with its own random parameters.
    SwAV's ImageNet recipe is 2x224 (0.14-1) + 6x96 (0.05-0.14); the defaults keep its scales
    and counts and halve the side for the local crops: 2x32 + 6x16 on CIFAR-10.

    Args:
        global_size, local_size: output sides. n_global, n_local: crop counts (``n_global >= 1``).
        global_scale, local_scale: crop area ranges, as fractions of the image.
        mean, std: per-channel normalisation. seed: the augmentation's own generator.
        **photometric: any :class:`SimCLRAugment` colour setting (``cj_strength``,
            ``hflip_prob``, ``gray_prob``, ``blur_prob``, ``solarize_prob``, ...).
    """

    def __init__(
        self,
        global_size: int = 32,
        local_size: int = 16,
        *,
        n_global: int = 2,
        n_local: int = 6,
        global_scale: tuple[float, float] = (0.14, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.14),
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        seed: int = 0,
        **photometric: object,
    ) -> None:
        if n_global < 1 or n_local < 0:
            raise ValueError(f"need n_global >= 1 and n_local >= 0, got {n_global}, {n_local}")
        for name, (lo, hi) in (("global_scale", global_scale), ("local_scale", local_scale)):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {(lo, hi)}")
        self.colour = SimCLRAugment(global_size, mean=mean, std=std, **photometric)  # type: ignore[arg-type]
        self.normalize = self.colour.normalize
        self.crops = [(global_size, global_scale)] * n_global + [
            (local_size, local_scale)
        ] * n_local
        self.n_global = n_global
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """uint8 ``(B, C, H, W)`` -> ``[(B, C, global_size, global_size)] * n_global +
        [(B, C, local_size, local_size)] * n_local``, float and normalised, global crops first."""
        g = generator if generator is not None else self.generator
        x = to_float(images)
        return [
            self.colour.photometric(random_resized_crop(x, size, scale=scale, generator=g), g)
            for size, scale in self.crops
        ]


_SRGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_D65_WHITE = (0.950456, 1.0, 1.088754)
_LAB_DELTA = 6 / 29  # CIE constant of the cube-root's linear segment


def rgb_to_lab(x: Tensor) -> Tensor:
    """sRGB in ``[0, 1]`` ``(B, 3, H, W)`` -> CIE Lab (D65) ``(B, 3, H, W)``: L in ``[0, 100]``,
    a and b roughly in ``[-110, 100]`` (scikit-image's ``rgb2lab``)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"rgb_to_lab needs RGB images (B, 3, H, W), got {tuple(x.shape)}")
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)  # linear RGB
    xyz = torch.einsum("ij,bjhw->bihw", x.new_tensor(_SRGB_TO_XYZ), lin)
    t = xyz / x.new_tensor(_D65_WHITE).view(1, 3, 1, 1)
    d = _LAB_DELTA
    f = torch.where(t > d**3, t.clamp_min(d**3) ** (1 / 3), t / (3 * d * d) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)
