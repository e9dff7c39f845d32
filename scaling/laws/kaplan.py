"""Kaplan et al.'s joint law of size and data (2020, "Scaling Laws for Neural Language Models", eq. 1.5),
the form Gordon et al. 2021 fitted to neural machine translation:

    L(N, D) = [ (N_c / N)^(alpha_N / alpha_D) + D_c / D ]^alpha_D

No irreducible term: the loss falls as a pure power law in N when data are unlimited, (N_c/N)^alpha_N,
and in D when the model is, (D_c/D)^alpha_D. Fitted in log space:
log L = alpha_D · logaddexp((alpha_N / alpha_D)(log N_c - log N), log D_c - log D).

Compute-optimal allocation under C = 6 N D: with p = alpha_N / alpha_D, minimising the bracket
(N_c/N)^p + 6 D_c N / C over N gives N_opt = (p N_c^p (C/6) / D_c)^(1/(p+1)), so
N_opt ∝ C^(alpha_D / (alpha_N + alpha_D)).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import torch

from scaling.laws.allocation import ComputeOptimal
from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law

if TYPE_CHECKING:
    from scaling.laws.profile import Solver

# Kaplan et al.'s fit on WebText2 (their Table 2), in their units: non-embedding parameters, tokens.
KAPLAN_2020 = {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13}


@register_law
class KaplanLaw(ComputeOptimal, Law):
    """L(N, D) = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D; x = [N, D] (parameters, tokens)."""

    name = "kaplan"
    params = (
        Param("alpha_N", 1e-3, 3.0),
        Param("alpha_D", 1e-3, 3.0),
        Param("N_c", -50.0, 300.0, log=True),
        Param("D_c", -50.0, 300.0, log=True),
    )
    n_inputs = 2

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        an, ad, lnc, ldc = (v[:, None] for v in theta.T)
        lN, lD = F[:, 0][None], F[:, 1][None]
        return ad * torch.logaddexp((an / ad) * (lnc - lN), ldc - lD)

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        # Exponents over the range published fits span (0.05 to 0.5); N_c and D_c put each pure power
        # law through the data's mean loss at its mean size, then one and two e-folds below it.
        mean_lN, mean_lD, mean_t = F[:, 0].mean(), F[:, 1].mean(), t.mean()
        grid = []
        for an, ad, sn, sd in itertools.product([0.05, 0.1, 0.2, 0.35, 0.5], [0.05, 0.1, 0.2, 0.35, 0.5],
                                                [0.0, -1.0, -2.0], [0.0, -1.0, -2.0]):
            # (N_c/N)^alpha_N = L  =>  log N_c = log N + log L / alpha_N (s shifts that term's share)
            lnc = mean_lN + (mean_t + sn) / an
            ldc = mean_lD + (mean_t + sd) / ad
            grid.append((an, ad, lnc, ldc))
        return np.array(grid, dtype=float)

    # ---- compute-optimal allocation under C = 6 N D ----
    def allocation_from(self, p, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = p["alpha_N"] / p["alpha_D"]
        ln = (np.log(r) + r * np.log(p["N_c"]) + np.log(C / 6.0) - np.log(p["D_c"])) / (r + 1.0)
        n_opt = np.exp(ln)
        return n_opt, C / (6.0 * n_opt)

    def loss_from(self, p, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        return ((p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / d) ** p["alpha_D"]

    def allocation_exponents(self) -> dict[str, float]:
        """a, b with N_opt ∝ C^a, D_opt ∝ C^b."""
        self._check_fitted()
        an, ad = self.params_["alpha_N"], self.params_["alpha_D"]
        return {"a": ad / (an + ad), "b": an / (an + ad)}

    def nopt_inverse(self, lc: float) -> tuple[int, "Solver"]:
        """Profile over log D_c: log D_c = log p + p log N_c + lc - (p + 1) log N_opt, p = alpha_N/alpha_D."""
        names = self.param_names
        ian, iad, inc, idc = (names.index(n) for n in ("alpha_N", "alpha_D", "N_c", "D_c"))

        def solve(th: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            r = th[:, ian].clamp_min(1e-12) / th[:, iad].clamp_min(1e-12)
            return torch.log(r) + r * th[:, inc] + lc - (r + 1.0) * v

        return idc, solve
