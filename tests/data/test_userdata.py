"""User data loaders (files, jsonl, parquet) with temporary files, and their error messages."""

import json
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scaling.data import FilesSource, JsonlSource, ParquetSource, build_source
from scaling.errors import DataError, SpecError

DOCS = [f"Document number {i}: " + "lorem ipsum dolor " * (3 + i % 5) + f"END{i}." for i in range(60)]


def decoded_docs(src, tokens):
    text = src.tokenizer.decode(tokens)
    return {t for t in text.split("\x00") if t}


def check_split(src):
    train, valid = decoded_docs(src, src.train_tokens), decoded_docs(src, src.valid_tokens)
    assert train | valid == set(DOCS) and not train & valid and valid
    x, y = src.train_batch(0, 4, 32, seed=0)
    assert x.shape == (4, 32) and int(x.max()) < src.vocab_size
    assert src.tokenizer.decode(x[0].numpy()) in src.tokenizer.decode(src.train_tokens)


def test_files_with_glob(tmp_path):
    for i, d in enumerate(DOCS):
        (tmp_path / f"doc{i:02d}.txt").write_text(d)
    src = build_source("files", {"paths": str(tmp_path / "*.txt"), "valid_fraction": 0.2})
    assert isinstance(src, FilesSource)
    check_split(src)
    assert all(d.startswith("doc") and d.endswith(".txt") for d in src.train_docs)  # ids relative to the folder
    listed = [str(tmp_path / f"doc{i:02d}.txt") for i in range(60)]
    same = build_source("files", {"paths": listed, "valid_fraction": 0.2})
    assert same.valid_docs == src.valid_docs
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in tmp_path.glob("*.txt"):
        f.rename(moved / f.name)
    again = build_source("files", {"paths": str(moved / "*.txt"), "valid_fraction": 0.2})
    assert again.valid_docs == src.valid_docs and again.cache_key == src.cache_key


def test_jsonl(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(DOCS)) + "\n")
    src = build_source("jsonl", {"path": str(path), "field": "body", "valid_fraction": 0.2})
    assert isinstance(src, JsonlSource)
    check_split(src)
    with pytest.raises(DataError, match="missing field `text`"):
        build_source("jsonl", {"path": str(path)})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{not json}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        build_source("jsonl", {"path": str(bad)})


def test_parquet(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"content": DOCS + [None], "n": list(range(61))}), path)
    src = build_source("parquet", {"path": str(path), "column": "content", "valid_fraction": 0.2})
    assert isinstance(src, ParquetSource)
    check_split(src)
    with pytest.raises(DataError, match=r"missing column `text`.*content"):
        build_source("parquet", {"path": str(path)})
    with pytest.raises(DataError, match="must hold strings"):
        build_source("parquet", {"path": str(path), "column": "n"})


def test_missing_files_and_options(tmp_path):
    with pytest.raises(DataError, match="file not found: .*nope.jsonl"):
        build_source("jsonl", {"path": str(tmp_path / "nope.jsonl")})
    with pytest.raises(DataError, match="file not found: .*nope.parquet"):
        build_source("parquet", {"path": str(tmp_path / "nope.parquet")})
    with pytest.raises(DataError, match="no files match"):
        build_source("files", {"paths": str(tmp_path / "*.md")})
    with pytest.raises(DataError, match="file not found"):
        build_source("files", {"paths": [str(tmp_path / "a.txt")]})
    with pytest.raises(SpecError, match="needs option `path`"):
        build_source("jsonl", {})
    with pytest.raises(SpecError, match="needs option `paths`"):
        build_source("files", {})
    with pytest.raises(SpecError, match="unknown option.*`column`"):
        build_source("jsonl", {"path": "x", "column": "text"})


def test_a_missing_relative_path_says_it_was_read_from_the_current_folder(tmp_path, monkeypatch):
    # a spec's paths are not read from the spec's folder: say where they were looked for
    monkeypatch.chdir(tmp_path)
    where = re.escape(f"(relative paths are read from the current folder, {os.getcwd()})")
    with pytest.raises(DataError, match=f"file not found: data/nope.jsonl {where}$"):
        build_source("jsonl", {"path": "data/nope.jsonl"})
    with pytest.raises(DataError, match=f"no files match 'texts/\\*.md' {where}$"):
        build_source("files", {"paths": "texts/*.md"})
    with pytest.raises(DataError, match=f"^data/bpe: not a prepared corpus \\(no such folder\\) {where}; make one"):
        build_source("prepared", {"path": "data/bpe"})
    with pytest.raises(DataError, match="file not found: /no/such.jsonl$"):  # absolute: nothing to add
        build_source("jsonl", {"path": "/no/such.jsonl"})


def test_too_little_data(tmp_path):
    (tmp_path / "only.txt").write_text("just one document")
    with pytest.raises(DataError, match="no validation documents"):
        build_source("files", {"paths": str(tmp_path / "only.txt")})
    (tmp_path / "two.txt").write_text("another short one")
    src = build_source("files", {"paths": str(tmp_path / "*.txt")})
    with pytest.raises(DataError, match="fewer than seq_len"):
        src.train_batch(0, 2, 64, seed=0)
    with pytest.raises(DataError, match="validation split has"):
        src.eval_sets(64, 1000)
    assert np.array_equal(src.eval_sets(8, 8)["valid"].x.shape, (1, 8))
