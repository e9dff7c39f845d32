"""Spec validation: every error names the file, the key and what was expected."""

import math
from pathlib import Path

import pytest

from scaling.config import load_spec
from scaling.errors import SpecError
from scaling.train import expand

GOOD = """
[study]
name = "tiny"
[data]
source = "zipf_facts"
eval_tokens = 1260
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = [{d_model = 16, n_layers = 1, n_heads = 2}, {d_model = 32, n_layers = 2, n_heads = 4}]
[train]
steps = 5
batch_size = 4
seq_len = 21
[grid]
seed = [0, 1]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def test_good_spec_expands_shapes_times_axes(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    runs = expand(spec)
    assert len(runs) == 4
    assert {r.seed for r in runs} == {0, 1}
    assert len({r.run_id for r in runs}) == 4
    assert spec.train.lr == 3e-3 and spec.data.options == {"n_symbols": 16, "n_keys": 40}


def test_run_id_is_stable_and_ignores_label(tmp_path):
    a = expand(load_spec(write(tmp_path, GOOD)))
    b = expand(load_spec(write(tmp_path, GOOD.replace('name = "tiny"', 'name = "other"'))))
    assert [r.run_id for r in a] == [r.run_id for r in b]


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("batch_size = 4", "batch_sise = 4", "[train]: unknown key `batch_sise`"),
        ("batch_size = 4", 'batch_size = "four"', "[train] `batch_size`: expected an integer, got 'four'"),
        ("steps = 5", "steps = 5\ntokens = 100", "exactly one token budget"),
        ("d_model = 32, n_layers = 2, n_heads = 4", "d_model = 30, n_layers = 2, n_heads = 4",
         "`d_model` (30) must be divisible by `n_heads` (4)"),
        ("seed = [0, 1]", "seed = 3", "[grid] `seed` must be a non-empty list"),
        ("seed = [0, 1]", "optimiser.lr = [1]", "axis `optimiser.lr` does not name a config value"),
        ("seed = [0, 1]", "train.lrr = [1]", "axis `train.lrr` does not name a config value"),
        ("[grid]", "[grd]", "unknown table [grd]"),
        ('source = "zipf_facts"', 'source = "zipf_factz"', "zipf_factz"),
        ("n_keys = 40", "n_kees = 40", "n_kees"),
        ("[study]\nname = \"tiny\"", "[study]\nname = \"tiny\"\nfamily = \"gpt\"", "[study] `family`"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path, old, new, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as e:
        expand(load_spec(path))
    assert message in str(e.value)
    assert "spec.toml" in str(e.value) or "zipf" in str(e.value)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match="no such study spec"):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(write(tmp_path, "[study\nname="))


def test_width_depth_rule(tmp_path):
    text = GOOD.replace("shapes = [{d_model = 16, n_layers = 1, n_heads = 2}, {d_model = 32, n_layers = 2, n_heads = 4}]",
                        "rule = {n_layers = [1, 2, 3], aspect_ratio = 16, head_dim = 8}")
    runs = expand(load_spec(write(tmp_path, text)))
    shapes = sorted({(r.model["d_model"], r.model["n_layers"], r.model["n_heads"]) for r in runs})
    assert shapes == [(16, 1, 2), (32, 2, 4), (48, 3, 6)]


def test_tokens_per_param_budget(tmp_path):
    text = GOOD.replace("steps = 5", "tokens_per_param = 2.0")
    runs = expand(load_spec(write(tmp_path, text)))
    from scaling.train import get_family
    for r in runs:
        n = get_family("decoder").counts(r)["n_params_nonemb"]
        assert r.train["steps"] == math.ceil(2.0 * n / (4 * 21))
