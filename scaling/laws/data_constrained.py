"""Data-constrained scaling law (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models").

    L(N, D, U) = E + A / N'^alpha + B / D'^beta
    D' = U_D (1 + R_D* (1 - exp(-R_D / R_D*))),  U_D = min(U, D),  R_D = D / U_D - 1
    N' = U_N (1 + R_N* (1 - exp(-R_N / R_N*))),  U_N = min(N, N_opt(U_D)),  R_N = N / U_N - 1

Repeated tokens are worth less than fresh ones (R_D* is the number of repetitions after which a
repeat is worth 1/e of a fresh token) and so are parameters beyond the compute-optimal size for
the unique data, N_opt(U) = G (U G)^(beta/alpha) with G = (alpha A / (beta B))^(1/(alpha+beta)).
x = [N, D, U]: parameters, total training tokens, unique tokens.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law

# The paper's fit (datablations README): log A, log B, log E, alpha, beta, R_D*, R_N*.
MUENNIGHOFF_2023 = {"E": float(np.exp(0.6254804)), "A": float(np.exp(6.255414)), "B": float(np.exp(7.3049974)),
                    "alpha": 0.3526596, "beta": 0.3526596, "R_D": 15.387756, "R_N": 5.309743}


def _effective(log_u: torch.Tensor, log_total: torch.Tensor, log_rstar: torch.Tensor) -> torch.Tensor:
    """log of U (1 + R* (1 - exp(-R / R*))) with R = total / U - 1 (>= 0)."""
    r = torch.expm1((log_total - log_u).clamp_min(0.0))
    rstar = torch.exp(log_rstar)
    return log_u + torch.log1p(rstar * -torch.expm1(-r / rstar))


@register_law
class DataConstrainedLaw(Law):
    """L(N, D, U) with effective repeated data and excess parameters; x = [N, D, U]."""

    name = "data_constrained"
    params = (
        Param("E", -5.0, 5.0, log=True),
        Param("A", -20.0, 40.0, log=True),
        Param("B", -20.0, 40.0, log=True),
        Param("alpha", 0.01, 5.0),
        Param("beta", 0.01, 5.0),
        Param("R_D", -3.0, 8.0, log=True),  # R_D*
        Param("R_N", -3.0, 8.0, log=True),  # R_N*
    )
    n_inputs = 3

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        e, a, b, al, be, lrd, lrn = (v[:, None] for v in theta.T)
        lN, lD, lU = (F[:, k][None] for k in range(3))
        lUD = torch.minimum(lU, lD)
        lG = (torch.log(al) + a - torch.log(be) - b) / (al + be)
        lUN = torch.minimum(lN, lG + (be / al) * (lUD + lG))
        lNp = _effective(lUN, lN, lrn)
        lDp = _effective(lUD, lD, lrd)
        terms = torch.stack(torch.broadcast_tensors(e, a - al * lNp, b - be * lDp))
        return torch.logsumexp(terms, dim=0)

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        es = t.min() + np.log([0.5, 0.85])
        grid = [(e, a, b, al, be, np.log(rd), np.log(rn))
                for e, a, b, al, be, rd, rn in itertools.product(es, [4.0, 8.0], [4.0, 8.0], [0.25, 0.5],
                                                                 [0.25, 0.5], [5.0, 15.0, 40.0], [2.0, 6.0, 20.0])]
        return np.array(grid, dtype=float)
