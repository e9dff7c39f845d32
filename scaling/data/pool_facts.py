"""`facts_pool`: a finite pool of documents from the `zipf_facts` world with hidden, exact types.

Types (shares set by `shares`, each document's type fixed by `world_seed`):

    clean     triples of the eval world (the target)
    decoy     the same keys, values mapped through a fixed derangement of the symbols
    junk      uniform symbols: over the world's own `n_symbols` (`junk_alphabet = "shared"`), or
              over `n_symbols` symbols of their own (`"disjoint"`; the vocabulary is then 2 · n_symbols)
    offworld  another world's facts (its own keys, ranks and values)
    dup       copies of a few (`dup_sources`) clean documents, repeated

Every type is an i.i.d. triple process with exact log-likelihoods, so the source knows each
document's type, its oracle score and the exact loss floor of any selected mixture on the clean
eval set: a model of the kept mixture predicts with the posterior over types given the window
so far, p(x_j | x_<j) = sum_t P(t | x_<j) p_t(x_j | x_<j), with prior P(t) the kept token share of
type t (dup counts as clean: its documents are clean ones). The floor ignores that a finite pool
can be memorised; it is the limit of infinitely many documents in the same proportions.

With a disjoint junk alphabet a window's first token tells junk from the rest, and the first
token is never predicted, so junk leaves the floor of the other types exactly where it was: the
unfiltered pool and the pool without its junk have the same floor, and junk only costs tokens
(and the few steps a model needs to tell the alphabets apart). With the shared alphabet the
type must be inferred from the window's statistics, which tiny models do poorly, so shared junk
also costs them capacity (see tests/train/test_select_cm.py for the measured figures).
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp

from scaling.data.base import EvalSet, IndexedSource, check_own_vocabulary, check_positive, hash_uniform, stream_key
from scaling.data.pool import DocumentPool
from scaling.data.synthetic import ZipfFactsSource
from scaling.errors import SpecError

TYPES = ("clean", "decoy", "junk", "offworld", "dup")
DEFAULT_SHARES = {"clean": 0.5, "decoy": 0.125, "junk": 0.125, "offworld": 0.125, "dup": 0.125}


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    while True:
        p = rng.permutation(n)
        if not (p == np.arange(n)).any():
            return p


class FactsPoolSource(DocumentPool, IndexedSource):
    """A pool of `n_docs` documents of `doc_triples` triples each, typed in the given shares."""

    kind: ClassVar[str] = "facts_pool"
    TYPE_NAMES: ClassVar[tuple[str, ...]] = TYPES
    OPTIONS: ClassVar[dict[str, Any]] = {
        "n_symbols": 64,
        "n_keys": 3000,
        "zipf_exponent": 1.4,
        "value_accuracy": 0.9,
        "world_seed": None,  # None: the data seed
        "n_docs": 4000,
        "doc_triples": 32,
        "shares": None,  # {type = share}; default DEFAULT_SHARES; missing types get 0
        "dup_sources": 8,
        "target_docs": 512,
        "junk_alphabet": "shared",  # or "disjoint": junk symbols n_symbols..2·n_symbols-1
    }
    JUNK_ALPHABETS: ClassVar[tuple[str, ...]] = ("shared", "disjoint")

    def __init__(self, n_symbols: int = 64, n_keys: int = 3000, zipf_exponent: float = 1.4,
                 value_accuracy: float = 0.9, world_seed: int = 0, n_docs: int = 4000, doc_triples: int = 32,
                 shares: dict[str, float] | None = None, dup_sources: int = 8, target_docs: int = 512,
                 junk_alphabet: str = "shared", name: str = "facts_pool") -> None:
        if junk_alphabet not in self.JUNK_ALPHABETS:
            raise SpecError(f"facts_pool: `junk_alphabet` must be one of {', '.join(map(repr, self.JUNK_ALPHABETS))}, "
                            f"got {junk_alphabet!r}")
        self.n_docs_ = check_positive("n_docs", n_docs)
        self.doc_triples = check_positive("doc_triples", doc_triples)
        self.dup_sources = check_positive("dup_sources", dup_sources)
        self.n_target_docs = check_positive("target_docs", target_docs)
        self.shares = self._check_shares(DEFAULT_SHARES if shares is None else shares)
        self.clean = ZipfFactsSource(n_symbols, n_keys, zipf_exponent, value_accuracy, world_seed)
        rng = np.random.default_rng([0xF00D, int(world_seed)])
        self.decoy = copy.copy(self.clean)
        self.decoy.values = _derangement(n_symbols, rng)[self.clean.values]
        self.offworld = ZipfFactsSource(n_symbols, n_keys, zipf_exponent, value_accuracy, int(world_seed) + 7919)
        self.n_symbols, self.junk_alphabet = n_symbols, junk_alphabet
        self.junk_offset = n_symbols if junk_alphabet == "disjoint" else 0  # first junk symbol
        self.name, self.world_seed = name, int(world_seed)
        self.vocab_size = n_symbols + self.junk_offset
        self.bayes_loss_expected = None

        counts = np.floor(np.array([self.shares[t] for t in TYPES]) * self.n_docs_ + 1e-9).astype(int)
        counts[0] += self.n_docs_ - counts.sum()  # rounding goes to clean
        types = np.repeat(np.array(TYPES), counts)
        self.doc_types = types[rng.permutation(self.n_docs_)]
        self.offsets = np.arange(self.n_docs_ + 1, dtype=np.int64) * 3 * self.doc_triples
        self.tokens = self._generate(self.doc_types)
        self.doc_columns = {}

    @staticmethod
    def _check_shares(shares: Any) -> dict[str, float]:
        if not isinstance(shares, dict) or not shares:
            raise SpecError(f"facts_pool: `shares` must be a table {{type = share}} over {', '.join(TYPES)}, "
                            f"got {shares!r}")
        unknown = sorted(set(shares) - set(TYPES))
        if unknown:
            raise SpecError(f"facts_pool: `shares` has unknown type `{unknown[0]}`; types are {', '.join(TYPES)}")
        out = {t: float(shares.get(t, 0.0)) for t in TYPES}
        if any(not (0 <= v <= 1) for v in out.values()) or not math.isclose(sum(out.values()), 1.0, abs_tol=1e-6):
            raise SpecError(f"facts_pool: `shares` must be in [0, 1] and sum to 1, got {shares!r}")
        if out["clean"] == 0 and out["dup"] > 0:
            raise SpecError("facts_pool: `shares` with `dup` > 0 needs `clean` > 0 (dup repeats clean documents)")
        return out

    # ------------------------------------------------------------ documents

    def _world(self, t: str) -> ZipfFactsSource | None:
        return {"clean": self.clean, "dup": self.clean, "decoy": self.decoy, "offworld": self.offworld}.get(t)

    def _generate(self, types: np.ndarray) -> np.ndarray:
        n, L = len(types), 3 * self.doc_triples
        out = np.empty((n, L), dtype=np.int64)
        idx = np.arange(n, dtype=np.uint64)
        for t in TYPES:
            m = types == t
            if not m.any():
                continue
            key = stream_key("facts_pool", t, self.world_seed)
            if t == "junk":
                u = hash_uniform(key, idx[m], L)
                out[m] = self.junk_offset + np.minimum((u * self.n_symbols).astype(np.int64), self.n_symbols - 1)
            elif t == "dup":  # dup document i repeats clean source document i mod dup_sources
                src = (idx[m] % np.uint64(self.dup_sources)).astype(np.uint64)
                out[m] = self.clean._triples(key, src, self.doc_triples)
            else:
                out[m] = self._world(t)._triples(key, idx[m], self.doc_triples)
        return out.reshape(-1)

    def target_documents(self) -> list[np.ndarray]:
        """Clean documents apart from both the pool and the eval set (the methods' view of the target)."""
        key = stream_key("facts_pool/target", self.world_seed)
        docs = self.clean._triples(key, np.arange(self.n_target_docs, dtype=np.uint64), self.doc_triples)
        return list(docs)

    # ------------------------------------------------------------ training on the whole pool

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        return self.subset(np.arange(self.n_docs_)).sequences(index, seq_len, seed)

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        """The clean world's validation set (the target), exactly as `zipf_facts` makes it."""
        return self.clean.eval_sets(seq_len, n_tokens)

    def info(self) -> dict[str, Any]:
        return {"source": self.name, "vocab_size": self.vocab_size, "bayes_loss_expected": None,
                "pool_docs": self.n_docs_, "pool_tokens": int(self.offsets[-1])}

    # ------------------------------------------------------------ exact floors

    def _junk_logprob(self, tokens: np.ndarray) -> np.ndarray:
        """log p_junk of each token: uniform over the junk alphabet, -inf outside it."""
        inside = (tokens >= self.junk_offset) & (tokens < self.junk_offset + self.n_symbols)
        return np.where(inside, -math.log(self.n_symbols), -np.inf)

    def type_logprobs(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """log p_t(tokens[:, j+1] | tokens[:, :j+1]) per process type (dup = clean), shape (n, L)."""
        own = tokens < self.n_symbols  # the worlds' symbols; a junk-only symbol has probability 0 there
        t = np.where(own, tokens, 0)
        out = {name: np.where(own[:, 1:], w.token_logprobs(t), -np.inf)
               for name, w in (("clean", self.clean), ("decoy", self.decoy), ("offworld", self.offworld))}
        out["junk"] = self._junk_logprob(tokens[:, 1:])
        return out

    def first_logprob(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """log p_t(tokens[:, 0]) (a k1 symbol) per process type."""
        first = tokens[:, 0]
        own = first < self.n_symbols
        with np.errstate(divide="ignore"):
            out = {name: np.where(own, np.log(w.p_k1[np.where(own, first, 0)]), -np.inf)
                   for name, w in (("clean", self.clean), ("decoy", self.decoy), ("offworld", self.offworld))}
        out["junk"] = self._junk_logprob(first)
        return out

    def mixture_weights(self, kept: np.ndarray) -> dict[str, float]:
        """Kept token share per process type (dup folded into clean)."""
        lengths = self.doc_lengths[kept]
        types = np.where(self.doc_types[kept] == "dup", "clean", self.doc_types[kept])
        total = lengths.sum()
        return {t: float(lengths[types == t].sum() / total) for t in ("clean", "decoy", "junk", "offworld")}

    def mixture_loss(self, weights: dict[str, float], tokens: np.ndarray) -> float:
        """Mean -log p_mix(target) over the windows' targets (tokens[:, 1:]) for prior `weights`."""
        names = [t for t, w in weights.items() if w > 0]
        step = self.type_logprobs(tokens)
        first = self.first_logprob(tokens)
        logw = np.log(np.array([weights[t] for t in names]))[:, None, None]
        # cumulative log-likelihood of the prefix up to and including token j, per type
        cum = np.stack([np.concatenate([first[t][:, None], first[t][:, None] + np.cumsum(step[t], axis=1)], axis=1)
                        for t in names]) + logw  # (types, n, L+1)
        with np.errstate(invalid="ignore"):
            joint = logsumexp(cum, axis=0)  # log P_mix(x_0..x_j)
        return float(-(joint[:, -1] - joint[:, 0]).mean() / (tokens.shape[1] - 1))

    def selection_floor(self, kept: np.ndarray, eval_set: EvalSet) -> float:
        tokens = np.concatenate([eval_set.x.numpy(), eval_set.y.numpy()[:, -1:]], axis=1)
        return self.mixture_loss(self.mixture_weights(np.asarray(kept)), tokens)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> "FactsPoolSource":
        check_own_vocabulary(cls.kind, tokenizer)
        opts = dict(options)
        if opts.get("world_seed") is None:
            opts["world_seed"] = seed
        return cls(**opts)


__all__ = ["DEFAULT_SHARES", "TYPES", "FactsPoolSource"]
