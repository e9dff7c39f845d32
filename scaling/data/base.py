"""The contract between data sources and the trainer: `LMSource`, `EvalSet`, and shared helpers.

Every source here is *indexed*: training sequence i of the global stream (i = step·batch_size
+ row) is a pure function of (i, seq_len, seed), drawn with a counter-based hash RNG. So a
resumed run reproduces its batches exactly, and a mixture can pull the k-th sequence of each
component without generating the ones it skips.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from scaling.errors import SpecError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EvalSet:
    """Fixed held-out sequences: inputs `x` and next-token targets `y` (-100 = ignored)."""

    name: str
    x: torch.Tensor  # (n_seq, seq_len) int64
    y: torch.Tensor  # (n_seq, seq_len) int64
    bayes_loss: float | None
    """Exact mean Bayes-optimal loss (nats) over the non-ignored targets of this set."""

    @property
    def n_tokens(self) -> int:
        return int((self.y != IGNORE_INDEX).sum())


@runtime_checkable
class LMSource(Protocol):
    name: str
    vocab_size: int
    bayes_loss_expected: float | None

    def info(self) -> dict[str, Any]:
        """Flat facts about the source for the run store (names are column-safe)."""
        return {"source": self.name, "vocab_size": self.vocab_size, "bayes_loss_expected": self.bayes_loss_expected}

    def train_batch(self, step: int, batch_size: int, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]: ...


# ---------------------------------------------------------------- counter-based RNG

_M = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _splitmix(z: np.ndarray) -> np.ndarray:
    # splitmix64 finaliser; uint64 array arithmetic wraps modulo 2**64 as intended.
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@lru_cache(maxsize=4096)
def stream_key(*parts: Any) -> int:
    """A 64-bit key from any hashable description (source salt, seed, stream name)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def hash_uniform(key: int, index: np.ndarray, width: int) -> np.ndarray:
    """(len(index), width) uniforms in [0, 1): element (r, j) depends only on (key, index[r], j)."""
    with np.errstate(over="ignore"):
        base = _splitmix(np.asarray(index, dtype=np.uint64) * _C2 ^ np.uint64(key))
        h = _splitmix(base[:, None] + np.arange(width, dtype=np.uint64)[None, :] * _GOLDEN)
    return (h >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def hash_ints(key: int, index: np.ndarray, high: int | np.ndarray) -> np.ndarray:
    """One integer in [0, high) per index (high may be per-row), depending only on (key, index)."""
    u = hash_uniform(key, index, 1)[:, 0]
    return np.minimum((u * high).astype(np.int64), np.asarray(high, dtype=np.int64) - 1)


# ---------------------------------------------------------------- shared base class


def check_own_vocabulary(kind: str, tokenizer: Any) -> None:
    """Synthetic sources emit symbol ids directly; only the default `byte` setting is accepted."""
    if not (isinstance(tokenizer, str) and tokenizer == "byte"):
        raise SpecError(
            f"data source `{kind}` generates its own symbols and needs no tokenizer; "
            f"leave `tokenizer` at its default (`byte`), got {tokenizer!r}"
        )


def check_positive(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"`{what}` must be an integer >= 1, got {value!r}")
    return int(value)


class IndexedSource(ABC):
    """Base of all sources: train batches are rows `step*batch_size ...` of an indexed stream."""

    kind: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, Any]] = {}

    name: str
    vocab_size: int
    bayes_loss_expected: float | None = None

    @abstractmethod
    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        """Training token windows (len(index), seq_len + 1) int64 for global stream indices."""

    @abstractmethod
    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]: ...

    def expected_bayes_loss(self, seq_len: int) -> float | None:
        """Exact expected mean Bayes loss of a train/eval window of this length (None if unknown)."""
        return self.bayes_loss_expected

    def info(self) -> dict[str, Any]:
        """Flat facts about the source for the run store (names are column-safe)."""
        return {"source": self.name, "vocab_size": self.vocab_size, "bayes_loss_expected": self.bayes_loss_expected}

    def train_batch(self, step: int, batch_size: int, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise SpecError(f"`step` must be an integer >= 0, got {step!r}")
        batch_size = check_positive("batch_size", batch_size)
        seq_len = check_positive("seq_len", seq_len)
        start = int(step) * batch_size
        tokens = torch.from_numpy(self.sequences(np.arange(start, start + batch_size, dtype=np.uint64), seq_len, seed))
        return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


def split_xy(tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L+1) token windows -> inputs and next-token targets, each (n, L) int64."""
    t = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
    return t[:, :-1].contiguous(), t[:, 1:].contiguous()


def n_eval_sequences(seq_len: int, n_tokens: int) -> int:
    seq_len = check_positive("seq_len", seq_len)
    n_tokens = check_positive("eval n_tokens", n_tokens)
    return max(1, n_tokens // seq_len)
