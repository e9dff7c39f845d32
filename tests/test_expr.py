"""Expressions over columns are data, never code (`scaling.expr`)."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError
from scaling.expr import derive_column, evaluate, filter_rows


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame({"N": [1e3, 1e4, 1e5, 1e6], "Lang": ["de-en", "ru-en", "de-en", "zh-en"],
                         "data_bytes": [1 << 20, 6 << 20, 8 << 20, 2 << 20], "Model Size": [8, 16, 32, 64],
                         "Layers": [2, 2, 4, 4], "ModelSize": [8, 16, 32, 64], "FeedForward": [32, 64, 128, 256]})


def test_expressions_the_readme_and_tests_use(df):
    assert filter_rows(df, "data_bytes > 5 * 2**20").index.tolist() == [1, 2]
    out = derive_column(df, "params = 2*Layers*(4*ModelSize**2 + 2*ModelSize*FeedForward)")
    np.testing.assert_array_equal(out["params"], 2 * df.Layers * (4 * df.ModelSize**2 + 2 * df.ModelSize * df.FeedForward))
    assert "params" not in df.columns  # the input is not modified


def test_literals_comparisons_logic_membership_and_functions(df):
    assert filter_rows(df, "Lang == 'de-en'").index.tolist() == [0, 2]
    assert filter_rows(df, "Lang in ['ru-en', 'zh-en']").index.tolist() == [1, 3]
    assert filter_rows(df, "Lang not in ['ru-en', 'zh-en']").index.tolist() == [0, 2]
    assert filter_rows(df, "1e3 < N <= 1e5").index.tolist() == [1, 2]  # chained
    assert filter_rows(df, "N > 1e3 and not (Lang == 'de-en') or N == 1e3").index.tolist() == [0, 1, 3]
    assert filter_rows(df, "`Model Size` >= 32").index.tolist() == [2, 3]
    np.testing.assert_allclose(evaluate("log10(N) - -1", df), [4, 5, 6, 7])
    np.testing.assert_allclose(evaluate("sqrt(abs(-N)) % 7", df), np.sqrt(df.N) % 7)
    np.testing.assert_allclose(evaluate("exp(log(N)) / log2(4)", df), df.N / 2)
    np.testing.assert_allclose(evaluate("max(Layers, 3) * min(N)", df), [3e3, 3e3, 4e3, 4e3])
    out = derive_column(df, "`log n` = log(N)")
    assert filter_rows(out, "`log n` > 10").index.tolist() == [2, 3]


@pytest.mark.parametrize("expr, piece", [
    ("N > 0 or @pd.io.common.os.system('touch pwned') == 0", "`@`"),
    ("N.__class__ == 1", "attribute access `N.__class__`"),
    ("__import__('os') == 0", "call `__import__('os')`"),
    ("__builtins__ > 1", "dunder name `__builtins__`"),
    ("N[0] > 1", "subscript `N[0]`"),
    ("open('x') == 1", "call `open('x')`"),
    ("(lambda: 1)() == 1", "lambda"),
    ("N if N else N", "ifexp"),
    ("N | N", "operator in `N | N`"),
    ("[N for N in N] == 1", "listcomp"),
    ("log(N, 2) > 1", "`log` takes one argument"),
    ("Lang in [Lang]", "a list may hold only literals"),
])
def test_anything_else_is_refused_naming_the_piece(df, expr, piece):
    with pytest.raises(DataError, match="not allowed") as e:
        filter_rows(df, expr)
    assert piece in str(e.value)


def test_pandas_query_escape_does_not_run(tmp_path, df, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError):
        filter_rows(df, "N > 0 or @pd.io.common.os.system(\"touch pwned\") == 0")
    assert not (tmp_path / "pwned").exists()


def test_a_dotted_column_name_is_quoted_and_the_error_says_so(df):
    runs = df.assign(**{"train.lr": [1e-2, 3e-2, 1e-2, 3e-2]})  # a study's runs.parquet names its settings so
    with pytest.raises(DataError) as e:
        filter_rows(runs, "train.lr == 0.01")
    assert str(e.value).endswith("(a column named train.lr is written in backticks: `train.lr`)")
    assert filter_rows(runs, "`train.lr` == 0.01").index.tolist() == [0, 2]
    with pytest.raises(DataError) as e:
        filter_rows(runs, "N.__class__ == 1")
    assert "backticks" not in str(e.value)


def test_errors_name_what_to_fix(df):
    with pytest.raises(DataError, match="unknown column `nosuch`; columns are: N, Lang"):
        filter_rows(df, "nosuch > 1")
    with pytest.raises(DataError, match="not a valid expression"):
        filter_rows(df, "N >")
    with pytest.raises(DataError, match="must be a condition"):
        filter_rows(df, "N * 2")
    with pytest.raises(DataError, match="must look like 'name = expression'"):
        derive_column(df, "N == 2")
    with pytest.raises(DataError, match="must look like 'name = expression'"):
        derive_column(df, "params =")


def test_a_misspelt_column_names_the_closest_one():
    table = pd.DataFrame({"data_bytes": [1.0, 2.0], "Lang": ["de", "ru"]})
    with pytest.raises(DataError, match=r"unknown column `data_byte` \(did you mean `data_bytes`\?\); columns are"):
        filter_rows(table, "data_byte > 1")
    with pytest.raises(DataError, match=r"unknown column `zzz`; columns are"):  # nothing close: no guess
        filter_rows(table, "zzz > 1")
