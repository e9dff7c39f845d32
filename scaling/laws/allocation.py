"""Compute-optimal allocation for laws of size and data: N_opt(C), D_opt(C) under C = 6 N D.

A law of (N, D) with a closed-form allocation mixes in `ComputeOptimal` and supplies three things:
`allocation_from(p, C)` and `loss_from(p, N, D)` (vectorised over parameter draws),
`allocation_exponents()`, and, for
profile intervals of N_opt, `nopt_inverse(lc)`: the parameter to profile over and how to solve it
from the other parameters and a fixed log N_opt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from scaling.errors import FitError

if TYPE_CHECKING:
    import pandas as pd

    from scaling.laws.profile import Solver


class ComputeOptimal:
    """optimal_allocation, its bootstrap interval and `allocation_at` for a fitted law of (N, D)."""

    def allocation_from(self, p: Mapping[str, np.ndarray], C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) at compute C for parameters `p` (arrays that broadcast with C: one value per
        draw or replicate), not only the fitted ones."""
        raise NotImplementedError

    def loss_from(self, p: Mapping[str, np.ndarray], n: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The law's loss at (n, d) for parameters `p`, vectorised over draws (advise evaluates thousands)."""
        raise NotImplementedError

    def allocation_exponents(self) -> dict[str, float]:
        """a, b with N_opt ∝ C^a, D_opt ∝ C^b."""
        raise NotImplementedError

    def nopt_inverse(self, lc: float) -> tuple[int, "Solver"]:
        """(index of the profiled parameter, solver) at log(C / 6) = lc."""
        raise NotImplementedError

    def optimal_allocation(self, C: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising L(N, D) subject to 6 N D = C (`compute_convention`): compare C with
        the runs' `c_6nd` column, not their exact `flops`."""
        self._check_fitted()
        C = np.asarray(C, dtype=float)
        if (C <= 0).any():
            raise FitError("optimal_allocation: compute budgets C must be > 0")
        return self.allocation_from(self.params_, C)

    def optimal_allocation_ci(self, C: float | np.ndarray, level: float = 0.95) -> "pd.DataFrame":
        """N_opt and D_opt with bootstrap percentile intervals; one row per budget."""
        import pandas as pd

        self._check_fitted()
        if getattr(self, "boot_params_", None) is None:
            raise FitError(f"{self.name}: no bootstrap yet; call law.bootstrap(n) first")
        C = np.atleast_1d(np.asarray(C, dtype=float))
        n_opt, d_opt = self.optimal_allocation(C)
        nb, db = self.boot_allocation(C)
        q = [(1 - level) / 2, (1 + level) / 2]
        n_lo, n_hi = np.nanquantile(nb, q, axis=0)
        d_lo, d_hi = np.nanquantile(db, q, axis=0)
        return pd.DataFrame(
            {"C": C, "N_opt": n_opt, "N_lo": n_lo, "N_hi": n_hi, "D_opt": d_opt, "D_lo": d_lo, "D_hi": d_hi}
        )

    def boot_allocation(self, C: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) of every bootstrap replicate at each budget: arrays (replicates, budgets).
        A degenerate replicate (an exponent at 0) gives inf or nan, which the quantiles skip."""
        if getattr(self, "boot_params_", None) is None:
            raise FitError(f"{self.name}: no bootstrap yet; call law.bootstrap(n) first")
        C = np.atleast_1d(np.asarray(C, dtype=float))
        bp = {k: self.boot_params_[k].to_numpy()[:, None] for k in self.param_names}
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return self.allocation_from(bp, C[None])

    def allocation_at(self, C: float, ci: str | None = None, level: float = 0.95) -> dict:
        """N_opt, D_opt, tokens per parameter and the loss there at compute C (= 6 N D), each
        {"value", "lo", "hi"}; intervals from the profile of log N_opt (ci="profile"), the bootstrap's
        replicates (ci="bootstrap") or none (lo = hi = None)."""
        if ci == "profile":
            from scaling.laws.profile import profile_allocation

            out = profile_allocation(self, C, level)
        else:
            n, d = (float(v) for v in self.optimal_allocation(C))
            out = {"C": float(C), "N_opt": {"value": n, "lo": None, "hi": None},
                   "D_opt": {"value": d, "lo": None, "hi": None},
                   "tokens_per_param": {"value": d / n, "lo": None, "hi": None}, "open": False}
            if ci == "bootstrap":
                if getattr(self, "boot_params_", None) is None:
                    raise FitError(f"{self.name}: allocation intervals by bootstrap need --bootstrap N")
                row = self.optimal_allocation_ci(C, level).iloc[0]
                # D/N = C / (6 N²) falls as N_opt rises
                out["N_opt"].update(lo=float(row.N_lo), hi=float(row.N_hi))
                out["D_opt"].update(lo=float(row.D_lo), hi=float(row.D_hi))
                out["tokens_per_param"].update(lo=C / (6 * float(row.N_hi) ** 2), hi=C / (6 * float(row.N_lo) ** 2))
            elif ci is not None:
                raise FitError(f"allocation interval method must be 'profile' or 'bootstrap', got {ci!r}")
        n, d = out["N_opt"]["value"], out["D_opt"]["value"]
        out["loss"] = float(self.predict(np.array([[n, d]]))[0])
        out["method"] = ci
        return out


def allocating_laws() -> tuple[str, ...]:
    """The registered laws with a compute-optimal allocation (this mixin), by name."""
    from scaling.laws.registry import available_laws, law_class

    return tuple(n for n in available_laws() if issubclass(law_class(n), ComputeOptimal))
