"""Synthetic transduction: exact Bayes loss against brute-force enumeration of the channel."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from scaling.data.pairs import PairSource, build_pair_source
from scaling.data.transduction import TransductionSource
from scaling.errors import SpecError

TINY = dict(n_words=3, min_len=1, max_len=3, max_alternatives=2, modifier_frac=0.5,
            main_prob_min=0.5, main_prob_max=0.8, zipf_exponent=1.2)  # fmt: skip


def tiny_world(**kw) -> TransductionSource:
    """A tiny world in which some words are modifiers and some are not (so R does something)."""
    for seed in range(50):
        src = TransductionSource(seed=seed, **{**TINY, **kw})
        if 0 < src.modifier.sum() < src.n_words and (src.prob[:, 1] > 0).any():
            return src
    raise AssertionError("no seed gives a mixed-class world")


def zipf(W: int, a: float) -> np.ndarray:
    w = np.arange(1, W + 1, dtype=float) ** -a
    return w / w.sum()


def lexicon(src: TransductionSource, w: int) -> dict[int, float]:
    return {int(v): float(p) for v, p in zip(src.cand[w], src.prob[w]) if p > 0}


def reorder_ref(src: TransductionSource, words: tuple[int, ...]) -> tuple[int, ...]:
    out = list(words)
    for i in range(0, len(words) - 1, 2):
        if src.modifier[words[i]] != src.modifier[words[i + 1]]:
            out[i], out[i + 1] = out[i + 1], out[i]
    return tuple(out)


def channel(src: TransductionSource, x: tuple[int, ...]) -> dict[tuple[int, ...], float]:
    """p(y | x) by enumerating every translation choice."""
    out: dict[tuple[int, ...], float] = Counter()
    # R reorders by source-word classes; then each position is translated independently.
    for choice in itertools.product(*(lexicon(src, w).items() for w in reorder_ref(src, x))):
        out[tuple(v for v, _ in choice)] += math.prod(p for _, p in choice)
    return out


def conditional_nll(src: TransductionSource, x: tuple[int, ...], y: tuple[int, ...]) -> list[float]:
    """-log p(y_t | x, y_<t) for t = 1..L and for EOS, by marginalising over prefixes."""
    dist = channel(src, x)
    nll = []
    for t in range(len(y) + 1):
        den = sum(p for yy, p in dist.items() if yy[:t] == y[:t])
        if t < len(y):
            num = sum(p for yy, p in dist.items() if yy[: t + 1] == y[: t + 1])
        else:  # EOS: all sentences of p(.|x) have length len(x)
            num = sum(p for yy, p in dist.items() if yy == y and len(yy) == len(x))
        nll.append(-math.log(num / den))
    return nll


def decode(row_src: list[int], row_out: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    x = tuple(t - 3 for t in row_src if t >= 3)
    y = tuple(t - 3 for t in row_out if t >= 3)
    return x, y


def test_expected_bayes_loss_matches_enumeration():
    src = tiny_world()
    p_w, span = zipf(3, 1.2), 3
    num = den = 0.0
    for L in range(1, 4):
        for x in itertools.product(range(3), repeat=L):
            px = math.prod(p_w[w] for w in x) / span
            num += px * sum(p * -math.log(p) for p in channel(src, x).values())
            den += px * (L + 1)
    assert src.bayes_loss_expected == pytest.approx(num / den, rel=1e-12)


@pytest.mark.parametrize("origin", ["src_original", "tgt_original", "src_uniform"])
def test_eval_set_bayes_loss_matches_enumeration(origin):
    src = tiny_world()
    ev = src.eval_sets(60)[origin]
    total, n_tok = 0.0, 0
    for s_row, o_row in zip(ev.src.tolist(), ev.tgt_out.tolist()):
        x, y = decode(s_row, o_row)
        assert len(x) == len(y)
        nll = conditional_nll(src, x, y)  # finite: every pair is possible under the channel
        assert nll[-1] == 0.0  # EOS is determined by the source length
        total, n_tok = total + sum(nll), n_tok + len(nll)
    assert n_tok == ev.n_tokens
    assert ev.bayes_loss == pytest.approx(total / n_tok, rel=1e-10)


def test_sampler_matches_channel_distribution():
    src = tiny_world(n_words=2, max_len=2, max_alternatives=1)
    n = 40_000
    s, _, o = src.train_batch(0, n, seed=3)
    counts = Counter(decode(a, b) for a, b in zip(s.tolist(), o.tolist()))
    p_w = zipf(2, 1.2)
    truth = {}
    for L in (1, 2):
        for x in itertools.product(range(2), repeat=L):
            px = math.prod(p_w[w] for w in x) / 2
            for y, py in channel(src, x).items():
                truth[(x, y)] = px * py
    assert set(counts) <= set(truth)
    tv = 0.5 * sum(abs(counts.get(k, 0) / n - p) for k, p in truth.items())
    assert tv < 0.015  # expected TV for 40k draws over ~20 outcomes is about 0.005


def test_tgt_original_targets_follow_target_zipf():
    src = TransductionSource(seed=1, n_words=20, min_len=4, max_len=4, target_zipf_exponent=1.0)
    ev = src.eval_sets(5000)["tgt_original"]
    y = ev.tgt_out[:, :4].reshape(-1) - 3
    freq = np.bincount(y.numpy(), minlength=20) / y.numel()
    p_rank = zipf(20, 1.0)
    expected = np.zeros(20)
    expected[src.tgt_cdf_words] = p_rank
    assert np.abs(freq - expected).max() < 0.01


def test_composition_bias_raises_the_floor():
    src = build_pair_source("transduction", {"n_words": 200})
    ev = src.eval_sets(3000)
    assert ev["tgt_original"].bayes_loss > ev["src_original"].bayes_loss + 0.1
    # The training-like set agrees with the analytic expectation (4 standard errors).
    assert ev["src_original"].bayes_loss == pytest.approx(src.bayes_loss_expected, abs=0.03)


def test_layout_and_determinism():
    src = build_pair_source("transduction", {"n_words": 50, "min_len": 2, "max_len": 5}, seed=4)
    assert isinstance(src, PairSource)
    s, ti, to = src.train_batch(1, 4, seed=7)
    s8, ti8, to8 = src.train_batch(0, 8, seed=7)
    assert torch.equal(s, s8[4:]) and torch.equal(ti, ti8[4:]) and torch.equal(to, to8[4:])
    assert not torch.equal(src.train_batch(1, 4, seed=8)[0], s)
    assert s.shape == ti.shape == to.shape == (4, 6) and s.dtype == torch.int64
    for a, b, c in zip(s.tolist(), ti.tolist(), to.tolist()):
        L = a.index(src.eos_id)
        assert src.min_len <= L <= src.max_len and all(t == src.pad_id for t in a[L + 1 :])
        assert b[0] == src.bos_id and b[1 : L + 1] == c[:L] and c[L] == src.eos_id
        assert all(t == -100 for t in c[L + 1 :]) and all(t == src.pad_id for t in b[L + 1 :])
    out = src.eval_sets(3)["tgt_original"].tgt_out
    assert src.references("tgt_original") == [[t for t in row if t >= 3] for row in out.tolist()]


def test_reorder_is_an_involution():
    src = TransductionSource(n_words=30, max_len=9)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 30, (200, 9))
    lengths = rng.integers(1, 10, 200)
    x[np.arange(9)[None, :] >= lengths[:, None]] = -1
    r = src.reorder(x, lengths)
    assert np.array_equal(src.reorder(r, lengths), x)
    assert not np.array_equal(r, x)
    assert np.array_equal(r[x < 0], x[x < 0])  # padding stays put


def test_world_depends_on_seed_only():
    a, b = TransductionSource(seed=2, n_words=40), TransductionSource(seed=2, n_words=40)
    assert np.array_equal(a.cand, b.cand) and np.array_equal(a.prob, b.prob)
    assert not np.array_equal(TransductionSource(seed=3, n_words=40).cand, a.cand)
    assert np.allclose(a.prob.sum(1), 1.0)


@pytest.mark.parametrize(
    "opts, field",
    [({"n_wordz": 3}, "n_wordz"), ({"min_len": 5, "max_len": 4}, "min_len"), ({"n_words": "x"}, "n_words"),
     ({"main_prob_min": 0.0}, "main_prob_min"), ({"max_alternatives": 10, "n_words": 5}, "max_alternatives")],
)
def test_bad_options_name_the_field(opts, field):
    with pytest.raises(SpecError, match=f"`{field}`"):
        build_pair_source("transduction", opts)


# ---------------------------------------------------------------- multi-symbol words

KEYS = dict(TINY, n_words=3, symbols_per_word=2, n_symbols=2)  # 3 of the 4 two-symbol codes


def keys_world() -> TransductionSource:
    for seed in range(50):
        src = TransductionSource(seed=seed, **KEYS)
        # Mixed classes, an alternative translation, and two target codes sharing a first symbol
        # (so a first symbol alone does not settle the word).
        if (0 < src.modifier.sum() < 3 and (src.prob[:, 1] > 0).any()
                and len(set(src.tgt_code[:, 0].tolist())) < 3):
            return src
    raise AssertionError("no seed gives a mixed keys world")


def symbol_nll(src: TransductionSource, x: tuple[int, ...], y_sym: tuple[int, ...]) -> list[float]:
    """-log p(symbol_t | x, symbols_<t) for every target symbol and EOS, by marginalising the
    word-level channel over symbol prefixes."""
    dist: dict[tuple[int, ...], float] = Counter()
    for y, p in channel(src, x).items():
        dist[tuple(int(c) for v in y for c in src.tgt_code[v])] += p
    nll = []
    for t in range(len(y_sym) + 1):
        den = sum(p for yy, p in dist.items() if yy[:t] == y_sym[:t])
        num = sum(p for yy, p in dist.items() if yy[: t + 1] == y_sym[: t + 1]) if t < len(y_sym) else \
            sum(p for yy, p in dist.items() if yy == y_sym)
        nll.append(-math.log(num / den))
    return nll


def test_keys_layout_and_codes():
    src = keys_world()
    assert src.vocab_size == 2 + 3 and src.max_src_len == 2 * 3 + 1
    for code in (src.src_code, src.tgt_code):
        assert code.shape == (3, 2) and len({tuple(c) for c in code.tolist()}) == 3
    s, ti, to = src.train_batch(0, 16, seed=1)
    assert s.shape == ti.shape == to.shape == (16, 7) and int(s.max()) < src.vocab_size
    for a, c in zip(s.tolist(), to.tolist()):
        L = a.index(src.eos_id)
        assert L % 2 == 0 and c.index(src.eos_id) == L  # two symbols per word on both sides
    # A word's class is a function of its first symbol.
    for a in range(3):
        for b in range(3):
            if src.src_code[a, 0] == src.src_code[b, 0]:
                assert src.modifier[a] == src.modifier[b]


@pytest.mark.parametrize("origin", ["src_original", "tgt_original", "src_uniform"])
def test_keys_bayes_loss_matches_symbol_enumeration(origin):
    src = keys_world()
    inv = {tuple(c): w for w, c in enumerate(src.src_code.tolist())}
    ev = src.eval_sets(60)[origin]
    total, n_tok = 0.0, 0
    for s_row, o_row in zip(ev.src.tolist(), ev.tgt_out.tolist()):
        xs, ys = decode(s_row, o_row)
        assert len(xs) == len(ys) and len(xs) % 2 == 0
        x = tuple(inv[xs[i : i + 2]] for i in range(0, len(xs), 2))
        nll = symbol_nll(src, x, ys)
        assert nll[-1] == 0.0
        total, n_tok = total + sum(nll), n_tok + len(nll)
    assert n_tok == ev.n_tokens
    assert ev.bayes_loss == pytest.approx(total / n_tok, rel=1e-10)


def test_keys_expected_bayes_loss_matches_enumeration():
    src = keys_world()
    p_w = zipf(3, 1.2)
    num = den = 0.0
    for L in range(1, 4):
        for x in itertools.product(range(3), repeat=L):
            px = math.prod(p_w[w] for w in x) / 3
            num += px * sum(p * -math.log(p) for p in channel(src, x).values())
            den += px * (2 * L + 1)
    assert src.bayes_loss_expected == pytest.approx(num / den, rel=1e-12)


def test_keys_sampler_matches_channel_distribution():
    src = keys_world()
    inv_s = {tuple(c): w for w, c in enumerate(src.src_code.tolist())}
    inv_t = {tuple(c): w for w, c in enumerate(src.tgt_code.tolist())}
    n = 40_000
    s, _, o = src.train_batch(0, n, seed=5)
    counts: Counter = Counter()
    for a, b in zip(s.tolist(), o.tolist()):
        xs, ys = decode(a, b)
        counts[(tuple(inv_s[xs[i : i + 2]] for i in range(0, len(xs), 2)),
                tuple(inv_t[ys[i : i + 2]] for i in range(0, len(ys), 2)))] += 1
    p_w, truth = zipf(3, 1.2), {}
    for L in range(1, 4):
        for x in itertools.product(range(3), repeat=L):
            for y, py in channel(src, x).items():
                truth[(x, y)] = math.prod(p_w[w] for w in x) / 3 * py
    assert set(counts) <= set(truth)
    tv = 0.5 * sum(abs(counts.get(k, 0) / n - p) for k, p in truth.items())
    # Expected TV of an n-draw empirical distribution: 0.5·Σ sqrt(2·p(1-p)/(π·n)); allow 1.5x.
    expected = 0.5 * sum(math.sqrt(2 * p * (1 - p) / (math.pi * n)) for p in truth.values())
    assert tv < 1.5 * expected, (tv, expected)


def test_keys_keep_the_word_world():
    """Codes change the tokens, not the lexicon: the word-level world is the same."""
    a = TransductionSource(seed=4, n_words=40)
    b = TransductionSource(seed=4, n_words=40, symbols_per_word=2, n_symbols=8)
    assert np.array_equal(a.cand, b.cand) and np.array_equal(a.prob, b.prob)
    assert b.bayes_loss_expected == pytest.approx(a.bayes_loss_expected * 8 / 15)  # mean_len 7: 7·H/15 vs 7·H/8


@pytest.mark.parametrize(
    "opts, field",
    [({"n_symbols": 8}, "n_symbols"), ({"symbols_per_word": 0}, "symbols_per_word"),
     ({"symbols_per_word": 2, "n_symbols": 1}, "n_symbols"),
     ({"symbols_per_word": 2, "n_symbols": 4, "n_words": 17}, "n_words")],
)
def test_keys_bad_options_name_the_field(opts, field):
    with pytest.raises(SpecError, match=f"`{field}`"):
        build_pair_source("transduction", opts)


# ---------------------------------------------------------------- agreement markers (source context)

AGREE = dict(TINY, n_words=4, agreement_classes=2)


def agree_world(**kw) -> TransductionSource:
    """Mixed modifier classes and mixed agreement classes, so both the order and the markers vary."""
    for seed in range(100):
        src = TransductionSource(seed=seed, **{**AGREE, **kw})
        if 0 < src.modifier.sum() < src.n_words and 0 < src.agree_class.sum() < src.n_words:
            return src
    raise AssertionError("no seed gives a mixed world")


def markers_ref(src: TransductionSource, x: tuple[int, ...]) -> tuple[int, ...]:
    """Marker per target position: the agreement class of the source word before the one being
    translated (after it, for the first word), following that word through the reordering."""
    ctx = [src.agree_class[x[i - 1]] if i else (src.agree_class[x[1]] if len(x) > 1 else 0) for i in range(len(x))]
    order = list(range(len(x)))
    for i in range(0, len(x) - 1, 2):
        if src.modifier[x[i]] != src.modifier[x[i + 1]]:
            order[i], order[i + 1] = order[i + 1], order[i]
    return tuple(int(ctx[j]) for j in order)


def agree_token_nll(src: TransductionSource, x: tuple[int, ...], tokens: tuple[int, ...]) -> list[float]:
    """-log p(token_t | x, tokens_<t) for every target token and EOS, marginalising the channel's
    token sequences (word, marker, word, marker, ...) over prefixes."""
    m = markers_ref(src, x)
    dist: dict[tuple[int, ...], float] = Counter()
    for y, p in channel(src, x).items():
        dist[tuple(t for v, c in zip(y, m) for t in (v + 3, src.marker_offset + c))] += p
    nll = []
    for t in range(len(tokens) + 1):
        den = sum(p for yy, p in dist.items() if yy[:t] == tokens[:t])
        num = sum(p for yy, p in dist.items() if yy[: t + 1] == tokens[: t + 1]) if t < len(tokens) else \
            sum(p for yy, p in dist.items() if yy == tokens)
        nll.append(-math.log(num / den))
    return nll


@pytest.mark.parametrize("origin", ["src_original", "tgt_original", "src_uniform"])
def test_agreement_bayes_loss_matches_token_enumeration(origin):
    src = agree_world()
    ev = src.eval_sets(80)[origin]
    total, n_tok, seen = 0.0, 0, set()
    for s_row, o_row in zip(ev.src.tolist(), ev.tgt_out.tolist()):
        x = tuple(t - 3 for t in s_row if t >= 3)
        toks = tuple(t for t in o_row if t >= 3)
        assert len(toks) == 2 * len(x)
        assert toks[1::2] == tuple(src.marker_offset + c for c in markers_ref(src, x))
        seen.update(toks[1::2])
        nll = agree_token_nll(src, x, toks)
        assert nll[-1] == 0.0 and all(v == 0.0 for v in nll[1:-1:2])  # markers are set by the source
        total, n_tok = total + sum(nll), n_tok + len(nll)
    assert n_tok == ev.n_tokens and len(seen) == 2
    assert ev.bayes_loss == pytest.approx(total / n_tok, rel=1e-10)


def test_agreement_expected_bayes_loss_matches_enumeration():
    src = agree_world()
    p_w = zipf(4, 1.2)
    num = den = 0.0
    for L in range(1, 4):
        for x in itertools.product(range(4), repeat=L):
            px = math.prod(p_w[w] for w in x) / 3
            num += px * sum(p * -math.log(p) for p in channel(src, x).values())
            den += px * (2 * L + 1)
    assert src.bayes_loss_expected == pytest.approx(num / den, rel=1e-12)


def test_agreement_keeps_the_world_and_layout():
    """Markers add tokens, not words: lexicon, order and codes are those without them."""
    kw = dict(n_words=40, symbols_per_word=2, n_symbols=8, max_len=5)
    a, b = TransductionSource(seed=2, **kw), TransductionSource(seed=2, agreement_classes=4, **kw)
    assert np.array_equal(a.cand, b.cand) and np.array_equal(a.modifier, b.modifier)
    assert np.array_equal(a.src_code, b.src_code) and np.array_equal(a.tgt_code, b.tgt_code)
    assert b.vocab_size == a.vocab_size + 4 and b.max_tgt_len == 3 * 5 + 1 and b.max_src_len == a.max_src_len
    sa, _, oa = a.train_batch(0, 32, seed=1)
    sb, ib, ob = b.train_batch(0, 32, seed=1)
    assert torch.equal(sa, sb)
    words = ob[:, :15].reshape(32, 5, 3)
    real = words[:, :, 0] >= 3
    assert torch.equal(words[:, :, :2][real], oa[:, :10].reshape(32, 5, 2)[real])
    assert ((words[:, :, 2][real] >= b.marker_offset) & (words[:, :, 2][real] < b.vocab_size)).all()
    assert torch.equal(ib[:, 1:], torch.where(ob[:, :-1] >= 3, ob[:, :-1], 0))  # teacher forcing, no EOS fed


def test_agreement_bad_option_names_the_field():
    with pytest.raises(SpecError, match="`agreement_classes`"):
        build_pair_source("transduction", {"agreement_classes": 1})
