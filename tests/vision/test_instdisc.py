"""InstDisc: dataset indices in batches, the memory bank update, and a smoke run on digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.data import ImageTensorDataset, with_indices
from mmssl.vision.methods import InstDisc


@pytest.fixture()
def digits():
    return load_data("vision", None, None, batch_size=64)


def _losses(method, batch, steps: int = 6, lr: float = 1e-3) -> list[float]:
    torch.manual_seed(0)
    with torch.no_grad():
        views = method.augment(batch)
    opt = torch.optim.Adam([p for g in method.param_groups() for p in g["params"]], lr=lr)
    out = []
    for _ in range(steps):
        loss = method(views)["loss"]
        out.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out


def test_registered_and_indices(digits):
    cls = registry.get("vision", "instdisc")
    assert cls is InstDisc and cls.family == "contrastive"
    assert cls.kind == "instance-instance/discrimination"
    torch.manual_seed(0)
    m = cls.build(digits)
    images, idx = next(iter(digits.train))  # build switched the batches to (images, indices)
    assert images.shape == (64, 3, 16, 16) and idx.shape == (64,) and idx.dtype == torch.long
    assert torch.equal(images, digits.train.dataset.images[idx])
    assert m.bank.bank.shape == (digits.info["num_train"], 128)
    assert m.negatives is None  # 1258 items: the whole bank, the exact softmax


def test_whole_bank_is_the_exact_softmax_and_big_banks_sample(digits, monkeypatch):
    torch.manual_seed(0)
    m = InstDisc.build(digits, seed=0).eval()
    x, idx = m.augment(next(iter(digits.train)))
    with torch.no_grad():
        v = F.normalize(m.head(m.encoder(x)), dim=1)
        expected = F.cross_entropy(v @ m.bank.bank.T / 0.07, idx)  # the paper's Eq. 2
        assert torch.allclose(m((x, idx))["loss"], expected, atol=1e-5)
    monkeypatch.setattr("mmssl.vision.methods.instdisc.FULL_SOFTMAX_MAX", 1000)
    assert InstDisc.build(digits).negatives == 4096  # 1258 > 1000: drawn, as on ImageNet
    sampled = InstDisc.build(digits, negatives=64, seed=0)
    assert sampled.negatives == 64 and torch.isfinite(sampled((x, idx))["loss"])


def test_with_indices_rejects_labelled_or_foreign_data(digits):
    with pytest.raises(ValueError, match="unlabelled"):
        ImageTensorDataset(
            torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2), return_index=True
        )
    digits.train = [torch.zeros(2, 3, 4, 4)]
    with pytest.raises(ValueError, match="ImageTensorDataset"):
        with_indices(digits)


def test_bank_update_is_proximal(digits):
    torch.manual_seed(0)
    m = InstDisc.build(digits, seed=0)
    x, idx = m.augment(next(iter(digits.train)))
    before = m.bank.bank.clone()
    m.eval()
    m((x, idx))
    assert torch.equal(m.bank.bank, before)  # no update outside training
    m.train()
    with torch.no_grad():
        v = F.normalize(m.head(m.encoder(x)), dim=1)
    m((x, idx))
    expected = F.normalize(0.5 * before[idx] + 0.5 * v, dim=1)
    assert torch.allclose(m.bank.bank[idx], expected, atol=1e-5)
    others = torch.ones(len(before), dtype=torch.bool)
    others[idx] = False
    assert torch.equal(m.bank.bank[others], before[others])


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = InstDisc.build(digits, seed=0)
    losses = _losses(m, next(iter(digits.train)))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5, losses
    x, _ = next(iter(digits.probe.splits["test"]))
    assert m.embed(x[:5]).shape == (5, m.encoder.out_dim)
