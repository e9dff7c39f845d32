"""What `scaling fit` / `scaling plot` need from the laws package: read a table, report a fit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaling.errors import DataError
from scaling.laws.base import Law
from scaling.laws.validation import check_columns
from scaling.tables import Columns, read_columns, read_table

if TYPE_CHECKING:
    import pandas as pd


def load_table(path: str | Path, where: str | None = None, derive: list[str] | None = None,
               frame: bool = True) -> "pd.DataFrame | Columns":
    """Read parquet, CSV, TSV (lines starting with # are comments), a study folder's runs.parquet
    (its finished runs only) or a shipped dataset by name (`scaling datasets list`), add
    `derive`d columns ("name = expression"), then keep the rows where `where` holds (e.g.
    "data_bytes > 5 * 2**20"). Expressions are evaluated by `scaling.expr`: columns, literals,
    arithmetic and a few functions, never Python code.

    `frame=False` lets a plain CSV/TSV file come back as `Columns`, read without pandas, for a
    caller that only fits a law on it (`scaling fit`); everything else is a DataFrame."""
    p = Path(path)
    if not frame and not where and not derive:
        cols = read_columns(p)
        if cols is not None:
            return cols
    from scaling.expr import derive_column, filter_rows

    study = p.is_dir()
    if study:
        from scaling.store import RUNS_TABLE

        runs = p / RUNS_TABLE
        if not runs.exists():
            raise DataError(f"{p} is a folder without {RUNS_TABLE}; pass a study folder or a table file")
        p = runs
    if not p.exists():
        from scaling.datasets import DATASETS, load_dataset

        if str(path) not in DATASETS:
            raise DataError(f"data file {str(p)!r} not found (nor is it a shipped dataset: "
                            f"{', '.join(DATASETS)})")
        df = load_dataset(str(path))
    else:
        df = read_table(p)
    if study and "status" in df.columns:
        df = df[df.status == "done"]  # failed or diverged runs have no final loss to fit
        if df.empty:
            raise DataError(f"{p}: no finished runs (status 'done') to fit yet")
    for expr in derive or []:
        df = derive_column(df, expr)
    if where:
        df = filter_rows(df, where)
        if df.empty:
            raise DataError(f"--where {where!r} selects no rows")
    return df


def keep_best(df: "pd.DataFrame", x: list[str], y: str, over: list[str]) -> tuple["pd.DataFrame", list[dict]]:
    """The rows of the best choice of the tuning columns `over` at each value of the inputs `x`:
    the choice with the lowest mean `y` there (the mean pools replicates such as seeds, whose rows
    are all kept). Returns the kept rows and one record per input value: its choice, the mean and
    how many choices there were."""
    import pandas as pd

    bad = [c for c in over if c not in df.columns]
    if bad:
        raise DataError(f"--best-over column(s) {', '.join(map(repr, bad))} not in data; columns are: "
                        f"{', '.join(map(str, df.columns))}")
    inputs = [c for c in over if c in x]
    if inputs:
        raise DataError(f"--best-over {inputs[0]!r} is an input of the law (--x); name a tuning column, e.g. a "
                        "learning rate, whose best value per input the fit should keep")
    check_columns(df, [*x, y], "--best-over")
    cell = df.groupby(x + over, sort=True, dropna=False).ngroup().to_numpy()
    means = pd.Series(df[y].to_numpy(float)).groupby(cell).mean()
    point = df.groupby(x, sort=True, dropna=False).ngroup().to_numpy()
    first = pd.Series(range(len(df))).groupby(cell).first()  # a row of each cell, for its values
    cells = pd.DataFrame({"mean": means, "point": point[first.to_numpy()], "row": first.to_numpy()})
    best = cells.loc[cells.groupby("point")["mean"].idxmin()]
    n_choices = cells.groupby("point").size()
    plain = lambda v: v.item() if hasattr(v, "item") else v  # noqa: E731 - numpy scalars for JSON
    records = [{"x": {c: plain(df[c].iloc[r]) for c in x}, "choice": {c: plain(df[c].iloc[r]) for c in over},
                "mean": float(m), "n_choices": int(n_choices[p])}
               for m, p, r in best[["mean", "point", "row"]].itertuples(index=False)]
    return df[pd.Series(cell).isin(best.index).to_numpy()], records


def load_study_curves(path: str | Path, where: str | None = None, derive: list[str] | None = None,
                      eval_set: str | None = None) -> "pd.DataFrame | None":
    """The learning curves of a study folder's finished runs (those `where` keeps in its runs
    table) on one eval set (default the first), with every column of the runs table the curves
    lack (sizes, shapes); None when `path` is not a study folder with curves."""
    from scaling.schema import EVAL_SET, RUN_ID
    from scaling.store import CURVES_TABLE

    p = Path(path)
    if not (p.is_dir() and (p / CURVES_TABLE).is_file()):
        return None
    runs = load_table(p, where, derive)
    curves = read_table(p / CURVES_TABLE)
    sets = list(dict.fromkeys(curves[EVAL_SET]))
    if eval_set is None and sets:
        eval_set = sets[0]
    if eval_set not in sets:
        raise DataError(f"{p}: no curves on eval set {eval_set!r}; its eval sets are: {', '.join(map(str, sets))}")
    curves = curves[(curves[EVAL_SET] == eval_set) & curves[RUN_ID].isin(runs[RUN_ID])]
    extra = [RUN_ID, *(c for c in runs.columns if c not in curves.columns)]
    return curves.merge(runs[extra], on=RUN_ID, how="inner")


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
