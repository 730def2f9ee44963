"""The one training loop, for every modality and method.

It knows nothing about any method: it moves batches to the device, calls ``method.augment``
(no grad), ``method.forward`` under the chosen precision, backward, clip, step, schedule and
``method.after_step``; it checkpoints atomically, resumes, logs JSON lines and shows progress.
Multi-GPU and multi-node runs go through HF accelerate (``accelerate launch`` or ``torchrun``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import resource
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mmssl.core.data import DataError, to_device
from mmssl.core.distributed import convert_sync_batchnorm
from mmssl.core.method import Method, SeededGenerators, loss_and_scalars

OPTIMIZERS = ("adam", "adamw", "sgd", "lars")
PRECISIONS = ("fp32", "bf16", "fp16")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, out of memory). The message says what to do next."""


class Interrupted(RuntimeError):
    """SIGTERM/SIGINT arrived; a checkpoint was written first."""


@dataclass
class TrainConfig:
    """Settings of one training run; method defaults fill what the user leaves out."""

    epochs: int = 100
    max_steps: int | None = None
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    grad_clip: float | None = None
    precision: str = "fp32"
    patience: int | None = None
    checkpoint_every: int = 0  # steps; 0: by the clock only
    checkpoint_minutes: float | None = 5.0  # also checkpoint when this long has passed; None: off
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    device: str | None = None
    compile: bool = False
    deterministic: bool = False
    progress: bool = True
    sync_bn: bool = False
    channels_last: bool | None = None  # conv weights and activations NHWC; None: on CUDA only

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule {self.schedule!r} is not 'cosine' or 'constant'")
        if self.epochs < 1 and not self.max_steps:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.checkpoint_every < 0 or (self.checkpoint_minutes or 0) < 0:
            raise ValueError(
                "checkpoint_every and checkpoint_minutes must be >= 0, got "
                f"{self.checkpoint_every} and {self.checkpoint_minutes}"
            )


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017, https://arxiv.org/abs/1708.03888) wrapped around SGD with momentum.

    Each parameter's update is scaled by ``eta * ||w|| / (||g|| + wd * ||w||)``; groups marked
    ``lars_exclude`` (biases, norms) get plain SGD without weight decay, as in SimCLR and BYOL.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta}
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group.get("lars_exclude", False):
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), g.norm()
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, 1.0
                    )
                    g = g.mul(trust)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return loss


def build_optimizer(method: Method, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = method.param_groups()
    for g in groups:
        g.setdefault("weight_decay", cfg.weight_decay)
        g["lr"] = cfg.lr * g.pop("lr_scale", 1.0)  # a method may scale a group's peak lr
    if cfg.optimizer == "lars":
        return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    for g in groups:
        g.pop("lars_exclude", None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    fused = (
        {"fused": True} if torch.cuda.is_available() and next(method.parameters()).is_cuda else {}
    )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)


def warmup_cosine(
    warmup_steps: int, total_steps: int, schedule: str = "cosine"
) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1 over ``warmup_steps``, then cosine to 0 (or constant)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def batch_size_of(batch: Any) -> int:
    """Number of examples in a batch (images, token rows, graphs or nodes)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        return batch_size_of(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    for attr in ("num_graphs", "num_nodes"):
        if getattr(batch, attr, None) is not None:
            return int(getattr(batch, attr))
    return 1


def reset_peak_memory(device: torch.device) -> None:
    """Start :func:`peak_memory_mb` afresh, so that several runs in one process (a bench) each
    report their own peak. On the CPU this resets Linux's resident high-water mark."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not Linux, or not allowed: the peak then covers the whole process
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory when on CUDA, else the process's peak resident memory since the
    last :func:`reset_peak_memory` (Linux; elsewhere since the process started)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocator failure (CUDA, or the CPU's ``DefaultCPUAllocator``)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "out of memory" in text.lower() or "can't allocate memory" in text
    )


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _held(method: nn.Module, kind: type) -> dict[str, Any]:
    """Every ``kind`` object a method or its parts hold (generators of augmentations, maskers)."""
    found: dict[str, Any] = {}
    for mod_name, mod in method.named_modules():
        for attr, val in vars(mod).items():
            if isinstance(val, kind):
                found[f"{mod_name}.{attr}"] = val
    for attr, val in vars(method).items():  # plain callables held by the method (views=...)
        for sub, g in (
            vars(val).items() if hasattr(val, "__dict__") and not isinstance(val, nn.Module) else []
        ):
            if isinstance(g, kind):
                found[f"{attr}.{sub}"] = g
    return found


def _generators(method: nn.Module) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` a method or its parts hold."""
    return _held(method, torch.Generator)


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves the old file, and no debris


class Trainer:
    """Train any :class:`Method` on any re-iterable of batches.

    Args:
        method: the method to train.
        train: re-iterable batches (a ``DataLoader`` or a list).
        config: a :class:`TrainConfig`.
        out_dir: the run folder; receives ``metrics.jsonl`` and ``checkpoints/``. ``None``: no files.
        on_epoch_end: optional ``callback(trainer, epoch) -> dict`` whose numbers are logged
            (a kNN monitor, say).
    """

    def __init__(
        self,
        method: Method,
        train: Iterable[Any],
        config: TrainConfig | None = None,
        out_dir: str | Path | None = None,
        on_epoch_end: Callable[[Trainer, int], dict[str, float]] | None = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        self.cfg = config or TrainConfig()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.on_epoch_end = on_epoch_end
        cpu = self.cfg.device == "cpu" or (
            self.cfg.device is None and not torch.cuda.is_available()
        )
        if self.cfg.precision == "fp16" and cpu:
            raise ValueError("--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.cfg.precision]
        # accelerate keeps its precision in a process-wide singleton: reset it (the process
        # group, if any, stays) so several trainers with different settings can share a process.
        AcceleratorState._reset_state()
        self.accelerator = Accelerator(mixed_precision=mp, cpu=cpu)
        self.device = self.accelerator.device
        self.method = method
        if self.accelerator.num_processes > 1 and isinstance(train, torch.utils.data.DataLoader):
            train = self.accelerator.prepare(train)  # each process: its share of every epoch
        try:
            n_batches = len(train)  # type: ignore[arg-type]
        except TypeError:
            n_batches = None
        if n_batches == 0:
            raise DataError(
                "the training data yields no batch: the dataset is empty or smaller "
                "than the batch size (lower --batch-size)"
            )
        if n_batches is None and not self.cfg.max_steps:
            raise ValueError("the training data has no length: give max_steps")
        self.train = train
        self.steps_per_epoch = n_batches or self.cfg.max_steps or 1
        self.total_steps = self.cfg.max_steps or self.cfg.epochs * self.steps_per_epoch
        self.step = 0
        self.epoch = 0
        self.best_loss = math.inf
        self.bad_epochs = 0
        self._best_state: dict[str, Tensor] | None = None
        self._stop_signal: int | None = None
        # read each step's loss only at logs, checkpoints and epoch ends (on the CPU a read is
        # free, so there every step is checked at once)
        self.lazy_loss_check = self.device.type != "cpu"

        if self.cfg.sync_bn and self.accelerator.num_processes > 1:
            # batch statistics over every process's batch (SimCLR's global BN, BYOL, SwAV)
            method = self.method = convert_sync_batchnorm(method, self.device.type)
        method.to(self.device)
        # the layout in use (None in the config: on CUDA only)
        self.channels_last = self.cfg.channels_last
        if self.channels_last is None:
            self.channels_last = self.device.type == "cuda"
        if self.channels_last and any(p.dim() == 4 for p in method.parameters()):
            # NHWC: faster convolutions with cuDNN and oneDNN (ResNet-18 step on this 2-core
            # CPU: 12.0 -> 9.9 s); activations follow the weights' layout
            method.to(memory_format=torch.channels_last)
        if isinstance(train, list | tuple):  # batches held in memory (a full graph): moved once,
            self.train = [to_device(b, self.device) for b in train]  # not at every step
        if self.cfg.device is not None and self.device.type == "cpu" and self.cfg.device != "cpu":
            raise ValueError(f"device {self.cfg.device!r} is not available here; use --device cpu")
        optimizer = build_optimizer(method, self.cfg)
        warmup = int(self.cfg.warmup_epochs * self.steps_per_epoch)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(warmup, self.total_steps, self.cfg.schedule)
        )
        # The scheduler stays ours: accelerate's wrapper steps it once per process at every
        # optimizer step (a schedule counted in single-process steps), but total_steps above
        # already counts this process's share, so under DDP the rate would decay world-size
        # times too fast.
        self.model, self.optimizer = self.accelerator.prepare(method, optimizer)
        self.scheduler = sched
        if self.cfg.compile:
            self.model = torch.compile(self.model)

    # ---------------------------------------------------------------- checkpoints
    @property
    def ckpt_dir(self) -> Path | None:
        return self.out_dir / "checkpoints" if self.out_dir is not None else None

    def state(self) -> dict[str, Any]:
        return {
            "method": self.accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "best_loss": self.best_loss,
            "bad_epochs": self.bad_epochs,
            "best_state": self._best_state,
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "generators": {k: g.get_state() for k, g in _generators(self.method).items()},
                "seeded": {
                    k: g.state_dict() for k, g in _held(self.method, SeededGenerators).items()
                },
            },
            "config": asdict(self.cfg),
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_<N>.pt`` and ``latest.pt`` atomically; keep the newest few."""
        if self.ckpt_dir is None or not self.accelerator.is_main_process:
            return None
        state = self.state()
        bad = [
            k
            for k, v in state["method"].items()
            if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())
        ]
        if bad:  # never overwrite a good checkpoint with broken weights
            latest = self.ckpt_dir / "latest.pt"
            raise TrainingError(
                f"weights are not finite at step {self.step} ({bad[0]}; "
                f"{self._last_checkpoint(latest if latest.exists() else None)}); "
                "lower --lr, add --grad-clip 1.0 or use --precision fp32"
            )
        path = self.ckpt_dir / f"step_{self.step:08d}.pt"
        atomic_save(state, path)
        atomic_save(state, self.ckpt_dir / "latest.pt")
        old = sorted(self.ckpt_dir.glob("step_*.pt"))[: -self.cfg.keep_checkpoints]
        for p in old:
            p.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> bool:
        """Restore from ``path`` or the run's ``latest.pt``; False when there is none."""
        path = Path(path) if path else (self.ckpt_dir / "latest.pt" if self.ckpt_dir else None)
        if path is None or not path.exists():
            return False
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
            raise DataError(
                f"checkpoint {path} is unreadable ({err}); delete it to start over"
            ) from err
        self.accelerator.unwrap_model(self.model).load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.best_loss, self.bad_epochs = state["best_loss"], state["bad_epochs"]
        self._best_state = state.get("best_state")
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"].cpu())
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        gens = _generators(self.method)
        for k, s in rng.get("generators", {}).items():
            if k in gens:
                gens[k].set_state(s.cpu() if gens[k].device.type == "cpu" else s)
        seeded = _held(self.method, SeededGenerators)
        for k, states in rng.get("seeded", {}).items():
            if k in seeded:
                seeded[k].load_state_dict(states)
        return True

    # ---------------------------------------------------------------- loop
    def _log(self, record: dict[str, Any]) -> None:
        if self.out_dir is None or not self.accelerator.is_main_process:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _check_losses(self, losses: list[tuple[int, Tensor]], last_ckpt: Path | None) -> None:
        """Raise on the first non-finite loss among the steps not yet checked (one device read
        for all of them), then forget them."""
        if not losses:
            return
        values = torch.stack([v.float() for _, v in losses]).cpu()
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad):
            k = int(bad[0])
            raise TrainingError(
                f"loss is {float(values[k])} at step {losses[k][0]} "
                f"({self._last_checkpoint(last_ckpt)}); "
                "lower --lr, add --grad-clip 1.0 or use --precision fp32"
            )
        losses.clear()

    def _reseed_loader(self, epoch: int) -> None:
        # The order of epoch e depends only on (seed, e), so a resumed run sees the same batches.
        gen = getattr(self.train, "generator", None)
        if isinstance(gen, torch.Generator):
            gen.manual_seed(self.cfg.seed * 100_003 + epoch)
        sampler = getattr(self.train, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    @staticmethod
    def _last_checkpoint(path: Path | None) -> str:
        return f"last good checkpoint: {path}" if path else "no checkpoint was written yet"

    def _smaller_batch_hint(self) -> str:
        """What to rerun with after running out of memory: half the loader's batch size."""
        bs = getattr(self.train, "batch_size", None)
        if isinstance(bs, int) and bs > 1:
            return f"the batch size is {bs}; rerun with --batch-size {bs // 2} or --precision bf16"
        if bs == 1:
            return "even batch size 1 does not fit; use --precision bf16 or a smaller encoder"
        return (
            "each batch is the whole dataset; load it in mini-batches (graphs: --batch-size 512 "
            "--data-opt 'num_neighbors=[25, 10]') or use --precision bf16"
        )

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def fit(self) -> dict[str, Any]:
        """Train to the configured length (or early stop); returns a summary."""
        cfg, acc = self.cfg, self.accelerator
        unwrapped: Method = acc.unwrap_model(self.model)
        old_handlers = {
            s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)
        }
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (cfg.progress and acc.is_main_process),
            desc="pretrain",
            unit="step",
            dynamic_ncols=True,
        )
        reset_peak_memory(self.device)
        t_start, samples, t_window = time.perf_counter(), 0, time.perf_counter()
        next_timed_ckpt = time.monotonic() + 60 * (cfg.checkpoint_minutes or 0)
        last_ckpt: Path | None = (
            self.ckpt_dir / "latest.pt"
            if self.ckpt_dir and (self.ckpt_dir / "latest.pt").exists()
            else None
        )
        stopped_early = False
        monitored: dict[str, str] = {}  # the on_epoch_end numbers, for the progress bar
        # Each step's loss stays on the device until it is read at the next log, checkpoint or
        # epoch end: a read waits for the device, and one per step would stall the CUDA queue.
        losses: list[tuple[int, Tensor]] = []
        lazy = self.lazy_loss_check
        try:
            while self.step < self.total_steps:
                skip = (
                    self.step - self.epoch * self.steps_per_epoch
                )  # batches already done this epoch
                self._reseed_loader(self.epoch)
                epoch_loss, epoch_batches = torch.zeros((), device=self.device), 0
                for i, batch in enumerate(self.train):
                    if i < skip:
                        continue
                    if self.step >= self.total_steps:
                        break
                    batch = to_device(batch, self.device)
                    with torch.no_grad():
                        batch = unwrapped.augment(batch)
                    with acc.autocast():
                        out = self.model(batch)
                    loss, scalars = loss_and_scalars(out)
                    losses.append((self.step, scalars["loss"]))
                    if not lazy or len(losses) >= 1024:  # the CPU: a read costs nothing
                        self._check_losses(losses, last_ckpt)
                    self.optimizer.zero_grad(set_to_none=True)
                    acc.backward(loss)
                    if cfg.grad_clip:
                        acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.step += 1
                    unwrapped.after_step(self.step, self.total_steps)
                    n = batch_size_of(batch)
                    samples += n
                    epoch_loss += scalars["loss"]
                    epoch_batches += 1
                    bar.update(1)
                    if self.step % max(1, cfg.log_every) == 0 or self.step == self.total_steps:
                        self._check_losses(losses, last_ckpt)  # waits for the device
                        logs = {k: float(v) for k, v in scalars.items()}
                        now = time.perf_counter()
                        rate = samples / max(now - t_window, 1e-9)
                        samples, t_window = 0, now
                        bar.set_postfix(
                            loss=f"{logs['loss']:.4f}", ex_per_s=f"{rate:.0f}", **monitored
                        )
                        self._log(
                            {
                                "step": self.step,
                                "epoch": self.epoch,
                                "lr": self.scheduler.get_last_lr()[0],
                                **logs,
                                "examples_per_s": rate,
                                "time": now - t_start,
                            }
                        )
                    due = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                    # and by the clock, so a killed run (SIGKILL, power loss) loses little work
                    late = cfg.checkpoint_minutes and time.monotonic() >= next_timed_ckpt
                    if due or late:
                        self._check_losses(losses, last_ckpt)
                        last_ckpt = self.save_checkpoint() or last_ckpt
                        next_timed_ckpt = time.monotonic() + 60 * (cfg.checkpoint_minutes or 0)
                    if self._stop_signal is not None:
                        self._check_losses(losses, last_ckpt)
                        last_ckpt = self.save_checkpoint() or last_ckpt
                        raise Interrupted(
                            f"stopped by signal {self._stop_signal} at step {self.step}; "
                            f"checkpoint: {last_ckpt}; rerun with --resume to continue"
                        )
                else:
                    self._check_losses(losses, last_ckpt)
                    self.epoch += 1
                    record: dict[str, Any] = {
                        "epoch": self.epoch,
                        "step": self.step,
                        "epoch_loss": float(epoch_loss) / max(1, epoch_batches),
                    }
                    if self.on_epoch_end is not None:
                        extra = self.on_epoch_end(self, self.epoch)
                        record.update(extra)
                        monitored.update(  # shown in the progress bar until the next one
                            {k: f"{v:.4g}" for k, v in extra.items() if not k.endswith("seconds")}
                        )
                    self._log(record)
                    if cfg.patience:
                        if record["epoch_loss"] < self.best_loss:
                            self.best_loss, self.bad_epochs = record["epoch_loss"], 0
                            self._best_state = copy.deepcopy(unwrapped.state_dict())
                        else:
                            self.bad_epochs += 1
                            if self.bad_epochs >= cfg.patience:
                                stopped_early = True
                                break
                    continue
                break  # inner loop ended by the step budget
            self._check_losses(losses, last_ckpt)
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            raise TrainingError(
                f"out of memory at step {self.step} ({self._last_checkpoint(last_ckpt)}): "
                f"{self._smaller_batch_hint()}"
            ) from err
        finally:
            bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        if stopped_early and self._best_state is not None:
            unwrapped.load_state_dict(self._best_state)
        self.save_checkpoint()
        return {
            "steps": self.step,
            "epochs": self.epoch,
            "stopped_early": stopped_early,
            "train_seconds": time.perf_counter() - t_start,
            "peak_memory_mb": peak_memory_mb(self.device),
        }
