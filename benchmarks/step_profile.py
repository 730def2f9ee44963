"""Issue 8: where one SimCLR training step goes (the profile behind benchmarks/README.md).

    python benchmarks/step_profile.py --data-root ../shared/data --device cuda --precision bf16 \\
        [--steps 100] [--encoder resnet18] [--batch 128] [--compile] [--table profile.txt]

Drives mmssl's own :class:`~mmssl.core.trainer.Trainer` (the harness of ``throughput.py``) on
CIFAR-10 (or ``--data digits``) and prints, per step:

* the full trainer step, and its parts timed alone: the batch's fetch and copy to the device,
  the on-device augmentation, the method's forward and backward, the optimizer step;
* the model's FLOPs per image (``torch.utils.flop_counter``, both views, forward and backward)
  and the rate the full step achieves, next to the rates of a large square matrix product and
  of a 128-channel 3x3 convolution's forward and backward at the same precision and layout on
  the same device (the convolution's is the closer limit for a ResNet: on a CPU with AVX-512
  BF16 it is above the matrix product's);
* a ``torch.profiler`` run: the ops that take the step's time (on CUDA also the kernel
  launches per step and the time the GPU is busy with kernels; ``--table`` writes the full
  tables);
* with ``--compile``, the same trainer step under ``torch.compile``: compile time and speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import Mmssl  # noqa: E402  (the harness: mmssl's trainer driven n steps at a time)

from mmssl.core.data import to_device  # noqa: E402
from mmssl.core.trainer import TrainConfig  # noqa: E402
from mmssl.vision import data as vision_data  # noqa: E402
from mmssl.vision.methods.simclr import SimCLR  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="cifar10", help="cifar10 (under --data-root) or digits")
    p.add_argument("--data-root", default=os.environ.get("MMSSL_DATA", "../shared/data"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="steps per timing")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mmssl's TrainConfig.channels_last (default: the library's)",
    )
    p.add_argument("--table", help="write the profiler's tables here")
    return p.parse_args(argv)


def flops_per_image(method: SimCLR, views: Any) -> float:
    """FLOPs of the method's forward and backward on ``views``, per image (on the CPU)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(method).float().cpu().to(memory_format=torch.contiguous_format)
    small = tuple(v[:4].float().cpu().contiguous() for v in views)
    with FlopCounterMode(display=False) as counter:
        out = m(small)
        (out if isinstance(out, torch.Tensor) else out["loss"]).backward()
    return counter.get_total_flops() / small[0].shape[0]


def matmul_tflops(timed: Any, dev: torch.device, precision: str, n: int, reps: int = 5) -> float:
    """TFLOP/s of an ``n x n`` by ``n x n`` product in ``precision`` on ``dev`` (``timed(fn, k)``:
    seconds per call over ``k`` calls): the rate the device's matrix units sustain. Not a
    ceiling for convolutions: on a CPU with AVX-512 BF16, oneDNN's convolutions beat it."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    a @ b  # warmup
    return 2 * n**3 / timed(lambda: a @ b, reps) / 1e12


def conv_tflops(
    timed: Any, dev: torch.device, precision: str, channels_last: bool, batch: int, reps: int = 3
) -> float:
    """TFLOP/s of ResNet-18's typical work: a 128-channel 3x3 convolution over a ``batch x 128 x
    16 x 16`` input, forward and backward (input and weight gradients), in ``precision`` and
    the step's memory layout."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = nn.Conv2d(128, 128, 3, padding=1, bias=False).to(dev, dtype, memory_format=fmt)
    x = torch.randn(batch, 128, 16, 16, device=dev, dtype=dtype).to(memory_format=fmt)
    x.requires_grad_(True)
    grad = torch.randn_like(x)

    def once() -> None:
        conv(x).backward(grad)

    once()  # warmup
    flops = 3 * 2 * batch * 16 * 16 * 128 * 128 * 9  # forward, input and weight gradients
    return flops / timed(once, reps) / 1e12


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse(argv)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def timed(fn: Any, n: int) -> float:
        sync()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        return (time.perf_counter() - t) / n

    source = args.data if args.data == "digits" else str(Path(args.data_root) / args.data)
    data = vision_data.load(source, batch_size=args.batch)

    def side(compile_: bool = False) -> Mmssl:
        torch.manual_seed(0)
        method = SimCLR.build(data, encoder=args.encoder, seed=0)
        cfg = TrainConfig(
            epochs=1, schedule="constant", precision=args.precision, device=dev.type,
            progress=False, log_every=50, compile=compile_, optimizer="adamw", lr=2e-3,
            channels_last=args.channels_last,
        )  # fmt: skip
        return Mmssl(method, data.train, lambda b: b.shape[0], cfg)

    mm = side()
    mm.run(args.warmup)
    step = timed(lambda: mm.run(args.steps), 1) / args.steps
    tr = mm.trainer
    method = tr.accelerator.unwrap_model(tr.model)
    raw = to_device(next(iter(data.train)), tr.device)
    with torch.no_grad():
        views = method.augment(raw)
    batch = len(raw)
    r = {
        "step_ms": 1e3 * step,
        "images_per_s": batch / step,
        "fetch_copy_ms": 1e3 * timed(lambda: to_device(next(iter(data.train)), tr.device), 20),
        "augment_ms": 1e3 * timed(lambda: method.augment(raw), args.steps),
        "fwd_bwd_ms": 1e3 * mm.model_only(args.steps),  # the harness's own measurement
        "optimizer_ms": 1e3 * timed(tr.optimizer.step, args.steps),
        "gflop_per_image": flops_per_image(method, views) / 1e9,
    }
    r["step_efficiency"] = r["fwd_bwd_ms"] / r["step_ms"]
    r["tflops_in_step"] = r["gflop_per_image"] * r["images_per_s"] / 1e3
    r["matmul_tflops"] = matmul_tflops(
        timed, dev, args.precision, 8192 if dev.type == "cuda" else 2048
    )
    r["peak_fraction"] = r["tflops_in_step"] / r["matmul_tflops"]
    r["conv_tflops"] = conv_tflops(timed, dev, args.precision, tr.channels_last, batch)
    r["conv_fraction"] = r["tflops_in_step"] / r["conv_tflops"]
    print(
        f"{args.encoder}, batch {batch}, {args.precision}, {dev}: full trainer step "
        f"{r['step_ms']:.2f} ms = {r['images_per_s']:.0f} images/s\n"
        f"  alone: fetch+copy {r['fetch_copy_ms']:.2f} ms, augment {r['augment_ms']:.2f} ms, "
        f"forward+backward {r['fwd_bwd_ms']:.2f} ms, optimizer {r['optimizer_ms']:.2f} ms "
        f"(step efficiency {r['step_efficiency']:.2f})\n"
        f"  model: {r['gflop_per_image']:.2f} GFLOP per image (both views, fwd+bwd); the full "
        f"step runs {r['tflops_in_step']:.3f} TFLOP/s = {100 * r['peak_fraction']:.0f}% of a "
        f"{args.precision} matrix product's {r['matmul_tflops']:.3f} TFLOP/s on this device, "
        f"{100 * r['conv_fraction']:.0f}% of a 128-channel 3x3 convolution's forward and "
        f"backward ({r['conv_tflops']:.3f} TFLOP/s)"
    )
    from torch.profiler import ProfilerActivity, profile

    if dev.type == "cpu":
        n = max(1, min(args.steps, 5))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            mm.run(n)
        ka = prof.key_averages()
        print(ka.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=50))
        if args.table:
            Path(args.table).write_text(ka.table(sort_by="self_cpu_time_total", row_limit=40))
    if dev.type == "cuda":
        from torch.autograd import DeviceType

        n = 20
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            mm.run(n)
            sync()
        events = prof.events()
        kernels = [e for e in events if e.device_type == DeviceType.CUDA]
        launches = sum(1 for e in events if e.name in ("cudaLaunchKernel", "cuLaunchKernel"))
        r["gpu_busy_ms"] = sum(e.device_time for e in kernels) / n / 1e3
        r["launches_per_step"] = launches / n
        print(
            f"  profiler ({n} steps): {r['launches_per_step']:.0f} kernel launches a step; "
            f"kernels keep the GPU busy {r['gpu_busy_ms']:.2f} ms of each step"
        )
        ka = prof.key_averages()
        print(ka.table(sort_by="self_cuda_time_total", row_limit=10, max_name_column_width=50))
        if args.table:
            Path(args.table).write_text(
                ka.table(sort_by="self_cuda_time_total", row_limit=40)
                + "\n\n"
                + ka.table(sort_by="self_cpu_time_total", row_limit=40)
            )
    if args.compile:
        c = side(compile_=True)
        r["compile_s"] = timed(lambda: c.run(30), 1)
        r["compiled_step_ms"] = 1e3 * timed(lambda: c.run(args.steps), 1) / args.steps
        print(
            f"  torch.compile: first 30 steps {r['compile_s']:.0f} s, then "
            f"{r['compiled_step_ms']:.2f} ms a step = {batch / r['compiled_step_ms'] * 1e3:.0f} "
            f"images/s ({r['step_ms'] / r['compiled_step_ms']:.2f}x eager)"
        )
    return r


if __name__ == "__main__":
    main()
