"""Encoder-decoder law (Ghorbani et al. 2021): loss as a function of encoder and decoder sizes.

    L(Ne, Nd) = alpha · (Ne0/Ne)^pe · (Nd0/Nd)^pd + L_inf

x = [Ne, Nd] (non-embedding parameters of each side). Ne0, Nd0 are fixed reference sizes, not
fitted: by default the geometric means of the first data set fitted, in `reference_` (saved by
`to_json`; a refit, and a clone of a fitted law, keep them, so that alpha stays comparable
across the fits a sensitivity check or a held-out split makes); pass
`constants={"Ne0": ..., "Nd0": ...}` to choose them. `fit` leaves `constants` as given. Fitted in log space as
log L = LSE(log alpha + pe·(log Ne0 - log Ne) + pd·(log Nd0 - log Nd), log L_inf).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import torch

from scaling.errors import FitError
from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law


@register_law
class EncDecLaw(Law):
    """L(Ne, Nd) = alpha·(Ne0/Ne)^pe·(Nd0/Nd)^pd + L_inf; x = [Ne, Nd]."""

    name = "encdec"
    params = (
        Param("alpha", -20.0, 20.0, log=True),
        Param("pe", 0.0, 5.0),
        Param("pd", 0.0, 5.0),
        Param("L_inf", -10.0, 6.0, log=True),
    )
    n_inputs = 2

    @property
    def const(self) -> dict[str, float]:
        return {**self.default_constants, **getattr(self, "reference_", {}), **(self.constants or {})}

    def fit(self, df: pd.DataFrame, x: list[str] | str, y: str, holdout: str | float | None = None,
            weight: str | np.ndarray | None = None) -> "EncDecLaw":
        const = self.const
        if "Ne0" not in const or "Nd0" not in const:
            X, _ = self._design(df, [x] if isinstance(x, str) else list(x), None)
            ref = np.exp(np.log(X).mean(axis=0))  # geometric means of Ne and Nd
            const = {"Ne0": float(ref[0]), "Nd0": float(ref[1]), **const}
        self.reference_ = {"Ne0": float(const["Ne0"]), "Nd0": float(const["Nd0"])}
        return super().fit(df, x, y, holdout, weight=weight)

    def clone(self, **overrides: Any) -> "EncDecLaw":
        twin = super().clone(**overrides)
        if hasattr(self, "reference_"):  # the same parameterisation, so alpha compares across refits
            twin.reference_ = dict(self.reference_)
        return twin

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "reference": self.reference_}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EncDecLaw":
        law = super().from_json(d)
        # files saved before `reference` was written carry the sizes in options.constants
        law.reference_ = {k: float(v) for k, v in (d.get("reference") or law.const).items() if k in ("Ne0", "Nd0")}
        return law

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        la, pe, pd, le = theta.T
        c = self.const
        if "Ne0" not in c or "Nd0" not in c:
            raise FitError("encdec: reference sizes Ne0, Nd0 unknown; fit first or pass constants={'Ne0':..,'Nd0':..}")
        de = float(np.log(c["Ne0"])) - F[:, 0]  # [n]
        dd = float(np.log(c["Nd0"])) - F[:, 1]
        term = la[:, None] + pe[:, None] * de + pd[:, None] * dd  # [S, n]
        return torch.logaddexp(term, le[:, None].expand_as(term))

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        y = np.exp(t)
        grid = []
        for frac, pe, p_d, off in itertools.product([0.0, 0.5, 0.9], [0.05, 0.2, 0.5, 1.0], [0.05, 0.2, 0.5, 1.0],
                                                   [-1.0, 0.0, 1.0]):  # fmt: skip
            l_inf = max(frac * y.min(), 1e-3 * y.min())
            gap = max(float(np.median(y)) - l_inf, 1e-6)  # the power term near the reference point
            grid.append((np.log(gap) + off, pe, p_d, np.log(l_inf)))
        return np.array(grid, dtype=float)

    def optimal_split(self, total_params: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Ne, Nd) minimising the predicted loss subject to Ne + Nd = total_params.

        Minimising pe·log(1/Ne) + pd·log(1/Nd) on the budget line gives Ne/Nd = pe/pd,
        i.e. Ne = B·pe/(pe + pd), independent of alpha, L_inf and the reference sizes."""
        self._check_fitted()
        B = np.asarray(total_params, dtype=float)
        if (B <= 0).any():
            raise FitError("optimal_split: the parameter budget must be > 0")
        pe, pd = self.params_["pe"], self.params_["pd"]
        if pe + pd <= 0:
            raise FitError("optimal_split: both exponents are 0, so every split predicts the same loss")
        return B * pe / (pe + pd), B * pd / (pe + pd)


__all__ = ["EncDecLaw"]
