"""`read_columns` (the pandas-free CSV reader of `scaling fit`) against pandas, and laws fitted on it."""

import numpy as np
import pandas as pd
import pytest

from scaling.datasets import load_dataset
from scaling.laws import get_law
from scaling.tables import Columns, read_columns, read_table


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_plain_csv_reads_as_pandas_does(tmp_path):
    p = _write(tmp_path, "t.csv", "# a comment line\nN,D,loss,tag,hex\n1e6,2e7,3.5,a_b,#faebdd\n2000000,4e7,NA,c,#000000\n"
                                  "3e6,,3.1,d,#111111\n")
    cols, df = read_columns(p), read_table(p)
    assert cols.columns == list(df.columns) and len(cols) == len(df)
    for c in ("N", "D", "loss"):
        np.testing.assert_array_equal(cols[c], df[c].to_numpy(float))  # NaN where pandas has NaN
    assert list(cols["tag"]) == list(df["tag"]) and list(cols["hex"]) == list(df["hex"])
    tsv = _write(tmp_path, "t.tsv", "N\tloss\n1\t2.5\n2\t2.0\n")
    np.testing.assert_array_equal(read_columns(tsv)["loss"], read_table(tsv)["loss"].to_numpy())


@pytest.mark.parametrize("text", ['N,loss\n1,"2.5"\n', "N,N\n1,2\n", "N,loss\n1\n", ",loss\n1,2\n", "N, loss\n1,2\n",
                                  "N,loss\n1, 2\n"])
def test_anything_pandas_reads_its_own_way_falls_back(tmp_path, text):
    assert read_columns(_write(tmp_path, "t.csv", text)) is None


def test_underscored_numbers_stay_strings_as_in_pandas(tmp_path):
    p = _write(tmp_path, "t.csv", "N,loss\n1_000,2.5\n2000,2.0\n")
    assert read_columns(p)["N"].dtype == object and not pd.api.types.is_numeric_dtype(read_table(p)["N"])


def test_a_law_fitted_on_columns_equals_the_dataframe_fit(tmp_path):
    df = load_dataset("chinchilla_epoch")[["N", "D", "loss"]]
    p = tmp_path / "chin.csv"
    df.to_csv(p, index=False)
    cols = read_columns(p)
    a = get_law("chinchilla", init="hoffmann").fit(df, x=["N", "D"], y="loss", holdout="largest:1")
    b = get_law("chinchilla", init="hoffmann").fit(cols, x=["N", "D"], y="loss", holdout="largest:1")
    assert a.params_ == pytest.approx(b.params_, rel=1e-12)
    assert a.holdout_["mean_abs_rel_error"] == pytest.approx(b.holdout_["mean_abs_rel_error"], rel=1e-12)
    np.testing.assert_allclose(a.predict(df), b.predict(cols), rtol=1e-12)


def test_columns_select_rows_and_name_bad_columns(tmp_path):
    t = Columns({"N": np.array([1.0, 2.0, 3.0]), "tag": np.array(["a", "b", "x"], dtype=object)})
    assert list(t[t["N"] > 1.5]["tag"]) == ["b", "x"]
    assert isinstance(t.to_frame(), pd.DataFrame)
    with pytest.raises(Exception, match="'tag' is not numeric"):
        get_law("power").fit(t, x="tag", y="N")
    with pytest.raises(Exception, match=r"column\(s\) \['D'\] not found"):
        get_law("power").fit(t, x="D", y="N")


def test_laws_with_label_columns_take_columns_too():
    from scaling.advise.target_simulation import select_truth

    truth = select_truth()
    df = truth.pilot.assign(loss=truth.laws()[0].predict(truth.pilot))
    cols = Columns({c: df[c].to_numpy() for c in df.columns})
    opts = {"variant": "variant", "baseline": "base"}
    a = get_law("select", **opts).fit(df, x=["N", "D"], y="loss")
    b = get_law("select", **opts).fit(cols, x=["N", "D"], y="loss")
    assert a.params_ == pytest.approx(b.params_, rel=1e-10)
