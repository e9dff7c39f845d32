import pytest


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    # Tokenized corpora and BPE models go to a per-session temp cache, never ~/.cache.
    monkeypatch.setenv("SCALING_CACHE", str(tmp_path_factory.getbasetemp() / "scaling-cache"))
