"""Sensitivity of a fit's answers to fitting choices (the (Mis)Fitting checklist, Li et al. 2025).

`sensitivity(law, df, x, y)` refits the law once per choice along each axis that changes
conclusions in practice and tabulates, per choice, the parameters, the allocation exponent
a = beta / (alpha + beta), tokens per parameter and the predicted loss at a target compute:

    form        as given; alpha = beta tied
    objective   log-Huber delta 1e-4 / 1e-3 / 1e-2; log-MSE; log-MAE; Huber on raw loss; mean not sum
    init        the law's full grid; best point of the grid only; random starts
    counting    N from another column (e.g. without embeddings); C = exact FLOPs instead of 6ND
    points      drop the k highest losses; drop early checkpoints (step <= half the run's last)
    range       smallest sizes removed (N > 25% quantile); largest sizes only (N >= median)

Axes whose columns are absent (counting, checkpoints) or whose law lacks the terms (alpha,
beta) are skipped. A choice whose refit fails keeps its row, with the error and no numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from scaling.errors import FitError, ScalingError
from scaling.laws.allocation import ComputeOptimal
from scaling.laws.fitting import FitWarning

if TYPE_CHECKING:
    from scaling.laws.base import Law

COLUMNS = ["axis", "choice", "params", "a", "tokens_per_param", "loss_at_target"]


@dataclass
class Choice:
    axis: str
    choice: str
    options: dict[str, Any] = field(default_factory=dict)  # constructor overrides
    rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # which points are kept
    x: list[str] | None = None  # other input columns
    flops_per_nd: float | None = None  # C = k N D with this k instead of 6


def default_target_compute(df: pd.DataFrame, x: list[str]) -> float:
    """Ten times the largest 6 N D in the table: an extrapolation one decade out."""
    return float(10 * 6 * (df[x[0]].astype(float) * df[x[1]].astype(float)).max())


def answers(law: "Law", C: float | None, k: float = 6.0) -> dict[str, Any]:
    """a, tokens per parameter and loss at compute C = k N D (None where the law has no allocation)."""
    p = law.params_
    if isinstance(law, ComputeOptimal):
        a = law.allocation_exponents()["a"]
    else:  # other laws with Chinchilla's two exponents (e.g. data_constrained)
        a = p["beta"] / (p["alpha"] + p["beta"]) if {"alpha", "beta"} <= set(p) else None
    out = {"a": a, "tokens_per_param": None, "loss_at_target": None}
    if C is None or not isinstance(law, ComputeOptimal):
        return out
    n_opt, _ = law.optimal_allocation(C * 6.0 / k)  # the law's allocation assumes C = 6ND
    n_opt = float(n_opt)
    d_opt = C / (k * n_opt)
    out["tokens_per_param"] = d_opt / n_opt
    out["loss_at_target"] = float(law.predict(np.array([[n_opt, d_opt]]))[0])
    return out


def choices(law: "Law", df: pd.DataFrame, x: list[str], y: str, drop_k: int = 5, n_alt: str | None = None,
            flops: str | None = None, run: str | None = None, step: str | None = None) -> list[Choice]:
    """The checklist for this law and table."""
    try:
        names = set(law.param_names)
    except FitError:  # parameters that follow the data (select's variants, dcpt_cross's domains)
        names = set(law.clone().fit(df, x, y).param_names)
    out = [Choice("form", "as given")]
    if {"alpha", "beta"} <= names:
        out.append(Choice("form", "alpha = beta", {"tied": {**(law.tied or {}), "beta": "alpha"}}))
    for d in (1e-4, 1e-3, 1e-2):
        out.append(Choice("objective", f"log-Huber delta={d:g}", {"loss": "huber", "delta": d, "scale": "log"}))
    out += [
        Choice("objective", "log-MSE", {"loss": "mse", "scale": "log"}),
        Choice("objective", "log-MAE", {"loss": "mae", "scale": "log"}),
        Choice("objective", "Huber on raw loss", {"loss": "huber", "scale": "linear"}),
        Choice("objective", "mean instead of sum", {"reduction": "mean" if law.reduction == "sum" else "sum"}),
    ]
    grid = str(law.init).partition(":")[2] if str(law.init).startswith("best") else law.init
    out += [
        Choice("init", f"full grid ({grid})", {"init": grid}),
        Choice("init", "best of grid", {"init": f"best:{grid}"}),
        Choice("init", "random starts (256)", {"init": "random:256"}),
    ]
    if n_alt and n_alt in df.columns:
        out.append(Choice("counting", f"N = {n_alt}", x=[n_alt] + x[1:]))
    if flops and flops in df.columns and law.n_inputs == 2:
        k = float(np.median(df[flops].astype(float) / (df[x[0]].astype(float) * df[x[1]].astype(float))))
        out.append(Choice("counting", f"C = {flops} (k = {k:.3g} per N D)", flops_per_nd=k))
    if drop_k > 0 and len(df) > drop_k:
        out.append(Choice("points", f"drop {drop_k} highest loss", rows=lambda d: d.sort_values(y).iloc[:-drop_k]))
    if run and step and {run, step} <= set(df.columns):
        late = lambda d: d[d[step] > 0.5 * d.groupby(run)[step].transform("max")]  # noqa: E731
        out.append(Choice("points", "drop early checkpoints", rows=late))
    n = df[x[0]].astype(float)
    out += [
        Choice("range", "smallest sizes removed", rows=lambda d: d[n.loc[d.index] > n.quantile(0.25)]),
        Choice("range", "largest sizes only", rows=lambda d: d[n.loc[d.index] >= n.median()]),
    ]
    return out


def sensitivity(law: "Law", df: pd.DataFrame, x: list[str], y: str, target_compute: float | None = None,
                weight: str | None = None, **columns: Any) -> pd.DataFrame:
    """One row per choice (COLUMNS plus n_points, converged and error); `columns` are choices()'s n_alt,
    flops, run, step, drop_k. The target compute defaults to `default_target_compute`."""
    x = [x] if isinstance(x, str) else list(x)
    if target_compute is None and isinstance(law, ComputeOptimal):
        target_compute = default_target_compute(df, x)
    rows = []
    for c in choices(law, df, x, y, **columns):
        part = c.rows(df) if c.rows else df
        row: dict[str, Any] = {"axis": c.axis, "choice": c.choice, "params": None, "a": None,
                               "tokens_per_param": None, "loss_at_target": None, "n_points": len(part), "converged": None, "error": None}
        try:
            with warnings.catch_warnings():  # non-convergence is recorded in the row instead
                warnings.simplefilter("ignore", FitWarning)
                m = law.clone(n_bootstrap=0, **c.options).fit(part, c.x or x, y, weight=weight)
            row["params"], row["converged"] = dict(m.params_), bool(m.converged_)
            row.update(answers(m, target_compute, c.flops_per_nd or 6.0))
        except ScalingError as e:  # a choice the data cannot support is a finding, not a crash
            row["error"] = str(e)
        rows.append(row)
    table = pd.DataFrame(rows)
    # None where a choice fitted: pandas' string dtype would turn it into NaN, which is truthy
    table["error"] = pd.Series([r["error"] for r in rows], index=table.index, dtype=object)
    table.attrs["target_compute"] = target_compute
    return table


def spread(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """min, max and max/min across choices of a, tokens per parameter and loss at the target."""
    out = {}
    for col in ("a", "tokens_per_param", "loss_at_target"):
        v = pd.to_numeric(table[col], errors="coerce").dropna()
        if len(v):
            out[col] = {"min": float(v.min()), "max": float(v.max()),
                        "ratio": float(v.max() / v.min()) if v.min() > 0 else float("nan")}
    return out


def sensitivity_json(table: pd.DataFrame) -> dict[str, Any]:
    """The `scaling fit --sensitivity --json` object: exactly {"sensitivity": [...], "target_compute": C}."""
    def num(v):
        return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)

    rows = [{"axis": r["axis"], "choice": r["choice"],
             "params": None if r["params"] is None else {k: float(v) for k, v in r["params"].items()},
             "a": num(r["a"]), "tokens_per_param": num(r["tokens_per_param"]), "loss_at_target": num(r["loss_at_target"])}
            for r in table.to_dict("records")]
    C = table.attrs.get("target_compute")
    return {"sensitivity": rows, "target_compute": None if C is None else float(C)}

