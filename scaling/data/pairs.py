"""Source -> target pair data: the `PairSource` contract, the byte layout of a pair, and
`build_pair_source` over every pair kind (the real-text kinds are in text_pairs.py, the synthetic
transduction source in transduction.py).

A pair source mirrors `LMSource`: train pair i of the global stream (i = step·batch_size + row)
is a pure function of (i, seed), so batches do not depend on how a run is resumed. Text pairs are
byte-level tokens: 0 pad, 1 bos, 2 eos, 3 + byte (vocab 259). Layout of one pair, each tensor
padded to the source's max length:  src = source bytes + [eos];  tgt_in = [bos] + target;
tgt_out = target + [eos] with -100 at padding. Over-long texts are cut (a cut target has no eos).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from scaling.data.tokenizers import ByteTokenizer
from scaling.errors import DataError, SpecError, did_you_mean

IGNORE_INDEX = -100
# The shared ByteTokenizer's ids shifted by 3 to make room for pad/bos/eos.
BYTE_PAD, BYTE_BOS, BYTE_EOS, BYTE_OFFSET = 0, 1, 2, 3
_BYTES = ByteTokenizer()
BYTE_VOCAB = _BYTES.vocab_size + BYTE_OFFSET


@dataclass(frozen=True)
class PairEvalSet:
    """Fixed held-out pairs. `bayes_loss`: exact mean per-target-token conditional Bayes loss
    (nats) over the non-ignored `tgt_out` tokens of exactly these pairs; None when unknown."""

    name: str
    src: torch.Tensor  # (n, S) int64, padded with pad_id
    tgt_in: torch.Tensor  # (n, T) int64
    tgt_out: torch.Tensor  # (n, T) int64, -100 at padding
    bayes_loss: float | None

    @property
    def n_tokens(self) -> int:
        return int((self.tgt_out != IGNORE_INDEX).sum())


def pair_references(eval_set: PairEvalSet, eos_id: int) -> list[list[int]]:
    """Each pair's target tokens without bos, eos or padding (what BLEU compares against)."""
    return [[t for t in row if t != IGNORE_INDEX and t != eos_id] for row in eval_set.tgt_out.tolist()]


@runtime_checkable
class PairSource(Protocol):
    name: str
    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    max_src_len: int
    max_tgt_len: int
    bayes_loss_expected: float | None

    def train_batch(self, step: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def eval_sets(self, n_pairs: int) -> dict[str, PairEvalSet]: ...

    def references(self, eval_name: str) -> list[list[int]]: ...


def check_count(what: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SpecError(f"`{what}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_pair_options(kind: str, defaults: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """Options merged over `defaults`; unknown keys and wrong types raise SpecError naming the key."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SpecError(
            f"unknown option(s) {', '.join(f'`{k}`' for k in unknown)}{did_you_mean(unknown[0], defaults)} "
            f"for pair source `{kind}`; "
            f"valid options: {', '.join(defaults)}"
        )
    out = dict(defaults)
    for k, v in options.items():
        d, where = defaults[k], f"pair source `{kind}` option `{k}`"
        if isinstance(d, bool) and not isinstance(v, bool):
            raise SpecError(f"{where} must be true or false, got {v!r}")
        if isinstance(d, int) and not isinstance(d, bool):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecError(f"{where} must be an integer, got {v!r}")
        if isinstance(d, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SpecError(f"{where} must be a number, got {v!r}")
            v = float(v)
        if isinstance(d, str) and not isinstance(v, str):
            raise SpecError(f"{where} must be a string, got {v!r}")
        out[k] = v
    return out


class PairSourceBase(ABC):
    """Shared plumbing: argument checks, indexed train batches, cached eval sets, references."""

    kind: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, Any]] = {}
    name: str
    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    max_src_len: int
    max_tgt_len: int
    bayes_loss_expected: float | None = None

    @abstractmethod
    def pair_tensors(self, index: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(src, tgt_in, tgt_out) for global train-stream indices `index`."""

    @abstractmethod
    def build_eval_sets(self, n_pairs: int) -> dict[str, PairEvalSet]: ...

    def train_batch(self, step: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        step = check_count("step", step, minimum=0)
        batch_size = check_count("batch_size", batch_size)
        return self.pair_tensors(np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.uint64), int(seed))

    def eval_sets(self, n_pairs: int) -> dict[str, PairEvalSet]:
        sets = self.build_eval_sets(check_count("eval n_pairs", n_pairs))
        self._eval_cache = sets
        return sets

    def references(self, eval_name: str) -> list[list[int]]:
        """Target tokens (no bos/eos/padding) of the named set from the latest `eval_sets` call."""
        sets = getattr(self, "_eval_cache", None)
        if sets is None:
            raise DataError(f"{self.name}: call `eval_sets(n_pairs)` before `references`")
        if eval_name not in sets:
            raise DataError(f"{self.name}: no eval set `{eval_name}`; have {', '.join(sets)}")
        return pair_references(sets[eval_name], self.eos_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


# ---------------------------------------------------------------- byte-level text pairs


def encode_pairs(pairs: list[tuple[str, str]], max_src_len: int, max_tgt_len: int) -> tuple[torch.Tensor, ...]:
    """Byte-token tensors (src, tgt_in, tgt_out) for text pairs, in the layout of the module doc."""
    n = len(pairs)
    src = np.full((n, max_src_len), BYTE_PAD, dtype=np.int64)
    tgt_in = np.full((n, max_tgt_len), BYTE_PAD, dtype=np.int64)
    tgt_out = np.full((n, max_tgt_len), IGNORE_INDEX, dtype=np.int64)
    for r, (s, t) in enumerate(pairs):
        sb = _BYTES.encode(s)[: max_src_len - 1] + BYTE_OFFSET
        src[r, : len(sb)], src[r, len(sb)] = sb, BYTE_EOS
        full = np.append(_BYTES.encode(t) + BYTE_OFFSET, BYTE_EOS)
        out = full[:max_tgt_len]
        inp = np.concatenate([[BYTE_BOS], full[:-1]])[:max_tgt_len]  # teacher forcing: no EOS input
        tgt_out[r, : len(out)], tgt_in[r, : len(inp)] = out, inp
    return torch.from_numpy(src), torch.from_numpy(tgt_in), torch.from_numpy(tgt_out)


def decode_bytes(tokens: list[int]) -> str:
    """Byte tokens back to text (special tokens dropped)."""
    return _BYTES.decode([t - BYTE_OFFSET for t in tokens if t >= BYTE_OFFSET])


# ---------------------------------------------------------------- registry


def _pair_kinds() -> dict[str, type]:
    # imported here: both import this module
    from scaling.data.text_pairs import (
        PairsJsonlSource,
        PairsParquetSource,
        PairsTsvSource,
        StdlibDocCodeSource,
    )
    from scaling.data.transduction import TransductionSource

    classes = [TransductionSource, StdlibDocCodeSource, PairsJsonlSource, PairsTsvSource, PairsParquetSource]
    return {c.kind: c for c in classes}


def pair_source_kinds() -> list[str]:
    return list(_pair_kinds())


def _pair_class(kind: str) -> type:
    kinds = _pair_kinds()
    if kind not in kinds:
        raise SpecError(f"unknown pair source `{kind}`{did_you_mean(kind, kinds)}; expected one of {', '.join(kinds)}")
    return kinds[kind]


def pair_source_options(kind: str) -> dict[str, Any]:
    """Valid option keys of a pair-source kind with their defaults (None = required)."""
    return dict(_pair_class(kind).OPTIONS)


def build_pair_source(kind: str, options: dict[str, Any] | None = None, *, seed: int = 0) -> PairSource:
    """Build a pair source; `seed` fixes the synthetic world or the train/valid split."""
    if not isinstance(kind, str):
        raise SpecError(f"pair source kind must be a string, got {kind!r}")
    return _pair_class(kind).from_options(dict(options or {}), seed=seed)


__all__ = [
    "PairEvalSet",
    "PairSource",
    "PairSourceBase",
    "build_pair_source",
    "check_count",
    "check_pair_options",
    "decode_bytes",
    "encode_pairs",
    "pair_source_kinds",
    "pair_references",
    "pair_source_options",
]
