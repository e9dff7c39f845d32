"""The `select` family: expansion (baseline once per shape and seed), bad [select] input naming the
key, and a tiny end-to-end study whose stored selection figures are checked against the pool."""

import copy

import pandas as pd
import pytest

from scaling import schema
from scaling.config import spec_from_dict
from scaling.data import build_source
from scaling.errors import SpecError
from scaling.store import Store
from scaling.train import expand, run_study
from scaling.train.executors import InProcessExecutor
from scaling.train.select_tables import select_tables

POOL = {"n_docs": 300, "doc_triples": 16, "n_keys": 300, "shares": {"clean": 0.5, "junk": 0.3, "decoy": 0.2}}
SPEC = {
    "study": {"name": "sel", "family": "select"},
    "data": {"source": "facts_pool", "options": POOL, "eval_tokens": 960},
    "model": {"shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}, {"d_model": 24, "n_layers": 1, "n_heads": 2}]},
    "train": {"steps": 20, "batch_size": 4, "seq_len": 48, "eval_points": 2},
    "select": {"methods": {"oracle": {}, "random": {}, "dsir": {"kind": "ngram_importance", "n": 3}}},
    "grid": {"select": {"method": ["oracle", "random", "dsir"], "keep": [0.25, 0.5, 1.0]}, "seed": [0, 1]},
}


def spec(**changes):
    raw = copy.deepcopy(SPEC)
    for dotted, value in changes.items():
        node = raw
        *head, last = dotted.split("/")
        for k in head:
            node = node.setdefault(k, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return spec_from_dict(raw)


def test_expansion_trains_the_baseline_once_per_shape_and_seed():
    runs = expand(spec())
    assert len(runs) == 2 * 2 * (1 + 3 * 2)  # shapes x seeds x (baseline + methods x keeps < 1)
    base = [r for r in runs if r.extra["role"] == "baseline"]
    assert len(base) == 4 and all(r.extra[schema.SELECT_KEEP] == 1.0 for r in base)
    variants = {r.extra[schema.SELECT_VARIANT] for r in runs}
    assert variants == {"none", "oracle@0.25", "oracle@0.5", "random@0.25", "random@0.5", "dsir@0.25", "dsir@0.5"}
    assert len({r.run_id for r in runs}) == len(runs)


@pytest.mark.parametrize("change, match", [
    ({"grid/select/method": ["oracle", "magic"]}, r"\"select.method\": unknown method 'magic'"),
    ({"select/methods": {"magic": {}}, "grid/select/method": None}, r"\[select.methods\] `magic`: unknown selection"),
    ({"grid/select/keep": [0.5, 1.5]}, r"\"select.keep\" values must be numbers in \(0, 1\]"),
    ({"grid/select/keep": [0.0]}, r"\"select.keep\""),
    ({"select/on_exhausted": "wrap"}, r"\[select\] `on_exhausted` must be one of"),
    ({"select/floors": "equal"}, r"\[select\] `floors` must be one of 'auto', 'free', 'shared', got 'equal'"),
    ({"select/delta": -1.0}, r"\[select\] `delta` must be a number > 0 or \"auto\", got -1.0"),
    ({"select/on_exhausted": "error", "train/steps": 60}, r"`on_exhausted` = \"error\": method `oracle` at \"select.keep\" = 0.25"),
    ({"select/target": "test"}, r"\[select\] `target` = 'test' is not an eval set"),
    ({"data/source": "zipf_facts", "data/options": {}}, r"source `zipf_facts` is not a document pool"),
])
def test_bad_select_input_names_the_key(change, match):
    with pytest.raises(SpecError, match=match):
        expand(spec(**change))


def test_oracle_on_a_pool_without_types_is_a_spec_error(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(f'{{"text": "document number {i} says hello {i * 7}", "q": {i}}}\n' for i in range(60)))
    opts = {"source": "jsonl", "source_options": {"path": str(path)}, "chunk_bytes": 64, "valid_fraction": 0.3,
            "score_columns": ["q"]}
    with pytest.raises(SpecError, match=r"\[select.methods\] `oracle`: method `oracle` needs a pool with known"):
        expand(spec(**{"data/source": "text_pool", "data/options": opts}))
    ok = spec(**{"data/source": "text_pool", "data/options": opts, "select/methods": {"column": {"name": "q"}},
                 "grid/select/method": ["column"]})
    assert len(expand(ok)) == 2 * 2 * 3


@pytest.mark.slow
def test_a_tiny_study_stores_selection_figures(tmp_path):
    s = spec(**{"model/shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}], "grid/seed": [0],
                "grid/select/keep": [0.25]})
    runs = expand(s)
    store = Store(tmp_path / "sel")
    counts = run_study(runs, store, InProcessExecutor())
    assert counts == {"done": 4}
    df = store.runs().set_index(schema.EXTRA_PREFIX + schema.SELECT_VARIANT)
    pool = build_source("facts_pool", POOL)
    ev = pool.eval_sets(48, 960)["valid"]
    assert df.loc["oracle@0.25", schema.PRECISION_GOOD] == 1.0
    assert df.loc["oracle@0.25", schema.SELECT_FLOOR] == pytest.approx(ev.bayes_loss, rel=1e-12)
    assert df.loc["none", schema.SHARE_PREFIX + "junk"] == pytest.approx(0.3)
    assert df.loc["none", schema.KEPT_TOKENS] == 300 * 48
    assert df.loc["none", schema.UNIQUE_TOKENS] == 300 * 48  # no dup type: every document distinct
    assert df.loc["oracle@0.25", schema.UNIQUE_TOKENS] <= df.loc["oracle@0.25", schema.KEPT_TOKENS]
    kept = df.loc["oracle@0.25", schema.KEPT_TOKENS]
    assert kept == pytest.approx(0.25 * 300 * 48, abs=48)
    assert df.loc["oracle@0.25", schema.EPOCHS] == pytest.approx(20 * 4 * 48 / kept)
    assert df.loc["dsir@0.25", schema.SELECT_FLOPS] > 0 == df.loc["oracle@0.25", schema.SELECT_FLOPS]
    tables = select_tables(s, store)
    scores, kept_ids = tables["scores"], tables["kept"]
    assert set(scores[schema.SELECT_METHOD]) == {"oracle", "random", "dsir"}
    oracle = scores[scores[schema.SELECT_METHOD] == "oracle"].sort_values(schema.RANK)
    assert (oracle[schema.DOC_TYPE].iloc[:150] == "clean").all()
    ids = kept_ids[kept_ids[schema.SELECT_METHOD] == "oracle"][schema.DOC_ID].to_numpy()
    assert len(ids) * 48 == kept and (pool.doc_types[ids] == "clean").all()
    stats = tables["selections"].set_index(schema.SELECT_METHOD)
    assert stats.loc["oracle", schema.PRECISION_GOOD] == 1.0
    assert stats.loc["dsir", schema.SELECT_KL_REDUCTION] > stats.loc["random", schema.SELECT_KL_REDUCTION]
    sel = pd.read_parquet(store.root / schema.SELECT_TABLE)
    assert set(sel[schema.SELECT_VARIANT]) == {"none", "oracle@0.25", "random@0.25", "dsir@0.25"}


def test_the_stdlib_study_has_two_token_budgets_per_size():
    from pathlib import Path

    from scaling.config import load_spec
    from scaling.train import plan_rows

    spec = load_spec(Path(__file__).resolve().parents[2] / "runs" / "select-stdlib.toml")
    rows = pd.DataFrame(plan_rows(expand(spec)))
    budgets = rows.groupby("n_params_nonemb")["tokens"].nunique()
    assert len(budgets) == 3 and (budgets == 2).all()  # N and D no longer collinear
