"""`text_pool`: labelled corruptions are what they say, target and pool never share a document, and
user score columns follow their documents."""

from collections import Counter

import numpy as np
import pytest

from scaling.data import build_source
from scaling.data.pool_text import BOILERPLATE, corrupt
from scaling.errors import SpecError

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "docs.jsonl"
    rng = np.random.default_rng(0)
    lines = [f'{{"text": "doc{i} ' + " ".join(rng.choice(WORDS, 30)) + f'", "q": {i}}}' for i in range(200)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_corruptions_keep_what_they_should():
    rng = np.random.default_rng(1)
    chunk = b"the quick brown fox jumps over the lazy dog"
    assert Counter(corrupt(chunk, "byte_shuffle", rng)) == Counter(chunk)
    assert Counter(corrupt(chunk, "word_shuffle", rng).split()) == Counter(chunk.split())
    rb = corrupt(chunk, "random_bytes", rng)
    assert len(rb) == len(chunk) and all(32 <= b < 127 for b in rb)
    assert corrupt(chunk, "boilerplate", rng) == BOILERPLATE.encode()[:len(chunk)]


def test_pool_types_target_split_and_scores(jsonl):
    opts = {"source": "jsonl", "source_options": {"path": str(jsonl)}, "chunk_bytes": 4096, "valid_fraction": 0.2,
            "corruptions": {"byte_shuffle": 0.2, "boilerplate": 0.2}, "score_columns": ["q"]}
    pool = build_source("text_pool", opts)
    types = Counter(pool.doc_types)
    assert set(types) == {"clean", "byte_shuffle", "boilerplate"} and sum(types.values()) == pool.n_docs
    assert abs(types["byte_shuffle"] / pool.n_docs - 0.2) < 0.1
    texts = [bytes(pool.document(i)[:-1].astype(np.uint8).tolist()) for i in range(pool.n_docs)]
    clean = [t for t, k in zip(texts, pool.doc_types) if k == "clean"]
    q = pool.doc_columns["q"][pool.doc_types == "clean"]
    assert all(t.startswith(f"doc{int(v)} ".encode()) for t, v in zip(clean, q))  # the score follows its doc
    target = {bytes(d[:-1].astype(np.uint8).tolist()).split()[0] for d in pool.target_documents()}
    assert target and not target & {t.split()[0] for t in clean}  # no document in both
    assert pool.n_docs + len(target) < 200  # the eval half of the target split is apart too
    assert "valid" in pool.eval_sets(16, 64) and pool.oracle_scores()[pool.doc_types == "clean"].min() == 1.0


def test_untyped_pool_and_bad_options(jsonl):
    pool = build_source("text_pool", {"source": "jsonl", "source_options": {"path": str(jsonl)}})
    assert not pool.has_types
    with pytest.raises(SpecError, match="`corruptions` has unknown kind `upper`"):
        build_source("text_pool", {"source": "jsonl", "source_options": {"path": str(jsonl)},
                                   "corruptions": {"upper": 0.1}})
