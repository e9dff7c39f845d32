"""`markov`: a random sparse Markov chain of order k over n_symbols, with its exact Bayes loss.

Each context of the last `order` symbols has `branching` random successors; the j-th gets
weight ∝ j**-branch_exponent (1 - smoothing in all), and `smoothing` is spread uniformly over
all symbols (so the chain is irreducible and has one stationary distribution). The branch
weights are shared by all contexts, which makes sampling state-independent up to one table
lookup per token: a "column" is drawn from a fixed distribution (successor j, or uniform
symbol v) and table[state, column] gives the next state.

Windows start from the stationary distribution of k-grams, so the stream is stationary:
target t >= k-1 has Bayes loss equal to the entropy rate, and the first k-1 targets (short
context) use the exact stationary conditionals.
"""

from __future__ import annotations

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

_MAX_TABLE = 1 << 24  # states × symbols kept dense


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


class MarkovSource(IndexedSource):
    """Stationary sparse order-k Markov chain; the transition table is fixed by `world_seed`."""

    kind: ClassVar[str] = "markov"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "n_symbols": 64,
        "order": 2,
        "branching": 4,
        "branch_exponent": 1.0,
        "smoothing": 0.01,
        "world_seed": None,  # None: use the data seed given to build_source
    }

    def __init__(
        self,
        n_symbols: int = 64,
        order: int = 2,
        branching: int = 4,
        branch_exponent: float = 1.0,
        smoothing: float = 0.01,
        world_seed: int = 0,
        name: str = "markov",
    ) -> None:
        V, k = check_positive("n_symbols", n_symbols), check_positive("order", order)
        b = check_positive("branching", branching)
        if V < 2 or b > V:
            raise SpecError(f"markov: need n_symbols >= 2 and branching <= n_symbols, got {V} and {b}")
        if V ** (k + 1) > _MAX_TABLE:
            raise SpecError(f"markov: n_symbols**(order+1) = {V ** (k + 1)} is too large (max {_MAX_TABLE})")
        if not branch_exponent >= 0:
            raise SpecError(f"markov: `branch_exponent` must be >= 0, got {branch_exponent}")
        if not 0 < smoothing <= 1:
            raise SpecError(f"markov: `smoothing` must be in (0, 1], got {smoothing}")
        self.name, self.vocab_size, self.order, self.world_seed = name, V, k, int(world_seed)
        S = V**k
        rng = np.random.default_rng([0x3A4C, self.world_seed])
        succ = np.argsort(rng.random((S, V)), axis=1)[:, :b]  # distinct successors per context
        w = np.arange(1, b + 1, dtype=np.float64) ** -float(branch_exponent)
        col_p = np.concatenate([(1 - smoothing) * w / w.sum(), np.full(V, smoothing / V)])
        col_tok = np.concatenate([succ, np.broadcast_to(np.arange(V), (S, V))], axis=1)  # (S, b + V)
        self._W = W = b + V
        self._col_cdf = np.cumsum(col_p)
        self._col_cdf[-1] = 1.0
        # Next state, pre-multiplied by W so that one `take` per token advances every row.
        self._next_w = ((np.arange(S)[:, None] * V + col_tok) % S * W).ravel()
        P = np.zeros((S, V))
        np.add.at(P, (np.repeat(np.arange(S), W), col_tok.ravel()), np.tile(col_p, S))
        self.P = P
        self.logP = np.log(self.P)
        self.next_state = (np.arange(S)[:, None] * V + np.arange(V)[None, :]) % S  # (S, V)
        self.pi = self._stationary()
        self._pi_cdf = np.cumsum(self.pi)
        self._pi_cdf[-1] = 1.0
        # Marginals of the first j tokens of a stationary window, j = 0..k.
        self.marginals = [self.pi.reshape(V**j, -1).sum(1) for j in range(k + 1)]
        self.entropy_rate = float((self.pi * -(self.P * self.logP).sum(1)).sum())
        self.bayes_loss_expected = self.entropy_rate
        self._salt = ("markov", self.world_seed, V, k, b, float(branch_exponent), float(smoothing))

    def _stationary(self, tol: float = 1e-13, max_iter: int = 200_000) -> np.ndarray:
        # Power iteration: the smoothing makes the chain irreducible and aperiodic, so it converges.
        S, V = self.P.shape
        nxt = self.next_state.ravel()
        pi = np.full(S, 1.0 / S)
        for it in range(max_iter):
            new = np.bincount(nxt, weights=(pi[:, None] * self.P).ravel(), minlength=S)
            new /= new.sum()
            if np.abs(new - pi).sum() < tol:
                self.stationary_iterations = it + 1
                return new
            pi = new
        raise SpecError("markov: stationary distribution did not converge; raise `smoothing`")

    # ------------------------------------------------------------ sampling

    def _sample(self, key: int, index: np.ndarray, seq_len: int) -> np.ndarray:
        V, k = self.vocab_size, self.order
        S, n, L1 = len(self.pi), len(index), seq_len + 1
        u = hash_uniform(key, index, L1 + 1)
        state = np.minimum(np.searchsorted(self._pi_cdf, u[:, 0], side="right"), S - 1)
        out = np.empty((n, max(L1, k)), dtype=np.int64)
        for j in range(k):  # decode the starting k-gram, oldest token first
            out[:, j] = (state // V ** (k - 1 - j)) % V
        cols = np.minimum(np.searchsorted(self._col_cdf, u[:, k + 1 : L1 + 1], side="right"), self._W - 1)
        cols = cols.T.copy()  # (steps, n)
        flat = np.empty_like(cols)
        state_w = state * self._W
        for t in range(len(cols)):
            state_w = self._next_w.take(state_w + cols[t])
            flat[t] = state_w
        out[:, k:L1] = (flat // self._W % V).T  # the newest symbol of a state is its last digit
        return out[:, :L1]

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        return self._sample(stream_key(*self._salt, "train", int(seed)), index, seq_len)

    # ------------------------------------------------------------ Bayes loss

    def token_logprobs(self, tokens: np.ndarray) -> np.ndarray:
        """Exact log p(tokens[:, t+1] | tokens[:, :t+1]) of stationary windows, shape (n, L)."""
        V, k = self.vocab_size, self.order
        n, L1 = tokens.shape
        lp = np.empty((n, L1 - 1))
        prefix = np.zeros(n, dtype=np.int64)
        for j in range(1, L1):
            if j < k:  # short context: ratio of stationary prefix marginals
                prefix = prefix * V + tokens[:, j - 1]
                lp[:, j - 1] = np.log(self.marginals[j + 1][prefix * V + tokens[:, j]] / self.marginals[j][prefix])
            else:
                state = np.zeros(n, dtype=np.int64)
                for i in range(j - k, j):
                    state = state * V + tokens[:, i]
                lp[:, j - 1] = self.logP[state, tokens[:, j]]
        return lp

    def expected_bayes_loss(self, seq_len: int) -> float:
        k = self.order
        h = [_entropy(m) for m in self.marginals]  # H of the first j tokens
        per_target = [h[j + 1] - h[j] if j + 1 <= k else self.entropy_rate for j in range(1, seq_len + 1)]
        return float(np.mean(per_target))

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        n_seq = n_eval_sequences(seq_len, n_tokens)
        tokens = self._sample(stream_key(*self._salt, "valid"), np.arange(n_seq, dtype=np.uint64), seq_len)
        x, y = split_xy(tokens)
        return {"valid": EvalSet("valid", x, y, float(-self.token_logprobs(tokens).mean()))}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> MarkovSource:
        check_own_vocabulary(cls.kind, tokenizer)
        opts = dict(options)
        if opts.get("world_seed") is None:
            opts["world_seed"] = seed
        return cls(**opts)
