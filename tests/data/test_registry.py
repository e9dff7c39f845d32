"""build_source / source_options: every kind builds, options are checked, names are short."""

import pytest

from scaling.data import EvalSet, LMSource, build_source, source_kinds, source_options
from scaling.errors import SpecError

SMALL = {
    "zipf_facts": {"n_keys": 100},
    "markov": {"n_symbols": 8},
    "stdlib_code": {"max_bytes": 40_000},
    "stdlib_docs": {"max_bytes": 40_000},
    "mixture": {"domain_share": 0.5},
}


def test_kinds_and_options():
    assert set(source_kinds()) == {"zipf_facts", "markov", "stdlib_code", "stdlib_docs", "stdlib_tests", "stdlib_decimal", "files", "jsonl",
                                   "parquet", "prepared", "mixture", "facts_pool", "text_pool"}  # fmt: skip
    assert source_options("zipf_facts") == {"n_symbols": 64, "n_keys": 3000, "zipf_exponent": 1.4,
                                            "value_accuracy": 0.9, "world_seed": None}  # fmt: skip
    assert {"path", "field", "valid_fraction", "max_bytes", "bpe_vocab_size"} == set(source_options("jsonl"))
    with pytest.raises(SpecError, match="unknown data source `zipf`; expected one of zipf_facts"):
        source_options("zipf")


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_every_kind_satisfies_the_protocol(kind):
    src = build_source(kind, SMALL[kind])
    assert isinstance(src, LMSource)
    x, y = src.train_batch(0, 2, 12, seed=0)
    assert x.shape == y.shape == (2, 12) and 0 <= int(x.min()) and int(x.max()) < src.vocab_size
    evs = src.eval_sets(12, 120)
    assert all(isinstance(e, EvalSet) and e.name == k for k, e in evs.items())
    assert list(evs) == (["general/valid", "domain/valid"] if kind == "mixture" else ["valid"])
    synthetic = kind in ("zipf_facts", "markov", "mixture")
    assert (src.bayes_loss_expected is not None) == synthetic
    assert all((e.bayes_loss is not None) == synthetic for e in evs.values())
    info = src.info()
    assert info["source"] == kind and info["vocab_size"] == src.vocab_size
    if kind.startswith("stdlib"):
        assert info["n_train_tokens"] == src.n_train_tokens and info["tokenizer"] == "byte"
    if kind == "mixture":
        assert info["domain_share"] == 0.5 and info["domain_source"] == "zipf_facts"


def test_option_types_are_checked():
    assert build_source("zipf_facts", {"n_keys": 100.0}).n_keys == 100  # TOML may give 100.0
    with pytest.raises(SpecError, match="option `value_accuracy` must be a number"):
        build_source("zipf_facts", {"value_accuracy": "high"})
    with pytest.raises(SpecError, match="option `n_symbols` must be an integer, got True"):
        build_source("zipf_facts", {"n_symbols": True})
    with pytest.raises(SpecError, match="max_bytes"):
        build_source("stdlib_code", {"max_bytes": -5})
    with pytest.raises(SpecError, match="valid_fraction"):
        build_source("stdlib_code", {"valid_fraction": 1.0})


STREAM = {**SMALL, "stdlib_tests": {"max_bytes": 60_000}, "stdlib_decimal": {"max_bytes": 60_000},
          "facts_pool": {"n_symbols": 8, "n_keys": 20, "n_docs": 60, "doc_triples": 4},
          "text_pool": {"max_docs": 200, "corruptions": {"byte_shuffle": 0.2}}}


@pytest.mark.parametrize("kind", sorted(STREAM))
def test_training_rows_are_one_global_stream(kind):
    """base.py's contract, for every kind that needs no user file: row r of the batch at step s is
    stream sequence s * batch_size + r, so step 1 of batch 4 is rows 4..7 of step 0 of batch 8 (a
    resumed run, or one with another batch split, sees the same sequences); the same call gives
    the same batch, and another seed another one."""
    import torch

    src = build_source(kind, STREAM[kind])
    x8, y8 = src.train_batch(0, 8, 16, seed=5)
    x4, y4 = src.train_batch(1, 4, 16, seed=5)
    assert torch.equal(x4, x8[4:]) and torch.equal(y4, y8[4:])
    assert torch.equal(src.train_batch(0, 8, 16, seed=5)[0], x8)
    assert not torch.equal(src.train_batch(0, 8, 16, seed=6)[0], x8)
    assert x8.dtype == y8.dtype == torch.int64
    assert torch.equal(x8[:, 1:], y8[:, :-1])  # targets are the next tokens
