"""MixtureSource: exact domain share, prefix-of-stream property, eval set names, vocab check."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from scaling.data import MarkovSource, MixtureSource, ZipfFactsSource, build_source
from scaling.errors import SpecError


def sources():
    g = ZipfFactsSource(n_symbols=16, n_keys=40, world_seed=0)
    d = MarkovSource(n_symbols=16, order=1, branching=3, world_seed=1)
    return g, d


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 1 / 3, 0.37, 0.999, 1.0])
def test_share_is_exact_for_every_prefix(share):
    mix = MixtureSource(*sources(), domain_share=share)
    dom = mix.is_domain(np.arange(10_000))
    r = Fraction(share).limit_denominator(10**6)
    prefix = np.concatenate([[0], np.cumsum(dom)])
    expected = np.array([n * r.numerator // r.denominator for n in range(10_001)])
    assert np.array_equal(prefix, expected)
    for steps, bs, L in [(1, 1, 5), (7, 32, 63), (1000, 3, 10)]:
        assert mix.domain_tokens(steps, bs, L) == math.floor(steps * bs * r) * L
        assert mix.domain_tokens(steps, bs, L) == int(dom[: steps * bs].sum()) * L if steps * bs <= 10_000 else True


def test_rows_are_prefixes_of_each_component_stream():
    g, d = sources()
    mix = MixtureSource(g, d, domain_share=0.3)
    x, y = mix.train_batch(2, 10, 12, seed=5)
    idx = np.arange(20, 30)
    dom = mix.is_domain(idx)
    n_dom_before = np.array([i * 3 // 10 for i in idx])
    want_d = d.sequences(n_dom_before[dom].astype(np.uint64), 12, 5)
    want_g = g.sequences((idx - n_dom_before)[~dom].astype(np.uint64), 12, 5)
    assert torch.equal(x[torch.from_numpy(dom)], torch.from_numpy(want_d[:, :-1]))
    assert torch.equal(y[torch.from_numpy(~dom)], torch.from_numpy(want_g[:, 1:]))
    assert dom.sum() == 3


def test_eval_sets_and_expected_loss():
    g, d = sources()
    mix = MixtureSource(g, d, domain_share=0.2)
    evs = mix.eval_sets(9, 900)
    assert sorted(evs) == ["domain/valid", "general/valid"]
    assert evs["general/valid"].name == "general/valid"
    assert evs["domain/valid"].bayes_loss == d.eval_sets(9, 900)["valid"].bayes_loss
    assert mix.bayes_loss_expected == pytest.approx(0.8 * g.bayes_loss_expected + 0.2 * d.bayes_loss_expected)
    want = 0.8 * g.expected_bayes_loss(10) + 0.2 * d.expected_bayes_loss(10)
    assert mix.expected_bayes_loss(10) == pytest.approx(want)


def test_build_from_options_gives_domain_a_different_world():
    mix = build_source("mixture", {"domain_share": 0.5, "domain": {"kind": "zipf_facts", "options": {}}}, seed=3)
    assert mix.general.world_seed == 3 and mix.domain.world_seed == 4
    assert not np.array_equal(mix.general.values, mix.domain.values)
    assert mix.domain_tokens(10, 4, 63) == 20 * 63


def test_vocab_mismatch_and_bad_options_raise():
    g = ZipfFactsSource(n_symbols=16, n_keys=40)
    with pytest.raises(SpecError, match="vocab"):
        MixtureSource(g, ZipfFactsSource(n_symbols=8, n_keys=40), domain_share=0.1)
    with pytest.raises(SpecError, match="domain_share"):
        MixtureSource(g, g, domain_share=1.5)
    with pytest.raises(SpecError, match="vocab"):
        build_source("mixture", {"domain": {"kind": "stdlib_code", "options": {"max_bytes": 20000}}})
    with pytest.raises(SpecError, match="`general` must be a table"):
        build_source("mixture", {"general": "zipf_facts"})
    with pytest.raises(SpecError, match="unknown data source `nope`"):
        build_source("mixture", {"domain": {"kind": "nope"}})
