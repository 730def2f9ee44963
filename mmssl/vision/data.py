"""Image datasets decoded once into a uint8 tensor, batched without per-image Python work.

``load(name, root)`` understands:

- ``None`` or ``"digits"``: scikit-learn's 8x8 handwritten digits (1,797 images, ships with
  sklearn, no download). Upscaled bilinearly to ``image_size`` (default 16) and repeated to 3
  channels so that every vision method and augmentation applies unchanged; 16x16 keeps the
  default run to seconds on a CPU. A seeded stratified 70/30 train/test split.
- ``"cifar10"``: ``<root>/cifar10/{train,test}/<class>/*.jpg`` (``root``: the argument,
  ``$MMSSL_DATA``, or the ``shared/data`` folder next to the project), else torchvision's
  download into the cache.
- a folder path: ``<path>/{train,test}/<class>/*`` or ``<path>/<class>/*`` (a seeded
  stratified split) or ``<path>/*`` (unlabelled: no probe). Any mode and size is converted to
  RGB and resized (shorter side, then centre crop) to ``image_size`` (default 32).

Decoded images are cached as ``.pt`` files in ``cache_dir()/vision``, keyed by the folder's
path, size and the files' names, sizes and modification times.

``info`` holds ``in_channels``, ``image_size``, ``num_classes``, ``classes``, ``num_train``,
``mean`` and ``std`` (per channel, of the training images in [0, 1]) and ``augment``: the
dataset's overrides of the :class:`~mmssl.vision.augment.SimCLRAugment` defaults (digits: no
flips, crops of at least a quarter of the image).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mmssl.core.data import DataBundle, DataError, ProbeData, cache_dir, did_you_mean

__all__ = [
    "ImageTensorDataset",
    "balanced_subset",
    "decode_folder",
    "load",
    "stratified_split",
    "train_images",
    "with_indices",
]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_JPEG_EXTS = (".jpg", ".jpeg")
_DECODE_CHUNK = 4096  # files per batched decode_jpeg call
_TV_IO = r"torchvision\.io"  # its decoders warn that torchcodec will replace them
_DIGITS_MAX = 16.0  # sklearn digits pixel range is [0, 16]
NAMES = ("digits", "cifar10")
OPTIONS = {"image_size", "test_fraction", "probe_batch_size", "download"}


class ImageTensorDataset(Dataset):
    """uint8 images ``(N, C, H, W)`` (and labels ``(N,)``) indexed a whole batch at a time.

    ``__getitems__`` lets a ``DataLoader`` fetch a batch with one tensor index instead of
    ``B`` ``__getitem__`` calls and a stack. With ``return_index`` (unlabelled data only) it
    yields ``(images, indices)``: what memory-bank and clustering methods need.
    """

    def __init__(
        self, images: Tensor, labels: Tensor | None = None, *, return_index: bool = False
    ) -> None:
        if return_index and labels is not None:
            raise ValueError("return_index is for unlabelled (pretraining) data only")
        self.images, self.labels, self.return_index = images, labels, return_index

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Any:
        if self.return_index:
            return self.images[i], torch.tensor(i)
        return self.images[i] if self.labels is None else (self.images[i], self.labels[i])

    def __getitems__(self, idx: list[int]) -> Any:
        index = torch.as_tensor(idx, dtype=torch.long)
        if self.return_index:
            return self.images[index], index  # (B, C, H, W), (B,)
        if self.labels is None:
            return self.images[index]  # (B, C, H, W)
        return self.images[index], self.labels[index]


SMALL_IMAGE_MAX = 64  # CIFAR-sized: the papers' CIFAR recipes apply up to this side


def small_images(info: dict[str, Any]) -> bool:
    """Whether ``data.info`` describes CIFAR-sized images (side at most ``SMALL_IMAGE_MAX``),
    for which methods take their papers' CIFAR settings instead of the ImageNet ones."""
    return info.get("image_size", 32) <= SMALL_IMAGE_MAX


def with_indices(data: DataBundle) -> DataBundle:
    """Make ``data.train`` yield ``(images (B, C, H, W), indices (B,))``, in place; returns it.

    For methods that address one slot per training image (InstDisc's and PIRL's memory bank,
    DeepCluster's pseudo-labels); their ``build`` calls this. Indices run over
    ``range(data.info["num_train"])``.
    """
    dataset = getattr(data.train, "dataset", None)
    if not isinstance(dataset, ImageTensorDataset):
        raise DataError(
            f"{data.name}: training batches do not come from an ImageTensorDataset, so they "
            "cannot carry dataset indices; load the data with mmssl.vision.data.load"
        )
    dataset.return_index = True
    return data


def train_images(data: DataBundle) -> Tensor:
    """All training images of ``data``, uint8 ``(N, C, H, W)`` in dataset-index order."""
    dataset = getattr(data.train, "dataset", None)
    if not isinstance(dataset, ImageTensorDataset):
        raise DataError(
            f"{data.name}: training batches do not come from an ImageTensorDataset; "
            "load the data with mmssl.vision.data.load"
        )
    return dataset.images


def _as_batch(batch: Any) -> Any:
    """Collate function for :class:`ImageTensorDataset`: the batch is already one tensor."""
    return batch


def _resize_square(img: Tensor, size: int) -> Tensor:
    """uint8 ``(3, h, w)`` -> ``(3, size, size)``: shorter side to ``size``, centre crop."""
    h, w = img.shape[-2:]
    if (h, w) == (size, size):
        return img
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    x = F.interpolate(
        img[None].float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
    )
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[0, :, top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _decode_one(path: str) -> Tensor:
    """One file -> uint8 RGB ``(3, h, w)``: torchvision's decoders, PIL as the fallback."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=_TV_IO)
            return decode_image(read_file(path), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError):
        from PIL import Image

        with Image.open(path) as im:
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


def decode_folder(files: list[str], image_size: int) -> tuple[Tensor, list[int]]:
    """Decode ``files`` into uint8 ``(N, 3, image_size, image_size)``; returns it and the kept indices.

    JPEGs are decoded in batches by ``torchvision.io.decode_jpeg``; a batch that fails is
    decoded file by file, and unreadable files are skipped with a warning naming them.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[Tensor | None] = [None] * len(files)
    jpegs = [i for i, p in enumerate(files) if p.lower().endswith(_JPEG_EXTS)]
    for start in range(0, len(jpegs), _DECODE_CHUNK):
        chunk = jpegs[start : start + _DECODE_CHUNK]
        raw = [torch.frombuffer(bytearray(_read(files[i])), dtype=torch.uint8) for i in chunk]
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=_TV_IO)
                decoded = decode_jpeg(raw, mode=ImageReadMode.RGB)
            for i, img in zip(chunk, decoded, strict=True):
                out[i] = img
        except RuntimeError:
            pass  # one bad file fails the batch: the loop below decodes these one by one
    for i, p in enumerate(files):
        if out[i] is None:
            try:
                out[i] = _decode_one(p)
            except Exception as e:  # noqa: BLE001 - any decoder error means "skip this file"
                warnings.warn(
                    f"skipping unreadable image {p} ({type(e).__name__}: {e})", stacklevel=2
                )
    kept = [i for i in range(len(files)) if out[i] is not None]
    if not kept:
        raise DataError(
            f"no readable images among {len(files)} files (first: {files[0]}); check the files"
        )
    images = torch.stack([_resize_square(out[i], image_size) for i in kept])  # (N, 3, S, S)
    return images, kept


def _list_classes(folder: Path) -> tuple[list[str], list[int], list[str]]:
    """Files and labels of ``folder/<class>/*``, classes sorted by name."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for c, name in enumerate(classes):
        names = sorted(f for f in os.listdir(folder / name) if f.lower().endswith(IMAGE_EXTS))
        base = os.path.join(folder, name)
        files.extend(os.path.join(base, f) for f in names)
        labels.extend([c] * len(names))
    return files, labels, classes


def _cached_folder(folder: Path, image_size: int, labelled: bool = True) -> dict[str, Any]:
    """Decode ``folder`` (class subfolders, or flat if not ``labelled``) once, then load the cache."""
    if labelled:
        files, labels, classes = _list_classes(folder)
    else:
        files = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        labels, classes = [-1] * len(files), []
    if not files:
        raise DataError(f"folder {folder} holds no images; put <class>/*.jpg (or .png) files there")
    sig = hashlib.sha1(f"{folder.resolve()}|{image_size}".encode())
    for p in files:
        st = os.stat(p)
        sig.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    path = cache_dir() / "vision" / f"{folder.parent.name}-{folder.name}-{sig.hexdigest()[:16]}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    images, kept = decode_folder(files, image_size)
    data = {"images": images, "labels": torch.tensor([labels[i] for i in kept]), "classes": classes}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return data


def balanced_subset(labels: Tensor, n: int, seed: int) -> Tensor:
    """Indices of a seeded subset of ``n`` items with (as nearly as possible) equal class counts."""
    if not 0 < n <= labels.numel():
        raise DataError(f"subset={n} must be between 1 and the {labels.numel()} training images")
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    picked = []
    for j, c in enumerate(classes.tolist()):
        idx = (labels == c).nonzero().squeeze(1)
        want = n // len(classes) + (1 if j < n % len(classes) else 0)
        picked.append(idx[torch.randperm(idx.numel(), generator=g)[:want]])
    return torch.cat(picked).sort().values


def stratified_split(labels: Tensor, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded per-class split of ``range(N)`` into train and test indices."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = min(round(test_fraction * idx.numel()), idx.numel() - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def _channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std of uint8 images ``(N, C, H, W)`` scaled to [0, 1]."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    mean, std = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()  # histogram (256,)
        p = counts / counts.sum()
        m = float((p * levels).sum())
        mean.append(m)
        std.append(max(float((p * levels.square()).sum()) - m * m, 0.0) ** 0.5)
    return mean, std


def _default_root(root: str | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("MMSSL_DATA"):
        return Path(os.environ["MMSSL_DATA"]).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _digits(image_size: int, test_fraction: float, seed: int) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] * (
        255.0 / _DIGITS_MAX
    )  # (N, 1, 8, 8)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()  # (N, 3, S, S)
    y = torch.as_tensor(d.target, dtype=torch.long)
    tr, te = stratified_split(y, test_fraction, seed)
    classes = [str(c) for c in d.target_names]
    # Digits are not mirror-symmetric and a 0.08-area crop of a 16x16 digit is a few pixels.
    hints = {"hflip_prob": 0.0, "min_scale": 0.25}
    return {"train": (x[tr], y[tr]), "test": (x[te], y[te]), "classes": classes, "augment": hints}


def _cifar10(root: Path, download: bool) -> dict[str, Any]:
    folder = root / "cifar10" if (root / "cifar10").is_dir() else root
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        tr, te = _cached_folder(folder / "train", 32), _cached_folder(folder / "test", 32)
        return {
            "train": (tr["images"], tr["labels"]),
            "test": (te["images"], te["labels"]),
            "classes": tr["classes"],
        }
    expected = root / "cifar10"
    if download:
        try:
            from torchvision.datasets import CIFAR10

            dl = cache_dir() / "vision" / "cifar10-torchvision"
            sets = [CIFAR10(str(dl), train=t, download=True) for t in (True, False)]
        except Exception as e:  # noqa: BLE001 - offline, proxy, checksum: all mean "no data"
            raise DataError(
                f"cifar10: folder {expected} not found and the download failed ({type(e).__name__}); "
                "put CIFAR-10 there as train/<class>/*.jpg and test/<class>/*.jpg, or pass --data-root"
            ) from e
        out = [
            (torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(s.targets))
            for s in sets
        ]
        return {"train": out[0], "test": out[1], "classes": list(sets[0].classes)}
    raise DataError(
        f"cifar10: folder {expected} not found; put CIFAR-10 there as train/<class>/*.jpg "
        "and test/<class>/*.jpg, or pass --data-root"
    )


def _image_folder(folder: Path, image_size: int, test_fraction: float, seed: int) -> dict[str, Any]:
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        tr = _cached_folder(folder / "train", image_size)
        te = _cached_folder(folder / "test", image_size)
        return {
            "train": (tr["images"], tr["labels"]),
            "test": (te["images"], te["labels"]),
            "classes": tr["classes"],
        }
    if any(d.is_dir() and not d.name.startswith(".") for d in folder.iterdir()):
        d = _cached_folder(folder, image_size)
        x, y = d["images"], d["labels"]
        if y.unique().numel() < 2 or y.numel() < 4:
            return {"train": (x, None), "test": None, "classes": d["classes"]}
        tr, te = stratified_split(y, test_fraction, seed)
        return {"train": (x[tr], y[tr]), "test": (x[te], y[te]), "classes": d["classes"]}
    d = _cached_folder(folder, image_size, labelled=False)
    return {"train": (d["images"], None), "test": None, "classes": []}


def load(
    name: str | None = None,
    root: str | None = None,
    *,
    batch_size: int = 256,
    seed: int = 0,
    subset: int | None = None,
    num_workers: int = 0,
    **options: Any,
) -> DataBundle:
    """Load an image dataset for pretraining (``train``: uint8 ``(B, 3, H, W)`` batches only)
    and kNN probing (``probe``: ``(uint8 images, labels)`` batches of the train images, or of
    ``subset`` of them, and of the test images).

    Args:
        name: ``None``/``"digits"``, ``"cifar10"``, or an image folder path.
        root: folder holding ``cifar10/`` (default ``$MMSSL_DATA``, then ``../shared/data``).
        batch_size: pretraining batch size (shuffled with a seeded generator, last partial
            batch dropped).
        seed: seeds the subset, the split and the shuffling.
        subset: use a seeded, class-balanced subset of this many training images.
        num_workers: ``DataLoader`` workers (batches are tensor slices: 0 is usually fastest).
        **options: ``image_size`` (digits 16, folders 32), ``test_fraction`` (0.3 digits, 0.2
            folders), ``probe_batch_size`` (512), ``download`` (True: torchvision's CIFAR-10
            when the folder is missing).
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValueError(f"unknown vision data options {sorted(unknown)}; valid: {sorted(OPTIONS)}")
    key = (name or "digits").lower()
    if key == "digits":
        size = int(options.get("image_size", 16))
        d = _digits(size, float(options.get("test_fraction", 0.3)), seed)
    elif key in ("cifar10", "cifar-10"):
        size = 32
        d = _cifar10(_default_root(root), bool(options.get("download", True)))
    else:
        folder = Path(name).expanduser()
        if not folder.is_dir() and root is not None and (Path(root) / name).is_dir():
            folder = Path(root) / name
        if not folder.is_dir():
            raise DataError(
                f"unknown vision dataset or missing folder {name!r}: "
                f"{did_you_mean(name, NAMES)}use digits, cifar10, or a folder of images "
                "(<folder>/<class>/*.jpg)"
            )
        size = int(options.get("image_size", 32))
        d = _image_folder(folder, size, float(options.get("test_fraction", 0.2)), seed)

    x, y = d["train"]
    if subset is not None:
        labels = y if y is not None else torch.zeros(x.shape[0], dtype=torch.long)
        idx = balanced_subset(labels, subset, seed)
        x, y = x[idx], (y[idx] if y is not None else None)
    if x.shape[0] < 2:
        raise DataError(
            f"{name}: {x.shape[0]} training image(s); self-supervised training needs more"
        )
    if batch_size > x.shape[0]:
        warnings.warn(
            f"batch_size {batch_size} > {x.shape[0]} images; using {x.shape[0]}", stacklevel=2
        )
        batch_size = x.shape[0]
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(
        ImageTensorDataset(x),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=g,
        collate_fn=_as_batch,
        num_workers=num_workers,
    )
    probe = None
    if y is not None and d["test"] is not None:
        pbs = int(options.get("probe_batch_size", 512))
        splits = {
            split: DataLoader(ImageTensorDataset(*xy), batch_size=pbs, collate_fn=_as_batch)
            for split, xy in (("train", (x, y)), ("test", d["test"]))
        }
        probe = ProbeData(splits=splits, protocol="knn")
    mean, std = _channel_stats(x)
    info = {
        "in_channels": x.shape[1],
        "image_size": size,
        "num_classes": len(d["classes"]),
        "classes": d["classes"],
        "num_train": x.shape[0],
        "mean": mean,
        "std": std,
        "augment": d.get("augment", {}),
    }
    return DataBundle(name=name or "digits", modality="vision", train=train, probe=probe, info=info)
