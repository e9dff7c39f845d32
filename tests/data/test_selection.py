"""Selection methods: DSIR weights by hand, PreSelect's strength brute force vs vectorised, methods
ranking a typed pool, and bad method specs."""

import math
from collections import Counter

import numpy as np
import pytest

from scaling.data import build_source
from scaling.data.pool import GOOD_TYPES, DocumentPool
from scaling.data.selection import check_method, score_pool
from scaling.data.selection.dsir import importance_log_weights, kl, kl_reduction
from scaling.data.selection.features import hash_ngrams, ngram_features
from scaling.data.selection.preselect import strength, strength_bruteforce
from scaling.errors import SpecError

POOL = {"n_docs": 600, "doc_triples": 16, "n_keys": 500}


@pytest.fixture(scope="module")
def pool():
    return build_source("facts_pool", POOL, seed=1)


def precision(pool, method, keep=0.4, **opts):
    kind, o = check_method(method, opts)
    kept = score_pool(pool, kind, o, seed=0, cache=False).keep(pool, keep)
    return float(np.isin(pool.doc_types[kept], GOOD_TYPES).mean())


def test_dsir_weights_match_a_hand_computation():
    docs = [np.array([0, 1, 0, 1]), np.array([2, 2, 2]), np.array([0, 2])]
    target = [np.array([0, 1, 1]), np.array([1, 0])]
    n, B, a = 2, 1 << 20, 1.0  # buckets so many that these few n-grams never collide

    def grams(d):
        return [tuple(d[i:i + k]) for k in (1, 2) for i in range(len(d) - k + 1)]

    raw_c, tgt_c = Counter(g for d in docs for g in grams(d)), Counter(g for d in target for g in grams(d))
    for g in set(raw_c) | set(tgt_c):  # the hashed buckets really are distinct
        assert len({int(hash_ngrams(np.array(g), len(g), B)[0]) for g in set(raw_c) | set(tgt_c)}) == len(
            set(raw_c) | set(tgt_c))
    n_raw, n_tgt = sum(raw_c.values()), sum(tgt_c.values())
    hand = []
    for d in docs:  # sum over the document's n-grams of log p_target / p_raw, add-one over B buckets
        hand.append(sum(math.log((tgt_c[g] + a) / (n_tgt + a * B)) - math.log((raw_c[g] + a) / (n_raw + a * B))
                        for g in grams(d)))
    fd, ft = ngram_features(docs, n, B), ngram_features(target, n, B)
    np.testing.assert_allclose(importance_log_weights(fd, ft.total(), fd.total(), a), hand, rtol=1e-12)
    # KL reduction: selecting the first document (target-like) moves the n-gram distribution closer
    t, r, s = ft.total(), fd.total(), fd.total(np.array([0]))
    assert kl_reduction(t, r, s, a) == pytest.approx(kl(t, r, a) - kl(t, s, a))
    assert kl_reduction(t, r, s, a) > 0 > kl_reduction(t, r, fd.total(np.array([1])), a)


def test_predictive_strength_vectorised_matches_brute_force():
    rng = np.random.default_rng(0)
    ability = rng.normal(size=7)
    ability[3] = ability[5]  # a tie in ability: that pair counts in neither direction
    losses = rng.normal(size=(50, 7)).round(1)  # rounding makes ties in loss (counted as 1/2)
    np.testing.assert_allclose(strength(ability, losses), strength_bruteforce(ability, losses), rtol=1e-12)
    # losses that fall exactly as ability rises -> 1; rise -> 0
    assert strength(ability, -ability[None] + np.zeros((1, 7)))[0] == pytest.approx(1.0)
    assert strength(ability, ability[None] + np.zeros((1, 7)))[0] == pytest.approx(0.0)


def test_model_free_methods_rank_a_typed_pool(pool):
    assert precision(pool, "oracle") == 1.0
    assert precision(pool, "ngram_importance", n=3) >= 0.9
    assert precision(pool, "classifier") >= 0.9
    rand = precision(pool, "random")
    assert abs(rand - np.isin(pool.doc_types, GOOD_TYPES).mean()) < 0.1


def test_perplexity_high_band_keeps_junk_below_random(pool):
    small = {"steps": 60, "d_model": 16, "batch_size": 8}
    high = precision(pool, "perplexity", band="high", **small)
    low = precision(pool, "perplexity", band="low", **small)
    assert high < precision(pool, "random") < low


def test_scores_are_cached_and_reused(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE", str(tmp_path))
    kind, o = check_method("ngram_importance", {"n": 3})
    a = score_pool(pool, kind, o, seed=0)
    assert len(list((tmp_path / "select").glob("ngram_importance-*.npz"))) == 1
    b = score_pool(pool, kind, o, seed=0)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.keep(pool, 0.3), b.keep(pool, 0.3))


def test_bad_methods_name_the_key(pool, tmp_path):
    with pytest.raises(SpecError, match="unknown selection method `magic`"):
        check_method("magic", {})
    with pytest.raises(SpecError, match="option `bandwidth`"):
        check_method("perplexity", {"bandwidth": 3})
    with pytest.raises(SpecError, match="`band` must be one of"):
        check_method("ppl", {"kind": "perplexity", "band": "top"})
    untyped = DocumentPool()
    untyped.name, untyped.tokens, untyped.offsets = "my_docs", np.arange(10), np.array([0, 5, 10])
    with pytest.raises(SpecError, match="`oracle` needs a pool with known document types.*my_docs"):
        score_pool(untyped, "oracle", {}, cache=False)
    with pytest.raises(SpecError, match="`column`: `name` = 'quality'"):
        score_pool(untyped, "column", {"name": "quality", "higher_is_better": True}, cache=False)


def test_dsir_gumbel_top_k_is_seeded_sampling(pool):
    kind, top = check_method("ngram_importance", {"n": 3})
    gumbel = {**top, "sampling": "gumbel"}
    base = score_pool(pool, kind, top, seed=0, cache=False).scores
    g0, g0b, g1 = (score_pool(pool, kind, gumbel, seed=s, cache=False).scores for s in (0, 0, 1))
    np.testing.assert_array_equal(g0, g0b)
    assert not np.array_equal(g0, g1)
    noise = g0 - base  # the Gumbel perturbation: mean Euler's gamma, variance pi^2/6
    assert noise.mean() == pytest.approx(0.5772, abs=0.15) and noise.var() == pytest.approx(math.pi ** 2 / 6, rel=0.25)


@pytest.mark.slow
def test_predictive_strength_distilled_into_a_classifier_keeps_its_precision(pool):
    """PreSelect's distillation: probes score a quarter of the pool, the top and bottom 30% of that
    sample by strength label a hashed n-gram classifier, which then scores every document.
    Measured on this pool (600 docs, 150 probe steps): strength 1.0/1.0/0.975/0.93 at keep
    0.1/0.25/0.4/0.5, distilled 1.0 at all four."""
    kind, full = check_method("predictive_strength", {"steps": 150})
    _, dist = check_method("predictive_strength", {"steps": 150, "distill": True})
    ps, dd = (score_pool(pool, kind, o, seed=0, cache=False) for o in (full, dist))
    good = np.isin(pool.doc_types, GOOD_TYPES)
    for keep in (0.25, 0.4, 0.5):
        p_ps, p_dd = (float(good[s.keep(pool, keep)].mean()) for s in (ps, dd))
        assert p_dd >= p_ps - 0.02 and p_dd >= 0.95, (keep, p_ps, p_dd)
    assert dd.flops < ps.flops  # the probes forward a quarter of the pool; the classifier is cheap
    with pytest.raises(SpecError, match="`distill_labels` must be a share in \\(0, 0.5\\]"):
        check_method("predictive_strength", {"distill": True, "distill_labels": 0.8})
    with pytest.raises(SpecError, match="`distill` must be true or false"):
        check_method("predictive_strength", {"distill": "yes"})
