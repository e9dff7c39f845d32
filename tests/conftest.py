"""Suite-wide settings: one torch thread (tiny models run faster and deterministically on it)."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tokenized corpora are cached per session, never in the user's home."""
    if "SCALING_CACHE" not in os.environ:
        monkeypatch.setenv("SCALING_CACHE", str(tmp_path_factory.getbasetemp() / "scaling-cache"))
