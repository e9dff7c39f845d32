"""Finite document pools for data selection: the training stream over any kept subset of documents.

A pool holds its documents as one flat token array with offsets; documents may carry a hidden
type (synthetic pools know it, real pools with injected corruptions know it for the labelled
documents). `PoolStream` is an `IndexedSource` over a subset of a pool's documents: epoch e is a
seeded permutation of the kept documents, concatenated, and training window i covers tokens
[i·L, i·L + L + 1) of the concatenation of epochs, so a selection smaller than the budget is
repeated, each repetition in a fresh order.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from scaling.data.base import EvalSet, IndexedSource, stream_key
from scaling.errors import DataError

GOOD_TYPES = ("clean", "dup")
"""Document types whose content follows the target (eval) world; precision counts these."""


class DocumentPool:
    """Mixin for sources that are a finite pool of documents (flat tokens + offsets, optional types)."""

    tokens: np.ndarray  # (total,) int64, every document back to back
    offsets: np.ndarray  # (n_docs + 1,) int64
    doc_types: np.ndarray | None = None  # (n_docs,) str, None where the pool has no labels
    doc_columns: dict[str, np.ndarray] = {}  # user score columns, one value per document
    TYPE_NAMES: ClassVar[tuple[str, ...]] = ()

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def doc_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def document(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    @property
    def has_types(self) -> bool:
        return self.doc_types is not None

    def unique_tokens(self, kept: np.ndarray) -> int:
        """Tokens of the distinct documents among `kept` (identical token sequences counted once)."""
        seen: set[bytes] = set()
        total = 0
        for i in np.asarray(kept, dtype=np.int64):
            doc = self.document(int(i))
            key = doc.tobytes()
            if key not in seen:
                seen.add(key)
                total += len(doc)
        return total

    def labelled(self) -> np.ndarray:
        """Mask of documents whose type is known (all of a synthetic pool)."""
        if self.doc_types is None:
            return np.zeros(self.n_docs, bool)
        return self.doc_types != ""

    def oracle_scores(self) -> np.ndarray:
        """Higher is better: 1 for clean documents, 0.5 for repeats of clean ones, 0 otherwise."""
        if self.doc_types is None:
            raise DataError(f"pool `{getattr(self, 'name', '?')}` has no document types, so no oracle score")
        return np.select([self.doc_types == "clean", self.doc_types == "dup"], [1.0, 0.5], 0.0)

    def target_documents(self) -> list[np.ndarray]:
        """Documents of the target distribution (for methods that learn from it), apart from eval."""
        return []

    def selection_floor(self, kept: np.ndarray, eval_set: EvalSet) -> float | None:
        """Exact loss floor on `eval_set` of a model of the kept mixture (None where unknown)."""
        return None

    def subset(self, kept: np.ndarray, name: str | None = None) -> "PoolStream":
        return PoolStream(self, kept, name=name)


class PoolStream(IndexedSource):
    """Training stream over the kept documents of a pool, repeated in a fresh order every epoch."""

    kind: ClassVar[str] = "pool_subset"

    def __init__(self, pool: DocumentPool, kept: np.ndarray, name: str | None = None) -> None:
        kept = np.asarray(kept, dtype=np.int64)
        if kept.size == 0:
            raise DataError(f"pool `{getattr(pool, 'name', '?')}`: the selection keeps no documents")
        self.pool, self.kept = pool, np.sort(kept)
        self.name = name or f"{getattr(pool, 'name', 'pool')}[{len(kept)}]"
        self.vocab_size = pool.vocab_size
        self.lengths = pool.doc_lengths[self.kept]
        self.kept_tokens = int(self.lengths.sum())
        self._salt = ("pool_subset", getattr(pool, "name", "pool"), int(self.kept.sum()), len(self.kept))

    def info(self) -> dict[str, Any]:
        return {"source": self.name, "vocab_size": self.vocab_size, "kept_tokens": self.kept_tokens}

    @lru_cache(maxsize=16)
    def _epoch(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng([stream_key(*self._salt, int(seed)) % 2**63, int(epoch)]).permutation(
            len(self.kept))
        return self.kept[order], np.concatenate([[0], np.cumsum(self.lengths[order])])

    def epochs(self, tokens: int) -> float:
        return tokens / self.kept_tokens

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), seq_len + 1), dtype=np.int64)
        starts = index * seq_len
        pos = starts[:, None] + np.arange(seq_len + 1)[None, :]  # global token positions
        epoch = pos // self.kept_tokens
        within = pos % self.kept_tokens
        for e in np.unique(epoch):
            docs, cum = self._epoch(int(seed), int(e))
            m = epoch == e
            slot = np.searchsorted(cum, within[m], side="right") - 1
            out[m] = self.pool.tokens[self.pool.offsets[docs[slot]] + within[m] - cum[slot]]
        return out

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        return self.pool.eval_sets(seq_len, n_tokens)

    def expected_bayes_loss(self, seq_len: int) -> float | None:
        return None


def keep_by_token_share(scores: np.ndarray, lengths: np.ndarray, keep: float, eligible: np.ndarray | None = None,
                        tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Ids of the best-scored documents (higher is better) until `keep` of the pool's tokens.

    The threshold is a share of all pool tokens; the document that crosses it is kept when that
    lands closer to the target than leaving it out. Ties are broken by `tiebreak` (higher first).
    """
    scores = np.asarray(scores, float)
    n = len(scores)
    tb = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, float)
    s = np.where(np.isnan(scores), -np.inf, scores)
    if eligible is not None:
        s = np.where(eligible, s, -np.inf)
    order = np.lexsort((-tb, -s))
    target = keep * float(lengths.sum())
    cum = np.cumsum(lengths[order])
    k = int(np.searchsorted(cum, target, side="left"))  # cum[k] >= target
    if k < n and (k == 0 or cum[k] - target <= target - cum[k - 1]):
        k += 1
    k = max(1, min(k, n))
    return np.sort(order[:k])


def rank_of(scores: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """1-based rank (1 = best, kept first) of each document under the same order as the keep rule."""
    s = np.where(np.isnan(np.asarray(scores, float)), -np.inf, scores)
    tb = np.zeros(len(s)) if tiebreak is None else tiebreak
    order = np.lexsort((-tb, -s))
    rank = np.empty(len(s), np.int64)
    rank[order] = np.arange(1, len(s) + 1)
    return rank
