"""What every modality's data loader hands to the trainer and the probes.

Departure from DESIGN.md's layout: the modalities share this one small contract (and the
read-only-data cache), so it lives in core rather than being written three times.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor


class DataError(ValueError):
    """Bad or missing input data. Its message is one line naming the input and the fix."""


@dataclass
class ProbeData:
    """Labelled data for the frozen-encoder probes.

    Attributes:
        splits: split name -> re-iterable batches of ``(inputs, labels)``. Names are ``train``,
            ``val`` and ``test``, or ``all`` for cross-validated protocols and transductive
            graphs.
        masks: for transductive node tasks, split name -> boolean mask over the rows that the
            single ``all`` split yields (``{"train": m1, "val": m2, "test": m3}``).
        protocol: the modality's standard protocol for this data (``linear``, ``knn``,
            ``logreg-cv`` or ``svm-cv``).
        options: protocol name -> keyword arguments of that protocol that this data's papers
            use (DGI's Cora probe: ``{"linear": {"standardize": False, "patience": None}}``).
    """

    splits: dict[str, Iterable[tuple[Any, Tensor]]]
    protocol: str = "linear"
    masks: dict[str, Tensor] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def split_names(self) -> set[str]:
        """The splits the probes score: ``splits``' names, with ``all`` cut into ``masks``'."""
        if not self.masks:
            return set(self.splits)
        return set(self.splits) - {"all"} | set(self.masks)


@dataclass
class DataBundle:
    """A dataset ready for pretraining and probing.

    Attributes:
        name: dataset name as the user gave it (``cora``, ``cifar10``, a path...).
        modality: ``vision``, ``text`` or ``graph``.
        train: re-iterable pretraining batches (a ``DataLoader`` or a list), unlabelled use.
        probe: labelled splits for evaluation, or ``None`` when the data has no labels.
        info: what methods need to size themselves (``in_channels``, ``image_size``,
            ``num_features``, ``vocab_size``, ``tokenizer``, ``mask_token_id``, ...).
    """

    name: str
    modality: str
    train: Iterable[Any]
    probe: ProbeData | None = None
    info: dict[str, Any] = field(default_factory=dict)


def cache_dir() -> Path:
    """Where loaders may write: ``$MMSSL_CACHE`` or ``~/.cache/mmssl``."""
    root = Path(os.environ.get("MMSSL_CACHE", Path.home() / ".cache" / "mmssl"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def writable_copy(src: Path, name: str) -> Path:
    """Copy a (possibly read-only) dataset folder into the cache once and return the copy.

    Loaders such as PyG's write ``processed/`` next to ``raw/``; shared data must stay untouched.
    """
    dst = cache_dir() / name
    if not dst.exists():
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        try:
            os.replace(tmp, dst)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def require_dir(root: str | Path, what: str, expected: str) -> Path:
    """Check a data folder exists and is non-empty, else raise a one-line :class:`DataError`."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{what}: folder {path} does not exist; put {expected} there")
    if not any(path.iterdir()):
        raise DataError(f"{what}: folder {path} is empty; put {expected} there")
    return path


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the choice closest to ``name`` (case-insensitive), or ``""``."""
    close = difflib.get_close_matches(Path(str(name)).name.lower(), list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def to_device(obj: Any, device: Any, non_blocking: bool = True) -> Any:
    """Move tensors, PyG ``Data``/``Batch`` objects and nested tuples/lists/dicts to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        moved = [to_device(v, device, non_blocking) for v in obj]
        return type(obj)(moved) if not hasattr(obj, "_fields") else type(obj)(*moved)
    if hasattr(obj, "to") and callable(obj.to):
        return obj.to(device)
    return obj
