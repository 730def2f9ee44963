"""The FIFO queue and the memory bank."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmssl.core.memory import MemoryBank, Queue


def test_queue_starts_as_reproducible_unit_vectors():
    q = Queue(4, 10, generator=torch.Generator().manual_seed(0))
    assert q.get().shape == (10, 4) and int(q.ptr) == 0
    assert torch.allclose(q.get().norm(dim=1), torch.ones(10))
    assert torch.equal(q.get(), Queue(4, 10, generator=torch.Generator().manual_seed(0)).get())


@pytest.mark.parametrize(
    "size, batches", [(6, [2, 2, 2, 2]), (5, [3, 3, 3]), (4, [7]), (8, [1, 5, 4])]
)
def test_queue_is_fifo_like_a_python_deque(size, batches):
    q = Queue(3, size)
    ref = q.get().tolist()  # a Python list model: slot i holds a key; ptr moves forward
    ptr, counter = 0, 0
    for n in batches:
        keys = torch.arange(counter, counter + 3 * n, dtype=torch.float32).reshape(n, 3)
        counter += 3 * n
        q.enqueue(keys)
        for row in keys.tolist()[-size:]:
            ref[ptr] = row
            ptr = (ptr + 1) % size
    assert q.get().tolist() == ref
    assert int(q.ptr) == ptr


def test_queue_get_is_a_detached_copy_and_state_is_saved():
    q = Queue(2, 3)
    view = q.get()
    q.enqueue(torch.ones(1, 2, requires_grad=True))
    assert not torch.equal(view, q.get())
    state = q.state_dict()
    assert set(state) == {"queue", "ptr"}
    q2 = Queue(2, 3)
    q2.load_state_dict(state)
    assert torch.equal(q2.get(), q.get()) and int(q2.ptr) == 1


def test_memory_bank_update_matches_formula():
    bank = MemoryBank(6, 3, momentum=0.5, generator=torch.Generator().manual_seed(0))
    before = bank.get(torch.arange(6))
    assert torch.allclose(before.norm(dim=1), torch.ones(6))
    idx, feats = torch.tensor([4, 1]), torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, -2.0]])
    bank.update(idx, feats)
    after = bank.get(torch.arange(6))
    for row, i in enumerate(idx.tolist()):
        mixed = [
            0.5 * v + 0.5 * f
            for v, f in zip(
                before[i].tolist(), F.normalize(feats, dim=1)[row].tolist(), strict=True
            )
        ]
        norm = sum(x * x for x in mixed) ** 0.5
        assert after[i].tolist() == pytest.approx([x / norm for x in mixed], rel=1e-5)
    untouched = [0, 2, 3, 5]
    assert torch.equal(after[untouched], before[untouched])


def test_memory_bank_sampling_is_reproducible_and_shaped():
    bank = MemoryBank(50, 4)
    a = bank.sample_negatives(7, generator=torch.Generator().manual_seed(1))
    b = bank.sample_negatives(7, generator=torch.Generator().manual_seed(1))
    assert a.shape == (7, 4) and torch.equal(a, b)
    assert bank.sample_negatives((3, 5)).shape == (3, 5, 4)
    rows = {tuple(r) for r in bank.bank.tolist()}
    assert all(tuple(r) in rows for r in a.tolist())


def test_validation_errors():
    with pytest.raises(ValueError, match="size"):
        Queue(4, 0)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        Queue(4, 8).enqueue(torch.randn(2, 3))
    with pytest.raises(ValueError, match="momentum"):
        MemoryBank(5, 3, momentum=1.0)
    bank = MemoryBank(5, 3)
    with pytest.raises(ValueError, match="integer"):
        bank.get(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="feats"):
        bank.update(torch.tensor([0, 1]), torch.randn(3, 3))
    with pytest.raises(ValueError, match="positive"):
        bank.sample_negatives(0)
