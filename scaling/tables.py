"""Read a table file by its suffix: parquet, CSV or TSV (whole lines starting with # are comments).

`read_table` gives a pandas DataFrame. `read_columns` reads a plain CSV/TSV into `Columns`, a
read-only table of numpy columns that a law can be fitted on without pandas: `scaling fit` on a
CSV then never imports it (pandas and the pyarrow it loads are about a third of that process's
time, more than the fit). Anything the plain reader would not read exactly as pandas does
(quotes, duplicate or empty header names, ragged rows, padded cells) returns None, and the caller falls back.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scaling.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

SEPARATORS = {".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t"}
"""Delimited table files by suffix, and their separator."""

# pandas.read_csv's default missing-value markers: the same cells are NaN on both paths.
NA_VALUES = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def read_table(path: str | Path) -> "pd.DataFrame":
    import pandas as pd

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in SEPARATORS:
            return _read_delimited(p, SEPARATORS[suffix])
    except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
        raise DataError(f"could not read {p}: {e}") from None
    raise DataError(f"{p.name}: unknown table format {suffix!r}; use .parquet, .csv or .tsv")


def _data_lines(p: Path) -> list[str]:
    # Only whole lines starting with # are comments: values such as "#faebdd" must survive.
    return [ln for ln in p.read_text().splitlines() if not ln.lstrip().startswith("#")]


def _read_delimited(p: Path, sep: str) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_csv(io.StringIO("\n".join(_data_lines(p))), sep=sep)


class Columns:
    """Named numpy columns of equal length: what `Law.fit` reads from a table (`columns`,
    `table[name]`, `len`, `index`), and row selection by a boolean or integer array."""

    def __init__(self, data: dict[str, np.ndarray]):
        self._data = {str(k): np.asarray(v) for k, v in data.items()}
        lengths = {len(v) for v in self._data.values()}
        if len(lengths) > 1:
            raise DataError(f"columns of unequal length: {sorted(lengths)}")
        self._n = lengths.pop() if lengths else 0

    @property
    def columns(self) -> list[str]:
        return list(self._data)

    @property
    def index(self) -> np.ndarray:
        return np.arange(self._n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._data[key]
        rows = np.asarray(key)
        return Columns({k: v[rows] for k, v in self._data.items()})

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self._data)


def _column(cells: list[str]) -> np.ndarray:
    """float64 where every cell is a number or a missing marker (as pandas would give a numeric
    column), else the cells as strings."""
    try:
        if any("_" in c for c in cells):  # float() reads 1_000, pandas keeps it a string
            raise ValueError
        return np.array([np.nan if c in NA_VALUES else float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells, dtype=object)


def read_columns(path: str | Path) -> Columns | None:
    """A plain CSV/TSV as Columns, or None when pandas must read it (see the module docstring)."""
    p = Path(path)
    sep = SEPARATORS.get(p.suffix.lower())
    if sep is None or not p.is_file():
        return None
    try:
        lines = [ln for ln in _data_lines(p) if ln.strip()]
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or any('"' in ln or "'" in ln for ln in lines):
        return None
    header = lines[0].split(sep)
    rows = [ln.split(sep) for ln in lines[1:]]
    if ("" in header or len(set(header)) < len(header) or any(h != h.strip() for h in header)
            or any(len(r) != len(header) for r in rows)):
        return None
    cells = [c for r in rows for c in r]
    if any(c != c.strip() for c in cells):  # pandas reads padded cells its own way
        return None
    return Columns({h: _column([r[j] for r in rows]) for j, h in enumerate(header)})


__all__ = ["Columns", "read_columns", "read_table"]
