"""Pretrained tokenizers from a local tokenizer.json (built here with `tokenizers`, no download)."""

import json

import numpy as np
import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokjson import TEXTS, big_vocab_json, byte_level_json

from scaling.data import build_source
from scaling.data.tokenizers import JsonTokenizer, get_tokenizer, load_tokenizer_json
from scaling.errors import DataError, SpecError


def test_gpt2_style_round_trip_and_vocab(tmp_path):
    path = byte_level_json(tmp_path / "gpt2" / "tokenizer.json")
    ref = HFTokenizer.from_file(str(path))
    tok = get_tokenizer(str(path))
    assert isinstance(tok, JsonTokenizer) and tok.name == "json:gpt2"
    assert tok.vocab_size == ref.get_vocab_size() == 320
    assert tok.eos_id == ref.token_to_id("<|endoftext|>") and tok.eos_token == "<|endoftext|>"
    for text in TEXTS[:3] + ["unseen wörds ✓ \x01 tabs\tand\nlines"]:
        ids = tok.encode(text)
        assert ids.dtype == np.int64 and ids.max() < tok.vocab_size
        assert ids.tolist() == ref.encode(text).ids
        assert tok.decode(ids) == text  # byte-level BPE round-trips any text exactly
    assert [e.tolist() for e in tok.encode_batch(TEXTS[:2])] == [tok.encode(t).tolist() for t in TEXTS[:2]]


def test_folder_holding_tokenizer_json_and_fingerprint(tmp_path):
    a = byte_level_json(tmp_path / "a" / "tokenizer.json")
    b = byte_level_json(tmp_path / "b" / "tokenizer.json", vocab_size=300)
    ta, ta2, tb = load_tokenizer_json(a.parent), load_tokenizer_json(a), load_tokenizer_json(b)
    assert ta.fingerprint == ta2.fingerprint != tb.fingerprint
    assert tb.vocab_size == 300


def test_llama_style_bos_template_is_not_inserted_and_eos_found(tmp_path):
    path = byte_level_json(tmp_path / "llama" / "tokenizer.json", eos="</s>", bos="<s>")
    ref = HFTokenizer.from_file(str(path))
    tok = load_tokenizer_json(path)
    assert tok.eos_token == "</s>" and tok.eos_id == ref.token_to_id("</s>")
    with_bos = ref.encode("hello there").ids
    assert with_bos[0] == ref.token_to_id("<s>")
    assert tok.encode("hello there").tolist() == with_bos[1:]  # documents carry no BOS


def test_vocab_above_uint16_and_explicit_eos(tmp_path):
    path = big_vocab_json(tmp_path / "big.json")
    tok = load_tokenizer_json(path)
    assert tok.name == "json:big" and tok.vocab_size == 70_000 and tok.eos_id == 69_999
    assert tok.encode("w1 w69997 w5").tolist() == [1, 69_997, 5]
    assert tok.decode(tok.encode("w1 w69997 w5")) == "w1 w69997 w5"
    assert load_tokenizer_json(path, eos_token="w7").eos_id == 7


def test_errors_name_what_to_fix(tmp_path):
    with pytest.raises(DataError, match="tokenizer file not found: .*missing.json"):
        load_tokenizer_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="bad.json: not a `tokenizers` tokenizer.json"):
        load_tokenizer_json(bad)
    path = byte_level_json(tmp_path / "t" / "tokenizer.json", eos="[END]")
    with pytest.raises(DataError, match="--eos-token"):
        load_tokenizer_json(path)
    with pytest.raises(DataError, match="no token `<nope>`"):
        load_tokenizer_json(path, eos_token="<nope>")
    with pytest.raises(SpecError, match="tokenizer.json"):
        get_tokenizer("wordpiece")


def test_text_source_with_tokenizer_json(tmp_path):
    path = byte_level_json(tmp_path / "gpt2" / "tokenizer.json")
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"text": f"{t} #{i}"}) for i, t in enumerate(TEXTS)))
    src = build_source("jsonl", {"path": str(docs), "valid_fraction": 0.2}, tokenizer=str(path))
    assert src.vocab_size == 320 and src.tokenizer.name == "json:gpt2"
    x, y = src.train_batch(0, 2, 16, seed=0)
    assert int(x.max()) < 320 and (x[:, 1:] == y[:, :-1]).all()
    first = src.tokenizer.decode(src.train_tokens).split("<|endoftext|>")[0]
    assert first in {f"{t} #{i}" for i, t in enumerate(TEXTS)}
