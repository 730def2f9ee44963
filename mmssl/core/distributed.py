"""Process-group helpers that also work, as no-ops, in a single CPU process."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss depends on this rank's rows
        b = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * b : (dist.get_rank() + 1) * b]


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather ``(B, ...)`` to ``(world * B, ...)`` keeping gradients to the local rows.

    Equal batch sizes on every rank are assumed. Identity outside a process group.
    """
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """All-gather without gradients (queue and memory-bank updates). Identity when single."""
    if world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean over processes (DINO's centre, SwAV's Sinkhorn sums). Identity when single."""
    if world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world_size()


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over every process's batch that also runs on the CPU (gloo), where
    :class:`torch.nn.SyncBatchNorm` refuses.

    In training under a process group, the mean and variance of each channel are taken over
    the global batch of every process (a differentiable all-reduce of the sums), so ``world``
    processes of ``B`` rows normalise exactly as one process of ``world * B`` rows. Outside a
    process group, and in eval mode, it is plain batch norm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {input.ndim}-D")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce

        x = input.float()
        c = x.shape[1]
        dims = [0, *range(2, x.ndim)]
        count = x.new_tensor([x.numel() / c])
        stats = all_reduce(torch.cat([x.sum(dims), x.square().sum(dims), count]))
        n = stats[-1]  # rows (times positions) in the global batch
        mean = stats[:c] / n  # (C,)
        var = stats[c : 2 * c] / n - mean.square()  # (C,), biased: what normalises
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), m)
        shape = [1, c] + [1] * (x.ndim - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device_type: str = "cpu") -> nn.Module:
    """Replace every ``BatchNorm*d`` in ``module`` by a batch norm over every process's batch:
    :class:`torch.nn.SyncBatchNorm` on CUDA, :class:`SyncBatchNorm` elsewhere. The new layers
    share the old ones' parameters and buffers (frozen ones stay frozen); returns the module (a
    new one when ``module`` is itself a batch norm)."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, SyncBatchNorm
    ):
        new = SyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child, device_type))
    return module
