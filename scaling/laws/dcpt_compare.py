"""Which D-CPT form do the runs support? Each law fitted on all points and on the paper's held-out
splits (leave out an interior share, the largest size, the largest token count), scored on the
held-out points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.laws.dcpt import CPT_LAWS

SPLITS = ("leave-out-ratio", "leave-out-size", "leave-out-tokens")


def holdout_folds(df: pd.DataFrame, x: list[str]) -> dict[str, list[np.ndarray]]:
    """Held-out masks per split, as in the paper's generalisation checks.

    leave-out-ratio: one fold per interior share (each held out in turn; the extreme shares
    stay in training so the fits interpolate in r); leave-out-size: the largest N;
    leave-out-tokens: the largest D.
    """
    n_col, d_col, r_col = x
    out: dict[str, list[np.ndarray]] = {}
    shares = np.unique(df[r_col].to_numpy(float))
    out["leave-out-ratio"] = [(df[r_col] == s).to_numpy() for s in shares[1:-1]]
    for split, col in (("leave-out-size", n_col), ("leave-out-tokens", d_col)):
        v = df[col].to_numpy(float)
        out[split] = [v == v.max()] if len(np.unique(v)) > 1 else []
    return out


def _huber_mean(r: np.ndarray, delta: float) -> float:
    a = np.abs(r)
    return float(np.mean(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else np.nan


def compare_laws(df: pd.DataFrame, x: list[str], y: str, laws: tuple[str, ...] = CPT_LAWS,
                 delta: float | str = 1e-3, points: bool = False, **law_options
                 ) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Fit each law on all points and on every held-out split; one row per (law, split).

    Columns: law, split, n_train, n_test, huber (mean Huber loss of log residuals, delta as
    the fit's: with delta "auto", that of the law's fit on all points), r2 (R² of the loss
    values), mean_abs_rel_error, max_abs_rel_error. Folds of a split are pooled. With `points`,
    also each held-out prediction's error (law, split, row: the position in df, rel_error =
    prediction / measured - 1), so laws can be compared point by point
    (`scaling.laws.validation.paired_difference`).
    """
    from scaling.laws.registry import get_law

    folds = holdout_folds(df, x)
    yv = df[y].to_numpy(float)
    rows, point_rows = [], []
    for name in laws:
        law = get_law(name, delta=delta, **law_options).fit(df, x=x, y=y)
        pred, scored = law.predict(df), float(law.delta_)
        rows.append({"law": name, "split": "all points (fit)", "n_train": len(df), "n_test": len(df),
                     "huber": _huber_mean(np.log(pred / yv), scored), "r2": _r2(pred, yv),
                     "mean_abs_rel_error": float(np.mean(np.abs(pred / yv - 1))),
                     "max_abs_rel_error": float(np.max(np.abs(pred / yv - 1)))})
        for split in SPLITS:
            preds, truth, n_train, where = [], [], [], []
            for mask in folds[split]:
                if (~mask).sum() < law._n_free():
                    continue
                m = get_law(name, delta=delta, **law_options).fit(df[~mask], x=x, y=y)
                preds.append(m.predict(df[mask]))
                truth.append(yv[mask])
                n_train.append(int((~mask).sum()))
                where.append(np.flatnonzero(mask))
            if not preds:
                continue
            p, t = np.concatenate(preds), np.concatenate(truth)
            rel = p / t - 1
            point_rows.append(pd.DataFrame({"law": name, "split": split, "row": np.concatenate(where),
                                            "rel_error": rel}))
            rows.append({"law": name, "split": split, "n_train": int(np.mean(n_train)), "n_test": len(t),
                         "huber": _huber_mean(np.log(p / t), scored), "r2": _r2(p, t),
                         "mean_abs_rel_error": float(np.mean(np.abs(rel))),
                         "max_abs_rel_error": float(np.max(np.abs(rel)))})
    table = pd.DataFrame(rows)
    if not points:
        return table
    return table, (pd.concat(point_rows, ignore_index=True) if point_rows
                   else pd.DataFrame(columns=["law", "split", "row", "rel_error"]))


__all__ = ["SPLITS", "compare_laws", "holdout_folds"]
