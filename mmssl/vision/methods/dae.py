r"""Denoising autoencoder (Vincent et al. 2008 and 2010,
https://www.jmlr.org/papers/v11/vincent10a.html).

Corrupt the image with a stochastic :math:`q(\tilde x \mid x)`, encode the corrupted image,
decode, and reconstruct the *clean* image:

.. math::
    \mathcal{L} = \frac{1}{B}\sum_b \frac{1}{D}\lVert g(f(\tilde x_b)) - x_b \rVert^2,
    \qquad \tilde x = m \odot x + \sigma\,\epsilon

with masking noise :math:`m_{ij} \sim \mathrm{Bernoulli}(1 - \nu)` per pixel (all channels of a
pixel together) and additive Gaussian noise :math:`\epsilon \sim \mathcal{N}(0, I)`, on pixels
in ``[0, 1]``. :math:`f` is the image encoder (pooled ``(B, D)`` code), :math:`g` the shared
:class:`~mmssl.vision.methods.generative.ConvDecoder`; the loss is :func:`masked_mse` with no
mask (plain MSE). The representation is :math:`f(x)` of the clean image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives import masked_mse
from mmssl.core.registry import register
from mmssl.vision.augment import Normalize, to_float
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.generative import ConvDecoder, heldout_images, save_rows


@register("dae")
@register("denoising-ae")
class DAE(Method):
    r"""Denoising autoencoder: corrupt, encode, decode, MSE to the clean image.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        decoder: ``(B, D) -> (B, C, H, W)`` pixels in ``[0, 1]`` (a linear output).
        normalize: what the encoder's inputs go through (the dataset's mean and std).
        mask_prob: :math:`\nu`, the share of pixels set to 0 (masking noise).
        noise_std: :math:`\sigma` of the additive Gaussian noise (0: none).
        seed: seeds the corruption generator.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "auto-encoding"
    modality: ClassVar[str] = "vision"
    # The paper: SGD on MNIST-sized data for many epochs, masking noise nu in 10-50% (25% the
    # common choice) or Gaussian sigma in 0.1-0.5. CPU budget: AdamW at 2e-3 with a cosine
    # schedule, batch 128, 30 epochs (about 3 minutes on a busy 2-core CPU, on digits).
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 30,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "warmup_epochs": 0.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        normalize: Normalize | None = None,
        *,
        mask_prob: float = 0.25,
        noise_std: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}; the paper: 0.25")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}; the paper: 0.1 to 0.5")
        self.encoder, self.decoder = encoder, decoder
        self.normalize = normalize or Normalize()
        self.mask_prob, self.noise_std = mask_prob, noise_std
        self.generators = SeededGenerators(seed)

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` -> the corrupted images, clamped to ``[0, 1]``."""
        g = generator or self.generators(x.device)
        b, _, h, w = x.shape
        keep = torch.rand((b, 1, h, w), generator=g, device=g.device).to(x.device)
        out = x * (keep >= self.mask_prob)  # masking noise: whole pixels to 0
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=g, device=g.device).to(x.device)
            out = out + self.noise_std * noise
        return out.clamp(0.0, 1.0)

    def augment(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 ``(B, C, H, W)`` -> ``(clean, corrupted)``, both float in ``[0, 1]``."""
        x = to_float(images)
        return x, self.corrupt(x)

    def reconstruct(self, corrupted: Tensor) -> Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` -> the decoded image ``(B, C, H, W)``."""
        return self.decoder(self.encoder(self.normalize(corrupted)))

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, x_tilde = batch
        recon = self.reconstruct(x_tilde)
        return {"loss": masked_mse(recon.flatten(1), x.flatten(1))}  # (B, C*H*W), no mask

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or ``[0, 1]`` images ``(B, C, H, W)`` -> the code of the clean image ``(B, D)``."""
        return self.encoder(self.normalize(images))

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def evaluate(self, data: DataBundle, *, limit: int = 2000, seed: int = 0) -> dict[str, float]:
        """Reconstruction MSE of the clean held-out images from corrupted ones (a fixed-seed
        corruption), and from the clean images themselves."""
        images = heldout_images(data, limit)
        if images.numel() == 0:
            return {}
        was_training, dev = self.training, self._device()
        self.eval()
        g = torch.Generator(device=dev).manual_seed(seed)
        noisy = clean = 0.0
        try:
            for chunk in images.split(500):
                x = to_float(chunk.to(dev))
                n = x.shape[0]
                noisy += (
                    float(masked_mse(self.reconstruct(self.corrupt(x, g)).flatten(1), x.flatten(1)))
                    * n
                )
                clean += float(masked_mse(self.reconstruct(x).flatten(1), x.flatten(1))) * n
        finally:
            self.train(was_training)
        n = images.shape[0]
        return {"recon_mse": noisy / n, "recon_mse_clean_input": clean / n}

    @torch.no_grad()
    def save_artifacts(self, out: Path, data: DataBundle, *, n: int = 16) -> list[str]:
        """``dae_reconstructions.png``: corrupted, reconstructed and original test images."""
        images = heldout_images(data, n)
        if images.numel() == 0:
            return []
        was_training, dev = self.training, self._device()
        self.eval()
        try:
            x = to_float(images.to(dev))
            x_tilde = self.corrupt(x, torch.Generator(device=dev).manual_seed(0))
            rows = [x_tilde, self.reconstruct(x_tilde), x]
        finally:
            self.train(was_training)
        return [save_rows(Path(out) / "dae_reconstructions.png", rows)]

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        mask_prob: float = 0.25,
        noise_std: float = 0.1,
        seed: int | None = None,
    ) -> DAE:
        """The ``encoder`` named and a :class:`ConvDecoder` sized by ``data.info``."""
        info = data.info
        c, size = info.get("in_channels", 3), info.get("image_size", 32)
        enc = build_encoder(encoder, c, size)
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()))
        return cls(
            enc,
            ConvDecoder(enc.out_dim, c, size),
            Normalize(info["mean"], info["std"]),
            mask_prob=mask_prob,
            noise_std=noise_std,
            seed=seed,
        )
