"""Broken power law with one break (Caballero et al. 2022, "Broken Neural Scaling Laws"):

    L(x) = a + b x^(-c0) (1 + (x/d1)^(1/f1))^(-c1 f1)

Below the break d1 the curve falls with exponent c0, above it with c0 + c1; f1 sets how sharp
the bend is. Fitted in log space: log L = LSE(log a, log b - c0 log x - c1 f1 softplus((log x -
log d1)/f1)).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as Fn

from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law


@register_law
class BrokenPowerLaw(Law):
    """L(x) = a + b x^-c0 (1 + (x/d1)^(1/f1))^(-c1 f1); one x column."""

    name = "broken_power"
    params = (
        Param("a", -10.0, 6.0, log=True),
        Param("b", -50.0, 80.0, log=True),
        Param("c0", 0.0, 5.0),
        Param("c1", -2.0, 5.0),
        Param("d1", -50.0, 150.0, log=True),
        Param("f1", -4.0, 3.0, log=True),
    )
    n_inputs = 1

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        la, lb, c0, c1, ld1, lf1 = (v[:, None] for v in theta.T)
        lx = F[:, 0][None]
        f1 = torch.exp(lf1)
        bend = f1 * Fn.softplus((lx - ld1) / f1)  # log(1 + (x/d1)^(1/f1)) * f1
        return torch.logaddexp(la.expand(-1, lx.shape[1]), lb - c0 * lx - c1 * bend)

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        # Breaks at quantiles of the sampled range; b puts the curve through the smallest x.
        lx = F[:, 0]
        y = np.exp(t)
        i0 = int(np.argmin(lx))
        grid = []
        for frac, c0, c1, q, f1 in itertools.product([0.0, 0.5, 0.9], [0.05, 0.2, 0.5], [0.1, 0.4, 1.0],
                                                      [0.25, 0.5, 0.75], [0.3, 1.0]):
            a = max(frac * y.min(), 1e-3 * y.min())
            ld1 = float(np.quantile(lx, q))
            bend = f1 * np.logaddexp(0.0, (lx[i0] - ld1) / f1)
            lb = np.log(max(y[i0] - a, 1e-6 * y[i0])) + c0 * lx[i0] + c1 * bend
            grid.append((np.log(a), lb, c0, c1, ld1, np.log(f1)))
        return np.array(grid, dtype=float)
