"""Source -> target pair data: the `PairSource` contract, `build_pair_source`, and the real-text
pair sources (stdlib docstring -> function code, and user JSONL/TSV/parquet files).

A pair source mirrors `LMSource`: train pair i of the global stream (i = step·batch_size + row)
is a pure function of (i, seed), so batches do not depend on how a run is resumed. Text pairs are
byte-level tokens: 0 pad, 1 bos, 2 eos, 3 + byte (vocab 259). Layout of one pair, each tensor
padded to the source's max length:  src = source bytes + [eos];  tgt_in = [bos] + target;
tgt_out = target + [eos] with -100 at padding. Over-long texts are cut (a cut target has no eos).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sysconfig
import textwrap
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from scaling.data.base import hash_uniform, stream_key
from scaling.data.tokenizers import ByteTokenizer
from scaling.errors import DataError, SpecError

IGNORE_INDEX = -100
# The shared ByteTokenizer's ids shifted by 3 to make room for pad/bos/eos.
BYTE_PAD, BYTE_BOS, BYTE_EOS, BYTE_OFFSET = 0, 1, 2, 3
_BYTES = ByteTokenizer()


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


def _check_count(what: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SpecError(f"`{what}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_pair_options(kind: str, defaults: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """Options merged over `defaults`; unknown keys and wrong types raise SpecError naming the key."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SpecError(
            f"unknown option(s) {', '.join(f'`{k}`' for k in unknown)} for pair source `{kind}`; "
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
        step = _check_count("step", step, minimum=0)
        batch_size = _check_count("batch_size", batch_size)
        return self.pair_tensors(np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.uint64), int(seed))

    def eval_sets(self, n_pairs: int) -> dict[str, PairEvalSet]:
        sets = self.build_eval_sets(_check_count("eval n_pairs", n_pairs))
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


def _split_hash(text: str) -> float:
    """A stable number in [0, 1) for a split key (not Python's salted hash)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") / 2.0**64


class TextPairSource(PairSourceBase):
    """Byte-level pairs with a fixed train/valid split; train pairs drawn with replacement."""

    def __init__(self, name: str, train: list[tuple[str, str]], valid: list[tuple[str, str]],
                 max_src_len: int, max_tgt_len: int) -> None:  # fmt: skip
        self.name = name
        self.max_src_len = _check_count("max_src_len", max_src_len, minimum=2)
        self.max_tgt_len = _check_count("max_tgt_len", max_tgt_len, minimum=2)
        if not train:
            raise DataError(f"{name}: no training pairs after the train/valid split; add data or lower `eval_frac`")
        if not valid:
            raise DataError(f"{name}: no validation pairs after the split; add data or raise `eval_frac`")
        self.train, self.valid = train, valid
        self.vocab_size = _BYTES.vocab_size + BYTE_OFFSET
        self.pad_id, self.bos_id, self.eos_id = BYTE_PAD, BYTE_BOS, BYTE_EOS
        self.bayes_loss_expected = None

    def pair_tensors(self, index: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = hash_uniform(stream_key("pairs/train", self.name, int(seed)), index, 1)[:, 0]
        rows = np.minimum((u * len(self.train)).astype(np.int64), len(self.train) - 1)
        return encode_pairs([self.train[r] for r in rows], self.max_src_len, self.max_tgt_len)

    def build_eval_sets(self, n_pairs: int) -> dict[str, PairEvalSet]:
        chosen = self.valid[:n_pairs]
        return {"valid": PairEvalSet("valid", *encode_pairs(chosen, self.max_src_len, self.max_tgt_len), None)}


def _split(items: list[tuple[str, str]], keys: list[str], eval_frac: float, seed: int) -> tuple[list, list]:
    if not 0 < eval_frac < 1:
        raise SpecError(f"`eval_frac` must be in (0, 1), got {eval_frac}")
    valid = [it for it, k in zip(items, keys) if _split_hash(f"{seed}:{k}") < eval_frac]
    train = [it for it, k in zip(items, keys) if _split_hash(f"{seed}:{k}") >= eval_frac]
    return train, valid


# ---------------------------------------------------------------- stdlib docstring -> code


def function_pairs(text: str) -> list[tuple[str, str]]:
    """(docstring, dedented function code without its docstring) for each documented function."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node)
        if not doc or len(node.body) < 2:
            continue  # undocumented, or nothing left once the docstring is gone
        d = node.body[0]
        if d.lineno <= node.lineno or node.body[1].lineno <= d.end_lineno:
            continue  # docstring shares a line with code: cannot cut it cleanly
        code = lines[node.lineno - 1 : d.lineno - 1] + lines[d.end_lineno : node.end_lineno]
        out.append((doc, textwrap.dedent("\n".join(code))))
    return out


@lru_cache(maxsize=4)
def stdlib_function_pairs(max_files: int = 0) -> tuple[tuple[str, tuple[str, str]], ...]:
    """(relative path, pair) for documented functions of this Python's stdlib, in path order.
    Test suites, idlelib and site-packages are skipped; `max_files` > 0 stops early."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
    found, n_files = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for f in sorted(filenames):
            if not f.endswith(".py"):
                continue
            path = Path(dirpath) / f
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            rel = path.relative_to(root).as_posix()
            found.extend((rel, p) for p in function_pairs(text))
            n_files += 1
            if max_files and n_files >= max_files:
                return tuple(found)
    return tuple(found)


class StdlibDocCodeSource(TextPairSource):
    """Docstring -> function code from the installed standard library (no download). The split
    is by a hash of the file path, so no file contributes to both train and valid."""

    kind: ClassVar[str] = "stdlib_docstring_code"
    OPTIONS: ClassVar[dict[str, Any]] = {"max_src_len": 256, "max_tgt_len": 512, "eval_frac": 0.05, "max_files": 0}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, seed: int = 0) -> StdlibDocCodeSource:
        o = check_pair_options(cls.kind, cls.OPTIONS, options)
        found = stdlib_function_pairs(_check_count("max_files", o["max_files"], minimum=0))
        if not found:
            raise DataError(f"no documented functions found under {sysconfig.get_paths()['stdlib']}")
        train, valid = _split([p for _, p in found], [path for path, _ in found], o["eval_frac"], seed)
        return cls(cls.kind, train, valid, o["max_src_len"], o["max_tgt_len"])


# ---------------------------------------------------------------- user files


def read_pair_file(path: str | Path, fmt: str, src_column: str, tgt_column: str) -> list[tuple[str, str]]:
    """Pairs from a JSONL, TSV (with a header row) or parquet file; DataError names what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"pair file not found: {p} (set the `path` option)")
    if fmt == "jsonl":
        rows = []
        with p.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{p}: line {i} is not valid JSON ({e.msg})") from None
        columns = set().union(*(r.keys() for r in rows if isinstance(r, dict))) if rows else set()
    else:
        import pandas as pd

        if fmt == "tsv":
            df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, quoting=3)
        else:
            df = pd.read_parquet(p)
        rows, columns = df.to_dict("records"), set(df.columns)
    for role, col in (("src_column", src_column), ("tgt_column", tgt_column)):
        if col not in columns:
            raise DataError(f"{p}: no column `{col}` (option `{role}`); columns are {sorted(map(str, columns))}")
    pairs = []
    for i, r in enumerate(rows):
        s, t = r.get(src_column), r.get(tgt_column)
        if not isinstance(s, str) or not isinstance(t, str):
            raise DataError(f"{p}: row {i + 1} has a missing or non-text `{src_column}`/`{tgt_column}` value")
        pairs.append((s, t))
    if not pairs:
        raise DataError(f"{p}: the file holds no pairs")
    return pairs


class PairFileSource(TextPairSource):
    """User pairs from a file; split by a hash of the source text (duplicates stay together)."""

    FORMAT: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, Any]] = {
        "path": None, "src_column": "source", "tgt_column": "target",
        "max_src_len": 256, "max_tgt_len": 256, "eval_frac": 0.05,
    }  # fmt: skip

    @classmethod
    def from_options(cls, options: dict[str, Any], *, seed: int = 0) -> PairFileSource:
        o = check_pair_options(cls.kind, cls.OPTIONS, options)
        if not isinstance(o["path"], (str, Path)):
            raise SpecError(f"pair source `{cls.kind}` needs option `path` (a file), got {o['path']!r}")
        pairs = read_pair_file(o["path"], cls.FORMAT, o["src_column"], o["tgt_column"])
        train, valid = _split(pairs, [s for s, _ in pairs], o["eval_frac"], seed)
        return cls(f"{cls.kind}:{Path(o['path']).name}", train, valid, o["max_src_len"], o["max_tgt_len"])


class PairsJsonlSource(PairFileSource):
    kind, FORMAT = "pairs_jsonl", "jsonl"


class PairsTsvSource(PairFileSource):
    kind, FORMAT = "pairs_tsv", "tsv"


class PairsParquetSource(PairFileSource):
    kind, FORMAT = "pairs_parquet", "parquet"


# ---------------------------------------------------------------- registry


def _pair_kinds() -> dict[str, type]:
    from scaling.data.transduction import TransductionSource  # imported here: it imports this module

    classes = [TransductionSource, StdlibDocCodeSource, PairsJsonlSource, PairsTsvSource, PairsParquetSource]
    return {c.kind: c for c in classes}


def pair_source_kinds() -> list[str]:
    return list(_pair_kinds())


def _pair_class(kind: str) -> type:
    kinds = _pair_kinds()
    if kind not in kinds:
        raise SpecError(f"unknown pair source `{kind}`; expected one of {', '.join(kinds)}")
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
    "PairFileSource",
    "PairSource",
    "PairSourceBase",
    "PairsJsonlSource",
    "PairsParquetSource",
    "PairsTsvSource",
    "StdlibDocCodeSource",
    "TextPairSource",
    "build_pair_source",
    "decode_bytes",
    "encode_pairs",
    "function_pairs",
    "pair_source_kinds",
    "pair_references",
    "pair_source_options",
    "read_pair_file",
]
