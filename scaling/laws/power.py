"""Saturating power law L(x) = L_inf + (x0/x)^alpha (Henighan et al. 2020), x = N, D or C.

Fitted in log space as log L = LSE(e, alpha (log x0 - log x)) with L_inf = e^e.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law

if TYPE_CHECKING:
    import torch


@register_law
class PowerLaw(Law):
    """L(x) = L_inf + (x0/x)^alpha; one x column."""

    name = "power"
    params = (
        Param("L_inf", -10.0, 6.0, log=True),
        Param("x0", -200.0, 300.0, log=True),
        Param("alpha", 1e-4, 5.0),
    )
    n_inputs = 1

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        import torch

        e, lx0, al = theta.T
        lx = F[:, 0]
        z = torch.stack([e[:, None].expand(-1, len(lx)), al[:, None] * (lx0[:, None] - lx)])
        return torch.logsumexp(z, dim=0)

    # ---- numpy form: L = L_inf + s x^-alpha with s = x0^alpha (variable projection) ----
    def np_pred_jac(self, theta: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, lx0, al = theta
        u = lx0 - F[:, 0]
        term = np.exp(al * u)
        E = np.full_like(term, np.exp(e))
        return E + term, np.stack([E, al * term, u * term], 1)

    def vp_basis(self, nl: np.ndarray, F: np.ndarray) -> np.ndarray:
        return np.stack([np.ones((len(nl), len(F))), np.exp(-nl[:, :1] * F[:, 0])], -1)

    def vp_theta(self, nl: np.ndarray, coef: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.column_stack([np.log(coef[:, 0]), np.log(coef[:, 1]) / nl[:, 0], nl[:, 0]])

    def vp_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.concatenate([np.geomspace(0.005, 0.1, 15, endpoint=False), np.linspace(0.1, 2.0, 40),
                               np.linspace(2.2, 4.0, 6)])[:, None]

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        # For each (L_inf, alpha) pick x0 so the curve passes near the median point; the
        # offsets in log x0 cover curves steeper or flatter than that guess.
        lx = F[:, 0]
        y = np.exp(t)
        i = int(np.argsort(lx)[len(lx) // 2])
        fracs = [0.0, 0.3, 0.6, 0.8, 0.95]
        alphas = [0.03, 0.07, 0.15, 0.3, 0.6, 1.2]
        offsets = [-2.0, 0.0, 2.0]
        grid = []
        for f, al, off in itertools.product(fracs, alphas, offsets):
            l_inf = max(f * y.min(), 1e-3 * y.min())
            gap = max(y[i] - l_inf, 1e-6 * y[i])
            lx0 = lx[i] + np.log(gap) / al + off
            grid.append((np.log(l_inf), lx0, al))
        return np.array(grid, dtype=float)


@register_law
class PowerLawNoConst(Law):
    """L(x) = (x0/x)^alpha, a pure power law without an irreducible term; one x column.

    Linear in log space (log L = alpha log x0 - alpha log x), so with loss="mse" it is least
    squares on the log-log line."""

    name = "power_noconst"
    params = (
        Param("x0", -200.0, 300.0, log=True),
        Param("alpha", 1e-4, 5.0),
    )
    n_inputs = 1

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        lx0, al = theta.T
        return al[:, None] * (lx0[:, None] - F[:, 0])

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        # Through the median point for each exponent.
        lx = F[:, 0]
        i = int(np.argsort(lx)[len(lx) // 2])
        return np.array([(lx[i] + t[i] / al, al) for al in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)], dtype=float)
