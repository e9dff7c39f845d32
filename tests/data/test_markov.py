"""markov: stationary distribution, exact conditionals and entropy rate against enumeration."""

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from scaling.data import MarkovSource, build_source
from scaling.errors import SpecError


def tiny():
    return MarkovSource(n_symbols=3, order=2, branching=2, branch_exponent=0.7, smoothing=0.05, world_seed=4)


def window_probs(src, length):
    """P(x_0..x_{length-1}) of a stationary window, by enumerating all sequences."""
    V, k = src.vocab_size, src.order
    out = {}
    for w in itertools.product(range(V), repeat=length):
        start = sum(w[j] * V ** (k - 1 - j) for j in range(k))
        p = src.pi[start]
        for t in range(k, length):
            state = sum(w[t - k + j] * V ** (k - 1 - j) for j in range(k))
            p *= src.P[state, w[t]]
        out[w] = p
    return out


def test_stationary_distribution_is_invariant():
    src = tiny()
    S, V = src.P.shape
    moved = np.bincount(src.next_state.ravel(), weights=(src.pi[:, None] * src.P).ravel(), minlength=S)
    np.testing.assert_allclose(moved, src.pi, atol=1e-13)
    assert src.pi.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seq_len", [1, 2, 4])
def test_logprobs_and_expected_loss_match_brute_force(seq_len):
    src = tiny()
    windows = window_probs(src, seq_len + 1)
    assert sum(windows.values()) == pytest.approx(1.0, abs=1e-12)
    prefix = defaultdict(float)
    for w, p in windows.items():
        for j in range(1, seq_len + 2):
            prefix[w[:j]] += p
    toks = np.array(list(windows), dtype=np.int64)
    probs = np.array(list(windows.values()))
    brute = np.array([[math.log(prefix[w[: t + 2]] / prefix[w[: t + 1]]) for t in range(seq_len)] for w in windows])
    np.testing.assert_allclose(src.token_logprobs(toks), brute, atol=1e-12)
    assert src.expected_bayes_loss(seq_len) == pytest.approx(float((probs[:, None] * -brute).sum(0).mean()), abs=1e-12)


def test_entropy_rate_is_the_long_context_conditional_entropy():
    src = tiny()
    h = [-sum(p * math.log(p) for p in window_probs(src, n).values()) for n in (2, 3)]
    assert src.entropy_rate == pytest.approx(h[1] - h[0], abs=1e-12)  # H(X2 | X0, X1)
    assert src.bayes_loss_expected == src.entropy_rate


def test_sampled_transitions_follow_the_table_and_eval_loss_is_near_expectation():
    src = tiny()
    toks = src.sequences(np.arange(2000, dtype=np.uint64), 40, seed=1)
    states = toks[:, :-2] * 3 + toks[:, 1:-1]
    counts = np.zeros_like(src.P)
    np.add.at(counts, (states.ravel(), toks[:, 2:].ravel()), 1)
    n = counts.sum(1, keepdims=True)
    sd = np.sqrt(src.P * (1 - src.P) / np.maximum(n, 1))
    assert np.all(np.abs(counts / n - src.P) < 5 * sd + 1e-9)
    ev = src.eval_sets(40, 200_000)["valid"]
    assert ev.bayes_loss == pytest.approx(src.expected_bayes_loss(40), abs=0.01)


def test_default_source_determinism_and_errors():
    src = build_source("markov", {}, seed=2)
    assert src.vocab_size == 64 and src.order == 2
    a = src.train_batch(3, 4, 16, seed=0)[0]
    assert torch.equal(a, src.train_batch(3, 4, 16, seed=0)[0])
    assert not torch.equal(a, src.train_batch(4, 4, 16, seed=0)[0])
    with pytest.raises(SpecError, match="branching"):
        build_source("markov", {"n_symbols": 4, "branching": 5})
    with pytest.raises(SpecError, match="smoothing"):
        build_source("markov", {"smoothing": 0.0})
