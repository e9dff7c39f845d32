"""Input checks, the holdout grammar, and goodness-of-fit numbers shared by all laws.

Holdout grammar (the CLI's `--holdout` passes the string through unchanged):

    largest:K[:COL]   hold out rows whose COL value is among the K largest distinct values
    frac:F[:COL]      hold out the largest distinct COL values covering at least a fraction F
                      of the rows (0 < F < 1); a bare float "0.2" means frac:0.2
    COL>V, COL>=V     hold out rows where the condition holds (V a number, e.g. N>1e9)

COL defaults to the law's first x column. The law is fitted on the rest and its relative
error (pred - y) / y on the held-out rows is reported in `holdout_`.
"""

from __future__ import annotations

import math
import re
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from scaling.errors import DataError, FitError, did_you_mean
from scaling.schema import LABEL, RUN_ID, SEED

if TYPE_CHECKING:  # a table is a pandas DataFrame or scaling.tables.Columns (a CSV read without pandas)
    import pandas as pd

Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile: a normal 95% interval is the estimate ± Z95 standard errors."""

_COND = re.compile(r"^\s*([^<>=]+?)\s*(>=|>)\s*([-+0-9.eE]+)\s*$")


def is_table(data: object) -> bool:
    """A pandas DataFrame or a `scaling.tables.Columns`, not an array."""
    from scaling.tables import Columns

    if isinstance(data, Columns):
        return True
    pd = sys.modules.get("pandas")  # not imported yet: data cannot be a DataFrame
    return pd is not None and isinstance(data, pd.DataFrame)


def as_frame(data):
    """A DataFrame for laws that read more than numeric columns (variant or domain labels)."""
    from scaling.tables import Columns

    return data.to_frame() if isinstance(data, Columns) else data


def check_columns(df: pd.DataFrame, cols: list[str], law: str) -> None:
    """Raise DataError naming any column not in df."""
    if not is_table(df):
        raise DataError(f"{law}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{law}: column(s) {missing} not found{did_you_mean(missing[0], df.columns)}; available columns: "
            f"{list(df.columns)}"
        )


def numeric_column(df: pd.DataFrame, col: str, law: str, positive: bool) -> np.ndarray:
    """Column as float64, rejecting NaN/inf and (if positive) values <= 0."""
    try:
        values = df[col]
        if isinstance(values, np.ndarray):  # a Columns table: floats already, or the strings it could not parse
            v = values.astype(np.float64)
        else:
            import pandas as pd

            v = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise DataError(f"{law}: column {col!r} is not numeric ({e})") from None
    bad = ~np.isfinite(v)
    if bad.any():
        raise DataError(
            f"{law}: column {col!r} has {int(bad.sum())} NaN/inf value(s) "
            f"(rows {df.index[bad][:5].tolist()}); drop or fill them (e.g. --where)"
        )
    if positive and (v <= 0).any():
        k = int((v <= 0).sum())
        raise DataError(
            f"{law}: column {col!r} has {k} non-positive value(s) (min {v.min():g}) but the law "
            f"takes its log; filter them out (e.g. --where '{col} > 0')"
        )
    return v


def point_weights(df: pd.DataFrame, weight: str | np.ndarray | None, law: str) -> np.ndarray | None:
    """Per-row weights from a column name or an array (finite, >= 0, not all 0), or None."""
    if weight is None:
        return None
    if isinstance(weight, str):
        check_columns(df, [weight], law)
        w = numeric_column(df, weight, law, positive=False)
    else:
        w = np.asarray(weight, dtype=float).ravel()
        if len(w) != len(df):
            raise FitError(f"{law}: {len(w)} weights for {len(df)} rows; give one weight per row")
    if not np.all(np.isfinite(w)) or (w < 0).any() or not (w > 0).any():
        raise FitError(f"{law}: weights must be finite and >= 0 with at least one > 0 (weight {weight!r})")
    # Relative weights: the units of the column do not change the fit. Scaled so the positive ones
    # average 1, a weight-1 point counts as one point (AIC, the profile's degrees of freedom), and
    # the optimiser's tolerances see an objective of the unweighted scale (weights ~1e10, a model's
    # size, left every bootstrap replicate unconverged).
    return w / w[w > 0].mean()


def collinear_inputs(X: np.ndarray, names: list[str]) -> list[tuple[str, str]]:
    """Pairs of inputs whose logs lie on one line across the rows (one is a power of the other, e.g.
    D = 20 N exactly): a law cannot tell their terms apart, whatever its fit finds."""
    out = []
    with np.errstate(all="ignore"):
        logs = np.log(np.asarray(X, float))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = logs[:, i], logs[:, j]
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or a.std() == 0 or b.std() == 0:
                continue
            if abs(np.corrcoef(a, b)[0, 1]) > 1 - 1e-9:
                out.append((names[i], names[j]))
    return out


def parse_holdout(spec: str | float) -> tuple[str, float, str | None, str]:
    """A holdout spec's grammar, checked before any data is read: (kind, value, column or None
    for the law's first x, normalised text); kind is "largest", "frac", ">" or ">="."""
    text = str(spec).strip()
    try:
        frac = float(text)
        text = f"frac:{frac}"
    except ValueError:
        pass
    m = _COND.match(text)
    if m and not text.startswith(("largest:", "frac:")):
        return m.group(2), float(m.group(3)), m.group(1), text
    parts = text.split(":")
    if parts[0] not in ("largest", "frac") or len(parts) not in (2, 3):
        raise FitError(
            f"holdout {spec!r} not understood; use 'largest:K[:COL]', 'frac:F[:COL]', a fraction "
            f"like 0.2, or a condition like 'N>1e9'"
        )
    col = parts[2] if len(parts) == 3 else None
    if parts[0] == "largest":
        try:
            k = int(parts[1])
        except ValueError:
            raise FitError(f"holdout {spec!r}: K must be an integer, got {parts[1]!r}") from None
        if k < 1:
            raise FitError(f"holdout {spec!r}: K must be >= 1")
        return "largest", k, col, text
    try:
        f = float(parts[1])
    except ValueError:
        raise FitError(f"holdout {spec!r}: F must be a number, got {parts[1]!r}") from None
    if not 0 < f < 1:
        raise FitError(f"holdout {spec!r}: the fraction must be in (0, 1), got {f}")
    return "frac", f, col, text


def holdout_mask(df: pd.DataFrame, spec: str | float, default_col: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Boolean mask of held-out rows for a holdout spec, and a description of the split."""
    kind, value, col, text = parse_holdout(spec)
    col = col or default_col
    _need(df, col, text)
    v = np.asarray(df[col], dtype=float)
    if kind in (">", ">="):
        return (v > value if kind == ">" else v >= value), {"split": text, "column": col, "threshold": value}
    distinct = np.unique(v)[::-1]  # largest first
    if kind == "largest":
        cut = distinct[min(int(value), len(distinct)) - 1]
    else:
        need = math.ceil(value * len(v))
        cut = distinct[0]
        for c in distinct:
            cut = c
            if (v >= c).sum() >= need:
                break
    mask = v >= cut
    return mask, {"split": text, "column": col, "threshold": float(cut)}


def _need(df: pd.DataFrame, col: str, spec: str) -> None:
    if col not in df.columns:
        raise FitError(f"holdout {spec!r}: column {col!r} not found{did_you_mean(col, df.columns)}; "
                       f"available: {list(df.columns)}")


def holdout_report(pred: np.ndarray, y: np.ndarray, info: dict[str, Any], n_train: int) -> dict[str, Any]:
    """Relative extrapolation errors on held-out rows, JSON-ready."""
    rel = (pred - y) / y
    return {
        **info,
        "n_train": int(n_train),
        "n_test": int(len(y)),
        "rel_error": [float(r) for r in rel],
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
    }


def goodness(resid: np.ndarray, target: np.ndarray, n_params: int) -> dict[str, float]:
    """R², Gaussian AIC/BIC and residual sigma, all on the scale the law is fitted on."""
    n = len(resid)
    ss_res = float(np.sum(resid**2))
    ss_tot = float(np.sum((target - target.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    ll_term = n * math.log(max(ss_res / n, 1e-300))
    return {
        "r2": r2,
        "aic": ll_term + 2 * n_params,
        "bic": ll_term + n_params * math.log(n),
        "sigma": math.sqrt(ss_res / max(n - n_params, 1)),
    }


def paired_difference(points: "pd.DataFrame", a: str, b: str, n_boot: int = 2000, seed: int = 0
                      ) -> tuple[float, float, float, int]:
    """Law a's held-out mean |relative error| minus law b's, on the predictions both made (same
    row in the same group), with a 95% percentile interval.

    `points` has columns law, row, rel_error and any grouping columns (e.g. split and domain).
    The figure is each group's mean difference, then the mean over groups; the interval
    resamples each group's rows (paired, so the rows both laws find hard count once).
    Returns (difference, low, high, number of pairs)."""
    keys = [c for c in points.columns if c not in ("law", "row", "rel_error")]
    wide = points[points.law.isin([a, b])].assign(err=lambda f: f.rel_error.abs()).pivot_table(
        index=keys + ["row"], columns="law", values="err").dropna()
    if wide.empty or a not in wide or b not in wide:
        return math.nan, math.nan, math.nan, 0
    diff = (wide[a] - wide[b]).groupby(level=keys)
    groups = [g.to_numpy() for _, g in diff]
    rng = np.random.default_rng(seed)
    boot = np.mean([g[rng.integers(0, len(g), (n_boot, len(g)))].mean(axis=1) for g in groups], axis=0)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(np.mean([g.mean() for g in groups])), float(lo), float(hi), int(len(wide))


def replicate_noise(df: "pd.DataFrame", by: list[str], y: str, scale: str = "log") -> tuple[float, int]:
    """The noise of one run's `y` on the fit scale (log y, or y with scale="linear") measured from
    replicates: the pooled standard deviation within groups of rows equal in every `by` column
    (repeated seeds of one config), sqrt(sum of squared deviations from each group's mean / dof),
    dof = rows in groups of two or more minus the number of such groups. It does not depend on a
    law's form, unlike a fit's residual scale; and with many replicates its error is small
    (relative sd about 1/sqrt(2 dof)). Returns (sigma, dof); raises DataError when no two rows
    share their inputs."""
    import pandas as pd

    check_columns(df, list(by) + [y], "noise")
    t = numeric_column(df, y, "noise", positive=scale == "log")
    t = pd.Series(np.log(t) if scale == "log" else t, index=df.index)
    mean, replicated, n_groups = _replicate_groups(df, by, t)
    dev = (t - mean)[replicated].to_numpy()
    dof = int(len(dev) - n_groups)
    if dof == 0:
        raise DataError(f"noise from seeds: no two rows share their {', '.join(map(repr, by))}; train some configs "
                        "with repeated seeds, or give the noise as a number")
    return float(np.sqrt(np.sum(dev**2) / dof)), dof


def replicate_floor(df: "pd.DataFrame", by: list[str], y: str) -> tuple[float, int]:
    """The seed noise under held-out errors: the `mean |rel. err|` (pred - y) / y that a law
    predicting each group's mean exactly would score on its single runs, over groups of two or more
    replicates (rows equal in every `by` column: the seeds of one shape). Held-out errors, and
    differences between laws, of this size are within the noise. Returns (floor, number of groups
    with replicates); (nan, 0) when no group has two runs."""
    mean, replicated, n_groups = _replicate_groups(df, by, df[y])
    rel = ((mean - df[y]) / df[y]).abs()[replicated]
    if rel.empty:
        return float("nan"), 0
    return float(rel.mean()), n_groups


def _replicate_groups(df: "pd.DataFrame", by: list[str], values: "pd.Series") -> tuple["pd.Series", "pd.Series", int]:
    """Replicates: rows equal in every `by` column. Each row's group mean of `values`, whether its
    group has two or more rows, and how many such groups there are."""
    groups = values.groupby([df[c] for c in by])
    size = groups.transform("size")
    return groups.transform("mean"), size >= 2, int((groups.size() >= 2).sum())


def mixed_series(df, cols: list[str], y: str, ratio: float = 1.25, best_over: bool = False) -> list[str]:
    """A warning when rows with equal inputs `cols` differ in `y` by more than `ratio`: replicates
    (seeds) differ by a few percent, so the table likely holds several series of one experiment
    (a tuning axis, an eval set, a loss and its exp) that the fit would average. Names the
    columns that differ between such rows, where the table has them: a list of that one warning, to
    extend a command's warnings with; empty when nothing is amiss.
    `best_over`: the command has --best-over, so the warning mentions it."""
    # inputs that are labels (a law's extra columns, e.g. dcpt_cross's domain) group by their codes
    X = np.column_stack([np.asarray(df[c], float) if _numeric(df[c]) else
                         np.unique(np.asarray(df[c], str), return_inverse=True)[1].ravel().astype(float) for c in cols])
    v = np.asarray(df[y], float)
    ok = np.isfinite(X).all(1) & np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return []
    _, group = np.unique(X[ok], axis=0, return_inverse=True)
    group = group.ravel()
    lo = np.full(group.max() + 1, np.inf)
    hi = np.zeros(group.max() + 1)
    np.minimum.at(lo, group, v[ok])
    np.maximum.at(hi, group, v[ok])
    worst = int(np.argmax(hi / lo))
    if hi[worst] / lo[worst] <= ratio:
        return []
    rows = np.flatnonzero(ok)[group == worst]
    differ = [c for c in getattr(df, "columns", []) if c not in (*cols, y, SEED, RUN_ID, LABEL)
              and len({str(x) for x in np.asarray(df[c], object)[rows]}) > 1]
    which = f"; they differ in {', '.join(map(str, differ[:4]))}" if differ else ""
    return [(f"rows with the same {', '.join(cols)} differ in {y} by up to {hi[worst] / lo[worst]:.3g}x (more than "
            f"seeds do): the table holds several series{which}; select one with --where"
            + (" (or the best tuning choice with --best-over)" if best_over else ""))]


def mixed_series_of(law, df, best_over: bool = False) -> list[str]:
    """`mixed_series` over a fitted law's inputs: its x columns and the label columns it reads."""
    inputs = list(law.x_) + [c for c in law.extra_columns if c in df.columns and c not in law.x_]
    return mixed_series(df, inputs, law.y_, best_over=best_over)


def _numeric(values) -> bool:
    return np.asarray(values).dtype.kind in "biuf"
