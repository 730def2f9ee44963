r"""BiGAN (Donahue et al. 2017, https://arxiv.org/abs/1605.09782), a.k.a. ALI (Dumoulin et al.
2017, https://arxiv.org/abs/1606.00704).

An encoder :math:`E: x \mapsto z`, a generator :math:`G: z \mapsto x` and a discriminator
:math:`D(x, z)` (logits) on joint pairs. :math:`D` tells :math:`(x, E(x))` from
:math:`(G(z), z)`, :math:`z \sim \mathcal{N}(0, I)`; :math:`E` and :math:`G` try to fool it,
with the non-saturating loss (labels swapped):

.. math::
    \mathcal{L}_D = -\mathbb{E}_x \log D(x, E(x)) - \mathbb{E}_z \log\big(1 - D(G(z), z)\big),
    \qquad
    \mathcal{L}_{EG} = -\mathbb{E}_z \log D(G(z), z) - \mathbb{E}_x \log\big(1 - D(x, E(x))\big).

At the optimum :math:`E = G^{-1}`, so :math:`E` learns features without labels; probes use the
encoder's features before the linear map to :math:`z`. **One optimizer, one backward**, as in
:class:`~mmssl.graph.methods.argva.ARGVA`: :math:`\mathcal{L}_D` sees :math:`E(x)` and
:math:`G(z)` detached, and :math:`\mathcal{L}_{EG}` calls :math:`D` with its parameters detached
(``torch.func.functional_call``), so the gradient of the sum is each player's own gradient.
:math:`G` is DCGAN's generator (the shared :class:`ConvDecoder` with a ``tanh``); :math:`D` is
a DCGAN convolutional path for :math:`x`, an MLP for :math:`z` and a joint MLP (ALI's layout,
with its dropout). The prior is ALI's Gaussian; BiGAN's encoder is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mmssl.core.data import DataBundle
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.objectives import bernoulli_log_likelihood
from mmssl.core.registry import register
from mmssl.vision.augment import Normalize, to_float
from mmssl.vision.data import train_images
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.generative import ConvDecoder, heldout_images, save_rows

__all__ = ["BiGAN", "JointDiscriminator"]

ROW = 16  # images a row in the reconstruction grid


class JointDiscriminator(nn.Module):
    """``D(x, z)``: images ``(B, C, S, S)`` in ``[-1, 1]`` and codes ``(B, Z)`` -> logits ``(B,)``.

    Strided ``4x4`` convolutions with leaky ReLU halve ``x`` down to ``4x4`` (DCGAN, no batch
    norm: the two calls of a step must not share statistics), an MLP embeds ``z``, and an MLP
    with dropout scores the concatenation.

    Args:
        in_channels, image_size: of ``x``. latent_dim: ``Z``.
        widths: channels of the convolutions (the last repeats while halving). hidden: MLP width.
        slope: leaky ReLU slope (0.2). dropout: ALI's dropout (0.2).
        spectral_norm: spectral normalisation on every layer (Miyato et al. 2018), which
            bounds how fast ``D`` can sharpen (off: the papers' ``D``).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        latent_dim: int,
        *,
        widths: Sequence[int] = (64, 128, 256),
        hidden: int = 512,
        slope: float = 0.2,
        dropout: float = 0.2,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        c, side, i = in_channels, image_size, 0
        while side > 4:
            w = widths[min(i, len(widths) - 1)]
            layers += [sn(nn.Conv2d(c, w, 4, stride=2, padding=1)), nn.LeakyReLU(slope)]
            c, side, i = w, side // 2, i + 1
        self.x_net = nn.Sequential(*layers, nn.Flatten())
        self.z_net = nn.Sequential(sn(nn.Linear(latent_dim, hidden)), nn.LeakyReLU(slope))
        self.joint = nn.Sequential(
            nn.Dropout(dropout),
            sn(nn.Linear(c * side * side + hidden, hidden)),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            sn(nn.Linear(hidden, 1)),
        )

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = torch.cat([self.x_net(x), self.z_net(z)], dim=1)  # (B, F + hidden)
        return self.joint(h).squeeze(1)  # (B,)


@register("bigan")
@register("ali")
class BiGAN(Method):
    r"""BiGAN/ALI: encoder, generator and joint discriminator, trained with one optimizer.

    Args:
        encoder: float normalised images ``(B, C, S, S)`` -> ``(B, D)``, with ``out_dim``.
        image_size, in_channels: of the training images.
        latent_dim: ``Z`` (ALI's CIFAR-10 value: 64).
        generator: ``(B, Z)`` -> images in ``[-1, 1]``; default ``tanh`` after :class:`ConvDecoder`.
        discriminator: ``(x, z)`` -> logits ``(B,)``; default :class:`JointDiscriminator`.
        normalize: what the encoder's inputs get (default CIFAR-10 statistics).
        stochastic: ALI's encoder, :math:`E(x) = \mu(x) + \sigma(x) \odot \epsilon` with
            :math:`\epsilon \sim \mathcal{N}(0, I)` (reparameterised); off: BiGAN's
            deterministic :math:`E(x) = \mu(x)`.
        disc_lr_scale: the discriminator's learning rate as a multiple of the run's (1).
        seed: seeds the prior samples :math:`z` and the encoder's noise.
    """

    family: ClassVar[str] = "generative-contrastive"
    kind: ClassVar[str] = "adversarial"
    modality: ClassVar[str] = "vision"
    # The paper: Adam lr 2e-4, beta1 0.5, weight decay 2.5e-5, batch 128, 400 epochs (MNIST);
    # cut to 8 epochs. The encoder's features first get worse than at random init, then better:
    # a GAN needs updates more than epochs. CIFAR-10 subset (10,000 images, 16 epochs; kNN /
    # linear, random init 25.8 / 34.0): at batch 128 (1,250 updates, H200) default 25.0 / 33.6,
    # stochastic 26.5 / 33.0, disc_lr_scale 0.25 23.6 / 32.1, both 27.0 / 32.7, spectral_norm
    # 17.9 / 28.8, latent_dim 256 21.0 / 27.1, 32 epochs 26.7 / 33.0; at batch 32 (5,000
    # updates, CPU) 31.9 / 38.4, above random init on both probes, hence the default of 32.
    # On digits (kNN, seeds 0/1, random init 76.6 / 70.3) the dip shows: batch 128 for 8 epochs
    # (72 updates) 79.6 / 80.0, 40 epochs (360) 66.0 / -, batch 32 for 8 epochs (312) 52.7 / 60.9.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 8,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 2e-4,
        "betas": (0.5, 0.999),
        "weight_decay": 2.5e-5,
        "warmup_epochs": 0.0,
        "schedule": "cosine",
    }

    def __init__(
        self,
        encoder: nn.Module,
        image_size: int = 32,
        in_channels: int = 3,
        *,
        latent_dim: int = 64,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        normalize: Normalize | None = None,
        stochastic: bool = False,
        disc_lr_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if disc_lr_scale <= 0:
            raise ValueError(f"disc_lr_scale must be > 0, got {disc_lr_scale}")
        self.encoder = encoder
        self.stochastic, self.disc_lr_scale = stochastic, disc_lr_scale
        # (mu, log sigma) for ALI's stochastic encoder, mu alone for BiGAN's
        self.to_latent = nn.Linear(encoder.out_dim, latent_dim * (2 if stochastic else 1))
        if generator is None:
            generator = nn.Sequential(ConvDecoder(latent_dim, in_channels, image_size), nn.Tanh())
        if discriminator is None:
            discriminator = JointDiscriminator(in_channels, image_size, latent_dim)
        self.generator, self.discriminator = generator, discriminator
        self.normalize = normalize if normalize is not None else Normalize()
        self.latent_dim, self.seed = latent_dim, seed
        self.generators = SeededGenerators(seed)

    def augment(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 images -> (the encoder's normalised input, the discriminator's ``[-1, 1]``)."""
        return self.normalize(images), to_float(images) * 2 - 1

    def encode(self, x: Tensor) -> Tensor:
        r""":math:`E(x)`: normalised images ``(B, C, S, S)`` -> codes ``(B, Z)`` (the mean
        :math:`\mu(x)` for ALI's stochastic encoder)."""
        return self.to_latent(self.encoder(x))[:, : self.latent_dim]

    def sample_code(self, x: Tensor, generator: torch.Generator) -> Tensor:
        r"""A code :math:`E(x)` to show the discriminator: ``encode`` for BiGAN, one
        reparameterised draw :math:`\mu + \sigma \epsilon` for ALI. ``(B, Z)``."""
        h = self.to_latent(self.encoder(x))  # (B, Z) or (B, 2Z)
        if not self.stochastic:
            return h
        mu, log_sigma = h.chunk(2, dim=1)
        eps = torch.randn(mu.shape, generator=generator, device=generator.device).to(mu)
        return mu + log_sigma.exp() * eps

    def param_groups(self) -> list[dict[str, Any]]:
        """The default groups, with the discriminator's learning rate scaled by
        ``disc_lr_scale``."""
        disc = {id(p) for p in self.discriminator.parameters()}
        groups = []
        for g in super().param_groups():
            mine = [p for p in g["params"] if id(p) not in disc]
            theirs = [p for p in g["params"] if id(p) in disc]
            if mine:
                groups.append({**g, "params": mine})
            if theirs:
                groups.append({**g, "params": theirs, "lr_scale": self.disc_lr_scale})
        return groups

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x_enc, x = batch
        g = self.generators(x.device)
        z = torch.randn(x.shape[0], self.latent_dim, generator=g, device=g.device).to(x)
        z_hat, x_hat = self.sample_code(x_enc, g), self.generator(z)  # (B, Z), (B, C, S, S)
        real = self.discriminator(x, z_hat.detach())  # (B,): L_D reaches D only
        fake = self.discriminator(x_hat.detach(), z)
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        real_eg = functional_call(self.discriminator, frozen, (x, z_hat))  # E and G only
        fake_eg = functional_call(self.discriminator, frozen, (x_hat, z))
        ones, zeros = torch.ones_like(real), torch.zeros_like(real)
        d_loss = -(bernoulli_log_likelihood(real, ones) + bernoulli_log_likelihood(fake, zeros))
        eg_loss = -(
            bernoulli_log_likelihood(real_eg, zeros) + bernoulli_log_likelihood(fake_eg, ones)
        )
        acc = torch.cat([real > 0, fake <= 0]).float().mean()
        d_loss, eg_loss = d_loss.mean(), eg_loss.mean()
        return {"loss": d_loss + eg_loss, "disc_loss": d_loss, "gen_loss": eg_loss, "disc_acc": acc}

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or [0, 1] float images ``(B, C, S, S)`` -> encoder features ``(B, D)``."""
        return self.encoder(self.normalize(images))

    @torch.no_grad()
    def save_artifacts(self, out: Path, data: Any, n: int = 64) -> list[str]:
        """``samples.png`` (``G(z)`` for ``n`` fixed draws of ``z``) and ``reconstructions.png``
        (held-out images above their ``G(E(x))``)."""
        device, was_training = next(self.parameters()).device, self.training
        self.eval()
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(self.seed))
        samples = self.generator(z.to(device)).add(1).div(2)  # (n, C, S, S) in [0, 1]
        x = heldout_images(data, n)
        x = x if x.numel() else train_images(data)[:n]
        x = x[: max(ROW, len(x) // ROW * ROW)].to(device)  # whole rows
        recon = self.generator(self.encode(self.normalize(x))).add(1).div(2)
        pairs = [
            r for k in range(0, len(x), ROW) for r in (to_float(x)[k : k + ROW], recon[k : k + ROW])
        ]
        files = [
            save_rows(out / "samples.png", [samples], nrow=int(n**0.5)),
            save_rows(out / "reconstructions.png", pairs, nrow=ROW),  # image rows above G(E(x))
        ]
        self.train(was_training)
        return files

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        latent_dim: int = 64,
        stochastic: bool = False,
        disc_lr_scale: float = 1.0,
        spectral_norm: bool = False,
        seed: int | None = None,
    ) -> BiGAN:
        """BiGAN for ``data``: encoder named ``encoder``, generator and discriminator sized by
        ``data.info``, the encoder's inputs normalised with the data's statistics.
        ``stochastic`` gives ALI's encoder; ``spectral_norm`` normalises the discriminator."""
        info = data.info
        c, s = info.get("in_channels", 3), info.get("image_size", 32)
        return cls(
            build_encoder(encoder, c, s),
            s,
            c,
            latent_dim=latent_dim,
            discriminator=JointDiscriminator(c, s, latent_dim, spectral_norm=spectral_norm),
            normalize=Normalize(info["mean"], info["std"]),
            stochastic=stochastic,
            disc_lr_scale=disc_lr_scale,
            seed=int(torch.randint(2**31 - 1, ())) if seed is None else seed,
        )
