r"""Momentum (EMA) teachers: the update of MoCo, BYOL, DINO and BGRL, and BYOL's schedule."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def frozen_copy(online: nn.Module) -> nn.Module:
    """A deep copy of ``online`` with gradients off, to be the momentum target."""
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(
    target: nn.Module, online: nn.Module, m: float, *, copy_buffers: bool = True
) -> None:
    r"""Exponential moving average of parameters (MoCo, He et al. 2020,
    https://arxiv.org/abs/1911.05722; BYOL, https://arxiv.org/abs/2006.07733):

    .. math::
        \xi \leftarrow m\,\xi + (1 - m)\,\theta

    Args:
        target: the momentum network :math:`\xi`, same architecture as ``online``.
        online: the trained network :math:`\theta`.
        m: momentum in ``[0, 1]`` (MoCo: 0.999; BYOL: 0.996 rising to 1).
        copy_buffers: also copy buffers (batch-norm statistics) from ``online``.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"m must be in [0, 1], got {m}; MoCo uses 0.999, BYOL 0.996")
    t_named, o_named = list(target.named_parameters()), list(online.named_parameters())
    if [n for n, _ in t_named] != [n for n, _ in o_named]:
        raise ValueError(
            "target and online must have the same parameters; build target with frozen_copy"
        )
    t_params, o_params = [p.data for _, p in t_named], [p.detach() for _, p in o_named]
    if t_params:
        torch._foreach_lerp_(t_params, o_params, 1.0 - m)  # xi + (1 - m)(theta - xi)
    if copy_buffers:
        for t_buf, o_buf in zip(target.buffers(), online.buffers(), strict=True):
            t_buf.copy_(o_buf)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    r"""BYOL's cosine schedule of the target momentum (Grill et al. 2020,
    https://arxiv.org/abs/2006.07733):

    .. math::
        m_k = m_{\text{final}} - (m_{\text{final}} - m_{\text{base}})
        \frac{\cos(\pi k / K) + 1}{2}

    Args:
        step: :math:`k`, clamped to ``[0, K]``. total_steps: :math:`K > 0`.
        base: :math:`m` at step 0 (BYOL 0.996; DINO 0.996). final: at the last step (1.0).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    for name, v in (("base", base), ("final", final)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}; BYOL uses 0.996 and 1.0")
    k = min(max(step, 0), total_steps)
    return final - (final - base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


class MomentumSchedule:
    """``m(step)`` for a run: BYOL's cosine rise from ``base`` to ``final``, or constant
    (MoCo) when ``final`` is None.

    Example: ``schedule = MomentumSchedule(0.996)``; in ``after_step(step, total)``:
    ``ema_update(self.target, self.online, schedule(step, total))``.
    """

    def __init__(self, base: float = 0.996, final: float | None = 1.0) -> None:
        cosine_momentum(0, 1, base, base if final is None else final)  # validates
        self.base, self.final = base, final

    def __call__(self, step: int, total_steps: int) -> float:
        if self.final is None:
            return self.base
        return cosine_momentum(step, total_steps, self.base, self.final)

    def __repr__(self) -> str:
        return f"MomentumSchedule(base={self.base}, final={self.final})"
