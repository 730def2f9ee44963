"""EMA update and momentum schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmssl.core.momentum import MomentumSchedule, cosine_momentum, ema_update, frozen_copy


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize("m", [0.0, 0.5, 0.996, 1.0])
def test_ema_update_matches_formula(m):
    torch.manual_seed(0)
    online = _net()
    target = frozen_copy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    online(torch.randn(8, 3))  # changes batch-norm running statistics
    before = {n: p.clone() for n, p in target.named_parameters()}
    ema_update(target, online, m)
    for (name, t), (_, o) in zip(target.named_parameters(), online.named_parameters(), strict=True):
        want = [
            m * a + (1 - m) * b
            for a, b in zip(before[name].flatten().tolist(), o.flatten().tolist(), strict=True)
        ]
        assert t.flatten().tolist() == pytest.approx(want, rel=1e-6, abs=1e-7), name
        assert not t.requires_grad
    for t_buf, o_buf in zip(target.buffers(), online.buffers(), strict=True):
        assert torch.equal(t_buf, o_buf)


def test_ema_update_can_leave_buffers():
    online = _net()
    target = frozen_copy(online)
    online(torch.randn(8, 3))
    ema_update(target, online, 0.9, copy_buffers=False)
    assert not torch.equal(target[1].running_mean, online[1].running_mean)


def test_ema_update_does_not_touch_the_online_graph():
    online, x = _net(), torch.randn(4, 3)
    target = frozen_copy(online)
    loss = online(x).sum()
    ema_update(target, online, 0.5)
    loss.backward()
    assert all(p.grad is not None for p in online.parameters())
    assert all(p.grad is None for p in target.parameters())


@pytest.mark.parametrize("base, final", [(0.996, 1.0), (0.99, 0.999), (0.5, 0.5)])
@pytest.mark.parametrize("total", [1, 10, 1000])
def test_cosine_momentum_matches_formula(base, final, total):
    for k in range(0, total + 1, max(1, total // 7)):
        want = final - (final - base) * (math.cos(math.pi * k / total) + 1) / 2
        assert cosine_momentum(k, total, base, final) == pytest.approx(want)
    assert cosine_momentum(0, total, base, final) == pytest.approx(base)
    assert cosine_momentum(total, total, base, final) == pytest.approx(final)
    assert cosine_momentum(total + 5, total, base, final) == pytest.approx(final)  # clamped


def test_momentum_schedule():
    assert MomentumSchedule(0.996)(0, 100) == pytest.approx(0.996)
    assert MomentumSchedule(0.996)(100, 100) == pytest.approx(1.0)
    assert MomentumSchedule(0.999, final=None)(50, 100) == 0.999
    values = [MomentumSchedule()(k, 50) for k in range(51)]
    assert values == sorted(values)


def test_validation_errors():
    a, b = _net(), nn.Linear(3, 4)
    with pytest.raises(ValueError, match="same parameters"):
        ema_update(a, b, 0.9)
    with pytest.raises(ValueError, match="m must be"):
        ema_update(a, frozen_copy(a), 1.5)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_momentum(0, 0)
    with pytest.raises(ValueError, match="base"):
        cosine_momentum(0, 10, base=1.2)
    with pytest.raises(ValueError, match="final"):
        MomentumSchedule(0.99, final=-0.1)
