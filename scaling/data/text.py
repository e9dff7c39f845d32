"""`TextSource`: a document corpus, split by document, tokenized once and cached, as an LM source.

Documents go to validation iff a hash of (split seed, document id) falls below
`valid_fraction`, so the split does not depend on corpus order or size and a document is never
in both splits (a corpus whose hashes put nothing in validation holds out its first document).
Corpora drawn from the same files instead hash a shared key per file (`split_key`, no seed), so
a file held out of one is held out of all of them.
`max_bytes` caps each split in hashed document order, truncating the last document kept.
Each split is one token stream (documents joined by the tokenizer's eos id). Training
sequence i is a window at a hashed offset of the train stream; eval sets are consecutive
non-overlapping windows of the validation stream. Tokens are cached in memory and on disk
(cache_dir(), keyed by the corpus content hash, tokenizer and split options).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from scaling.data.base import EvalSet, IndexedSource, hash_ints, n_eval_sequences, split_xy, stream_key
from scaling.data.tokenizers import Tokenizer, atomic_write_bytes, cache_dir, get_tokenizer
from scaling.errors import DataError, SpecError

Documents = list[tuple[str, str]]  # (document id, text)

TEXT_OPTIONS: dict[str, Any] = {"valid_fraction": 0.05, "max_bytes": None, "bpe_vocab_size": 4096}

_MEMORY: dict[str, tuple[np.ndarray, np.ndarray, list[str], list[str]]] = {}


def _unit(seed: int, doc_id: str) -> float:
    h = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _cap(docs: Documents, max_bytes: int) -> Documents:
    kept, total = [], 0
    for doc_id, text in docs:
        if total >= max_bytes:
            break
        raw = text.encode("utf-8")[: max_bytes - total]
        kept.append((doc_id, raw.decode("utf-8", errors="ignore")))
        total += len(raw)
    return kept


SplitKey = Callable[[str], str]
"""Document id -> the key its split is decided by. Corpora built from the same files (stdlib code
and its docstrings) share keys, so a file is held out of both or neither, whatever their seeds."""


def split_documents(
    docs: Documents, valid_fraction: float, seed: int, max_bytes: int | None, split_key: SplitKey | None = None
) -> tuple[Documents, Documents]:
    """(train, valid) documents split by hashed id, each in hashed order; with max_bytes, train
    keeps its first (1 - valid_fraction)·max_bytes bytes and validation the rest (last doc cut).

    The hash is of (seed, id), or of `split_key(id)` alone when given (a split shared across
    sources and seeds)."""
    u = {d[0]: (_unit(seed, d[0]) if split_key is None else _unit(-1, split_key(d[0]))) for d in docs}
    order = sorted(docs, key=lambda d: (u[d[0]], d[0]))
    valid = [d for d in order if u[d[0]] < valid_fraction]
    train = [d for d in order if u[d[0]] >= valid_fraction]
    if not valid and len(train) >= 2 and valid_fraction > 0:
        valid, train = train[:1], train[1:]  # tiny corpora: hold out one document anyway
    if max_bytes is not None:
        n_valid = max(1, round(valid_fraction * max_bytes)) if valid else 0
        train, valid = _cap(train, max_bytes - n_valid), _cap(valid, n_valid)
    return train, valid


def _join(tokenizer: Tokenizer, docs: Documents) -> np.ndarray:
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32
    if not docs:
        return np.zeros(0, dtype=dtype)
    texts = [t for _, t in docs]
    enc = tokenizer.encode_batch(texts) if hasattr(tokenizer, "encode_batch") else [tokenizer.encode(t) for t in texts]
    eos = np.array([tokenizer.eos_id], dtype=np.int64)
    return np.concatenate([p for e in enc for p in (e, eos)]).astype(dtype)


class TextSource(IndexedSource):
    """Token windows of a document corpus; subclasses say how to list and fingerprint documents."""

    kind: ClassVar[str] = "text"
    OPTIONS: ClassVar[dict[str, Any]] = dict(TEXT_OPTIONS)

    def __init__(
        self,
        name: str,
        fingerprint: str,
        load_documents: Callable[[], Documents],
        *,
        tokenizer: str | Tokenizer = "byte",
        seed: int = 0,
        valid_fraction: float = 0.05,
        max_bytes: int | None = None,
        bpe_vocab_size: int = 4096,
        use_cache: bool = True,
        split_key: SplitKey | None = None,
    ) -> None:
        if not 0 <= valid_fraction < 1:
            raise SpecError(f"{name}: `valid_fraction` must be in [0, 1), got {valid_fraction}")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
            raise SpecError(f"{name}: `max_bytes` must be a positive integer (omit it for no cap), got {max_bytes!r}")
        self.name, self.seed = name, int(seed)
        split_seed = seed if split_key is None else "shared"  # a shared split does not depend on the seed
        split_id = f"{fingerprint}|seed={split_seed}|valid={valid_fraction}|max_bytes={max_bytes}"
        docs: tuple[Documents, Documents] | None = None

        def split() -> tuple[Documents, Documents]:
            nonlocal docs
            if docs is None:
                docs = split_documents(load_documents(), valid_fraction, self.seed, max_bytes, split_key)
            return docs

        def train_texts() -> Iterator[str]:  # lazy: a cached BPE never loads the documents
            yield from (t for _, t in split()[0])

        if isinstance(tokenizer, str) and tokenizer == "bpe":
            # Trained on the train split only; cached by the split's identity, not its text.
            self.tokenizer = get_tokenizer("bpe", train_texts(), bpe_vocab_size, cache_key=split_id)
        else:
            self.tokenizer = get_tokenizer(tokenizer)
        self.vocab_size = self.tokenizer.vocab_size
        key = hashlib.blake2b(f"{split_id}|{self.tokenizer.fingerprint}".encode(), digest_size=16).hexdigest()
        self.cache_key = key
        if key not in _MEMORY:
            _MEMORY[key] = self._load_or_build(key, split, use_cache)
        self.train_tokens, self.valid_tokens, self.train_docs, self.valid_docs = _MEMORY[key]
        if len(self.train_tokens) < 2:
            raise DataError(f"{name}: the training split is empty; add documents or lower `valid_fraction`")
        if len(self.valid_tokens) < 2:
            raise DataError(
                f"{name}: no validation documents; need at least 2 documents (one per file/line/row) "
                f"and `valid_fraction` > 0, got valid_fraction={valid_fraction}"
            )
        self._salt = (name, key)

    def _load_or_build(self, key: str, split: Callable[[], tuple[Documents, Documents]], use_cache: bool) -> tuple:
        path = cache_dir() / f"tokens-{key}.npz" if use_cache else None
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as z:
                return z["train"], z["valid"], list(z["train_docs"]), list(z["valid_docs"])
        train, valid = split()
        if not train and not valid:
            raise DataError(f"{self.name}: no documents found (or all are empty)")
        out = (_join(self.tokenizer, train), _join(self.tokenizer, valid), [d for d, _ in train], [d for d, _ in valid])
        if path is not None:
            buf = io.BytesIO()
            np.savez(buf, train=out[0], valid=out[1], train_docs=np.array(out[2], dtype=str),
                     valid_docs=np.array(out[3], dtype=str))  # fmt: skip
            atomic_write_bytes(path, buf.getvalue())
        return out

    def info(self) -> dict[str, Any]:
        return {**super().info(), "tokenizer": self.tokenizer.name, "n_train_tokens": self.n_train_tokens,
                "n_valid_tokens": self.n_valid_tokens, "n_train_docs": len(self.train_docs),
                "n_valid_docs": len(self.valid_docs)}  # fmt: skip

    @property
    def n_train_tokens(self) -> int:
        return len(self.train_tokens)

    @property
    def n_valid_tokens(self) -> int:
        return len(self.valid_tokens)

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        n = len(self.train_tokens)
        if n < seq_len + 2:
            raise DataError(f"{self.name}: training split has {n} tokens, fewer than seq_len + 2 = {seq_len + 2}")
        start = hash_ints(stream_key(*self._salt, int(seed)), index, n - seq_len)
        return self.train_tokens[start[:, None] + np.arange(seq_len + 1)].astype(np.int64)

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        n_seq = min(n_eval_sequences(seq_len, n_tokens), (len(self.valid_tokens) - 1) // seq_len)
        if n_seq < 1:
            raise DataError(
                f"{self.name}: validation split has {len(self.valid_tokens)} tokens, fewer than seq_len + 1 = "
                f"{seq_len + 1}; raise `valid_fraction` or `max_bytes`"
            )
        idx = np.arange(n_seq)[:, None] * seq_len + np.arange(seq_len + 1)
        x, y = split_xy(self.valid_tokens[idx].astype(np.int64))
        return {"valid": EvalSet("valid", x, y, None)}

    @classmethod
    def text_kwargs(cls, options: dict[str, Any], tokenizer: Any, seed: int) -> dict[str, Any]:
        return {"tokenizer": tokenizer, "seed": seed, **{k: options[k] for k in TEXT_OPTIONS}}

