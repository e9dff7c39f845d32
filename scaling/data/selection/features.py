"""Hashed n-gram features of token ids, shared by `ngram_importance` (DSIR) and `classifier`.

Each document becomes the multiset of its n-grams of orders 1..n, every n-gram hashed into one
of `buckets` bins (the order is part of the hash, so a bigram never collides with a unigram by
construction more often than chance). Features are returned sparse, as (document, bucket) pairs,
so a pool of thousands of documents never needs a dense documents × buckets matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

_P = np.uint64(0x100000001B3)  # FNV-style multiplier for combining token ids
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class NgramFeatures:
    """Bucket counts per document: a sparse (n_docs, buckets) matrix of n-gram counts."""

    counts: sp.csr_matrix
    buckets: int

    @property
    def n_ngrams(self) -> np.ndarray:
        return np.asarray(self.counts.sum(axis=1)).ravel()

    def total(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Summed bucket counts over `rows` (all documents when None), shape (buckets,)."""
        m = self.counts if rows is None else self.counts[rows]
        return np.asarray(m.sum(axis=0)).ravel()


def hash_ngrams(tokens: np.ndarray, n: int, buckets: int) -> np.ndarray:
    """Bucket ids of the n-grams of exactly order n in one token sequence."""
    t = np.asarray(tokens, dtype=np.uint64)
    if len(t) < n:
        return np.empty(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = np.full(len(t) - n + 1, np.uint64(n) * _MIX, dtype=np.uint64)
        for k in range(n):
            h = (h ^ (t[k:len(t) - n + 1 + k] + np.uint64(1))) * _P
        h ^= h >> np.uint64(29)
    return (h % np.uint64(buckets)).astype(np.int64)


def ngram_features(docs: list[np.ndarray], n: int, buckets: int) -> NgramFeatures:
    """Counts of hashed n-grams of orders 1..n for every document."""
    rows, cols = [], []
    for i, doc in enumerate(docs):
        for order in range(1, n + 1):
            b = hash_ngrams(doc, order, buckets)
            rows.append(np.full(len(b), i, dtype=np.int64))
            cols.append(b)
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, np.int64)
    m = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(docs), buckets))
    m.sum_duplicates()
    return NgramFeatures(m, buckets)


def pool_documents(pool) -> list[np.ndarray]:
    return [pool.tokens[pool.offsets[i]:pool.offsets[i + 1]] for i in range(pool.n_docs)]


def target_documents(pool, method: str) -> list[np.ndarray]:
    """The pool's target documents; a method that learns from the target fails without them."""
    from scaling.errors import SpecError

    docs = pool.target_documents()
    if not docs:
        raise SpecError(f"[select] method `{method}` needs target documents, and data source "
                        f"`{getattr(pool, 'name', '?')}` has none; set [select] `target`")
    return docs
