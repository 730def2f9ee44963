r"""Redundancy-reduction objectives on the statistics of a batch: Barlow Twins and VICReg."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.core.distributed import gather_with_grad
from mmssl.core.objectives._common import check_pair, check_positive, full_precision


def _off_diagonal_sq_sum(c: Tensor) -> Tensor:
    """Sum of the squared off-diagonal entries of a square matrix."""
    return c.pow(2).sum() - torch.diagonal(c).pow(2).sum()


@full_precision
def barlow_twins_loss(
    z1: Tensor, z2: Tensor, *, lambd: float = 5e-3, eps: float = 1e-5, gather: bool = False
) -> Tensor:
    r"""Barlow Twins (Zbontar et al. 2021, https://arxiv.org/abs/2103.03230).

    Each feature is standardised over the batch (batch norm without affine), then the
    cross-correlation :math:`\mathcal{C}_{ij} = \frac{1}{B}\sum_b \hat z^1_{bi}\hat z^2_{bj}`
    is pushed toward the identity:

    .. math::
        \mathcal{L} = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_i\sum_{j \ne i}
        \mathcal{C}_{ij}^2

    Args:
        z1, z2: ``(B, D)`` projections of the two views, ``B >= 2``.
        lambd: :math:`\lambda` (the paper's 5e-3; its code uses 0.0051).
        eps: added to the batch variance, as in batch norm.
        gather: standardise and correlate over the global batch of every process.

    Returns:
        scalar in float32.
    """
    check_positive("lambd", lambd, "Barlow Twins uses 5e-3")
    check_positive("eps", eps, "batch norm uses 1e-5")
    check_pair(z1, z2, min_rows=2)
    a, b = z1.float(), z2.float()
    if gather:
        a, b = gather_with_grad(a), gather_with_grad(b)  # (B_global, D)
    a = (a - a.mean(dim=0)) / torch.sqrt(a.var(dim=0, unbiased=False) + eps)  # (B, D)
    b = (b - b.mean(dim=0)) / torch.sqrt(b.var(dim=0, unbiased=False) + eps)  # (B, D)
    c = a.T @ b / a.shape[0]  # (D, D)
    on_diag = (torch.diagonal(c) - 1.0).pow(2).sum()
    return on_diag + lambd * _off_diagonal_sq_sum(c)


@full_precision
def vicreg_terms(
    z1: Tensor,
    z2: Tensor,
    *,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
    gamma: float = 1.0,
    gather: bool = False,
) -> dict[str, Tensor]:
    """VICReg's loss and its unweighted invariance, variance and covariance terms.

    See :func:`vicreg_loss`. Returns ``{"loss", "invariance", "variance", "covariance"}``.
    """
    for name, w in (("sim_weight", sim_weight), ("var_weight", var_weight)):
        if w < 0:
            raise ValueError(f"{name} must be >= 0, got {w}; VICReg uses 25")
    if cov_weight < 0:
        raise ValueError(f"cov_weight must be >= 0, got {cov_weight}; VICReg uses 1")
    check_positive("eps", eps, "VICReg uses 1e-4")
    check_positive("gamma", gamma, "VICReg uses 1")
    check_pair(z1, z2, min_rows=2)
    a, b = z1.float(), z2.float()
    if gather:
        a, b = gather_with_grad(a), gather_with_grad(b)  # (B_global, D)
    n, d = a.shape
    invariance = F.mse_loss(a, b)
    variance, covariance = a.new_zeros(()), a.new_zeros(())
    for z in (a, b):
        std = torch.sqrt(z.var(dim=0) + eps)  # (D,)
        variance = variance + F.relu(gamma - std).mean()
        zc = z - z.mean(dim=0)  # (B, D)
        covariance = covariance + _off_diagonal_sq_sum(zc.T @ zc / (n - 1)) / d
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return {"loss": loss, "invariance": invariance, "variance": variance, "covariance": covariance}


def vicreg_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
    gamma: float = 1.0,
    gather: bool = False,
) -> Tensor:
    r"""VICReg (Bardes et al. 2022, https://arxiv.org/abs/2105.04906), as in the paper's
    Algorithm 1 (the official repository halves the variance term):

    .. math::
        \mathcal{L} = \lambda\, s(Z, Z') + \mu\,[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')]

    with :math:`s` the mean squared error, :math:`v(Z) = \frac{1}{D}\sum_j
    \max(0, \gamma - \sqrt{\mathrm{Var}(z^j) + \epsilon})` and :math:`c(Z) = \frac{1}{D}
    \sum_{i \ne j} C(Z)_{ij}^2`, :math:`C(Z)` the covariance over the batch.

    Args:
        z1, z2: ``(B, D)`` expander outputs, ``B >= 2``.
        sim_weight, var_weight, cov_weight: :math:`\lambda, \mu, \nu` (25, 25, 1).
        eps: :math:`\epsilon`. gamma: target standard deviation :math:`\gamma`.
        gather: compute the statistics over the global batch of every process.

    Returns:
        scalar in float32.
    """
    return vicreg_terms(
        z1,
        z2,
        sim_weight=sim_weight,
        var_weight=var_weight,
        cov_weight=cov_weight,
        eps=eps,
        gamma=gamma,
        gather=gather,
    )["loss"]
