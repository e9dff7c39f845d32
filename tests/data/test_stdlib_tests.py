"""`stdlib_tests`: the standard library's test files, a third offline CPT domain, disjoint from
`stdlib_code` by construction (a file is a test file iff a folder on its path is a test folder)."""

import os
from pathlib import Path

from scaling.data import build_source, source_kinds
from scaling.data.corpora import stdlib_files, stdlib_root, stdlib_tests_documents

TEST_DIRS = {"test", "tests", "idle_test"}
NEVER = {"site-packages", "dist-packages", "__pycache__"}


def _walk() -> tuple[set[str], set[str]]:
    """Every stdlib .py file outside site-packages/__pycache__, split by hand into (code, tests)."""
    root = stdlib_root()
    code, tests = set(), set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in NEVER]
        parts = Path(os.path.relpath(dirpath, root)).parts
        for f in filenames:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                (tests if TEST_DIRS & set(parts) else code).add(rel)
    return code, tests


def test_test_files_and_code_files_partition_the_stdlib():
    code, tests = set(stdlib_files()), set(stdlib_files(tests=True))
    assert not code & tests
    by_hand_code, by_hand_tests = _walk()
    assert code == by_hand_code  # stdlib_code's file list is what it always was: everything outside test folders
    assert tests == by_hand_tests
    assert len(tests) > 100 and any(t.startswith("test/") for t in tests)
    assert all(TEST_DIRS & set(Path(t).parts[:-1]) for t in tests)


def test_source_reads_only_test_files_and_splits_them_apart_from_code():
    assert "stdlib_tests" in source_kinds()
    ids = {d for d, _ in stdlib_tests_documents()}
    assert ids == set(stdlib_files(tests=True))
    src = build_source("stdlib_tests", {"max_bytes": 200_000, "valid_fraction": 0.2})
    code = build_source("stdlib_code", {"max_bytes": 200_000, "valid_fraction": 0.2})
    assert src.vocab_size == code.vocab_size == 256
    assert set(src.train_docs) | set(src.valid_docs) <= ids
    assert not (set(src.train_docs) | set(src.valid_docs)) & (set(code.train_docs) | set(code.valid_docs))
    ev = src.eval_sets(64, 4096)["valid"]
    assert ev.x.shape == (64, 64) and ev.bayes_loss is None
    x, _ = src.train_batch(0, 8, 64, seed=0)
    assert x.shape == (8, 64) and int(x.max()) < 256
    # the training stream is test code: unittest methods everywhere, as in no stdlib_code stream of its size
    text = bytes(src.train_tokens.astype("uint8")).decode("utf-8", errors="replace")
    other = bytes(code.train_tokens.astype("uint8")).decode("utf-8", errors="replace")
    assert text.count("def test") > 20 * max(1, other.count("def test"))
