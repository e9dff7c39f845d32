"""Text sources: document-disjoint splits, deterministic windows, on-disk token cache."""

import numpy as np
import pytest
import torch

from scaling.data import StdlibCodeSource, build_source, split_documents
from scaling.data.corpora import module_docstrings, stdlib_files
from scaling.data.tokenizers import cache_dir


def test_split_is_by_document_deterministic_and_disjoint():
    docs = [(f"doc{i}", f"text {i} " * 5) for i in range(400)]
    train, valid = split_documents(docs, 0.1, seed=0, max_bytes=None)
    ids_t, ids_v = {d for d, _ in train}, {d for d, _ in valid}
    assert not ids_t & ids_v and len(ids_t | ids_v) == 400
    assert 20 <= len(ids_v) <= 60  # ~40 expected, binomial sd ~6
    # The split of a document does not depend on which other documents exist.
    train2, valid2 = split_documents(docs[::-1][:200], 0.1, seed=0, max_bytes=None)
    assert {d for d, _ in valid2} == ids_v & {d for d, _ in docs[200:]}
    assert split_documents(docs, 0.1, seed=1, max_bytes=None)[1] != valid


def test_split_caps_bytes_and_always_holds_out_a_document():
    docs = [(f"d{i}", "x" * 100) for i in range(3)]
    train, valid = split_documents(docs, 0.05, seed=0, max_bytes=None)
    assert len(valid) == 1 and len(train) == 2
    train, valid = split_documents(docs, 0.05, seed=0, max_bytes=150)
    assert sum(len(t) for _, t in train) == 150 - 8 and sum(len(t) for _, t in valid) == 8


def test_stdlib_code_documents_and_windows():
    files = stdlib_files()
    assert files == tuple(sorted(files)) and len(files) > 300
    assert not any(part in ("test", "tests", "idle_test", "site-packages") for f in files for part in f.split("/"))
    src = build_source("stdlib_code", {"max_bytes": 300_000})
    assert isinstance(src, StdlibCodeSource) and src.vocab_size == 256
    assert not set(src.train_docs) & set(src.valid_docs) and src.valid_docs
    n_eos = len(src.train_docs) + len(src.valid_docs)  # one eos byte per document
    # The cap cuts the last document of each split; a cut multi-byte character may lose <= 3 bytes.
    assert 300_000 - 6 <= src.n_train_tokens + src.n_valid_tokens - n_eos <= 300_000
    x, y = src.train_batch(4, 8, 64, seed=0)
    assert torch.equal(x, src.train_batch(4, 8, 64, seed=0)[0])
    assert not torch.equal(x, src.train_batch(5, 8, 64, seed=0)[0])
    assert torch.equal(x[:, 1:], y[:, :-1])
    ev = src.eval_sets(64, 4096)["valid"]
    assert ev.x.shape == (64, 64) and ev.bayes_loss is None
    # Eval windows are consecutive slices of the validation stream (documents joined by eos 0).
    assert torch.equal(ev.x.reshape(-1), torch.from_numpy(src.valid_tokens[: 64 * 64].astype(np.int64)))
    # Validation text never appears in the training stream.
    train_bytes = src.train_tokens.astype(np.uint8).tobytes()
    probe = src.valid_tokens[1000:1064].astype(np.uint8).tobytes()
    assert train_bytes.find(probe) < 0


def test_tokens_are_cached_on_disk_and_reloaded(monkeypatch):
    import scaling.data.text as text

    src = build_source("stdlib_code", {"max_bytes": 50_000, "valid_fraction": 0.2})
    path = cache_dir() / f"tokens-{src.cache_key}.npz"
    assert path.exists()
    monkeypatch.setattr(text, "_MEMORY", {})
    monkeypatch.setattr("scaling.data.corpora.stdlib_code_documents", lambda: pytest.fail("cache not used"))
    again = build_source("stdlib_code", {"max_bytes": 50_000, "valid_fraction": 0.2})
    assert np.array_equal(again.train_tokens, src.train_tokens) and again.valid_docs == src.valid_docs


def test_module_docstrings_reads_without_importing():
    src = '"""Mod doc."""\nclass A:\n    """A doc."""\n    def f(self):\n        """F doc."""\nraise SystemExit\n'
    assert module_docstrings(src) == "Mod doc.\n\nA\nA doc.\n\nA.f\nF doc."
    assert module_docstrings("def broken(:\n") == ""


def test_stdlib_docs_source():
    src = build_source("stdlib_docs", {"max_bytes": 200_000})
    assert any(d.startswith("topic:") for d in src.train_docs + src.valid_docs)
    assert not set(src.train_docs) & set(src.valid_docs)
    text = src.tokenizer.decode(src.train_tokens[:20_000])
    assert text.count(" the ") > 20  # English prose
