"""Shared fixtures for the graph tests: a private cache and the real data root (if any)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep dataset copies out of the user's cache; one cache for the whole session."""
    monkeypatch.setenv("MMSSL_CACHE", str(tmp_path_factory.getbasetemp() / "mmssl-cache"))


@pytest.fixture
def data_root() -> Path:
    """``$MMSSL_DATA`` (the folder with planetoid/ and TUDataset/), or skip."""
    root = os.environ.get("MMSSL_DATA")
    if not root:
        pytest.skip("set MMSSL_DATA to the shared data folder (planetoid/, TUDataset/) to run this")
    return Path(root)
