"""Rotation and jigsaw pretext helpers and the pretext cross-entropy."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mmssl.core.objectives import (
    all_rotations,
    hamming_permutations,
    pretext_loss,
    rotate_batch,
    rotation_targets,
    shuffle_tiles,
)


def rot90_loop(img: list[list[float]], r: int) -> list[list[float]]:
    """Counter-clockwise rotation by r * 90 degrees of an (H, W) list."""
    for _ in range(r):
        n = len(img)
        img = [[img[j][n - 1 - i] for j in range(n)] for i in range(n)]
    return img


def test_rotate_batch_matches_loop():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 2, 5, 5, generator=g)
    targets = rotation_targets(8, generator=g)
    out = rotate_batch(images, targets)
    for b in range(8):
        for c in range(2):
            want = rot90_loop(images[b, c].tolist(), int(targets[b]))
            assert out[b, c].tolist() == want


def test_rotation_targets_reproducible_and_in_range():
    t = rotation_targets(1000, generator=torch.Generator().manual_seed(3))
    assert t.dtype == torch.long and set(t.tolist()) == {0, 1, 2, 3}
    assert torch.equal(t, rotation_targets(1000, generator=torch.Generator().manual_seed(3)))


def test_all_rotations_layout():
    images = torch.randn(3, 1, 4, 4)
    rotated, targets = all_rotations(images)
    assert (
        rotated.shape == (12, 1, 4, 4) and targets.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    )
    assert torch.equal(rotated, rotate_batch(images.repeat(4, 1, 1, 1), targets))


@pytest.mark.parametrize("shape", [(1, 4), (6, 4), (5, 9)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_pretext_loss_matches_loop(shape, smoothing):
    g = torch.Generator().manual_seed(shape[0])
    logits = torch.randn(*shape, generator=g) * 2
    targets = torch.randint(shape[1], (shape[0],), generator=g)
    terms = []
    for row, y in zip(logits.double().tolist(), targets.tolist(), strict=True):
        m = max(row)
        logp = [x - m - math.log(sum(math.exp(v - m) for v in row)) for x in row]
        c = len(row)
        terms.append(
            -sum(((1 - smoothing) * (k == y) + smoothing / c) * lp for k, lp in enumerate(logp))
        )
    got = pretext_loss(logits, targets, label_smoothing=smoothing).item()
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_gradients_and_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(8, 4)
    x, y = torch.randn(6, 8, generator=g), torch.randint(4, (6,), generator=g)
    ref = pretext_loss(head(x), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pretext_loss(head(x), y)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=3e-2)
    got.backward()
    assert torch.isfinite(head.weight.grad).all() and head.weight.grad.abs().sum() > 0


def test_validation_errors():
    with pytest.raises(ValueError, match="square"):
        rotate_batch(torch.randn(2, 1, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        rotate_batch(torch.randn(2, 1, 3, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="square"):
        all_rotations(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="batch_size"):
        rotation_targets(0)
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        pretext_loss(torch.randn(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="label_smoothing"):
        pretext_loss(torch.randn(2, 3), torch.zeros(2, dtype=torch.long), label_smoothing=1.0)


def hamming_greedy_loop(num: int, length: int, first: int) -> list[tuple[int, ...]]:
    """Algorithm 1 of Noroozi and Favaro 2016 over itertools' lexicographic permutations."""
    cands = list(itertools.permutations(range(length)))
    chosen = [cands[first]]
    for _ in range(num - 1):
        best, best_d = None, -1
        for p in cands:
            if p in chosen:
                continue
            d = sum(sum(a != b for a, b in zip(p, q, strict=True)) for q in chosen)
            if d > best_d:
                best, best_d = p, d
        chosen.append(best)
    return chosen


@pytest.mark.parametrize(("num", "length", "seed"), [(1, 3, 0), (6, 3, 1), (10, 4, 2), (24, 4, 3)])
def test_hamming_permutations_match_greedy_loop(num, length, seed):
    got = hamming_permutations(num, length, seed=seed)
    first = list(itertools.permutations(range(length))).index(tuple(got[0].tolist()))
    want = hamming_greedy_loop(num, length, first)
    assert got.dtype == torch.long and got.shape == (num, length)
    assert [tuple(r) for r in got.tolist()] == want


def test_hamming_permutations_nine_tiles_deterministic_and_spread():
    perms = hamming_permutations(30, seed=0)
    assert perms.shape == (30, 9)
    assert torch.equal(perms.sort(1).values, torch.arange(9).expand(30, 9))  # permutations
    assert len({tuple(r) for r in perms.tolist()}) == 30  # distinct
    assert torch.equal(perms, hamming_permutations(30, seed=0))
    assert not torch.equal(perms[0], hamming_permutations(30, seed=1)[0])  # first one is seeded
    dist = (perms[:, None] != perms[None]).sum(-1).float()  # (30, 30) Hamming distances
    assert dist.sum() / (30 * 29) > 8.0  # the paper's sets average 8 of 9 tiles moved


def test_shuffle_tiles_matches_loop():
    g = torch.Generator().manual_seed(0)
    tiles = torch.randn(5, 4, 2, 3, 3, generator=g)
    perms = torch.stack([torch.randperm(4, generator=g) for _ in range(6)])
    targets = torch.randint(6, (5,), generator=g)
    out = shuffle_tiles(tiles, perms, targets)
    for b in range(5):
        for i in range(4):
            assert torch.equal(out[b, i], tiles[b, perms[targets[b], i]])


def test_jigsaw_helpers_validation():
    with pytest.raises(ValueError, match="num"):
        hamming_permutations(7, 3)
    with pytest.raises(ValueError, match="length"):
        hamming_permutations(5, 11)
    with pytest.raises(ValueError, match="same T"):
        shuffle_tiles(torch.randn(2, 4, 3), torch.zeros(3, 5, dtype=torch.long), torch.zeros(2))
    with pytest.raises(ValueError, match="targets"):
        shuffle_tiles(
            torch.randn(2, 4, 3), torch.zeros(3, 4, dtype=torch.long), torch.zeros(3).long()
        )
