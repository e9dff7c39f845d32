"""stdlib_code and stdlib_docs come from the same files: they are split by file, together."""

from scaling.data import build_source
from scaling.data.corpora import stdlib_code_documents, stdlib_docs_documents, stdlib_split_key
from scaling.data.text import split_documents


def _files(ids, prefix=""):
    return {i.removeprefix(prefix) for i in ids if not i.startswith("topic:")}


def test_no_validation_file_of_one_domain_trains_the_other():
    # the CPT family builds the general source with the data seed and the domain with seed + 1
    code = split_documents(stdlib_code_documents(), 0.05, seed=1, max_bytes=None, split_key=stdlib_split_key)
    docs = split_documents(stdlib_docs_documents(), 0.05, seed=0, max_bytes=None, split_key=stdlib_split_key)
    code_train, code_valid = (_files(d for d, _ in part) for part in code)
    docs_train, docs_valid = (_files((d for d, _ in part), "module:") for part in docs)
    assert len(code_valid) > 20 and len(docs_valid) > 20
    assert not code_valid & docs_train  # a held-out code file's docstrings are not general training text
    assert not docs_valid & code_train  # and the other way round
    both = (code_train | code_valid) & (docs_train | docs_valid)
    assert len(both) > 100 and {f for f in both if f in code_valid} == {f for f in both if f in docs_valid}
    # without the shared key, independent splits leak (the defect this guards against)
    leaky_docs = split_documents(stdlib_docs_documents(), 0.05, seed=0, max_bytes=None)
    assert code_valid & _files((d for d, _ in leaky_docs[0]), "module:")


def test_sources_split_by_file_whatever_their_seeds():
    code = build_source("stdlib_code", {"max_bytes": 400_000, "valid_fraction": 0.2}, seed=1)
    docs = build_source("stdlib_docs", {"max_bytes": 400_000, "valid_fraction": 0.2}, seed=0)
    code_valid, code_train = _files(code.valid_docs), _files(code.train_docs)
    docs_valid, docs_train = _files(docs.valid_docs, "module:"), _files(docs.train_docs, "module:")
    assert code_valid and docs_valid
    assert not code_valid & docs_train and not docs_valid & code_train
    # the split is a property of the file, not the seed
    assert build_source("stdlib_code", {"max_bytes": 400_000, "valid_fraction": 0.2}, seed=5).valid_docs == code.valid_docs
