"""Two CPU processes over gloo: every ``gather=True`` objective and the memory stores equal
their single-process values on the full batch (losses, gradients, codes, queue, centre)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmssl.core.memory import MemoryBank, Queue
from mmssl.core.objectives import (
    DINOLoss,
    barlow_twins_loss,
    info_nce,
    nt_xent,
    sinkhorn_knopp,
    vicreg_loss,
)

WORLD, LOCAL_B, DIM, TIMEOUT_S = 2, 4, 5, 60

LOSSES = {
    "nt_xent": lambda a, b, gather: nt_xent(a, b, temperature=0.2, gather=gather),
    "info_nce": lambda a, b, gather: info_nce(a, b, temperature=0.2, gather=gather),
    "info_nce_sym": lambda a, b, gather: info_nce(a, b, symmetric=True, gather=gather),
    "barlow_twins": lambda a, b, gather: barlow_twins_loss(a, b, gather=gather),
    "vicreg": lambda a, b, gather: vicreg_loss(a, b, gather=gather),
}
# nt_xent / info_nce: each process averages over its own rows (the global loss is the mean over
# processes); Barlow Twins / VICReg: each process computes the global loss itself.
LOCAL_MEAN = {"nt_xent", "info_nce", "info_nce_sym"}


def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * LOCAL_B, DIM, generator=g), torch.randn(
        WORLD * LOCAL_B, DIM, generator=g
    )


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    """One process of the group: run every gathered objective on its slice of the batch."""
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the child's copy of the environment
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    a_full, b_full = full_batch()
    rows = slice(rank * LOCAL_B, (rank + 1) * LOCAL_B)
    out = {}
    for name, fn in LOSSES.items():
        a, b = a_full[rows].clone().requires_grad_(), b_full[rows].clone().requires_grad_()
        loss = fn(a, b, True)
        loss.backward()
        out[name] = (loss.detach(), a.grad, b.grad)
    out["sinkhorn"] = sinkhorn_knopp(a_full[rows], gather=True)
    queue = Queue(DIM, 3 * LOCAL_B, generator=torch.Generator().manual_seed(0))
    queue.enqueue(a_full[rows])
    out["queue"] = (queue.get(), int(queue.ptr))
    bank = MemoryBank(20, DIM, generator=torch.Generator().manual_seed(0))
    bank.update(torch.arange(WORLD * LOCAL_B)[rows] * 2, a_full[rows])
    out["bank"] = bank.bank.clone()
    dino = DINOLoss(DIM)
    dino([b_full[rows], a_full[rows]], [a_full[rows], b_full[rows]])
    out["center"] = dino.center.clone()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not dist.is_available() or "fork" not in mp.get_all_start_methods():
        pytest.skip("needs torch.distributed and the fork start method")
    tmp = tmp_path_factory.mktemp("dist")
    # fork: the children inherit the imported modules, so the group starts in about a second
    ctx = mp.start_processes(
        _worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=False, start_method="fork"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"two gloo processes did not finish within {TIMEOUT_S} s")
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("name", list(LOSSES))
def test_gathered_loss_and_gradients_equal_full_batch(ranks, name):
    a, b = (x.clone().requires_grad_() for x in full_batch())
    full = LOSSES[name](a, b, False)
    full.backward()
    losses = torch.stack([r[name][0] for r in ranks])
    if name in LOCAL_MEAN:
        assert losses.mean().item() == pytest.approx(full.item(), rel=1e-5)
    else:
        assert torch.allclose(losses, full.detach().expand(WORLD), rtol=1e-5)
    # the all-reduce in gather_with_grad sums every process's loss: WORLD x the full gradient,
    # which DDP's averaging over processes brings back to the full-batch gradient
    grad_a = torch.cat([r[name][1] for r in ranks]) / WORLD
    grad_b = torch.cat([r[name][2] for r in ranks]) / WORLD
    assert torch.allclose(grad_a, a.grad, atol=1e-6, rtol=1e-4)
    assert torch.allclose(grad_b, b.grad, atol=1e-6, rtol=1e-4)


def test_gathered_sinkhorn_equals_full_batch(ranks):
    a, _ = full_batch()
    want = sinkhorn_knopp(a)
    assert torch.allclose(torch.cat([r["sinkhorn"] for r in ranks]), want, atol=1e-6, rtol=1e-5)


def test_memory_stores_see_every_process(ranks):
    a, b = full_batch()
    queue = Queue(DIM, 3 * LOCAL_B, generator=torch.Generator().manual_seed(0))
    queue.enqueue(a)
    bank = MemoryBank(20, DIM, generator=torch.Generator().manual_seed(0))
    bank.update(torch.arange(WORLD * LOCAL_B) * 2, a)
    dino = DINOLoss(DIM)
    dino.update_center(torch.cat([a, b]))
    for r in ranks:
        assert torch.equal(r["queue"][0], queue.get()) and r["queue"][1] == int(queue.ptr)
        assert torch.allclose(r["bank"], bank.bank, atol=1e-6)
        assert torch.allclose(r["center"], dino.center, atol=1e-6)


# ---- the trainer under torchrun: DDP, gathered negatives, the queue and SyncBatchNorm ---------

WORKER = Path(__file__).with_name("ddp_worker.py")


# About 20 s (fresh interpreters, the elastic agent's rendezvous and shutdown). Subprocesses, not
# forks: a fork of a process whose OpenMP pool is running can hang. This test caught
# accelerate's prepared scheduler stepping once per process (the rate decayed twice as fast).
def test_trainer_under_torchrun_matches_one_process_on_the_global_batch(tmp_path):
    if not dist.is_available():
        pytest.skip("needs torch.distributed")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    for cmd in (
        [*launch, "--nproc-per-node", str(WORLD), str(WORKER), str(tmp_path)],
        [sys.executable, str(WORKER), str(tmp_path), "--single"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
    ranks = [torch.load(tmp_path / f"trained{r}.pt") for r in range(WORLD)]
    single = torch.load(tmp_path / "single.pt")
    for r in ranks:
        synced = r[True]
        for k, v in single.items():  # weights, BN running stats and the queue (every rank's keys)
            assert torch.allclose(synced[k].float(), v.float(), atol=1e-5), k
    # without SyncBatchNorm each process normalises its own half: the runs differ
    w = "encoder.0.weight"
    assert not torch.allclose(ranks[0][False][w], single[w], atol=1e-5)
    assert torch.equal(ranks[0][False][w], ranks[1][False][w])  # DDP keeps the ranks equal
