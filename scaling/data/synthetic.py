"""`zipf_facts`: Zipf-distributed key -> value facts with noisy values, and its exact Bayes loss.

In the spirit of the quantization model (Michaud et al. 2023) and Hutter (2021): a world of
`n_keys` distinct two-symbol keys, each with a true value; key frequencies follow Zipf over a
random key rank. The stream is i.i.d. triples [k1 k2 v]: v is the true value with probability
`value_accuracy`, otherwise uniform over the other symbols. Keys and values share one alphabet,
so vocab_size == n_symbols.

Alignment: every window starts at a triple boundary (token 0 is a k1). The model sees
x = tokens[:-1], y = tokens[1:], so target t has type (t + 1) mod 3 (0: k1, 1: k2, 2: v) and its
Bayes loss is H(k1), H(k2 | k1) or the value-noise entropy. Any seq_len works: windows are cut
from whole triples. `bayes_loss_expected` is the entropy rate (exact for seq_len a multiple of
3); `expected_bayes_loss(seq_len)` and every EvalSet.bayes_loss are exact for any seq_len.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scaling.data.base import (
    EvalSet,
    IndexedSource,
    check_own_vocabulary,
    check_positive,
    hash_uniform,
    n_eval_sequences,
    split_xy,
    stream_key,
)
from scaling.errors import SpecError


class ZipfFactsSource(IndexedSource):
    """Noisy Zipf-frequency facts; world (key set, ranks, true values) fixed by `world_seed`."""

    kind: ClassVar[str] = "zipf_facts"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "n_symbols": 64,
        "n_keys": 3000,
        "zipf_exponent": 1.4,
        "value_accuracy": 0.9,
        "world_seed": None,  # None: use the data seed given to build_source
    }

    def __init__(
        self,
        n_symbols: int = 64,
        n_keys: int = 3000,
        zipf_exponent: float = 1.4,
        value_accuracy: float = 0.9,
        world_seed: int = 0,
        name: str = "zipf_facts",
    ) -> None:
        n_symbols = check_positive("n_symbols", n_symbols)
        n_keys = check_positive("n_keys", n_keys)
        if n_symbols < 2:
            raise SpecError(f"zipf_facts: `n_symbols` must be >= 2, got {n_symbols}")
        if n_keys > n_symbols**2:
            raise SpecError(f"zipf_facts: `n_keys` must be <= n_symbols**2 = {n_symbols**2}, got {n_keys}")
        if not zipf_exponent >= 0:
            raise SpecError(f"zipf_facts: `zipf_exponent` must be >= 0, got {zipf_exponent}")
        if not 0 < value_accuracy <= 1:
            raise SpecError(f"zipf_facts: `value_accuracy` must be in (0, 1], got {value_accuracy}")
        self.name, self.vocab_size = name, n_symbols
        self.n_keys, self.zipf_exponent = n_keys, float(zipf_exponent)
        self.value_accuracy, self.world_seed = float(value_accuracy), int(world_seed)

        rng = np.random.default_rng([0x5A1F, self.world_seed])
        codes = rng.choice(n_symbols * n_symbols, size=n_keys, replace=False)  # position = Zipf rank
        self.k1, self.k2 = codes // n_symbols, codes % n_symbols
        self.values = rng.integers(0, n_symbols, size=n_keys)
        w = np.arange(1, n_keys + 1, dtype=np.float64) ** -self.zipf_exponent
        self.key_probs = w / w.sum()
        self.cdf = np.cumsum(self.key_probs)
        self.cdf[-1] = 1.0

        # Exact log-probabilities used for Bayes losses.
        self.p_k1 = np.bincount(self.k1, weights=self.key_probs, minlength=n_symbols)
        self.key_index = np.full(n_symbols * n_symbols, -1, dtype=np.int64)
        self.key_index[codes] = np.arange(n_keys)
        q, V = self.value_accuracy, n_symbols
        self.logp_right = math.log(q)
        self.logp_wrong = math.log((1 - q) / (V - 1)) if q < 1 else -math.inf
        self.h_k1 = float(-(self.p_k1[self.p_k1 > 0] * np.log(self.p_k1[self.p_k1 > 0])).sum())
        h_key = float(-(self.key_probs * np.log(self.key_probs)).sum())
        self.h_k2_given_k1 = h_key - self.h_k1
        self.h_value = -(q * self.logp_right + ((1 - q) * self.logp_wrong if q < 1 else 0.0))
        self.bayes_loss_expected = (self.h_k1 + self.h_k2_given_k1 + self.h_value) / 3
        self._train_salt = ("zipf_facts/train", self.world_seed, n_symbols, n_keys, self.zipf_exponent, q)

    # ------------------------------------------------------------ sampling

    def _triples(self, key: int, index: np.ndarray, n_triples: int) -> np.ndarray:
        u = hash_uniform(key, index, 3 * n_triples).reshape(len(index), n_triples, 3)
        rank = np.minimum(np.searchsorted(self.cdf, u[..., 0], side="right"), self.n_keys - 1)
        true = self.values[rank]
        # A wrong value is uniform over the other V-1 symbols: shift by 1..V-1.
        shift = 1 + np.minimum((u[..., 2] * (self.vocab_size - 1)).astype(np.int64), self.vocab_size - 2)
        value = np.where(u[..., 1] < self.value_accuracy, true, (true + shift) % self.vocab_size)
        return np.stack([self.k1[rank], self.k2[rank], value], axis=-1).reshape(len(index), 3 * n_triples)

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        key = stream_key(*self._train_salt, int(seed))
        return self._triples(key, index, -(-(seq_len + 1) // 3))[:, : seq_len + 1]

    # ------------------------------------------------------------ Bayes loss

    def token_logprobs(self, tokens: np.ndarray) -> np.ndarray:
        """Exact log p_true(tokens[:, t+1] | tokens[:, :t+1]) for aligned windows, shape (n, L)."""
        n, L1 = tokens.shape
        padded = np.zeros((n, -(-L1 // 3) * 3), dtype=np.int64)
        padded[:, :L1] = tokens
        tri = padded.reshape(n, -1, 3)
        k1, k2, v = tri[..., 0], tri[..., 1], tri[..., 2]
        kid = self.key_index[k1 * self.vocab_size + k2]
        with np.errstate(divide="ignore"):
            lp_k1 = np.log(self.p_k1[k1])
        lp_k2 = np.where(kid >= 0, np.log(self.key_probs[np.maximum(kid, 0)]) - lp_k1, -np.inf)
        lp_v = np.where((kid >= 0) & (v == self.values[np.maximum(kid, 0)]), self.logp_right, self.logp_wrong)
        lp = np.stack([lp_k1, lp_k2, lp_v], axis=-1).reshape(n, -1)  # lp[:, j] is for token j
        return lp[:, 1:L1]

    def expected_bayes_loss(self, seq_len: int) -> float:
        per_type = np.array([self.h_k1, self.h_k2_given_k1, self.h_value])
        return float(per_type[(np.arange(seq_len) + 1) % 3].mean())

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        n_seq = n_eval_sequences(seq_len, n_tokens)
        key = stream_key("zipf_facts/valid", *self._train_salt[1:])  # independent of any training seed
        tokens = self._triples(key, np.arange(n_seq, dtype=np.uint64), -(-(seq_len + 1) // 3))[:, : seq_len + 1]
        x, y = split_xy(tokens)
        bayes = float(-self.token_logprobs(tokens).mean())
        return {"valid": EvalSet("valid", x, y, bayes)}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> ZipfFactsSource:
        check_own_vocabulary(cls.kind, tokenizer)
        opts = dict(options)
        if opts.get("world_seed") is None:
            opts["world_seed"] = seed
        return cls(**opts)
