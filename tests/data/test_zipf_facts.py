"""zipf_facts: Bayes loss against brute-force enumeration, sampling statistics, determinism."""

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from scaling.data import ZipfFactsSource, build_source
from scaling.errors import SpecError


def tiny(**kw):
    return ZipfFactsSource(n_symbols=4, n_keys=5, zipf_exponent=1.3, value_accuracy=0.7, world_seed=3, **kw)


def triple_probs(src):
    """Every triple (k1, k2, v) with its probability, straight from the world's tables."""
    V, q = src.vocab_size, src.value_accuracy
    out = {}
    for r in range(src.n_keys):
        for v in range(V):
            pv = q if v == src.values[r] else (1 - q) / (V - 1)
            out[(int(src.k1[r]), int(src.k2[r]), v)] = src.key_probs[r] * pv
    return out


def window_probs(src, seq_len):
    """Probability of every window of seq_len + 1 tokens (whole triples enumerated, then cut)."""
    trip = triple_probs(src)
    n_tri = -(-(seq_len + 1) // 3)
    windows = defaultdict(float)
    for combo in itertools.product(trip.items(), repeat=n_tri):
        toks = tuple(t for tr, _ in combo for t in tr)[: seq_len + 1]
        windows[toks] += math.prod(p for _, p in combo)
    return windows


def test_entropy_rate_matches_brute_force():
    src = tiny()
    trip = triple_probs(src)
    assert sum(trip.values()) == pytest.approx(1.0, abs=1e-12)
    h_triple = -sum(p * math.log(p) for p in trip.values())
    assert src.bayes_loss_expected == pytest.approx(h_triple / 3, abs=1e-12)


@pytest.mark.parametrize("seq_len", [2, 3, 4, 5])
def test_per_token_bayes_logprobs_match_brute_force_conditionals(seq_len):
    src = tiny()
    windows = window_probs(src, seq_len)
    prefix = defaultdict(float)  # P(first j tokens), by marginalising the enumeration
    for w, p in windows.items():
        for j in range(1, seq_len + 2):
            prefix[w[:j]] += p
    toks = np.array(list(windows), dtype=np.int64)
    probs = np.array(list(windows.values()))
    lp = src.token_logprobs(toks)
    brute = np.array([[math.log(prefix[w[: t + 2]] / prefix[w[: t + 1]]) for t in range(seq_len)] for w in windows])
    np.testing.assert_allclose(lp, brute, rtol=0, atol=1e-12)
    expected = float((probs[:, None] * -brute).sum(0).mean())
    assert src.expected_bayes_loss(seq_len) == pytest.approx(expected, abs=1e-12)


def test_eval_set_bayes_loss_is_exact_and_near_expectation():
    src = ZipfFactsSource(world_seed=0)
    ev = src.eval_sets(64, 300_000)["valid"]
    assert ev.x.shape == ev.y.shape == (300_000 // 64, 64)
    assert ev.x.dtype == ev.y.dtype == torch.int64
    tokens = np.concatenate([ev.x.numpy(), ev.y.numpy()[:, -1:]], axis=1)
    assert ev.bayes_loss == pytest.approx(-src.token_logprobs(tokens).mean(), abs=1e-12)
    # 300k roughly independent targets with per-token sd < 2 nats: 5 sigma < 0.02
    assert ev.bayes_loss == pytest.approx(src.expected_bayes_loss(64), abs=0.02)
    assert src.expected_bayes_loss(63) == pytest.approx(src.bayes_loss_expected, abs=1e-12)


def test_sampling_follows_zipf_and_value_noise():
    src = ZipfFactsSource(n_symbols=16, n_keys=50, zipf_exponent=1.0, value_accuracy=0.8, world_seed=1)
    toks = src.sequences(np.arange(4000, dtype=np.uint64), 62, seed=0)  # 21 whole triples per row
    tri = toks[:, :63].reshape(-1, 3)
    kid = src.key_index[tri[:, 0] * 16 + tri[:, 1]]
    assert (kid >= 0).all()  # every window starts on a triple boundary
    n = len(kid)
    freq = np.bincount(kid, minlength=50) / n
    sd = np.sqrt(src.key_probs * (1 - src.key_probs) / n)
    assert np.all(np.abs(freq - src.key_probs) < 5 * sd + 1e-12)
    right = (tri[:, 2] == src.values[kid]).mean()
    assert right == pytest.approx(0.8, abs=5 * math.sqrt(0.16 / n))
    wrong = tri[:, 2][tri[:, 2] != src.values[kid]]
    shift = (wrong - src.values[kid][tri[:, 2] != src.values[kid]]) % 16
    counts = np.bincount(shift, minlength=16)
    assert counts[0] == 0 and counts[1:].min() > 0.8 * counts[1:].mean()


def test_train_batch_is_a_deterministic_function_of_step():
    src = build_source("zipf_facts", {"n_keys": 200, "n_symbols": 32})
    x1, y1 = src.train_batch(5, 8, 33, seed=7)
    x2, y2 = src.train_batch(5, 8, 33, seed=7)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # y is x shifted by one
    assert not torch.equal(x1, src.train_batch(6, 8, 33, seed=7)[0])
    assert not torch.equal(x1, src.train_batch(5, 8, 33, seed=8)[0])
    # Rows are global stream indices: step 5 of batch 8 == rows 40..47 of the stream.
    big, _ = src.train_batch(2, 20, 33, seed=7)
    assert torch.equal(big[0:8], x1)
    ev = src.eval_sets(33, 33 * 8)["valid"]
    assert not torch.equal(ev.x, src.train_batch(0, 8, 33, seed=0)[0])
    assert torch.equal(ev.x, src.eval_sets(33, 33 * 8)["valid"].x)


def test_vocab_is_the_symbol_alphabet_and_world_seed_changes_facts():
    a = build_source("zipf_facts", {}, seed=0)
    b = build_source("zipf_facts", {}, seed=1)
    c = build_source("zipf_facts", {"world_seed": 0}, seed=1)
    assert a.vocab_size == 64 and a.n_keys == 3000
    assert not np.array_equal(a.values, b.values)
    assert np.array_equal(a.values, c.values)
    x, _ = a.train_batch(0, 4, 63, 0)
    assert int(x.max()) < 64


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_keys": 17, "n_symbols": 4}, "n_keys"),
        ({"value_accuracy": 0.0}, "value_accuracy"),
        ({"n_symbols": 1}, "n_symbols"),
        ({"zipf_exponent": "big"}, "zipf_exponent"),
        ({"n_keys": 2.5}, "n_keys"),
        ({"keys": 10}, "unknown option.*`keys`.*n_keys"),
    ],
)
def test_bad_options_raise_spec_error_naming_the_option(options, match):
    with pytest.raises(SpecError, match=match):
        build_source("zipf_facts", options)


def test_bad_batch_arguments():
    src = tiny()
    with pytest.raises(SpecError, match="seq_len"):
        src.train_batch(0, 4, 0, 0)
    with pytest.raises(SpecError, match="step"):
        src.train_batch(-1, 4, 3, 0)
