"""`text_pool`: a document pool from real text (stdlib corpora or a user's files/JSONL/parquet).

Documents of the underlying source are split by hashed id: `valid_fraction` of them are the
target, half for the methods to learn from (`target_documents`) and half the eval set, never
both; the rest is cut into chunks of at most `chunk_bytes` bytes (UTF-8 bytes as tokens, id 0
ends every chunk), the pool. With `corruptions` (shares of pool chunks) a labelled share of the
pool is corrupted and every chunk gets a type:

    clean          untouched
    byte_shuffle   the chunk's bytes in a random order
    word_shuffle   the chunk's whitespace-separated words in a random order
    random_bytes   printable ASCII drawn uniformly, same length
    boilerplate    one fixed header repeated to the chunk's length

Without corruptions the pool has no types (so no oracle). `score_columns` names numeric columns
of a JSONL/parquet source to carry as user scores (each chunk inherits its document's value),
for the `column` method.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from scaling.data.base import EvalSet, IndexedSource, n_eval_sequences, split_xy
from scaling.data.pool import DocumentPool
from scaling.errors import DataError, SpecError

CORRUPTIONS = ("byte_shuffle", "word_shuffle", "random_bytes", "boilerplate")
BOILERPLATE = "# Copyright (c) The Authors. All rights reserved. Licensed under the terms in LICENSE.\n"


def _unit(*parts: Any) -> float:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _documents(source: str, options: dict[str, Any], score_columns: list[str]) -> tuple[list[tuple[str, str]],
                                                                                        dict[str, dict[str, float]]]:
    """(id, text) documents and, per score column, a value per document id."""
    if score_columns:
        import pandas as pd

        path = Path(str(options.get("path", ""))).expanduser()
        if source not in ("jsonl", "parquet") or not path.is_file():
            raise SpecError("text_pool: `score_columns` needs `source` = \"jsonl\" or \"parquet\" with an existing "
                            f"`source_options.path`, got source {source!r}, path {str(path)!r}")
        frame = pd.read_parquet(path) if source == "parquet" else pd.read_json(path, lines=True)
        field = options.get("column" if source == "parquet" else "field", "text")
        missing = [c for c in [field, *score_columns] if c not in frame.columns]
        if missing:
            raise DataError(f"text_pool: {path}: no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))})")
        frame = frame[frame[field].notna()]
        docs = [(f"row{i}", str(t)) for i, t in zip(frame.index, frame[field])]
        cols = {c: {f"row{i}": float(v) for i, v in zip(frame.index, frame[c])} for c in score_columns}
        return docs, cols
    from scaling.data.documents import document_stream

    return list(document_stream(source, options)), {}


def _chunks(text: str, size: int) -> list[bytes]:
    raw = text.encode("utf-8")
    return [raw[i:i + size] for i in range(0, len(raw), size) if raw[i:i + size].strip()]


def corrupt(chunk: bytes, kind: str, rng: np.random.Generator) -> bytes:
    if kind == "byte_shuffle":
        return bytes(rng.permutation(np.frombuffer(chunk, np.uint8)).tolist())
    if kind == "word_shuffle":
        words = chunk.split()
        return b" ".join(words[i] for i in rng.permutation(len(words)))
    if kind == "random_bytes":
        return bytes(rng.integers(32, 127, size=len(chunk)).astype(np.uint8).tolist())
    header = BOILERPLATE.encode()
    return (header * (len(chunk) // len(header) + 1))[:len(chunk)]


class TextPoolSource(DocumentPool, IndexedSource):
    """Chunks of a text corpus as a pool, with labelled injected corruptions (optional)."""

    kind: ClassVar[str] = "text_pool"
    TYPE_NAMES: ClassVar[tuple[str, ...]] = ("clean", *CORRUPTIONS)
    OPTIONS: ClassVar[dict[str, Any]] = {"source": "stdlib_docs", "source_options": {}, "chunk_bytes": 512,
                                         "max_docs": 4000, "valid_fraction": 0.05, "corruptions": {},
                                         "score_columns": []}

    def __init__(self, source: str = "stdlib_docs", source_options: dict | None = None, chunk_bytes: int = 512,
                 max_docs: int = 4000, valid_fraction: float = 0.05, corruptions: dict | None = None,
                 score_columns: list | None = None, seed: int = 0) -> None:
        if not 0 < valid_fraction < 1:
            raise SpecError(f"text_pool: `valid_fraction` must be in (0, 1), got {valid_fraction!r}")
        corruptions = dict(corruptions or {})
        bad = sorted(set(corruptions) - set(CORRUPTIONS))
        if bad:
            raise SpecError(f"text_pool: `corruptions` has unknown kind `{bad[0]}`; kinds are {', '.join(CORRUPTIONS)}")
        if any(not 0 <= v <= 1 for v in corruptions.values()) or sum(corruptions.values()) >= 1:
            raise SpecError(f"text_pool: `corruptions` shares must be in [0, 1] and sum below 1, got {corruptions!r}")
        self.name, self.vocab_size, self.seed = f"text_pool/{source}", 256, int(seed)
        self.bayes_loss_expected = None
        docs, cols = _documents(source, dict(source_options or {}), list(score_columns or []))
        valid = [d for d in docs if _unit(seed, "valid", d[0]) < valid_fraction] or docs[:1]
        valid_ids = {d[0] for d in valid}
        train = sorted((d for d in docs if d[0] not in valid_ids), key=lambda d: _unit(seed, "order", d[0]))
        chunks, owners = [], []
        for doc_id, text in train:
            for c in _chunks(text, int(chunk_bytes)):
                chunks.append(c)
                owners.append(doc_id)
        chunks, owners = chunks[:int(max_docs)], owners[:int(max_docs)]
        if not chunks:
            raise DataError(f"text_pool: source {source!r} gave no training text")
        rng = np.random.default_rng([0x7E47, int(seed)])
        types = np.full(len(chunks), "clean", dtype=object)
        u = rng.random(len(chunks))
        edge = 0.0
        for kind in CORRUPTIONS:
            share = float(corruptions.get(kind, 0.0))
            m = (u >= edge) & (u < edge + share)
            for i in np.where(m)[0]:
                chunks[i] = corrupt(chunks[i], kind, rng)
            types[m] = kind
            edge += share
        self.doc_types = types.astype(str) if corruptions else None
        enc = [np.append(np.frombuffer(c, np.uint8).astype(np.int64), 0) for c in chunks]
        self.offsets = np.concatenate([[0], np.cumsum([len(e) for e in enc])]).astype(np.int64)
        self.tokens = np.concatenate(enc)
        self.doc_columns = {c: np.array([v.get(o, math.nan) for o in owners]) for c, v in cols.items()}
        half = [d for d in valid if _unit(seed, "target", d[0]) < 0.5] or valid[:1]
        half_ids = {d[0] for d in half}
        self._target = [np.append(np.frombuffer(c, np.uint8).astype(np.int64), 0)
                        for _, t in half for c in _chunks(t, int(chunk_bytes))]
        rest = [d for d in valid if d[0] not in half_ids] or valid
        self._valid = np.concatenate([np.append(np.frombuffer(t.encode(), np.uint8).astype(np.int64), 0)
                                      for _, t in rest])

    def target_documents(self) -> list[np.ndarray]:
        return self._target

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        return self.subset(np.arange(self.n_docs)).sequences(index, seq_len, seed)

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        n = min(n_eval_sequences(seq_len, n_tokens), max(1, (len(self._valid) - 1) // seq_len))
        if len(self._valid) < seq_len + 1:
            raise DataError(f"{self.name}: the target split has {len(self._valid)} tokens, fewer than one window "
                            f"of {seq_len + 1}; raise `valid_fraction`")
        rows = np.stack([self._valid[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)])
        x, y = split_xy(rows)
        return {"valid": EvalSet("valid", x, y, None)}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> "TextPoolSource":
        if not (isinstance(tokenizer, str) and tokenizer == "byte"):
            raise SpecError(f"data source `text_pool` reads UTF-8 bytes; leave `tokenizer` at `byte`, got {tokenizer!r}")
        return cls(**options, seed=seed)


__all__ = ["BOILERPLATE", "CORRUPTIONS", "TextPoolSource", "corrupt"]
