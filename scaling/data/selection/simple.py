"""The selection methods that need no model: `random`, `oracle` and `column`."""

from __future__ import annotations

import numpy as np

from scaling.data.base import hash_uniform, stream_key
from scaling.errors import SpecError

RANDOM_OPTIONS: dict = {}
ORACLE_OPTIONS: dict = {}
COLUMN_OPTIONS = {"name": "score", "higher_is_better": True}


def random_score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    u = hash_uniform(stream_key("select/random", int(seed)), np.arange(pool.n_docs, dtype=np.uint64), 1)[:, 0]
    return u, 0.0, {}


def oracle_score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    if not pool.has_types:
        raise SpecError(f"[select] method `oracle` needs a pool with known document types (a synthetic pool such "
                        f"as `facts_pool`); data source `{pool.name}` has none")
    return pool.oracle_scores(), 0.0, {}


def column_score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    name = opts["name"]
    if name not in pool.doc_columns:
        have = ", ".join(pool.doc_columns) or "none"
        raise SpecError(f"[select] method `column`: `name` = {name!r} is not a score column of data source "
                        f"`{pool.name}` (its columns: {have})")
    s = np.asarray(pool.doc_columns[name], float)
    return (s if opts["higher_is_better"] else -s), 0.0, {}
