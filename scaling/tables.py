"""Read a table file by its suffix: parquet, CSV or TSV (whole lines starting with # are comments)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from scaling.errors import DataError


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".tsv", ".tab"):
            return _read_delimited(p, "\t")
        if suffix in (".csv", ".txt"):
            return _read_delimited(p, ",")
    except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
        raise DataError(f"could not read {p}: {e}") from None
    raise DataError(f"{p.name}: unknown table format {suffix!r}; use .parquet, .csv or .tsv")


def _read_delimited(p: Path, sep: str) -> pd.DataFrame:
    # Only whole lines starting with # are comments: values such as "#faebdd" must survive.
    lines = [ln for ln in p.read_text().splitlines() if not ln.lstrip().startswith("#")]
    return pd.read_csv(io.StringIO("\n".join(lines)), sep=sep)


__all__ = ["read_table"]
