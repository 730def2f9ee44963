"""Shared fixtures for the text tests: a small bundle from the offline default corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmssl.text.data import load


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep tokenizers and token caches of the tests out of the user's cache."""
    old = os.environ.get("MMSSL_CACHE")
    os.environ["MMSSL_CACHE"] = str(tmp_path_factory.mktemp("mmssl-cache"))
    yield
    if old is None:
        os.environ.pop("MMSSL_CACHE", None)
    else:
        os.environ["MMSSL_CACHE"] = old


@pytest.fixture(scope="session")
def pydoc_bundle():
    """The default corpus (Python's help texts), small vocabulary, short rows."""
    return load(None, None, batch_size=8, max_length=32, vocab_size=1000)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("MMSSL_DATA")
    if not root:
        pytest.skip(
            "MMSSL_DATA is unset: point it at the shared data folder (holding senteval/, nltk_data/)"
        )
    return Path(root)
