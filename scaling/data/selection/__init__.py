"""Data-selection methods: each scores every document of a pool once (higher is better).

    random               a seeded uniform score
    oracle               the pool's known document types (synthetic pools only)
    ngram_importance     DSIR importance weights on hashed n-grams (Xie et al. 2023)
    classifier           hashed n-gram logistic regression, target vs pool (fastText-style)
    perplexity           loss under a reference model on a held-apart split (`band` low/mid/high)
    predictive_strength  PreSelect rank agreement over a ladder of probes (Shum et al. 2025)
    column               a user score column of the pool (`name`, `higher_is_better`)

`score_pool` caches scores on disk by a hash of the pool's documents, the method and its options,
so every keep share of a study reuses one scoring; `Scores.keep(share)` gives the kept ids.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from scaling.data.pool import keep_by_token_share, rank_of
from scaling.errors import SpecError, did_you_mean

ScoreFn = Callable[[Any, dict, int], tuple[np.ndarray, float, dict]]


def _methods() -> dict[str, tuple[dict, ScoreFn]]:
    from scaling.data.selection import classifier, dsir, perplexity, preselect, simple

    return {"random": (simple.RANDOM_OPTIONS, simple.random_score),
            "oracle": (simple.ORACLE_OPTIONS, simple.oracle_score),
            "ngram_importance": (dsir.OPTIONS, dsir.score),
            "classifier": (classifier.OPTIONS, classifier.score),
            "perplexity": (perplexity.OPTIONS, perplexity.score),
            "predictive_strength": (preselect.OPTIONS, preselect.score),
            "column": (simple.COLUMN_OPTIONS, simple.column_score)}


def method_kinds() -> list[str]:
    return list(_methods())


CHOICES = {"band": ("low", "mid", "high"), "sampling": ("top_k", "gumbel")}
SHARES = {"ref_share": 1.0, "probe_docs": 1.0, "distill_docs": 1.0, "distill_labels": 0.5}
"""Options that are shares of documents, in (0, upper]: distill_labels takes a top and a bottom share."""


def check_method(name: str, table: dict[str, Any] | None, where: str = "[select.methods]") -> tuple[str, dict]:
    """(kind, options merged over defaults) of a method entry; `kind` defaults to the entry's name."""
    table = dict(table or {})
    kind = table.pop("kind", name)
    methods = _methods()
    if kind not in methods:
        raise SpecError(f"{where} `{name}`: unknown selection method `{kind}`; expected one of "
                        f"{', '.join(methods)} (or set `kind` to one of them)")
    defaults = copy.deepcopy(methods[kind][0])
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise SpecError(f"{where} `{name}`: unknown option `{unknown[0]}`{did_you_mean(unknown[0], defaults)} "
                        f"for method `{kind}`; "
                        f"valid options: {', '.join(defaults) or '(none)'}")
    opts = {**defaults, **table}
    for key, allowed in CHOICES.items():
        if key in opts and opts[key] not in allowed:
            raise SpecError(f"{where} `{name}` option `{key}` must be one of {', '.join(allowed)}, got {opts[key]!r}")
    for key, default in defaults.items():
        if isinstance(default, bool) and not isinstance(opts[key], bool):
            raise SpecError(f"{where} `{name}` option `{key}` must be true or false, got {opts[key]!r}")
        if key in SHARES and not (isinstance(opts[key], (int, float)) and not isinstance(opts[key], bool)
                                  and 0 < opts[key] <= SHARES[key]):
            raise SpecError(f"{where} `{name}` option `{key}` must be a share in (0, {SHARES[key]:g}], "
                            f"got {opts[key]!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise SpecError(f"{where} `{name}` option `{key}` must be a number >= 0, got {v!r}")
    return kind, opts


@dataclass(frozen=True)
class Scores:
    """One method's scores over a pool (higher is better) and what computing them cost."""

    method: str
    scores: np.ndarray
    flops: float
    tiebreak: np.ndarray

    def rank(self) -> np.ndarray:
        return rank_of(self.scores, self.tiebreak)

    def keep(self, pool, share: float) -> np.ndarray:
        """Ids of the documents kept at `share` of the pool's tokens."""
        return keep_by_token_share(self.scores, pool.doc_lengths, share, tiebreak=self.tiebreak)


def pool_fingerprint(pool) -> str:
    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(pool.tokens, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(pool.offsets, dtype=np.int64).tobytes())
    for doc in pool.target_documents()[:64]:
        h.update(np.ascontiguousarray(doc, dtype=np.int64).tobytes())
    return h.hexdigest()


def score_pool(pool, kind: str, opts: dict, seed: int = 0, cache: bool = True) -> Scores:
    """Score every document of `pool` with method `kind` (cached on disk when `cache`)."""
    from scaling.data.base import hash_uniform, stream_key
    from scaling.data.tokenizers import atomic_write_bytes, cache_dir

    fn = _methods()[kind][1]
    key = hashlib.blake2b(json.dumps([pool_fingerprint(pool), kind, opts, int(seed)], sort_keys=True,
                                     default=str).encode(), digest_size=12).hexdigest()
    path = cache_dir() / "select" / f"{kind}-{key}.npz"
    tiebreak = hash_uniform(stream_key("select/tiebreak", int(seed)), np.arange(pool.n_docs, dtype=np.uint64), 1)[:, 0]
    if cache and path.is_file():
        with np.load(path) as z:
            return Scores(kind, z["scores"], float(z["flops"]), tiebreak)
    scores, flops, _ = fn(pool, opts, int(seed))
    scores = np.asarray(scores, float)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, scores=scores, flops=np.array(flops))
        atomic_write_bytes(path, buf.getvalue())
    return Scores(kind, scores, float(flops), tiebreak)


__all__ = ["Scores", "check_method", "method_kinds", "pool_fingerprint", "score_pool"]
