"""MoCo v1 on tiny real data (sklearn digits): registration, learning, the momentum encoder,
the queue, and shuffled batch norm in one process and across two gloo processes."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from mmssl.core import registry
from mmssl.core.trainer import TrainConfig, build_optimizer
from mmssl.pretrain import load_data
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import MoCo

WORLD, LOCAL_B, TIMEOUT_S = 2, 8, 30


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=64)


def _tiny(seed: int = 0, **kw) -> MoCo:
    torch.manual_seed(seed)
    return MoCo(SmallResNet(widths=(8, 16)), dim=16, K=32, seed=seed, **kw)


def test_registered_as_moco_and_mocov1(digits):
    for name in ("moco", "mocov1"):
        cls = registry.get("vision", name)
        assert cls is MoCo and cls.family == "contrastive"
        assert cls.kind == "instance-instance/discrimination" and cls.modality == "vision"
    torch.manual_seed(0)
    m = MoCo.build(digits)
    assert isinstance(m.projector, nn.Linear) and m.projector.out_features == 128  # v1's fc
    assert (m.T, m.m, m.bn_splits) == (0.07, 0.99, 8)
    assert m.queue.size == digits.info["num_train"] // 2  # 4096 cut to half of 1257 digits
    assert m.views.cj_prob == 1.0 and m.views.jitter["hue"] == pytest.approx(0.4)
    assert MoCo(SmallResNet(widths=(8,))).K == 65536  # the paper's queue in the constructor


def test_loss_finite_and_decreasing(digits):
    """Fixed views and fixed negatives (the queue reset each step): the loss must go down."""
    torch.manual_seed(0)
    m = MoCo.build(digits)
    with torch.no_grad():
        views = m.augment(next(iter(digits.train)))
    start = m.queue.queue.clone()
    opt = build_optimizer(m, TrainConfig(optimizer="adam", lr=1e-3))
    losses = []
    for step in range(1, 9):
        loss = m(views)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.after_step(step, 8)
        m.queue.queue.copy_(start)
        m.queue.ptr.zero_()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5, losses


def test_momentum_encoder_not_optimised_and_updated_in_after_step(digits):
    m = _tiny()
    opt = build_optimizer(m, TrainConfig(optimizer="sgd", lr=0.1))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    keys = [*m.target_encoder.parameters(), *m.target_projector.parameters()]
    assert keys and not any(id(p) in in_opt or p.requires_grad for p in keys)
    x = next(iter(digits.train))[:16]
    with torch.no_grad():
        views = m.augment(x)
    loss = m(views)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    before = [p.detach().clone() for p in keys]
    m.after_step(1, 10)
    online = [*m.encoder.parameters(), *m.projector.parameters()]
    for old, new, q in zip(before, keys, online, strict=True):
        assert torch.allclose(new, m.m * old + (1 - m.m) * q.detach(), atol=1e-6)
    assert any(not torch.equal(o, n) for o, n in zip(before, keys, strict=True))


def test_queue_fills_with_normalised_keys(digits):
    m = _tiny()
    x = next(iter(digits.train))
    start = m.queue.get()
    for i in range(3):
        with torch.no_grad():
            m(m.augment(x[i * 16 : (i + 1) * 16]))
        assert int(m.queue.ptr) == ((i + 1) * 16) % 32
    q = m.queue.get()
    assert not torch.isclose(q, start).all(1).any()  # every slot overwritten (48 keys > K=32)
    assert torch.allclose(q.norm(dim=1), torch.ones(32), atol=1e-5)


def test_shuffled_keys_are_unshuffled():
    x = torch.rand(16, 3, 16, 16)
    m = _tiny().eval()  # running statistics: each key depends on its own image only
    want = F.normalize(m.target_projector(m.target_encoder(x)), dim=1)
    assert torch.allclose(m.keys(x), want, atol=1e-5)
    m.train()  # one batch-norm group: a permutation changes nothing
    m.bn_splits = 1
    want = F.normalize(m.target_projector(m.target_encoder(x)), dim=1)
    assert torch.allclose(m.keys(x), want, atol=1e-5)
    m.bn_splits = 4  # four groups drawn at random: statistics differ from the ordered split
    ordered = F.normalize(m._split_forward(m.target_encoder, m.target_projector, x), dim=1)
    assert not torch.allclose(m.keys(x), ordered, atol=1e-3)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    x = torch.rand(WORLD * LOCAL_B, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    mine = x[rank * LOCAL_B : (rank + 1) * LOCAL_B]
    m = _tiny(bn_splits=1).eval()
    keys = m.keys(mine)
    m.queue.enqueue(keys)
    torch.save({"keys": keys, "queue": m.queue.get()}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_keys_shuffled_across_two_processes(tmp_path):
    if not dist.is_available() or "fork" not in mp.get_all_start_methods():
        pytest.skip("needs torch.distributed and the fork start method")
    ctx = mp.start_processes(
        _worker,
        args=(str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for p in ctx.processes:
                p.kill()
            pytest.skip(f"two gloo processes did not finish within {TIMEOUT_S} s")
    out = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    x = torch.rand(WORLD * LOCAL_B, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    m = _tiny(bn_splits=1).eval()
    want = F.normalize(m.target_projector(m.target_encoder(x)), dim=1)  # (WORLD * B, dim)
    assert torch.allclose(torch.cat([o["keys"] for o in out]), want, atol=1e-5)
    for o in out:  # every rank's queue holds every rank's keys, in rank order
        assert torch.allclose(o["queue"][: WORLD * LOCAL_B], want, atol=1e-5)
