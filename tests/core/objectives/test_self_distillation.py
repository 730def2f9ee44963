"""negative_cosine, byol_loss and DINOLoss against hand-written loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.objectives import DINOLoss, byol_loss, negative_cosine


def cos_loop(p, z) -> list[float]:
    out = []
    for a, b in zip(p.double().tolist(), z.double().tolist(), strict=True):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        out.append(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))
    return out


def softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(x - m) for x in row]
    return [x / sum(e) for x in e]


def dino_loop(students, teachers, center, t_temp, s_temp) -> float:
    c = center.double().reshape(-1).tolist()
    terms = []
    for i, t in enumerate(teachers):
        for j, s in enumerate(students):
            if i == j:
                continue
            per_row = []
            for t_row, s_row in zip(t.double().tolist(), s.double().tolist(), strict=True):
                q = softmax([(x - ci) / t_temp for x, ci in zip(t_row, c, strict=True)])
                p = softmax([x / s_temp for x in s_row])
                per_row.append(-sum(qk * math.log(pk) for qk, pk in zip(q, p, strict=True)))
            terms.append(sum(per_row) / len(per_row))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("shape", [(1, 2), (4, 3), (16, 32)])
def test_cosine_losses_match_loop(shape):
    g = torch.Generator().manual_seed(shape[1])
    p, z = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    cos = cos_loop(p, z)
    assert negative_cosine(p, z).item() == pytest.approx(-sum(cos) / len(cos), rel=1e-5, abs=1e-6)
    want = sum(2 - 2 * c for c in cos) / len(cos)
    assert byol_loss(p, z).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("fn", [negative_cosine, byol_loss])
def test_stop_gradient_on_target(fn):
    p = torch.randn(5, 4, requires_grad=True)
    z = torch.randn(5, 4, requires_grad=True)
    fn(p, z).backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert z.grad is None


@pytest.mark.parametrize("n_students, n_teachers", [(2, 2), (4, 2), (6, 2), (3, 1)])
@pytest.mark.parametrize("temps", [(0.04, 0.1), (0.07, 0.1), (0.5, 1.0)])
@pytest.mark.parametrize("batch", [1, 5])
def test_dino_matches_loop(n_students, n_teachers, temps, batch):
    t_temp, s_temp = temps
    g = torch.Generator().manual_seed(n_students * 10 + batch)
    k = 7
    students = [torch.randn(batch, k, generator=g) for _ in range(n_students)]
    teachers = [torch.randn(batch, k, generator=g) for _ in range(n_teachers)]
    loss = DINOLoss(k, teacher_temp=t_temp, student_temp=s_temp)
    loss.center.copy_(torch.randn(1, k, generator=g))
    center = loss.center.clone()
    got = loss(students, teachers).item()
    assert got == pytest.approx(dino_loop(students, teachers, center, t_temp, s_temp), rel=1e-4)


def test_dino_center_update_and_teacher_temp_override():
    g = torch.Generator().manual_seed(0)
    students = [torch.randn(4, 5, generator=g) for _ in range(2)]
    teachers = [torch.randn(4, 5, generator=g) for _ in range(2)]
    loss = DINOLoss(5, center_momentum=0.9)
    loss.eval()
    loss(students, teachers)
    assert loss.center.abs().sum() == 0  # no update in eval mode
    loss.train()
    got = loss(students, teachers, teacher_temp=0.07).item()
    assert got == pytest.approx(
        dino_loop(students, teachers, torch.zeros(1, 5), 0.07, 0.1), rel=1e-4
    )
    want = 0.1 * torch.cat(teachers).mean(dim=0, keepdim=True)
    assert torch.allclose(loss.center, want, atol=1e-6)
    loss.update_center(torch.cat(teachers))
    assert torch.allclose(loss.center, 0.9 * want + 0.1 * torch.cat(teachers).mean(0), atol=1e-6)


def test_dino_gradients_reach_students_only():
    g = torch.Generator().manual_seed(0)
    students = [torch.randn(3, 6, generator=g, requires_grad=True) for _ in range(4)]
    teachers = [torch.randn(3, 6, generator=g, requires_grad=True) for _ in range(2)]
    DINOLoss(6)(students, teachers).backward()
    for s in students:
        assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert all(t.grad is None for t in teachers)


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(8, 16)
    xs = [torch.randn(4, 8, generator=g) for _ in range(3)]
    loss = DINOLoss(16).eval()
    p, z = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    ref = loss([head(x) for x in xs], [head(x) for x in xs[:2]])
    ref_cos = negative_cosine(p, z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [head(x) for x in xs]
        got = loss(outs, outs[:2])
        got_cos = negative_cosine(p.bfloat16(), z.bfloat16())
        got_byol = byol_loss(p, z)
    assert outs[0].dtype == torch.bfloat16
    assert got.dtype == got_cos.dtype == got_byol.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=3e-2)
    assert got_cos.item() == pytest.approx(ref_cos.item(), rel=3e-2)


def test_validation_errors():
    with pytest.raises(ValueError, match="out_dim"):
        DINOLoss(0)
    with pytest.raises(ValueError, match="teacher_temp"):
        DINOLoss(4, teacher_temp=0)
    with pytest.raises(ValueError, match="student_temp"):
        DINOLoss(4, student_temp=-0.1)
    with pytest.raises(ValueError, match="center_momentum"):
        DINOLoss(4, center_momentum=1.5)
    loss = DINOLoss(4)
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="pair of different views"):
        loss([x], [x])
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        loss([x, torch.randn(2, 5)], [x])
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        negative_cosine(torch.randn(2, 3), torch.randn(2, 4))
