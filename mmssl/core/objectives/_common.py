"""Shared checks and the float32 guard used by every objective (private)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Any])


def _first_tensor(values: Iterable[Any]) -> Tensor | None:
    for v in values:
        if isinstance(v, Tensor):
            return v
        if isinstance(v, (list, tuple)):
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """A context that turns autocast off on ``device_type`` (a no-op where it has none)."""
    available = getattr(torch.amp, "is_autocast_available", lambda d: d in ("cpu", "cuda"))
    if available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def full_precision(fn: F) -> F:
    """Run ``fn`` with autocast off on its inputs' device, so matmuls, logits and softmax stay
    in float32 under bf16/fp16 autocast. ``fn`` still casts its inputs with ``.float()``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = _first_tensor([*args, *kwargs.values()])
        if t is None:
            return fn(*args, **kwargs)
        with no_autocast(t.device.type):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_positive(name: str, value: float, hint: str) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}; {hint}")


def check_unit(name: str, value: float, hint: str, *, closed: bool = True) -> None:
    """``value`` in ``[0, 1]`` (or ``[0, 1)`` when ``closed`` is False)."""
    ok = 0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}; {hint}")


def check_pair(a: Tensor, b: Tensor, names: str = "z1 and z2", min_rows: int = 1) -> None:
    """Both ``(B, D)`` with the same shape and at least ``min_rows`` rows."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"{names} must both be (B, D) with the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; flatten extra dimensions first"
        )
    if a.shape[0] < min_rows:
        raise ValueError(f"{names} need a batch of at least {min_rows} rows, got {a.shape[0]}")
