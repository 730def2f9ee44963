r"""The evidence lower bound, written once for the VAE, the VGAE and a text VAE.

A Gaussian posterior :math:`q(z|x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)` with
``logvar`` :math:`= \log\sigma^2`, a standard-normal prior, and any reconstruction
log-likelihood (Bernoulli or Gaussian helpers below, or the VGAE's edge likelihood).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.objectives._common import full_precision

REDUCTIONS = ("none", "mean", "sum")


def _check_gaussian(mu: Tensor, logvar: Tensor) -> None:
    if mu.shape != logvar.shape or mu.ndim < 1:
        raise ValueError(
            f"mu and logvar must have the same shape (..., Z), got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}; predict log-variance, not standard deviation, per latent"
        )


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Draw :math:`z = \mu + \sigma \odot \epsilon`, :math:`\epsilon \sim \mathcal{N}(0, I)`
    (Kingma and Welling 2014, https://arxiv.org/abs/1312.6114), differentiable in
    :math:`\mu` and :math:`\log\sigma^2`.

    Args:
        mu, logvar: ``(..., Z)``. generator: for reproducible draws (on any device; the noise
            is moved to ``mu``'s device).

    Returns:
        ``(..., Z)`` samples, ``mu``'s dtype.
    """
    _check_gaussian(mu, logvar)
    gen_dev = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, device=gen_dev).to(mu)
    return mu + eps * torch.exp(0.5 * logvar)


@full_precision
def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "none") -> Tensor:
    r"""KL divergence of :math:`\mathcal{N}(\mu, \sigma^2)` from :math:`\mathcal{N}(0, I)`,
    summed over the latent axis (Kingma and Welling 2014, https://arxiv.org/abs/1312.6114):

    .. math::
        \mathrm{KL}_b = -\frac{1}{2}\sum_{j=1}^{Z}\big(1 + \log\sigma_{bj}^2 - \mu_{bj}^2
        - \sigma_{bj}^2\big)

    Args:
        mu, logvar: ``(B, Z)`` (or ``(..., Z)``).
        reduction: ``"none"`` -> ``(B,)``; ``"mean"`` or ``"sum"`` over ``B`` -> scalar.

    Returns:
        float32 KL per row, or its mean or sum.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    _check_gaussian(mu, logvar)
    mu, logvar = mu.float(), logvar.float()
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)  # (B,)
    if reduction == "mean":
        return kl.mean()
    return kl.sum() if reduction == "sum" else kl


@full_precision
def gaussian_elbo_terms(
    recon_loglik: Tensor, mu: Tensor, logvar: Tensor, *, beta: float = 1.0
) -> dict[str, Tensor]:
    r"""The negative ELBO and its two parts (see :func:`gaussian_elbo`).

    Returns:
        ``{"loss": -ELBO, "recon": -E[log p(x|z)], "kl": E[KL]}``, float32 scalars.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}; 1.0 is the VAE, > 1 a beta-VAE")
    if recon_loglik.ndim > 1:
        raise ValueError(
            f"recon_loglik must be (B,) or a scalar, got {tuple(recon_loglik.shape)}; sum the "
            "log-likelihood over each example's dimensions first (see bernoulli_log_likelihood)"
        )
    recon = -recon_loglik.float().mean()
    kl = gaussian_kl(mu, logvar, reduction="mean")
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def gaussian_elbo(recon_loglik: Tensor, mu: Tensor, logvar: Tensor, *, beta: float = 1.0) -> Tensor:
    r"""Negative evidence lower bound of the VAE (Kingma and Welling 2014,
    https://arxiv.org/abs/1312.6114); ``beta`` weighs the KL (beta-VAE, Higgins et al. 2017).

    .. math::
        -\mathrm{ELBO} = -\frac{1}{B}\sum_b \log p(x_b \mid z_b)
        + \beta\,\frac{1}{N}\sum_{n} \mathrm{KL}\big(q(z_n \mid x)\,\|\,\mathcal{N}(0, I)\big)

    The two means are taken separately, so a VGAE passes one scalar edge log-likelihood and
    ``(N, Z)`` node posteriors.

    Args:
        recon_loglik: ``(B,)`` per-example reconstruction log-likelihood, or a scalar.
        mu, logvar: ``(N, Z)`` posterior parameters (``N = B`` for a VAE).
        beta: KL weight :math:`\beta` (1.0: the ELBO).

    Returns:
        scalar float32 loss to minimise.
    """
    return gaussian_elbo_terms(recon_loglik, mu, logvar, beta=beta)["loss"]


@full_precision
def bernoulli_log_likelihood(logits: Tensor, target: Tensor) -> Tensor:
    r"""Bernoulli log-likelihood :math:`\sum_j x_j \log p_j + (1 - x_j)\log(1 - p_j)` per
    example, from logits (binary images, adjacency entries).

    Args:
        logits: ``(B, ...)`` decoder logits. target: ``(B, ...)`` in ``[0, 1]``.

    Returns:
        ``(B,)`` float32, summed over all but the first axis.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    ll = -F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return ll.reshape(ll.shape[0], -1).sum(dim=1)


@full_precision
def gaussian_log_likelihood(mean: Tensor, target: Tensor, logvar: Tensor | float = 0.0) -> Tensor:
    r"""Gaussian log-likelihood per example of ``target`` under
    :math:`\mathcal{N}(\text{mean}, \sigma^2)`:

    .. math::
        \log p(x) = -\frac{1}{2}\sum_j\Big(\frac{(x_j - m_j)^2}{\sigma_j^2} + \log\sigma_j^2
        + \log 2\pi\Big)

    Args:
        mean: ``(B, ...)``. target: ``(B, ...)``. logvar: :math:`\log\sigma^2`, a float or a
            tensor broadcastable to ``mean`` (0.0: unit variance, i.e. half the squared error).

    Returns:
        ``(B,)`` float32, summed over all but the first axis.
    """
    if mean.shape != target.shape:
        raise ValueError(f"mean {tuple(mean.shape)} and target {tuple(target.shape)} differ")
    lv = logvar.float() if isinstance(logvar, Tensor) else torch.tensor(float(logvar))
    lv = lv.to(mean.device)
    ll = -0.5 * (
        (target.float() - mean.float()).pow(2) * torch.exp(-lv) + lv + math.log(2 * math.pi)
    )
    return ll.reshape(mean.shape[0], -1).sum(dim=1)


@full_precision
def discretized_logistic_log_likelihood(
    mean: Tensor, log_scale: Tensor, target: Tensor, *, bins: int = 256, min_log_scale: float = -7.0
) -> Tensor:
    r"""Log-likelihood per example of quantised pixels under a discretised logistic
    (Kingma et al. 2016, https://arxiv.org/abs/1606.04934; Salimans et al. 2017, PixelCNN++,
    https://arxiv.org/abs/1701.05517).

    Pixels take the ``bins`` values :math:`x = k / (\text{bins} - 1)` in ``[0, 1]``; each gets
    the logistic mass of its bin of half-width :math:`\delta = \tfrac{1}{2(\text{bins} - 1)}`,
    the two end bins the whole tails:

    .. math::
        P(x) = \sigma\Big(\frac{x + \delta - m}{s}\Big) - \sigma\Big(\frac{x - \delta - m}{s}\Big),
        \qquad \log p(x_b) = \sum_j \log P(x_{bj})

    A proper discrete likelihood, so ``-log p / (D ln 2)`` is bits per dimension. Computed
    stably as :math:`\log(\sigma(a) - \sigma(c)) = a + \log(-\operatorname{expm1}(c - a))
    - \operatorname{softplus}(a) - \operatorname{softplus}(c)`.

    Args:
        mean: ``(B, ...)`` location :math:`m` on the ``[0, 1]`` scale.
        log_scale: ``(B, ...)`` :math:`\log s`, clamped below at ``min_log_scale``.
        target: ``(B, ...)`` pixels in ``[0, 1]`` (uint8 / 255).
        bins: quantisation levels (256 for 8-bit images).

    Returns:
        ``(B,)`` float32, summed over all but the first axis.
    """
    if not mean.shape == log_scale.shape == target.shape:
        raise ValueError(
            f"mean {tuple(mean.shape)}, log_scale {tuple(log_scale.shape)} and target "
            f"{tuple(target.shape)} must have the same shape"
        )
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}; 256 for 8-bit images")
    half = 0.5 / (bins - 1)
    x, m = target.float(), mean.float()
    inv_s = torch.exp(-log_scale.float().clamp_min(min_log_scale))
    a = (x - m + half) * inv_s  # upper bin edge, standardised
    c = (x - m - half) * inv_s  # lower bin edge
    width = (a - c).clamp_min(1e-12)  # > 0; the clamp keeps huge scales finite
    mid = a + torch.log(-torch.expm1(-width)) - F.softplus(a) - F.softplus(c)
    lowest, highest = x < half, x > 1.0 - half
    ll = torch.where(lowest, F.logsigmoid(a), torch.where(highest, -F.softplus(c), mid))
    return ll.reshape(ll.shape[0], -1).sum(dim=1)
