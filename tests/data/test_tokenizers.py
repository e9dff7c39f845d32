"""Byte and BPE tokenizers: exact round trips, cache reuse, BPE text sources and mixtures."""

import numpy as np
import pytest

from scaling.data import BPETokenizer, ByteTokenizer, build_source, train_bpe
from scaling.data.tokenizers import cache_dir
from scaling.errors import SpecError

CORPUS = [f"def function_{i}(x):\n    return x * {i} + offset  # the value\n" for i in range(200)]
ODD = "naïve café — 日本語 \t\n  spaces   and émojis 🙂 <|endoftext|> end"


def test_byte_round_trip():
    tok = ByteTokenizer()
    ids = tok.encode(ODD)
    assert ids.dtype == np.int64 and ids.max() < 256 and len(ids) == len(ODD.encode())
    assert tok.decode(ids) == ODD


def test_bpe_round_trip_and_cache():
    tok = train_bpe(CORPUS, vocab_size=300, cache_key="test-corpus")
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300 and tok.eos_id == 0
    for text in CORPUS[:3] + [ODD, ""]:
        assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(CORPUS[5])) < len(CORPUS[5].encode()) / 2  # merges learned
    files = list(cache_dir().glob("bpe-*.json"))
    assert files
    again = train_bpe(["unrelated"], vocab_size=300, cache_key="test-corpus")  # served from cache
    assert again.fingerprint == tok.fingerprint
    with pytest.raises(SpecError, match="bpe_vocab_size"):
        train_bpe(CORPUS, vocab_size=100)


def test_bpe_text_source_and_shared_tokenizer_in_mixture(tmp_path):
    for i, text in enumerate(CORPUS):
        (tmp_path / f"f{i:03d}.py").write_text(text)
    opts = {"paths": str(tmp_path / "*.py"), "bpe_vocab_size": 320}
    src = build_source("files", opts, tokenizer="bpe")
    assert src.vocab_size == 320 and src.tokenizer.name == "bpe"
    assert src.tokenizer.decode(src.valid_tokens).split("<|endoftext|>")[0] in CORPUS
    mix = build_source(
        "mixture",
        {"general": {"kind": "files", "options": opts}, "domain": {"kind": "files", "options": opts},
         "domain_share": 0.5},  # fmt: skip
        tokenizer="bpe",
    )
    assert mix.general.tokenizer.fingerprint == mix.domain.tokenizer.fingerprint
    assert mix.vocab_size == 320
    with pytest.raises(SpecError, match="needs no tokenizer"):
        build_source("zipf_facts", {}, tokenizer="bpe")
    with pytest.raises(SpecError, match="unknown tokenizer `wordpiece`"):
        build_source("stdlib_code", {}, tokenizer="wordpiece")
