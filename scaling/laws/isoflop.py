"""Chinchilla Approach 2 (IsoFLOP profiles; Hoffmann et al. 2022, also Llama 3's scaling study).

For each compute budget C, loss is fitted by a quadratic in log N and one in log D; the vertex
of each is that budget's optimum N_opt(C), D_opt(C), L_opt(C). A vertex counts only when the
parabola opens upwards and the vertex lies inside the sampled range: otherwise the budget is
flagged (`interior` False, with the reason) and left out. Power laws N_opt = k_n C^a and
D_opt = k_d C^b are then fitted in log-log space to the interior budgets. A bootstrap
resampling points within each budget gives intervals on the vertices, exponents and
coefficients; replicates with fewer than 3 interior budgets are excluded and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import FitError
from scaling.laws.validation import check_columns, numeric_column

MIN_BUDGETS = 3
PARAMS = ("a", "b", "k_n", "k_d")


def vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool, str]:
    """Vertex (x*, y*) of the least-squares parabola of y in x; interior flag and the reason if not."""
    if len(np.unique(x)) < 3:
        return np.nan, np.nan, False, "fewer than 3 distinct sizes"
    c2, c1, c0 = np.polyfit(x, y, 2)
    if not c2 > 0:
        return np.nan, np.nan, False, "curvature not positive (no minimum)"
    v = -c1 / (2 * c2)
    yv = c0 - c1 * c1 / (4 * c2)
    if not x.min() <= v <= x.max():
        return float(v), float(yv), False, "vertex outside the sampled range"
    return float(v), float(yv), True, ""


def _profiles(lc: np.ndarray, ln: np.ndarray, ld: np.ndarray, y: np.ndarray, groups: list[np.ndarray]):
    """Per budget: log N_opt, log D_opt, L_opt (mean of the two vertices' losses), interior, reason."""
    out = []
    for idx in groups:
        vn, ln_opt, okn, why_n = vertex(ln[idx], y[idx])
        vd, ld_opt, okd, why_d = vertex(ld[idx], y[idx])
        reason = "; ".join(f"{w} in log {k}" for w, k in ((why_n, "N"), (why_d, "D")) if w)
        out.append((lc[idx][0], vn, vd, 0.5 * (ln_opt + ld_opt), okn and okd, reason))
    return out


def _power_fits(prof) -> dict[str, float] | None:
    rows = [p for p in prof if p[4]]
    if len(rows) < MIN_BUDGETS:
        return None
    lc = np.array([p[0] for p in rows])
    a, ikn = np.polyfit(lc, [p[1] for p in rows], 1)
    b, ikd = np.polyfit(lc, [p[2] for p in rows], 1)
    return {"a": float(a), "b": float(b), "k_n": float(np.exp(ikn)), "k_d": float(np.exp(ikd))}


class IsoFlopLaw:
    """Approach 2: per-budget parabolas in log N and log D, then N_opt, D_opt power laws in C.

    Fitted: params_ (a, b, k_n, k_d), budgets_ (one row per budget: budget, n_opt, d_opt,
    loss_opt, interior, reason, n_points), ci_ (95% bootstrap: params and, in budgets_, n_lo/n_hi,
    d_lo/d_hi), boot_params_, n_boot_excluded_, n_points_, converged_, objective_ (residual sum
    of squares of the log D_opt fit)."""

    name = "isoflop"

    def __init__(self, n_bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> None:
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.level = level

    def fit(self, df: pd.DataFrame, n: str = "params", d: str = "tokens", budget: str = "budget",
            y: str = "loss") -> "IsoFlopLaw":
        check_columns(df, [n, d, budget, y], self.name)
        N = numeric_column(df, n, self.name, True)
        D = numeric_column(df, d, self.name, True)
        C = numeric_column(df, budget, self.name, True)
        L = numeric_column(df, y, self.name, False)
        self.columns_ = {"n": n, "d": d, "budget": budget, "y": y}
        lc, ln, ld = np.log(C), np.log(N), np.log(D)
        budgets = np.unique(C)
        groups = [np.nonzero(C == c)[0] for c in budgets]
        prof = _profiles(lc, ln, ld, L, groups)
        fits = _power_fits(prof)
        self.budgets_ = pd.DataFrame({
            "budget": budgets, "n_opt": np.exp([p[1] for p in prof]), "d_opt": np.exp([p[2] for p in prof]),
            "loss_opt": [p[3] for p in prof], "interior": [bool(p[4]) for p in prof],
            "reason": [p[5] for p in prof], "n_points": [len(g) for g in groups]})
        if fits is None:
            flagged = "; ".join(f"C={r.budget:g}: {r.reason}" for r in self.budgets_.itertuples() if not r.interior)
            raise FitError(
                f"isoflop: only {int(self.budgets_.interior.sum())} of {len(budgets)} budget(s) in column {budget!r} "
                f"have an interior minimum (need {MIN_BUDGETS}); sample sizes on both sides of each budget's "
                f"optimum" + (f" ({flagged})" if flagged else ""))
        self.params_ = fits
        self.n_points_ = int(len(L))
        inner = self.budgets_[self.budgets_.interior]
        resid = np.log(inner.d_opt) - np.log(fits["k_d"]) - fits["b"] * np.log(inner.budget)
        self.objective_ = float(np.sum(resid**2))
        self.converged_ = True
        self.holdout_: dict[str, Any] = {}
        self.ci_: dict[str, tuple[float, float]] = {}
        self.boot_params_ = None
        self.n_boot_excluded_ = 0
        if self.n_bootstrap:
            self._bootstrap(lc, ln, ld, L, groups)
        return self

    def _bootstrap(self, lc, ln, ld, L, groups) -> None:
        if self.n_bootstrap < 2:
            raise FitError(f"isoflop: bootstrap needs at least 2 replicates, got {self.n_bootstrap}")
        rng = np.random.default_rng(self.seed)
        rows, verts, excluded = [], [], 0
        for _ in range(self.n_bootstrap):
            # Resample within each budget: the design (which budgets) is fixed, the points are noisy.
            gs = [g[rng.integers(0, len(g), len(g))] for g in groups]
            prof = _profiles(lc, ln, ld, L, gs)
            fits = _power_fits(prof)
            if fits is None:
                excluded += 1
                continue
            rows.append(fits)
            verts.append([(p[1], p[2]) if p[4] else (np.nan, np.nan) for p in prof])
        self.n_boot_excluded_ = excluded
        if len(rows) < 2:
            raise FitError(f"isoflop: {excluded} of {self.n_bootstrap} bootstrap replicates had fewer than "
                           f"{MIN_BUDGETS} interior budgets; the intervals cannot be estimated")
        self.boot_params_ = pd.DataFrame(rows)
        q = [(1 - self.level) / 2, (1 + self.level) / 2]
        self.ci_ = {k: tuple(float(v) for v in np.quantile(self.boot_params_[k], q)) for k in PARAMS}
        V = np.exp(np.array(verts))  # [R, budgets, 2]
        with np.errstate(all="ignore"):
            lo, hi = np.nanquantile(V, q, axis=0) if np.isfinite(V).any() else (V[0] * np.nan, V[0] * np.nan)
        for j, k in enumerate(("n", "d")):
            self.budgets_[f"{k}_lo"], self.budgets_[f"{k}_hi"] = lo[:, j], hi[:, j]

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise FitError("isoflop law is not fitted yet: call fit(df, n=..., d=..., budget=..., y=...) first")

    def predict_n_opt(self, C: float | np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.params_["k_n"] * np.asarray(C, float) ** self.params_["a"]

    def predict_d_opt(self, C: float | np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.params_["k_d"] * np.asarray(C, float) ** self.params_["b"]

    def tokens_per_param(self, C: float | np.ndarray) -> np.ndarray:
        """D_opt / N_opt at budget C (each from its own power law)."""
        return self.predict_d_opt(C) / self.predict_n_opt(C)

    def boot_tokens_per_param(self, C: float) -> np.ndarray | None:
        if self.boot_params_ is None:
            return None
        bp = self.boot_params_
        return (bp.k_d * C**bp.b / (bp.k_n * C**bp.a)).to_numpy()

    def budgets_json(self) -> list[dict[str, Any]]:
        """The `"budgets"` list of `scaling fit isoflop --json`."""
        self._check_fitted()
        out = []
        for r in self.budgets_.itertuples():
            row = {"budget": float(r.budget), "n_opt": _num(r.n_opt), "d_opt": _num(r.d_opt),
                   "loss_opt": _num(r.loss_opt), "interior": bool(r.interior), "n_points": int(r.n_points)}
            if r.reason:
                row["reason"] = r.reason
            for k in ("n_lo", "n_hi", "d_lo", "d_hi"):
                if k in self.budgets_.columns:
                    row[k] = _num(getattr(r, k))
            out.append(row)
        return out


def _num(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
