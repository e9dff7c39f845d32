"""A study spec names a local tokenizer.json as its `[data] tokenizer`."""

import pytest
from tokjson import byte_level_json

from scaling.config import spec_from_dict
from scaling.errors import ScalingError
from scaling.train import expand, plan_rows


def spec(tokenizer: str, text: str):
    return spec_from_dict({"study": {"name": "tok"}, "data": {"source": "files", "options": {"paths": text},
                                                              "tokenizer": tokenizer, "eval_tokens": 64},
                           "model": {"shapes": [{"d_model": 8, "n_layers": 1, "n_heads": 2}]},
                           "train": {"steps": 2, "batch_size": 2, "seq_len": 8}})


def test_a_tokenizer_json_in_the_spec_sets_the_vocabulary(tmp_path):
    tok = byte_level_json(tmp_path / "tok" / "tokenizer.json", vocab_size=320)
    text = tmp_path / "docs"
    text.mkdir()
    for i in range(12):
        (text / f"d{i}.txt").write_text(f"The quick brown fox {i} jumps over the lazy dog. " * 20)
    (row,) = plan_rows(expand(spec(str(tok), str(text / "*.txt"))))
    (byte_row,) = plan_rows(expand(spec("byte", str(text / "*.txt"))))
    # the embedding and head rows follow the tokenizer's vocabulary: 320 ids against the byte tokenizer's 256
    assert row["n_params"] - byte_row["n_params"] == (320 - 256) * 8 * 2
    assert row["n_params_nonemb"] == byte_row["n_params_nonemb"]


def test_an_unknown_tokenizer_is_a_spec_error(tmp_path):
    (tmp_path / "a.txt").write_text("some text " * 50)
    with pytest.raises(ScalingError, match="tokenizer file not found: no/such/tokenizer.json"):
        expand(spec("no/such/tokenizer.json", str(tmp_path / "*.txt")))
