r"""Variational autoencoder (Kingma and Welling 2014, https://arxiv.org/abs/1312.6114), convolutional,
with the beta-VAE weight (Higgins et al. 2017, https://openreview.net/forum?id=Sy2fzU9gl).

The encoder gives a Gaussian posterior :math:`q(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}
\sigma^2)`; a reparameterised draw :math:`z = \mu + \sigma \odot \epsilon` goes through the
decoder to :math:`p(x \mid z)`, and the loss is the negative ELBO (:func:`gaussian_elbo_terms`):

.. math::
    \mathcal{L} = -\mathbb{E}_{q(z \mid x)}\log p(x \mid z)
    + \beta\,\mathrm{KL}\big(q(z \mid x)\,\|\,\mathcal{N}(0, I)\big)

The likelihood is a discretised logistic per sub-pixel over the 256 levels of 8-bit pixels
(:func:`discretized_logistic_log_likelihood`, as in IAF and PixelCNN++): the decoder gives a
location and a log-scale per sub-pixel. A proper discrete likelihood, so the negative ELBO is an
upper bound on :math:`-\log p(x)` in nats per image, and divided by :math:`CHW \ln 2` it is
bits per dimension, comparable with the PixelCNN's. The representation is :math:`\mu`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives import (
    discretized_logistic_log_likelihood,
    gaussian_elbo_terms,
    reparameterize,
)
from mmssl.core.registry import register
from mmssl.vision.augment import Normalize, to_float
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.generative import ConvDecoder, heldout_images, save_rows


@register("vae")
class VAE(Method):
    r"""Convolutional VAE with a discretised logistic likelihood.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        decoder: ``(B, Z) -> (B, 2C, H, W)``: per sub-pixel location (in ``[0, 1]`` units)
            and log-scale.
        z_dim: latent size ``Z``.
        normalize: what the encoder's inputs go through (the dataset's mean and std).
        beta: KL weight (1: the VAE; > 1: a beta-VAE).
        seed: seeds the reparameterisation noise.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "variational"
    modality: ClassVar[str] = "vision"
    # The paper: Adagrad, minibatch 100, MLPs on MNIST / Frey faces, a few million examples seen.
    # CPU budget: AdamW at 2e-3 with a cosine schedule, batch 128, 15 epochs on digits.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 15,
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
        z_dim: int,
        normalize: Normalize | None = None,
        *,
        beta: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}; 1.0 is the VAE, > 1 a beta-VAE")
        dim = encoder.out_dim  # type: ignore[attr-defined]
        self.encoder, self.decoder, self.z_dim, self.beta = encoder, decoder, z_dim, beta
        self.mu, self.logvar = nn.Linear(dim, z_dim), nn.Linear(dim, z_dim)
        self.normalize = normalize or Normalize()
        self.generators = SeededGenerators(seed)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W)`` in ``[0, 1]`` -> ``(mu, logvar)``, each ``(B, Z)``."""
        h = self.encoder(self.normalize(x))  # (B, D)
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, Z)`` -> location and log-scale, each ``(B, C, H, W)``."""
        return self.decoder(z).chunk(2, dim=1)

    def terms(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"loss", "recon", "kl"}`` (nats per image) for ``x`` ``(B, C, H, W)`` in ``[0, 1]``."""
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar, generator or self.generators(x.device))  # (B, Z)
        mean, log_scale = self.decode(z)
        loglik = discretized_logistic_log_likelihood(mean, log_scale, x)  # (B,)
        return gaussian_elbo_terms(loglik, mu, logvar, beta=self.beta)

    def augment(self, images: Tensor) -> Tensor:
        return to_float(images)  # (B, C, H, W) in [0, 1]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.terms(x)
        dims = x[0].numel()
        return {**out, "bits_per_dim": (out["recon"] + out["kl"]).detach() / (dims * math.log(2))}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or ``[0, 1]`` images ``(B, C, H, W)`` -> the posterior mean ``(B, Z)``."""
        return self.posterior(to_float(images))[0]

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def evaluate(self, data: DataBundle, *, limit: int = 2000, seed: int = 0) -> dict[str, float]:
        """The negative ELBO (beta = 1) of the held-out images in nats per image, its
        reconstruction and KL terms, and in bits per dimension; one fixed-seed draw of ``z``."""
        images = heldout_images(data, limit)
        if images.numel() == 0:
            return {}
        was_training, dev = self.training, self._device()
        self.eval()
        g = torch.Generator(device=dev).manual_seed(seed)
        recon = kl = 0.0
        try:
            for chunk in images.split(500):
                x = to_float(chunk.to(dev))
                t = self.terms(x, g)
                recon += float(t["recon"]) * x.shape[0]
                kl += float(t["kl"]) * x.shape[0]
        finally:
            self.train(was_training)
        n, dims = images.shape[0], images[0].numel()
        nelbo = (recon + kl) / n
        return {
            "neg_elbo_nats": nelbo,
            "recon_nats": recon / n,
            "kl_nats": kl / n,
            "bits_per_dim": nelbo / (dims * math.log(2)),
        }

    @torch.no_grad()
    def save_artifacts(self, out: Path, data: DataBundle, *, n: int = 16) -> list[str]:
        """``vae_samples.png``: decoder means of ``4n`` draws from the prior;
        ``vae_reconstructions.png``: test images over the decoder means at their ``mu``."""
        was_training, dev = self.training, self._device()
        self.eval()
        names = []
        try:
            g = torch.Generator(device=dev).manual_seed(0)
            z = torch.randn((4 * n, self.z_dim), generator=g, device=dev)
            samples = self.decode(z)[0]
            names.append(save_rows(Path(out) / "vae_samples.png", [samples], nrow=n))
            images = heldout_images(data, n)
            if images.numel():
                x = to_float(images.to(dev))
                names.append(
                    save_rows(
                        Path(out) / "vae_reconstructions.png",
                        [x, self.decode(self.posterior(x)[0])[0]],
                    )
                )
        finally:
            self.train(was_training)
        return names

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        z_dim: int = 64,
        beta: float = 1.0,
        seed: int | None = None,
    ) -> VAE:
        """The ``encoder`` named, Gaussian heads and a :class:`ConvDecoder` sized by ``data.info``."""
        info = data.info
        c, size = info.get("in_channels", 3), info.get("image_size", 32)
        enc = build_encoder(encoder, c, size)
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()))
        return cls(
            enc,
            ConvDecoder(z_dim, 2 * c, size),
            z_dim,
            Normalize(info["mean"], info["std"]),
            beta=beta,
            seed=seed,
        )
