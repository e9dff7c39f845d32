"""`stdlib_decimal`: the decimal module's arithmetic test vectors, a math-like offline CPT domain,
disjoint from the `.py` sources."""

import pytest

from scaling.data import build_source, source_kinds
from scaling.data.corpora import decimal_files, stdlib_decimal_documents, stdlib_files, stdlib_root


def test_source_reads_every_dectest_file_and_nothing_the_python_sources_read():
    assert "stdlib_decimal" in source_kinds()
    by_hand = sorted(p.relative_to(stdlib_root()).as_posix() for p in (stdlib_root() / "test" / "decimaltestdata").glob("*.decTest"))
    assert list(decimal_files()) == by_hand and len(by_hand) > 100
    ids = {d for d, _ in stdlib_decimal_documents()}
    assert ids == set(by_hand)
    assert not ids & (set(stdlib_files()) | set(stdlib_files(tests=True)))


def test_stream_is_arithmetic_test_vectors_split_by_file():
    src = build_source("stdlib_decimal", {"max_bytes": 200_000, "valid_fraction": 0.2})
    assert src.vocab_size == 256
    assert src.train_docs and src.valid_docs and not set(src.train_docs) & set(src.valid_docs)
    ev = src.eval_sets(64, 4096)["valid"]
    assert ev.x.shape == (64, 64) and ev.bayes_loss is None
    text = bytes(src.train_tokens.astype("uint8")).decode("utf-8", errors="replace")
    assert text.count(" -> ") > 1000  # one per test vector
    assert "def " not in text


def test_prepare_reads_the_same_documents_as_the_sources(tmp_path):
    """`scaling data prepare` takes the file-per-document stdlib kinds: same ids, same text."""
    from scaling.data.documents import document_stream
    from scaling.data.corpora import stdlib_tests_documents

    for kind, docs in (("stdlib_decimal", stdlib_decimal_documents()), ("stdlib_tests", stdlib_tests_documents())):
        stream = document_stream(kind)
        assert stream.kind == kind and list(stream) == docs
    assert document_stream("stdlib_decimal").fingerprint != document_stream("stdlib_tests").fingerprint


def test_a_python_without_the_decimal_test_data_gets_an_error_naming_the_folder(tmp_path, monkeypatch):
    from scaling.data import corpora
    from scaling.errors import DataError

    monkeypatch.setattr(corpora, "stdlib_root", lambda: tmp_path)
    corpora.decimal_files.cache_clear()
    try:
        with pytest.raises(DataError, match=r"no \.decTest files found under .*decimaltestdata"):
            corpora.decimal_files()
    finally:
        corpora.decimal_files.cache_clear()
