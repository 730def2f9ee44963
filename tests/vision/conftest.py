"""Shared by the vision method tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def _fixed_batch_losses(method, batch, steps: int = 8, lr: float = 1e-3) -> list[float]:
    """Adam on fixed augmented views of one real batch; the loss at each step (it must fall)."""
    torch.manual_seed(0)
    with torch.no_grad():
        views = method.augment(batch)
    opt = torch.optim.Adam(method.parameters(), lr=lr)
    out = []
    for _ in range(steps):
        res = method(views)
        loss = res if isinstance(res, torch.Tensor) else res["loss"]
        out.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out


@pytest.fixture
def fixed_batch_losses() -> Callable[..., list[float]]:
    return _fixed_batch_losses
