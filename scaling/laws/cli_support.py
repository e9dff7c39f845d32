"""What `scaling fit` / `scaling plot` need from the laws package: read a table, report a fit."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from scaling.errors import DataError
from scaling.laws.base import Law


def load_table(path: str | Path, where: str | None = None, derive: list[str] | None = None) -> pd.DataFrame:
    """Read parquet, CSV, TSV (lines starting with # are comments) or a study folder's runs.parquet
    (its finished runs only),
    add `derive`d columns ("name = expression"), then keep the rows matching the pandas `where`
    expression (e.g. "data_bytes > 5 * 2**20")."""
    p = Path(path)
    study = p.is_dir()
    if study:
        runs = p / "runs.parquet"
        if not runs.exists():
            raise DataError(f"{p} is a folder without runs.parquet; pass a study folder or a table file")
        p = runs
    if not p.exists():
        raise DataError(f"data file {str(p)!r} not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix in (".tsv", ".tab"):
            df = _read_delimited(p, "\t")
        elif suffix in (".csv", ".txt"):
            df = _read_delimited(p, ",")
        else:
            raise DataError(f"{p.name}: unknown table format {suffix!r}; use .parquet, .csv or .tsv")
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
        raise DataError(f"could not read {p}: {e}") from None
    if study and "status" in df.columns:
        df = df[df.status == "done"]  # failed or diverged runs have no final loss to fit
        if df.empty:
            raise DataError(f"{p}: no finished runs (status 'done') to fit yet")
    for expr in derive or []:
        if "=" not in expr:
            raise DataError(f"--derive {expr!r} must look like 'name = expression'")
        try:
            df = df.eval(expr)
        except Exception as e:  # noqa: BLE001 - pandas raises many types for a bad expression
            raise DataError(f"--derive {expr!r} could not be evaluated: {e}; columns are {list(df.columns)}") from None
    if where:
        try:
            df = df.query(where)
        except Exception as e:  # noqa: BLE001 - pandas raises many types for a bad expression
            raise DataError(f"--where {where!r} could not be evaluated: {e}; columns are {list(df.columns)}") from None
        if df.empty:
            raise DataError(f"--where {where!r} selects no rows")
    return df


def _read_delimited(p: Path, sep: str) -> pd.DataFrame:
    # Only whole lines starting with # are comments: values such as "#faebdd" must survive.
    lines = [ln for ln in p.read_text().splitlines() if not ln.lstrip().startswith("#")]
    return pd.read_csv(io.StringIO("\n".join(lines)), sep=sep)


def fit_result_json(law: Law) -> dict[str, Any]:
    """The one JSON object `scaling fit --json` prints."""
    law._check_fitted()
    return {
        "law": law.name,
        "params": {k: float(v) for k, v in law.params_.items()},
        "ci95": {k: [float(a), float(b)] for k, (a, b) in (getattr(law, "ci_", None) or {}).items()},
        "objective": float(law.objective_),
        "converged": bool(law.converged_),
        "n_points": int(law.n_points_),
        "holdout": dict(law.holdout_ or {}),
    }
