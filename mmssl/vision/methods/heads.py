"""The MLP heads of the two-view methods: projectors, predictors and expanders.

One builder serves them all: ``Linear -> BatchNorm -> ReLU`` for every hidden layer and a
plain ``Linear`` (optionally followed by batch norm) at the end. BYOL's projector is
``mlp_head(D, 4096, 256)``; SimSiam's is ``mlp_head(D, 2048, 2048, layers=3, last_bn=True)``.
"""

from __future__ import annotations

from torch import nn


def mlp_head(
    in_dim: int,
    hidden: int,
    out: int,
    *,
    layers: int = 2,
    last_bn: bool = False,
    last_bn_affine: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    """An MLP ``(B, in_dim) -> (B, out)`` of ``layers`` linear layers.

    Args:
        in_dim: input size. hidden: width of every hidden layer. out: output size.
        layers: number of linear layers (>= 1; 1 is a plain linear map, MoCo v1's head).
        last_bn: batch norm after the last linear layer (SimSiam, SimCLR v2).
        last_bn_affine: give that batch norm a scale and shift.
        bias: bias in the hidden linear layers (a following batch norm makes it redundant).
    """
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    dims = [in_dim] + [hidden] * (layers - 1)
    mods: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        mods += [nn.Linear(d_in, d_out, bias=bias), nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
    mods.append(nn.Linear(dims[-1], out, bias=not last_bn))
    if last_bn:
        mods.append(nn.BatchNorm1d(out, affine=last_bn_affine))
    return nn.Sequential(*mods)
