"""Prepared corpora: exact token files, split by document, memmap windows, atomic writes."""

import json
import os
import pickle
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from tokjson import big_vocab_json, byte_level_json

import scaling.data.prepare as prepmod
from scaling.data import build_source
from scaling.data.documents import DocumentStream, document_stream
from scaling.data.prepare import prepare_corpus
from scaling.data.prepared import PreparedSource, read_meta
from scaling.data.text import _unit
from scaling.data.tokenizers import ByteTokenizer
from scaling.errors import DataError, SpecError

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"doc {i}: " + " ".join(rng.choice(WORDS, rng.integers(5, 60))) for i in range(n)]


def _folder(tmp_path, texts, name="corpus"):
    d = tmp_path / name
    d.mkdir()
    for i, t in enumerate(texts):
        (d / f"{i:04d}.txt").write_text(t)
    return d


def _synthetic(n_docs: int, doc_bytes: int) -> DocumentStream:
    def gen():
        rng = np.random.default_rng(0)
        for i in range(n_docs):
            yield f"d{i}", rng.integers(97, 123, doc_bytes, dtype=np.uint8).tobytes().decode()

    return DocumentStream("synthetic", {"n_docs": n_docs}, f"synthetic-{n_docs}-{doc_bytes}", gen)


def test_token_files_hold_the_encoded_documents_split_by_hash(tmp_path):
    texts = _docs(60)
    folder = _folder(tmp_path, texts)
    res = prepare_corpus(document_stream(str(folder)), tmp_path / "out", valid_fraction=0.25, seed=3)
    assert not res.up_to_date and res.meta["dtype"] == "uint16"
    tok, src = ByteTokenizer(), PreparedSource(tmp_path / "out")
    want = {"train": [], "valid": []}
    for i, t in enumerate(texts):  # ids are file names relative to the folder; source order is kept
        want["valid" if _unit(3, f"{i:04d}.txt") < 0.25 else "train"].append(t)
    assert 0 < len(want["valid"]) < 30
    for split in ("train", "valid"):
        stream = np.concatenate([np.append(tok.encode(t), tok.eos_id) for t in want[split]])
        np.testing.assert_array_equal(getattr(src, f"{split}_tokens"), stream)
        lengths = [len(t.encode()) + 1 for t in want[split]]
        np.testing.assert_array_equal(getattr(src, f"{split}_index"), np.concatenate([[0], np.cumsum(lengths)]))
        assert [tok.decode(src.document(i, split)) for i in range(src.n_documents(split))] == want[split]
        assert res.meta[split] == {"n_tokens": len(stream), "n_docs": len(want[split])}
    assert res.meta["n_text_bytes"] == sum(len(t.encode()) for t in texts)
    assert isinstance(src.train_tokens, np.memmap) and isinstance(src.valid_tokens, np.memmap)


def test_split_does_not_depend_on_document_order(tmp_path):
    texts = _docs(80)
    for name, order in (("a", texts), ("b", texts[::-1])):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps({"body": t}) for t in order))
        prepare_corpus(document_stream(str(tmp_path / f"{name}.jsonl"), {"field": "body"}), tmp_path / name)
    a, b = PreparedSource(tmp_path / "a"), PreparedSource(tmp_path / "b")
    tok = ByteTokenizer()
    for split in ("train", "valid"):
        docs_a = {tok.decode(a.document(i, split)) for i in range(a.n_documents(split))}
        docs_b = {tok.decode(b.document(i, split)) for i in range(b.n_documents(split))}
        assert docs_a == docs_b
    assert a.n_documents("valid") >= 1 and a.n_documents("train") + a.n_documents("valid") == 80


def test_batches_are_pure_windows_of_the_train_stream(tmp_path):
    prepare_corpus(document_stream(str(_folder(tmp_path, _docs(200)))), tmp_path / "out")
    src = build_source("prepared", {"path": str(tmp_path / "out")})
    L = 24
    windows = sliding_window_view(np.asarray(src.train_tokens, dtype=np.int64), L + 1)
    x, y = src.train_batch(7, 16, L, seed=1)
    assert x.shape == (16, L) and (x[:, 1:] == y[:, :-1]).all()
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        row = np.append(row_x, row_y[-1])
        assert (windows == row).all(axis=1).any()  # each row is a contiguous window
    again = PreparedSource(tmp_path / "out")  # a fresh process-like open gives the same batch
    clone = pickle.loads(pickle.dumps(src))
    assert isinstance(clone.train_tokens, np.memmap)
    for other in (again, clone):
        x2, y2 = other.train_batch(7, 16, L, seed=1)
        assert (x2 == x).all() and (y2 == y).all()
    assert not (src.train_batch(7, 16, L, seed=2)[0] == x).all()
    assert not (src.train_batch(8, 16, L, seed=1)[0] == x).all()
    # Row r of step s is global sequence s*B + r: batch size does not change the stream.
    x8, _ = src.train_batch(14, 8, L, seed=1)
    assert (x8 == x[:8]).all()
    ev = src.eval_sets(L, 10 * L)["valid"]
    valid = np.asarray(src.valid_tokens, dtype=np.int64)
    np.testing.assert_array_equal(ev.x.numpy(), valid[: 10 * L].reshape(10, L))
    np.testing.assert_array_equal(ev.y.numpy(), valid[1 : 10 * L + 1].reshape(10, L))


def test_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(prepmod, "BATCH_BYTES", 1 << 18)
    peaks = {}
    for n_docs in (40, 160):  # 1.3 MB and 5.2 MB of text
        tracemalloc.start()
        prepare_corpus(_synthetic(n_docs, 32_000), tmp_path / f"c{n_docs}")
        peaks[n_docs] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[160] < 1.25 * peaks[40]  # writing: bounded by the batch, not the corpus
    tracemalloc.start()
    src = PreparedSource(tmp_path / "c160")
    for step in range(20):
        src.train_batch(step, 8, 64, seed=0)
    src.eval_sets(64, 4096)
    read_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    corpus_bytes = src.train_tokens.nbytes
    assert corpus_bytes > 9_000_000 and read_peak < corpus_bytes / 50  # reading: pages, not copies


def test_a_failed_prepare_leaves_nothing_and_keeps_the_old_corpus(tmp_path):
    good = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": t}) for t in _docs(600)]
    good.write_text("\n".join(lines))
    prepare_corpus(document_stream(str(good)), tmp_path / "out")
    before = (tmp_path / "out" / "train.bin").read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines + ["{not json"]))  # fails after every good line is written
    for out in ("fresh", "out"):
        with pytest.raises(DataError, match=r"bad.jsonl:601: not valid JSON"):
            prepare_corpus(document_stream(str(bad)), tmp_path / out, force=True)
    assert not (tmp_path / "fresh").exists()
    assert (tmp_path / "out" / "train.bin").read_bytes() == before
    PreparedSource(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "docs.jsonl", "out"]  # no temp folders


def test_up_to_date_different_and_force(tmp_path):
    folder = _folder(tmp_path, _docs(50))
    out = tmp_path / "out"
    first = prepare_corpus(document_stream(str(folder)), out)
    mtime = (out / "train.bin").stat().st_mtime_ns
    again = prepare_corpus(document_stream(str(folder)), out)
    assert again.up_to_date and again.meta == first.meta and (out / "train.bin").stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="different prepared corpus.*--force"):
        prepare_corpus(document_stream(str(folder)), out, valid_fraction=0.3)
    redone = prepare_corpus(document_stream(str(folder)), out, valid_fraction=0.3, force=True)
    assert not redone.up_to_date and read_meta(out)["split"]["valid_fraction"] == 0.3
    (folder / "0000.txt").write_text("a new first document, longer than before")  # source changed
    with pytest.raises(DataError, match="different prepared corpus"):
        prepare_corpus(document_stream(str(folder)), out, valid_fraction=0.3)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not a prepared corpus"):
        prepare_corpus(document_stream(str(folder)), other, force=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_dtype_follows_the_vocabulary(tmp_path):
    tok = big_vocab_json(tmp_path / "big" / "tokenizer.json")
    texts = [" ".join(f"w{(i * 7919 + j * 104729) % 69_998}" for j in range(30)) for i in range(40)]
    (tmp_path / "w.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
    stream = document_stream(str(tmp_path / "w.jsonl"))
    with pytest.raises(DataError, match=r"70000 ids, more than uint16.*--dtype uint32"):
        prepare_corpus(stream, tmp_path / "u16", tokenizer=str(tok), dtype="uint16", valid_fraction=0.2)
    res = prepare_corpus(stream, tmp_path / "u32", tokenizer=str(tok), eos_token="</s>", valid_fraction=0.2)
    assert res.meta["dtype"] == "uint32" and res.meta["tokenizer"]["vocab_size"] == 70_000
    src = PreparedSource(tmp_path / "u32")
    assert src.train_tokens.dtype == np.dtype("<u4") and int(src.train_tokens.max()) >= 1 << 16
    decoded = {src.tokenizer.decode(src.document(i, s)) for s in ("train", "valid") for i in range(src.n_documents(s))}
    assert decoded == set(texts)


def test_bpe_and_tokenizer_json_corpora_decode_exactly(tmp_path):
    texts = _docs(120)
    (tmp_path / "t.parquet").parent.mkdir(exist_ok=True)
    pd.DataFrame({"body": texts + [None]}).to_parquet(tmp_path / "t.parquet")
    stream = document_stream(str(tmp_path / "t.parquet"), {"column": "body"})
    gpt2 = byte_level_json(tmp_path / "gpt2" / "tokenizer.json")
    for name, tok in (("bpe", "bpe"), ("json", str(gpt2))):
        res = prepare_corpus(stream, tmp_path / name, tokenizer=tok, bpe_vocab_size=300)
        assert (tmp_path / name / "tokenizer.json").is_file()
        src = build_source("prepared", {"path": str(tmp_path / name)})
        assert src.vocab_size == res.meta["tokenizer"]["vocab_size"] == src.tokenizer.vocab_size
        assert src.tokenizer.fingerprint == res.meta["tokenizer"]["fingerprint"]
        got = [src.tokenizer.decode(src.document(i, s)) for s in ("train", "valid") for i in range(src.n_documents(s))]
        assert sorted(got) == sorted(texts)
    assert read_meta(tmp_path / "bpe")["tokenizer"]["vocab_size"] == 300
    assert read_meta(tmp_path / "json")["tokenizer"]["name"] == "json:gpt2"


def test_mixture_of_prepared_corpora(tmp_path):
    for name, seed in (("g", 0), ("d", 1)):
        prepare_corpus(document_stream(str(_folder(tmp_path, _docs(60, seed), name + "_txt"))), tmp_path / name)
    mix = build_source("mixture", {"general": {"kind": "prepared", "options": {"path": str(tmp_path / "g")}},
                                   "domain": {"kind": "prepared", "options": {"path": str(tmp_path / "d")}},
                                   "domain_share": 0.25})  # fmt: skip
    x, _ = mix.train_batch(0, 8, 16, seed=0)
    assert x.shape == (8, 16) and set(mix.eval_sets(16, 64)) == {"general/valid", "domain/valid"}


def test_errors_name_what_to_fix(tmp_path):
    with pytest.raises(DataError, match="not a prepared corpus.*scaling data prepare"):
        build_source("prepared", {"path": str(tmp_path / "missing")})
    with pytest.raises(SpecError, match="needs option `path`"):
        build_source("prepared", {})
    folder = _folder(tmp_path, _docs(30))
    prepare_corpus(document_stream(str(folder)), tmp_path / "out")
    with pytest.raises(SpecError, match="leave \\[data\\] `tokenizer` unset"):
        build_source("prepared", {"path": str(tmp_path / "out")}, tokenizer="bpe")
    with open(tmp_path / "out" / "train.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DataError, match="train.bin: 100 bytes.*prepare it again with --force"):
        PreparedSource(tmp_path / "out")
    with pytest.raises(SpecError, match="no documents to prepare"):
        document_stream("zipf_facts")
    with pytest.raises(SpecError, match="--valid-fraction"):
        document_stream("stdlib_code", {"valid_fraction": 0.1})
    with pytest.raises(SpecError, match="unknown option.*`colum`"):
        document_stream("parquet", {"path": "x.parquet", "colum": "text"})
    with pytest.raises(DataError, match="no data source or file named 'nowhere.jsonl'"):
        document_stream("nowhere.jsonl")
    with pytest.raises(DataError, match="no valid documents.*raise --valid-fraction"):
        prepare_corpus(document_stream(str(_folder(tmp_path, _docs(2), "two"))), tmp_path / "o2", valid_fraction=0.01)
    with pytest.raises(SpecError, match="--eos-token"):
        prepare_corpus(document_stream(str(folder)), tmp_path / "o3", eos_token="</s>")
    assert sorted(os.listdir(tmp_path)) == ["corpus", "out", "two"]
