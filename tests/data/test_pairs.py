"""Pair sources from text: stdlib docstring -> code, user JSONL/TSV/parquet, and the registry."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest
import torch

from scaling.data.pairs import (
    PairSource,
    build_pair_source,
    decode_bytes,
    encode_pairs,
    pair_source_kinds,
    pair_source_options,
)
from scaling.data.text_pairs import function_pairs, stdlib_function_pairs
from scaling.errors import DataError, SpecError

CODE = textwrap.dedent(
    '''
    def add(a, b):
        """Add two numbers.

        Returns a + b.
        """
        return a + b

    class K:
        def m(self):
            """Method doc."""
            x = 1
            return x

    def undocumented():
        return 1

    def only_doc():
        """Nothing else."""

    def one_line(): "doc"; return 2
    '''
)


def test_function_pairs_strip_docstring():
    pairs = dict(function_pairs(CODE))
    assert set(pairs) == {"Add two numbers.\n\nReturns a + b.", "Method doc."}
    assert pairs["Add two numbers.\n\nReturns a + b."] == "def add(a, b):\n    return a + b"
    assert pairs["Method doc."] == "def m(self):\n    x = 1\n    return x"
    assert function_pairs("def broken(:\n") == []


def test_encode_pairs_layout_and_truncation():
    src, tgt_in, tgt_out = encode_pairs([("ab", "xyz"), ("abcdef", "uvwxyz")], max_src_len=4, max_tgt_len=5)
    b = lambda s: [c + 3 for c in s.encode()]  # noqa: E731
    assert src.tolist() == [b("ab") + [2, 0], b("abc") + [2]]
    assert tgt_in.tolist() == [[1] + b("xyz") + [0], [1] + b("uvwx")]
    assert tgt_out.tolist() == [b("xyz") + [2, -100], b("uvwxy")]  # cut target: no EOS
    assert decode_bytes(src[0].tolist()) == "ab"
    assert decode_bytes([c + 3 for c in "é".encode()]) == "é"


def test_stdlib_source_split_by_file():
    found = stdlib_function_pairs(60)
    src = build_pair_source("stdlib_docstring_code", {"max_files": 60, "eval_frac": 0.2, "max_tgt_len": 64})
    assert isinstance(src, PairSource)
    assert src.bayes_loss_expected is None and src.vocab_size == 259
    by_path: dict[str, set] = {}
    for path, pair in found:
        by_path.setdefault(path, set()).add(pair)
    train, valid = set(src.train), set(src.valid)
    assert len(train) + len(valid) >= 0.99 * len({p for _, p in found}) and valid and train
    for pairs in by_path.values():  # every file lies wholly on one side (up to duplicate pairs)
        assert not (pairs & train and pairs - train)
    # Same seed, same split; another seed, another split.
    again = build_pair_source("stdlib_docstring_code", {"max_files": 60, "eval_frac": 0.2})
    assert again.valid == src.valid
    other = build_pair_source("stdlib_docstring_code", {"max_files": 60, "eval_frac": 0.2}, seed=1)
    assert other.valid != src.valid
    ev = src.eval_sets(5)["valid"]
    assert ev.bayes_loss is None and ev.src.shape == (5, 256) and ev.tgt_out.shape == (5, 64)
    refs = src.references("valid")
    assert refs == [[b + 3 for b in t.encode()[:64]] for _, t in src.valid[:5]]


def test_text_train_batches_are_indexed():
    src = build_pair_source("stdlib_docstring_code", {"max_files": 30, "eval_frac": 0.3, "max_tgt_len": 32})
    a = src.train_batch(2, 3, seed=0)
    b = src.train_batch(0, 9, seed=0)
    assert all(torch.equal(x, y[6:]) for x, y in zip(a, b))
    s, ti, to = a
    assert s.shape == (3, 256) and ti.shape == to.shape == (3, 32)
    assert torch.equal(ti[:, 1:][to[:, :-1] >= 3], to[:, :-1][to[:, :-1] >= 3])


def _rows(n: int) -> list[dict]:
    return [{"de": f"satz {i}", "en": f"sentence {i}", "extra": i} for i in range(n)]


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "parquet"])
def test_user_pair_files(tmp_path, fmt):
    rows = _rows(200)
    path = tmp_path / f"pairs.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif fmt == "tsv":
        pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    src = build_pair_source(f"pairs_{fmt}", {"path": str(path), "src_column": "de", "tgt_column": "en",
                                             "eval_frac": 0.1, "max_src_len": 16, "max_tgt_len": 16})  # fmt: skip
    assert sorted(src.train + src.valid) == sorted((r["de"], r["en"]) for r in rows)
    assert 5 <= len(src.valid) <= 40  # about 10% of 200
    ev = src.eval_sets(1000)["valid"]
    assert ev.src.shape[0] == len(src.valid)
    decoded = [(decode_bytes(s), decode_bytes(t)) for s, t in zip(ev.src.tolist(), ev.tgt_out.tolist())]
    assert decoded == src.valid
    assert [decode_bytes(r) for r in src.references("valid")] == [t for _, t in src.valid]


def test_user_pair_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        build_pair_source("pairs_jsonl", {"path": str(tmp_path / "missing.jsonl")})
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in _rows(20)))
    with pytest.raises(DataError, match=r"no column `source` \(option `src_column`\)"):
        build_pair_source("pairs_jsonl", {"path": str(p)})
    with pytest.raises(DataError, match="`tgt`"):
        build_pair_source("pairs_jsonl", {"path": str(p), "src_column": "de", "tgt_column": "tgt"})
    with pytest.raises(SpecError, match="`path`"):
        build_pair_source("pairs_jsonl", {})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a", "target": "b"}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        build_pair_source("pairs_jsonl", {"path": str(bad)})
    num = tmp_path / "num.parquet"
    pd.DataFrame({"source": ["a", "b"], "target": [1, 2]}).to_parquet(num)
    with pytest.raises(DataError, match="row 1"):
        build_pair_source("pairs_parquet", {"path": str(num)})


def test_registry_and_options():
    assert set(pair_source_kinds()) == {"transduction", "stdlib_docstring_code", "pairs_jsonl", "pairs_tsv",
                                        "pairs_parquet"}  # fmt: skip
    assert pair_source_options("pairs_tsv")["src_column"] == "source"
    assert pair_source_options("transduction")["n_words"] == 300
    with pytest.raises(SpecError, match="unknown pair source `nope`"):
        build_pair_source("nope", {})
    with pytest.raises(SpecError, match="`max_tgt_lenn`"):
        build_pair_source("stdlib_docstring_code", {"max_tgt_lenn": 3})
    with pytest.raises(SpecError, match="`eval_frac`"):
        build_pair_source("stdlib_docstring_code", {"max_files": 5, "eval_frac": 1.5})


def test_references_need_eval_sets():
    src = build_pair_source("transduction", {"n_words": 20})
    with pytest.raises(DataError, match="eval_sets"):
        src.references("src_original")
    src.eval_sets(2)
    with pytest.raises(DataError, match="no eval set `valid`"):
        src.references("valid")
