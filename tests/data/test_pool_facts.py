"""`facts_pool`: document types, the training stream over a selection, and the exact loss floor of a
selected mixture against brute force on a tiny world."""

import itertools
import math

import numpy as np
import pytest

from scaling.data import build_source
from scaling.data.pool import keep_by_token_share, rank_of
from scaling.errors import SpecError

TINY = {"n_symbols": 4, "n_keys": 6, "value_accuracy": 0.7, "zipf_exponent": 1.0, "n_docs": 40, "doc_triples": 2,
        "shares": {"clean": 0.4, "decoy": 0.2, "junk": 0.2, "offworld": 0.1, "dup": 0.1}, "dup_sources": 2}


@pytest.fixture(scope="module")
def tiny():
    return build_source("facts_pool", TINY, seed=3)


def _naive_prob(world, seq) -> float:
    """P_world(seq) for a whole number of triples, from the world's tables, one triple at a time."""
    V, q = world.vocab_size, world.value_accuracy
    p = 1.0
    for k1, k2, v in zip(seq[0::3], seq[1::3], seq[2::3]):
        rank = [r for r in range(world.n_keys) if world.k1[r] == k1 and world.k2[r] == k2]
        if not rank:
            return 0.0
        r = rank[0]
        p *= world.key_probs[r] * (q if v == world.values[r] else (1 - q) / (V - 1))
    return p


def _brute_mixture_loss(pool, weights, window) -> float:
    """-log p_mix(x_1..x_L | x_0) / L with p_mix(x_0) marginalised by enumerating every continuation."""
    V, L1 = pool.vocab_size, len(window)
    worlds = {"clean": pool.clean, "decoy": pool.decoy, "offworld": pool.offworld}
    S, junk0 = pool.n_symbols, pool.junk_offset  # junk: uniform over symbols junk0 .. junk0 + S - 1

    def p_mix(seq):
        total = 0.0
        for t, w in weights.items():
            if w > 0 and t == "junk":
                total += w * (S ** -len(seq) if all(junk0 <= s < junk0 + S for s in seq) else 0.0)
            elif w > 0:
                total += w * (_naive_prob(worlds[t], seq) if all(s < S for s in seq) else 0.0)
        return total

    joint = p_mix(list(window))
    first = sum(p_mix([int(window[0]), *rest]) for rest in itertools.product(range(V), repeat=L1 - 1))
    return -(math.log(joint) - math.log(first)) / (L1 - 1)


def test_types_in_their_shares_and_their_definitions(tiny):
    types, counts = np.unique(tiny.doc_types, return_counts=True)
    assert dict(zip(types, counts)) == {"clean": 16, "decoy": 8, "junk": 8, "offworld": 4, "dup": 4}
    dups = [tuple(tiny.document(i)) for i in np.where(tiny.doc_types == "dup")[0]]
    assert len(set(dups)) == 2  # dup_sources distinct documents, repeated
    assert (tiny.decoy.values != tiny.clean.values).all()  # a derangement: every decoy value is wrong
    np.testing.assert_array_equal(tiny.decoy.k1, tiny.clean.k1)
    np.testing.assert_array_equal(tiny.oracle_scores()[tiny.doc_types == "clean"], 1.0)
    assert (tiny.oracle_scores()[np.isin(tiny.doc_types, ["junk", "decoy", "offworld"])] == 0).all()


def test_floor_matches_brute_force_on_a_tiny_world(tiny):
    ev = tiny.eval_sets(5, 20)["valid"]  # 4 windows of 2 triples
    tokens = np.concatenate([ev.x.numpy(), ev.y.numpy()[:, -1:]], axis=1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        kept = np.sort(rng.choice(tiny.n_docs, size=15, replace=False))
        w = tiny.mixture_weights(kept)
        brute = np.mean([_brute_mixture_loss(tiny, w, row) for row in tokens])
        assert tiny.selection_floor(kept, ev) == pytest.approx(brute, rel=1e-10)


def test_disjoint_junk_floor_matches_brute_force_and_leaves_the_floor_unchanged():
    tiny = build_source("facts_pool", {**TINY, "junk_alphabet": "disjoint"}, seed=3)
    assert tiny.vocab_size == 8
    junk = tiny.doc_types == "junk"
    docs = tiny.tokens.reshape(tiny.n_docs, -1)
    assert (docs[junk] >= 4).all() and (docs[~junk] < 4).all()
    ev = tiny.eval_sets(5, 20)["valid"]
    tokens = np.concatenate([ev.x.numpy(), ev.y.numpy()[:, -1:]], axis=1)
    for kept in (np.arange(tiny.n_docs), np.where(~junk)[0], np.where(np.isin(tiny.doc_types, ["clean", "junk"]))[0]):
        w = tiny.mixture_weights(kept)
        brute = np.mean([_brute_mixture_loss(tiny, w, row) for row in tokens])
        assert tiny.selection_floor(kept, ev) == pytest.approx(brute, rel=1e-10)
    # junk identified by its first token, which is never predicted: removing it leaves the floor as it is
    pool = build_source("facts_pool", {"n_docs": 400, "doc_triples": 8, "shares": {"clean": 0.5, "junk": 0.5},
                                       "junk_alphabet": "disjoint"})
    ev = pool.eval_sets(47, 4700)["valid"]
    clean = np.where(pool.doc_types == "clean")[0]
    assert pool.selection_floor(np.arange(400), ev) == pytest.approx(ev.bayes_loss, rel=1e-12)
    assert pool.selection_floor(clean, ev) == pytest.approx(ev.bayes_loss, rel=1e-12)
    with pytest.raises(SpecError, match="junk_alphabet"):
        build_source("facts_pool", {"junk_alphabet": "own"})


def test_clean_selection_floor_is_the_bayes_loss_and_junk_raises_it():
    pool = build_source("facts_pool", {"n_docs": 400, "doc_triples": 8, "shares": {"clean": 0.5, "junk": 0.5}})
    ev = pool.eval_sets(47, 4700)["valid"]
    clean = np.where(pool.doc_types == "clean")[0]
    assert pool.selection_floor(clean, ev) == pytest.approx(ev.bayes_loss, rel=1e-12)
    assert pool.selection_floor(np.arange(400), ev) > ev.bayes_loss + 1e-4


def test_stream_over_a_selection_repeats_each_kept_document_once_per_epoch(tiny):
    kept = np.array([1, 5, 7, 20, 33])
    stream = tiny.subset(kept)
    L = 6  # every document is 2 triples
    tokens = stream.sequences(np.arange(12), L - 1, seed=4)  # windows of 6 tokens, stride 5: 61 tokens
    flat = np.concatenate([tokens[0], *(t[1:] for t in tokens[1:])])[: 2 * 5 * L]
    for epoch in range(2):
        docs = {tuple(flat[epoch * 5 * L + j * L: epoch * 5 * L + (j + 1) * L]) for j in range(5)}
        assert docs == {tuple(tiny.document(i)) for i in kept}
    again = stream.sequences(np.arange(3, 6), L - 1, seed=4)
    np.testing.assert_array_equal(again, tokens[3:6])  # indexed: a pure function of (index, seed)


def test_unique_tokens_count_each_repeated_document_once():
    # a bigger pool than TINY, so that every dup source is repeated several times
    pool = build_source("facts_pool", {**TINY, "n_symbols": 16, "n_keys": 40, "n_docs": 200, "doc_triples": 4},
                        seed=3)
    types, L = pool.doc_types, 3 * 4
    dup = np.flatnonzero(types == "dup")
    assert len(dup) > 2 * 2  # each of the 2 dup sources repeated more than twice
    everything = np.arange(pool.n_docs)
    # ground truth from the pool's construction: dup document i repeats source i mod dup_sources,
    # and no other two documents coincide (random facts of 4 triples over 16 symbols)
    assert pool.unique_tokens(everything) == L * (int((types != "dup").sum()) + len({int(i) % 2 for i in dup}))
    assert pool.unique_tokens(everything) < int(pool.doc_lengths.sum())
    assert pool.unique_tokens(dup) == 2 * L and pool.unique_tokens(dup[:1]) == L
    clean = np.flatnonzero(types == "clean")
    assert pool.unique_tokens(clean) == int(pool.doc_lengths[clean].sum())


def test_keep_by_token_share_and_rank():
    scores = np.array([0.1, 0.9, 0.5, 0.7, np.nan])
    lengths = np.array([10, 10, 10, 10, 10])
    np.testing.assert_array_equal(keep_by_token_share(scores, lengths, 0.4), [1, 3])
    np.testing.assert_array_equal(rank_of(scores), [4, 1, 3, 2, 5])
    np.testing.assert_array_equal(keep_by_token_share(scores, np.array([30, 5, 5, 5, 5]), 0.2), [1, 3])
    np.testing.assert_array_equal(keep_by_token_share(scores, np.array([30, 5, 5, 5, 5]), 0.25), [1, 2, 3])


def test_bad_shares_name_the_key():
    with pytest.raises(SpecError, match="shares"):
        build_source("facts_pool", {"shares": {"clean": 0.5, "spam": 0.5}})
    with pytest.raises(SpecError, match="sum to 1"):
        build_source("facts_pool", {"shares": {"clean": 0.5, "junk": 0.2}})
