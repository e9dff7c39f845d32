"""Real-text pair sources: docstring -> function code from the installed standard library, and
user pairs from JSONL, TSV or parquet files. Byte-level, with a fixed train/valid split by a
stable hash (of the file path, or of the source text), so no item lands on both sides."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sysconfig
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from scaling.data.base import hash_uniform, stream_key
from scaling.data.pairs import (BYTE_BOS, BYTE_EOS, BYTE_PAD, BYTE_VOCAB, PairEvalSet, PairSourceBase, check_count,
                                check_pair_options, encode_pairs)
from scaling.errors import DataError, SpecError


def _split_hash(text: str) -> float:
    """A stable number in [0, 1) for a split key (not Python's salted hash)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") / 2.0**64


class TextPairSource(PairSourceBase):
    """Byte-level pairs with a fixed train/valid split; train pairs drawn with replacement."""

    def __init__(self, name: str, train: list[tuple[str, str]], valid: list[tuple[str, str]],
                 max_src_len: int, max_tgt_len: int) -> None:  # fmt: skip
        self.name = name
        self.max_src_len = check_count("max_src_len", max_src_len, minimum=2)
        self.max_tgt_len = check_count("max_tgt_len", max_tgt_len, minimum=2)
        if not train:
            raise DataError(f"{name}: no training pairs after the train/valid split; add data or lower `eval_frac`")
        if not valid:
            raise DataError(f"{name}: no validation pairs after the split; add data or raise `eval_frac`")
        self.train, self.valid = train, valid
        self.vocab_size = BYTE_VOCAB
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
        found = stdlib_function_pairs(check_count("max_files", o["max_files"], minimum=0))
        if not found:
            raise DataError(f"no documented functions found under {sysconfig.get_paths()['stdlib']}")
        train, valid = _split([p for _, p in found], [path for path, _ in found], o["eval_frac"], seed)
        return cls(cls.kind, train, valid, o["max_src_len"], o["max_tgt_len"])


# ---------------------------------------------------------------- user files


def read_pair_file(path: str | Path, fmt: str, src_column: str, tgt_column: str) -> list[tuple[str, str]]:
    """Pairs from a JSONL, TSV (with a header row) or parquet file; DataError names what is wrong."""
    p = Path(path)
    if not p.is_file():
        from scaling.data.userdata import read_from

        raise DataError(f"pair file not found: {p}{read_from(p)} (set the `path` option)")
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


__all__ = [
    "PairFileSource",
    "PairsJsonlSource",
    "PairsParquetSource",
    "PairsTsvSource",
    "StdlibDocCodeSource",
    "TextPairSource",
    "function_pairs",
    "read_pair_file",
    "stdlib_function_pairs",
]
