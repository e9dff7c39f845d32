"""load_table formats and filters; fit_result_json shape."""

import json

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError
from scaling.laws import get_law
from scaling.laws.cli_support import fit_result_json, load_table


@pytest.fixture
def table():
    x = np.logspace(6, 10, 10)
    return pd.DataFrame({"x": x, "y": 2 + (1e7 / x) ** 0.3, "tag": ["#a"] * 10})


def test_formats_round_trip(table, tmp_path):
    table.to_parquet(tmp_path / "t.parquet")
    table.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.tsv").write_text("# a comment line\n" + table.to_csv(sep="\t", index=False))
    study = tmp_path / "study"
    study.mkdir()
    table.to_parquet(study / "runs.parquet")
    for p in ["t.parquet", "t.csv", "t.tsv", "study"]:
        got = load_table(tmp_path / p)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), table, check_dtype=False)
        assert got["tag"].iloc[0] == "#a"  # a value starting with # is not a comment


def test_where_and_errors(table, tmp_path):
    table.to_csv(tmp_path / "t.csv", index=False)
    assert len(load_table(tmp_path / "t.csv", where="x > 1e8")) == int((table["x"] > 1e8).sum())
    with pytest.raises(DataError, match="selects no rows"):
        load_table(tmp_path / "t.csv", where="x < 0")
    with pytest.raises(DataError, match="unknown column `nosuch`"):
        load_table(tmp_path / "t.csv", where="nosuch > 1")
    with pytest.raises(DataError, match="not found"):
        load_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="without runs.parquet"):
        load_table(tmp_path)
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(DataError, match="unknown table format"):
        load_table(tmp_path / "t.xlsx")


def test_fit_result_json(table):
    # noisy, so the interval has a width: on the fixture's exact losses every replicate finds the same
    # alpha to the optimiser's tolerance, and the estimate may sit 1e-10 outside their range
    noisy = table.assign(y=table.y * np.exp(np.random.default_rng(0).normal(0, 0.003, len(table))))
    law = get_law("power", n_bootstrap=20).fit(noisy, x="x", y="y", holdout="largest:2")
    obj = fit_result_json(law)
    assert list(obj) == ["law", "params", "ci95", "objective", "converged", "n_points", "holdout"]
    assert obj["n_points"] == 8 and obj["holdout"]["n_test"] == 2
    assert set(obj["ci95"]) == {"L_inf", "x0", "alpha"}
    lo, hi = obj["ci95"]["alpha"]
    assert lo < obj["params"]["alpha"] < hi
    json.dumps(obj)
    exact = fit_result_json(get_law("power").fit(table, x="x", y="y", holdout="largest:2"))
    assert exact["params"]["alpha"] == pytest.approx(0.3, abs=1e-4)  # the fixture's exponent


def test_study_folder_keeps_only_finished_runs(tmp_path):
    import pandas as pd

    from scaling.laws.cli_support import load_table

    pd.DataFrame({"n_params": [1e3, 2e3, 4e3], "loss": [3.0, float("nan"), 2.0],
                  "status": ["done", "failed", "done"]}).to_parquet(tmp_path / "runs.parquet")
    df = load_table(tmp_path)
    assert list(df.n_params) == [1e3, 4e3]


def test_a_shipped_dataset_name_is_accepted_as_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here: the name resolves to the shipped data
    df = load_table("llama3_isoflops", where="budget == 1e22")
    assert len(df) > 5 and set(df.budget) == {1e22}
    epoch = load_table("chinchilla_epoch")
    assert len(epoch) == 245
    np.testing.assert_allclose(epoch["D"], epoch["C"] / (6 * epoch["N"]))
    with pytest.raises(DataError, match="nor is it a shipped dataset: chinchilla_epoch"):
        load_table("chinchilla")
