"""Run by ``test_distributed.py``: a few SGD steps of a tiny two-view method through the trainer.

``torchrun --standalone --nproc-per-node 2 ddp_worker.py OUT`` saves each process's trained
state (with and without SyncBatchNorm) as ``OUT/trained<rank>.pt``; ``python ddp_worker.py OUT
--single`` trains one process on the global batch and saves ``OUT/single.pt``.
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from mmssl.core.memory import Queue
from mmssl.core.method import Method
from mmssl.core.objectives import nt_xent
from mmssl.core.trainer import TrainConfig, Trainer

WORLD, LOCAL_B, DIM, STEPS = 2, 4, 5, 3


class TinyTwoView(Method):
    """A linear-BN-linear encoder, NT-Xent over every process's batch, and a MoCo queue."""

    family = "contrastive"
    kind = "instance-instance/discrimination"

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(DIM, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4)
        )
        self.queue = Queue(4, 2 * WORLD * LOCAL_B, generator=torch.Generator().manual_seed(0))

    def augment(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x.flip(1)  # two deterministic views

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        z1, z2 = self.encoder(batch[0]), self.encoder(batch[1])  # (B, 4) each
        loss = nt_xent(z1, z2, temperature=0.5, gather=True)
        self.queue.enqueue(z1.detach())
        return loss


def train(batch_size: int, sync_bn: bool) -> dict[str, torch.Tensor]:
    """``STEPS`` SGD steps of :class:`TinyTwoView` on the same data, in order, unshuffled."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS * WORLD * LOCAL_B, DIM, generator=g)
    loader = torch.utils.data.DataLoader(x, batch_size=batch_size)
    torch.manual_seed(0)
    method = TinyTwoView()
    cfg = TrainConfig(epochs=1, optimizer="sgd", lr=0.5, momentum=0.0, sync_bn=sync_bn)
    cfg.device, cfg.progress = "cpu", False
    summary = Trainer(method, loader, cfg).fit()
    assert summary["steps"] == STEPS, summary
    return {k: v.detach().clone() for k, v in method.state_dict().items()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = sys.argv[1]
    if "--single" in sys.argv:
        torch.save(train(WORLD * LOCAL_B, sync_bn=False), os.path.join(out, "single.pt"))
    else:
        states = {sync: train(LOCAL_B, sync) for sync in (True, False)}
        torch.save(states, os.path.join(out, f"trained{os.environ['RANK']}.pt"))
