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
        ("batch_size = 4", "batch_sise = 4", "[train]: unknown key `batch_sise` (did you mean `batch_size`?); expected"),
        ("batch_size = 4", "bs = 4", "[train]: unknown key `bs`; expected"),  # nothing close: no guess
        ("batch_size = 4", 'batch_size = "four"', "[train] `batch_size`: expected an integer, got 'four'"),
        ("steps = 5", "steps = 5\ntokens = 100", "exactly one token budget"),
        ("d_model = 32, n_layers = 2, n_heads = 4", "d_model = 30, n_layers = 2, n_heads = 4",
         "`d_model` (30) must be divisible by `n_heads` (4)"),
        ("seed = [0, 1]", "seed = 3", "[grid] `seed` must be a non-empty list"),
        ("seed = [0, 1]", "optimiser.lr = [1]", "axis `optimiser.lr` does not name a config value"),
        ("seed = [0, 1]", "train.lrr = [1]", "axis `train.lrr` does not name a config value"),
        ("[grid]", "[grd]", "unknown table [grd] (did you mean `grid`?)"),
        ('source = "zipf_facts"', 'source = "zipf_factz"',
         "spec.toml: [data]: unknown data source `zipf_factz` (did you mean `zipf_facts`?)"),
        ("n_keys = 40", "n_kees = 40", "spec.toml: [data]: unknown option(s) `n_kees` (did you mean `n_keys`?) for "
                                       "data source `zipf_facts`"),
        ("seed = [0, 1]", '"data.options.n_keys" = [40, 0]',
         "spec.toml: [data] ([grid] axis `data.options.n_keys` = 0): `n_keys` must be an integer >= 1"),
        ('[study]\nname = "tiny"', '[study]\nname = "tiny"\nfamily = "encdec"',
         "spec.toml: [data]: unknown pair source `zipf_facts`"),
        ("[study]\nname = \"tiny\"", "[study]\nname = \"tiny\"\nfamily = \"gpt\"", "[study] `family`"),
        ("[study]\nname = \"tiny\"", "[study]\nname = \"../tiny\"", "[study] `name` must be a plain folder name"),
        ("[study]\nname = \"tiny\"", "[study]\nname = \"\"", "[study] `name` must be a plain folder name"),
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


# ---------------------------------------------------------------- every expanded run is validated (issue 9.4)


@pytest.mark.parametrize(
    "axis, message",
    [
        ('"train.schedule" = ["wds"]',
         "[grid] axis `train.schedule` = 'wds': [train] `schedule`: expected one of 'cosine', 'wsd', 'constant', got 'wds'"),
        ('"train.min_lr_ratio" = [0.1, 1.5]',
         "[grid] axis `train.min_lr_ratio` = 1.5: [train] `min_lr_ratio` must be between 0 and 1, got 1.5"),
        ('"train.warmup" = [-1]', "[grid] axis `train.warmup` = -1: [train] `warmup` must be >= 0, got -1.0"),
        ('"train.steps" = [0]', "[grid] axis `train.steps` = 0: [train] `steps` must be > 0, got 0"),
    ],
)
def test_grid_values_get_the_base_tables_checks(tmp_path, axis, message):
    path = write(tmp_path, GOOD.replace("seed = [0, 1]", axis))
    with pytest.raises(SpecError) as e:
        expand(load_spec(path))
    assert str(e.value) == f"{path}: {message}"


def test_the_same_values_in_the_base_table_give_the_same_messages(tmp_path):
    for old, new, message in [('seq_len = 21', 'seq_len = 21\nschedule = "wds"',
                               "[train] `schedule`: expected one of 'cosine', 'wsd', 'constant', got 'wds'"),
                              ("seq_len = 21", "seq_len = 21\nmin_lr_ratio = 1.5",
                               "[train] `min_lr_ratio` must be between 0 and 1, got 1.5"),
                              ("seq_len = 21", "seq_len = 21\nwarmup = -1", "[train] `warmup` must be >= 0, got -1.0"),
                              ("seq_len = 21", "seq_len = 21\nwarmup = 2.5",
                               "[train] `warmup` is a fraction of the run if < 1, else a whole number of steps; "
                               "got 2.5"),
                              ("seq_len = 21", "seq_len = 21\nwarmup = 5",
                               "[train] `warmup` (5 steps) must be shorter than the run (`steps` = 5); "
                               "a fraction below 1 scales with each run"),
                              ("steps = 5", "steps = 0", "[train] `steps` must be > 0, got 0")]:
        path = write(tmp_path, GOOD.replace(old, new))
        with pytest.raises(SpecError) as e:
            load_spec(path)
        assert str(e.value) == f"{path}: {message}"


def test_grid_axes_in_one_combination_are_all_named(tmp_path):
    path = write(tmp_path, GOOD.replace("seed = [0, 1]", '"train.lr" = [1e-3]\n"train.warmup" = [0.1, -2]'))
    with pytest.raises(SpecError, match=r"axis `train.lr` = 0.001, `train.warmup` = -2: \[train\] `warmup`"):
        expand(load_spec(path))


def test_lr_schedule_raises_on_an_unknown_schedule():
    from scaling.train import lr_at

    with pytest.raises(SpecError, match=r"\[train\] `schedule`: unknown schedule 'wds'"):
        lr_at(3, 10, {"lr": 1e-3, "schedule": "wds"})
    assert lr_at(9, 10, {"lr": 1e-3, "schedule": "constant", "warmup": 0.0}) == 1e-3


# ---------------------------------------------------------------- IsoFLOP budgets (issue 12, section 1)


def _flops_per_token(run) -> float:
    from scaling.train import get_family

    return get_family("decoder").counts(run)["flops_per_token"]


@pytest.mark.parametrize("where", ["train", "grid"])
def test_flops_budget_gives_each_shape_tokens_c_over_flops_per_token(tmp_path, where):
    budgets = [3e7, 1e8]
    if where == "train":
        text = GOOD.replace("steps = 5", "flops = [3e7, 1e8]").replace("seed = [0, 1]", "seed = [0]")
    else:
        text = GOOD.replace("steps = 5\n", "").replace("seed = [0, 1]", '"train.flops" = [3e7, 1e8]')
    runs = expand(load_spec(write(tmp_path, text)))
    assert len(runs) == 4  # 2 shapes x 2 budgets: the IsoFLOP grid is one spec
    per_step = 4 * 21  # batch_size x seq_len
    seen = set()
    for run in runs:
        c = run.train["flops"]
        fpt = _flops_per_token(run)
        # tokens = C / (training FLOPs per token), rounded up to whole steps of 84 tokens
        assert run.train["steps"] == math.ceil(c / fpt / per_step)
        trained = run.train["steps"] * per_step * fpt
        assert c <= trained < c + per_step * fpt
        assert run.flat()["train.flops"] == c  # the budget is recorded per run, for the isoflop law to group by
        seen.add((run.model["d_model"], c))
    assert seen == {(d, c) for d in (16, 32) for c in budgets}
    from scaling.train import plan_rows

    assert sorted(row["train.flops"] for row in plan_rows(runs)) == [3e7, 3e7, 1e8, 1e8]
    small = next(r for r in runs if r.model["d_model"] == 16 and r.train["flops"] == 1e8)
    large = next(r for r in runs if r.model["d_model"] == 32 and r.train["flops"] == 1e8)
    assert small.train["steps"] > large.train["steps"]  # same compute: the smaller model sees more tokens


def test_flops_by_hand_for_one_shape(tmp_path):
    from scaling.data import build_source

    text = GOOD.replace("steps = 5", "flops = 5e7").replace(
        "shapes = [{d_model = 16, n_layers = 1, n_heads = 2}, {d_model = 32, n_layers = 2, n_heads = 4}]",
        "shapes = [{d_model = 16, n_layers = 1, n_heads = 2}]").replace("seed = [0, 1]", "seed = [0]")
    (run,) = expand(load_spec(write(tmp_path, text)))
    vocab = build_source("zipf_facts", {"n_symbols": 16, "n_keys": 40}).vocab_size
    d, d_ff, layers, seq = 16, 64, 1, 21
    matmul = layers * (4 * d * d + 2 * d * d_ff) + vocab * d  # attention projections + MLP + head
    fpt = 3 * (2 * matmul + 4 * layers * d * seq)  # forward + backward, attention scores in full
    assert _flops_per_token(run) == fpt
    assert run.train["steps"] == math.ceil(5e7 / (fpt * 4 * 21))


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("steps = 5", "steps = 5\nflops = 1e8", "exactly one token budget: `steps`, `tokens`, `tokens_per_param` or `flops`"
                                               " (in [train] or as a [grid] axis \"train.<budget>\"; got steps, flops)"),
        ("seed = [0, 1]", '"train.flops" = [1e8]', "got steps, flops"),
        ("steps = 5", "flops = [1e8]", "not-an-error"),
        ("steps = 5", "flops = [1e8, 1e8]", "[train] `flops` must be a non-empty list of distinct budgets"),
        ("steps = 5", "flops = [1e8, -1.0]", "[train] `flops` must be > 0, got -1.0"),
        ("steps = 5", "flops = []", "[train] `flops` must be a non-empty list of distinct budgets"),
    ],
)
def test_flops_budget_errors(tmp_path, old, new, message):
    text = GOOD.replace(old, new)
    if message == "not-an-error":  # a list in [train] and the same axis in [grid]: said once, not twice
        text = text.replace("seed = [0, 1]", '"train.flops" = [2e8]')
        message = 'give the flops axis once: [train] `flops` is a list and [grid] has "train.flops"'
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        expand(load_spec(path))
    assert message in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    "table, message",
    [
        ("delta = 0", "[report] `delta` must be a positive number or \"auto\", got 0.0"),
        ('delta = "automatic"', "[report] `delta`: expected a number or 'auto' or nothing, got 'automatic'"),
        ("bootstrap = 1", "[report] `bootstrap` must be 0 (no intervals) or at least 2, got 1"),
        ("advise_budget = -1e9", "[report] `advise_budget` must be >= 0 FLOPs"),
        ("holdot = 'largest:2'", "[report]: unknown key `holdot` (did you mean `holdout`?); expected one of advise_budget, bootstrap, delta, holdout"),
    ],
)
def test_report_table_errors_name_the_key(tmp_path, table, message):
    with pytest.raises(SpecError) as e:
        load_spec(write(tmp_path, GOOD + f"[report]\n{table}\n"))
    assert str(e.value).startswith(str(tmp_path / "spec.toml"))
    assert message in str(e.value)


def test_the_report_table_trains_nothing_new(tmp_path):
    plain = load_spec(write(tmp_path, GOOD))
    assert plain.report.delta is None and plain.report.bootstrap == 200 and plain.report.holdout == "largest:1"
    chosen = load_spec(write(tmp_path, GOOD + '[report]\ndelta = "auto"\nbootstrap = 0\nholdout = "frac:0.3"\n'))
    assert (chosen.report.delta, chosen.report.bootstrap, chosen.report.holdout) == ("auto", 0, "frac:0.3")
    assert [r.run_id for r in expand(chosen)] == [r.run_id for r in expand(plain)]
