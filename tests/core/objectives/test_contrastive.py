"""info_nce and nt_xent against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import info_nce, nt_xent


def _unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def info_nce_loop(q, k, temperature, queue=None, normalize=True, symmetric=False) -> float:
    qs, ks = q.double().tolist(), k.double().tolist()
    ns = [] if queue is None else queue.double().tolist()
    if normalize:
        qs, ks, ns = [_unit(x) for x in qs], [_unit(x) for x in ks], [_unit(x) for x in ns]
    total = 0.0
    for i, qi in enumerate(qs):
        denom = sum(math.exp(_dot(qi, kj) / temperature) for kj in ks)
        denom += sum(math.exp(_dot(qi, n) / temperature) for n in ns)
        total += -math.log(math.exp(_dot(qi, ks[i]) / temperature) / denom)
    loss = total / len(qs)
    if symmetric:
        loss = 0.5 * (loss + info_nce_loop(k, q, temperature, None, normalize))
    return loss


def nt_xent_loop(z1, z2, temperature) -> float:
    z = [_unit(x) for x in torch.cat([z1, z2]).double().tolist()]
    b = z1.shape[0]
    total = 0.0
    for i in range(2 * b):
        p = (i + b) % (2 * b)
        denom = sum(math.exp(_dot(z[i], z[j]) / temperature) for j in range(2 * b) if j != i)
        total += -math.log(math.exp(_dot(z[i], z[p]) / temperature) / denom)
    return total / (2 * b)


SHAPES = [(1, 3), (2, 4), (5, 7), (16, 8)]
TEMPS = [0.05, 0.1, 0.5, 1.0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", TEMPS)
@pytest.mark.parametrize("queue_size", [0, 6])
def test_info_nce_matches_loop(shape, temperature, queue_size):
    g = torch.Generator().manual_seed(hash((shape, temperature, queue_size)) % 2**31)
    q, k = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    queue = torch.randn(queue_size, shape[1], generator=g) if queue_size else None
    got = info_nce(q, k, temperature=temperature, queue=queue)
    assert got.item() == pytest.approx(info_nce_loop(q, k, temperature, queue), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_info_nce_options_match_loop(shape, normalize, symmetric):
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(*shape, generator=g) * 0.5, torch.randn(*shape, generator=g) * 0.5
    got = info_nce(q, k, temperature=0.2, normalize=normalize, symmetric=symmetric)
    want = info_nce_loop(q, k, 0.2, None, normalize, symmetric)
    assert got.item() == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", TEMPS)
def test_nt_xent_matches_loop(shape, temperature):
    g = torch.Generator().manual_seed(hash((shape, temperature)) % 2**31)
    z1, z2 = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    got = nt_xent(z1, z2, temperature=temperature)
    assert got.item() == pytest.approx(nt_xent_loop(z1, z2, temperature), rel=1e-4, abs=1e-5)


def test_perfect_alignment_gives_low_loss():
    z = torch.eye(8)
    assert nt_xent(z, z, temperature=0.05).item() < 1e-3
    assert info_nce(z, z, temperature=0.05).item() < 1e-3


@pytest.mark.parametrize("loss_fn", ["info_nce", "info_nce_queue", "info_nce_sym", "nt_xent"])
def test_gradients_finite_and_nonzero(loss_fn):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, generator=g, requires_grad=True)
    b = torch.randn(6, 5, generator=g, requires_grad=True)
    if loss_fn == "nt_xent":
        loss = nt_xent(a, b)
    else:
        queue = torch.randn(4, 5, generator=g) if loss_fn == "info_nce_queue" else None
        loss = info_nce(a, b, queue=queue, symmetric=loss_fn == "info_nce_sym")
    loss.backward()
    for t in (a, b):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_queue_can_change_in_place_before_backward():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 3, generator=g, requires_grad=True)
    queue = torch.randn(5, 3, generator=g)
    loss = info_nce(q, torch.randn(4, 3, generator=g), queue=queue)
    queue.add_(1.0)  # a MoCo enqueue inside forward
    loss.backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("fn", ["info_nce", "nt_xent"])
def test_float32_under_bf16_autocast(fn):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    queue = torch.randn(8, 32, generator=g)
    loss = (lambda x, y: info_nce(x, y, queue=queue)) if fn == "info_nce" else nt_xent
    ref = loss(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(a, b)
        out_bf16_inputs = loss(a.bfloat16(), b.bfloat16())
    assert out.dtype == torch.float32 and out_bf16_inputs.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    assert out_bf16_inputs.item() == pytest.approx(ref.item(), rel=2e-2)


def test_validation_errors():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(a, a, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(a, a, temperature=-1.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        info_nce(a, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        nt_xent(torch.randn(4, 3, 2), torch.randn(4, 3, 2))
    with pytest.raises(ValueError, match="queue"):
        info_nce(a, a, queue=torch.randn(5, 2))
