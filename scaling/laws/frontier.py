"""Compute-optimal frontier from loss curves (Henighan et al. 2020, Kaplan et al. 2020).

Every run's loss curve is interpolated (in log compute) onto a common compute grid; the
envelope is the lowest loss at each budget, and the run achieving it is the best model size
for that budget. N_opt(C) = k C^a is fitted in log-log space to the envelope's winners, each
placed at the geometric middle of the compute range it wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.errors import DataError, FitError
from scaling.schema import COMPUTE_CONVENTION, TOKENS
from scaling.laws.validation import check_columns, numeric_column

COMPUTE_CHOICES = (COMPUTE_CONVENTION, "flops")


class ComputeFrontier:
    """Envelope of loss against compute across model sizes, and N_opt(C) as a power law.

    `compute` chooses the convention: "6ND" (default) takes C = 6 · N · D from each curve's
    `tokens` and the run's size N, the convention of `ChinchillaLaw.optimal_allocation`, so the
    frontier's N_opt(C) and the law's are comparable; "flops" takes the curves' exact FLOPs
    column (output head and attention included). `compute_convention` names the one used
    (`scaling.schema.describe_compute` puts it in words). `loss_law_options` go to the power law
    fitted to the envelope's loss (e.g. its Huber delta)."""

    def __init__(self, n_grid: int = 200, fit_loss: bool = True, compute: str = COMPUTE_CONVENTION,
                 loss_law_options: dict | None = None) -> None:
        self.n_grid = n_grid
        self.fit_loss = fit_loss
        self.compute = compute
        self.loss_law_options = loss_law_options

    @property
    def compute_convention(self) -> str:
        """"6ND" or "flops": what C means on this frontier's axes (`describe_compute` says it in words)."""
        return self.compute

    def fit(
        self,
        curves: pd.DataFrame,
        run: str = "run_id",
        flops: str = "flops",
        loss: str = "loss",
        n_params: str = "n_params",
        sizes: pd.Series | dict | None = None,
        tokens: str = TOKENS,
    ) -> "ComputeFrontier":
        """curves: one row per (run, evaluation) with cumulative tokens (for "6ND") or FLOPs (for
        "flops"), loss and the run's size (column `n_params`, or `sizes` mapping run id ->
        parameters, e.g. the runs table's `n_params_nonemb`). `envelope_["flops"]` holds C in
        the frontier's convention."""
        if self.compute not in COMPUTE_CHOICES:
            raise FitError(f"frontier: compute={self.compute!r}; expected one of {', '.join(COMPUTE_CHOICES)}")
        if sizes is not None:
            check_columns(curves, [run], "frontier")
            mapped = curves[run].map(pd.Series(sizes) if isinstance(sizes, dict) else sizes)
            if mapped.isna().any():
                missing = list(pd.unique(curves.loc[mapped.isna(), run]))[:5]
                raise DataError(f"frontier: no size given for run(s) {missing}")
            curves = curves.assign(**{n_params: mapped.to_numpy(float)})
        six_nd = self.compute == COMPUTE_CONVENTION
        check_columns(curves, [run, tokens if six_nd else flops, loss, n_params], "frontier")
        y = numeric_column(curves, loss, "frontier", positive=True)
        n = numeric_column(curves, n_params, "frontier", positive=True)
        if six_nd:
            c = 6.0 * n * numeric_column(curves, tokens, "frontier", positive=True)
        else:
            c = numeric_column(curves, flops, "frontier", positive=True)
        runs = curves[run].to_numpy()
        ids = pd.unique(runs)
        if len(ids) < 2:
            raise FitError(f"frontier needs curves of at least 2 runs (distinct {run!r}), got {len(ids)}")
        if len(ids) == len(runs):
            raise DataError("frontier needs each run's loss curve, several evaluations per run; every run has one "
                            "row in these data (final losses?). Pass a table of curves, or a study folder")
        lc = np.log(c)
        grid = np.linspace(lc.min(), lc.max(), self.n_grid)
        table = np.full((len(ids), self.n_grid), np.nan)
        sizes = np.empty(len(ids))
        for i, r in enumerate(ids):
            m = runs == r
            if np.ptp(n[m]) > 0:
                raise DataError(f"frontier: run {r!r} has several {n_params!r} values; one size per run")
            sizes[i] = n[m][0]
            order = np.argsort(lc[m])
            x, v = lc[m][order], y[m][order]
            inside = (grid >= x[0]) & (grid <= x[-1])
            table[i, inside] = np.interp(grid[inside], x, v)
        ok = ~np.all(np.isnan(table), axis=0)
        best = np.nanargmin(np.where(np.isnan(table), np.inf, table)[:, ok], axis=0)
        env_c = np.exp(grid[ok])
        self.envelope_ = pd.DataFrame(
            {"flops": env_c, "loss": table[best, np.nonzero(ok)[0]], "run": ids[best], "n_params": sizes[best]}
        )
        # Each winning run, placed at the geometric middle of the budgets it wins.
        rows = []
        for r, g in self.envelope_.groupby("run", sort=False):
            lo, hi = g["flops"].min(), g["flops"].max()
            rows.append({"run": r, "n_params": g["n_params"].iloc[0], "c_lo": lo, "c_hi": hi, "c_mid": float(np.sqrt(lo * hi))})
        self.winners_ = pd.DataFrame(rows).sort_values("c_mid").reset_index(drop=True)
        if len(self.winners_) < 2:
            raise FitError("frontier: a single run wins every budget; add smaller and larger models to fit N_opt(C)")
        # The smallest and largest models win ranges cut off by the data, not by a larger or
        # smaller competitor: their midpoints are biased, so they are left out when possible.
        edge = self.winners_["n_params"].isin([sizes.min(), sizes.max()])
        used = self.winners_[~edge] if (~edge).sum() >= 3 else self.winners_
        self.winners_["used"] = self.winners_.index.isin(used.index)
        X, Y = np.log(used["c_mid"].to_numpy()), np.log(used["n_params"].to_numpy())
        if len(X) >= 3:
            from scipy.stats import t

            (a, b), cov = np.polyfit(X, Y, 1, cov=True)
            # The slope's standard error is estimated from n - 2 residual degrees of freedom: with the
            # 3 to 6 winners a frontier usually has, Student's t (12.7 at n = 3) and not the normal's 1.96.
            half = float(t.ppf(0.975, len(X) - 2) * np.sqrt(cov[0, 0]))
        else:
            a, b = np.polyfit(X, Y, 1)
            half = float("nan")
        self.exponent_ = float(a)
        self.coef_ = float(np.exp(b))
        self.exponent_ci_ = (self.exponent_ - half, self.exponent_ + half)
        self.loss_law_ = None
        if self.fit_loss:
            from scaling.laws.power import PowerLaw

            self.loss_law_ = PowerLaw(**(self.loss_law_options or {})).fit(self.envelope_, x="flops", y="loss")
        return self

    def predict_n_opt(self, C: float | np.ndarray) -> np.ndarray:
        """Compute-optimal model size k C^a."""
        if not hasattr(self, "exponent_"):
            raise FitError("frontier is not fitted yet: call fit(curves, ...) first")
        return self.coef_ * np.asarray(C, dtype=float) ** self.exponent_
