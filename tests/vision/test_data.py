"""Vision data: digits offline, CIFAR-10 from MMSSL_DATA, image folders, errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmssl.core.data import DataError
from mmssl.vision.data import balanced_subset, load, stratified_split


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSSL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_digits_default_offline():
    data = load(None, batch_size=64, seed=0)
    assert data.name == "digits" and data.modality == "vision"
    batch = next(iter(data.train))
    assert batch.shape == (64, 3, 16, 16) and batch.dtype == torch.uint8
    assert len(data.train) == data.info["num_train"] // 64  # drop_last
    info = data.info
    assert info["in_channels"] == 3 and info["image_size"] == 16 and info["num_classes"] == 10
    assert len(info["mean"]) == len(info["std"]) == 3 and 0 < info["mean"][0] < 1
    x_tr, y_tr = map(torch.cat, zip(*data.probe.splits["train"], strict=True))
    x_te, y_te = map(torch.cat, zip(*data.probe.splits["test"], strict=True))
    assert x_tr.shape[0] + x_te.shape[0] == 1797 and data.probe.protocol == "knn"
    assert torch.bincount(y_te).min() > 0.25 * 1797 / 10  # stratified


def test_digits_batches_are_seeded():
    def first(seed: int) -> torch.Tensor:
        return next(iter(load("digits", batch_size=32, seed=seed).train))

    assert torch.equal(first(0), first(0))
    assert not torch.equal(first(0), first(1))
    data = load("digits", batch_size=32, seed=0)
    assert not torch.equal(next(iter(data.train)), next(iter(data.train)))  # new order per epoch


def test_subset_is_class_balanced_and_seeded():
    data = load("digits", subset=500, seed=3)
    _, y = map(torch.cat, zip(*data.probe.splits["train"], strict=True))
    assert y.numel() == 500 and torch.bincount(y).tolist() == [50] * 10
    labels = torch.arange(100) % 4
    assert torch.equal(balanced_subset(labels, 10, 0), balanced_subset(labels, 10, 0))
    assert torch.bincount(labels[balanced_subset(labels, 10, 0)]).tolist() == [3, 3, 2, 2]
    with pytest.raises(DataError, match="subset"):
        load("digits", subset=10_000)


def test_stratified_split_covers_everything():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    tr, te = stratified_split(labels, 0.3, seed=0)
    assert sorted(torch.cat([tr, te]).tolist()) == list(range(17))
    assert torch.bincount(labels[tr], minlength=3).min() >= 1


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    _save(root / "cat" / "rgb.jpg", rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    _save(root / "cat" / "gray.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    _save(root / "cat" / "rgba.png", rng.integers(0, 255, (20, 20, 4), dtype=np.uint8))
    _save(root / "dog" / "odd.jpg", rng.integers(0, 255, (50, 17, 3), dtype=np.uint8))
    _save(root / "dog" / "big.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    _save(root / "dog" / "gray.jpg", rng.integers(0, 255, (24, 24), dtype=np.uint8))
    (root / "dog" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_converts_and_skips_corrupt(tmp_path, cache):
    root = _folder(tmp_path / "imgs")
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        data = load(str(root), batch_size=2, image_size=24, test_fraction=0.34)
    assert data.info["classes"] == ["cat", "dog"] and data.info["image_size"] == 24
    x_tr, y_tr = map(torch.cat, zip(*data.probe.splits["train"], strict=True))
    x_te, y_te = map(torch.cat, zip(*data.probe.splits["test"], strict=True))
    assert x_tr.shape[1:] == (3, 24, 24) and x_tr.dtype == torch.uint8
    assert x_tr.shape[0] + x_te.shape[0] == 6  # the corrupt file and the .txt are skipped
    assert set(y_te.tolist()) == {0, 1}
    assert next(iter(data.train)).shape == (2, 3, 24, 24)
    assert list((cache / "vision").glob("*.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # second load: from the cache, no decoding, no warning
        again = load(str(root), batch_size=2, image_size=24, test_fraction=0.34)
    x_again, _ = map(torch.cat, zip(*again.probe.splits["train"], strict=True))
    assert torch.equal(x_again, x_tr)


def test_image_folder_decodes_like_pil(tmp_path, cache):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for split in ("train", "test"):
        for c in ("a", "b"):
            for i in range(3):
                _save(tmp_path / "f" / split / c / f"{i}.png", arr)
    data = load(str(tmp_path / "f"), batch_size=4)
    x, _ = next(iter(data.probe.splits["test"]))
    assert x.shape == (6, 3, 32, 32)
    assert torch.equal(x[0], torch.from_numpy(arr).permute(2, 0, 1))


def test_flat_folder_is_unlabelled(tmp_path, cache):
    rng = np.random.default_rng(2)
    for i in range(5):
        _save(tmp_path / "flat" / f"{i}.jpg", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    data = load(str(tmp_path / "flat"), batch_size=2)
    assert data.probe is None and next(iter(data.train)).shape == (2, 3, 32, 32)


def test_missing_inputs_raise_data_error(tmp_path, cache, monkeypatch):
    with pytest.raises(DataError, match="nowhere"):
        load(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"cifar10.*train/<class>"):
        load("cifar10", str(tmp_path), download=False)

    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=str(tmp_path / "cifar10")):
        load("cifar10", str(tmp_path))
    with pytest.raises(ValueError, match="unknown vision data options"):
        load("digits", colour="blue")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load(str(tmp_path / "empty"))


@pytest.mark.skipif(
    not os.environ.get("MMSSL_DATA"), reason="set MMSSL_DATA to the shared data folder"
)
def test_cifar10_from_shared_data():
    # Uses the normal cache (decoded once per machine, ~15 s the first time).
    data = load("cifar10", os.environ["MMSSL_DATA"], batch_size=128, subset=1000, seed=0)
    batch = next(iter(data.train))
    assert batch.shape == (128, 3, 32, 32) and batch.dtype == torch.uint8
    assert data.info["num_classes"] == 10 and data.info["num_train"] == 1000
    assert abs(data.info["mean"][0] - 0.49) < 0.02
    _, y = map(torch.cat, zip(*data.probe.splits["train"], strict=True))
    assert torch.bincount(y).tolist() == [100] * 10
    assert sum(len(y) for _, y in data.probe.splits["test"]) == 10_000
