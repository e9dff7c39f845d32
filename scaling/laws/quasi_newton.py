"""A small box-bounded quasi-Newton minimiser in numpy, for polishing a few parameters.

Variable projection (`scaling.laws.varpro`) leaves only a handful of parameters to polish, and a
`scaling fit` process would otherwise spend longer importing `scipy.optimize` (~0.6 s: linprog,
shgo, scipy.sparse, scipy.fft come with it) than fitting. This is a dense projected BFGS: the
variables at a bound whose gradient points outward are held, the others take an inverse-Hessian
step, projected onto the box, with Armijo backtracking. Its stopping rules follow scipy's
L-BFGS-B (relative decrease of f below `ftol`, projected gradient below `gtol`), so that a
polish stops where scipy's would. `scaling.laws.varpro.polish` falls back to scipy when this one
stops short of a stationary point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search
CURVATURE_MIN = 1e-10  # skip a BFGS update whose s'y is below this relative to |s| |y|


@dataclass
class BoundedResult:
    """The fields of scipy's OptimizeResult that callers read."""

    x: np.ndarray
    fun: float
    jac: np.ndarray
    nit: int
    nfev: int
    success: bool
    message: str


def minimize_bounded(fun_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray,
                     lo: np.ndarray, hi: np.ndarray, *, max_iter: int = 1000, ftol: float = 1e-15,
                     gtol: float = 1e-14, max_ls: int = 50) -> BoundedResult:
    """Minimise f over lo <= x <= hi from x0; `fun_grad(x)` returns (f, gradient)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    x = np.clip(np.asarray(x0, float), lo, hi)
    f, g = fun_grad(x)
    nfev = 1
    if not np.isfinite(f):
        return BoundedResult(x, float(f), g, 0, nfev, False, "ABNORMAL: objective not finite at the start")
    n = len(x)
    H = np.eye(n)
    fresh = True  # H is still the identity: scale the first step, and the first update
    for it in range(1, max_iter + 1):
        pg = x - np.clip(x - g, lo, hi)
        if np.max(np.abs(pg)) <= gtol:
            return BoundedResult(x, float(f), g, it - 1, nfev, True, "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL")
        held = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
        free = ~held
        d = np.zeros(n)
        d[free] = -H[np.ix_(free, free)] @ g[free]
        if not g @ d < 0:  # not a descent direction (H went bad): restart from steepest descent
            H, fresh = np.eye(n), True
            d = np.where(free, -g, 0.0)
        step = min(1.0, 1.0 / max(np.max(np.abs(d)), 1e-300)) if fresh else 1.0
        for _ in range(max_ls):
            xn = np.clip(x + step * d, lo, hi)
            s = xn - x
            fn, gn = fun_grad(xn)
            nfev += 1
            if np.isfinite(fn) and fn <= f + ARMIJO * (g @ s):
                break
            step *= 0.5
        else:
            return BoundedResult(x, float(f), g, it, nfev, False, "ABNORMAL_TERMINATION_IN_LNSRCH")
        y = gn - g
        sy = s @ y
        if sy > CURVATURE_MIN * np.linalg.norm(s) * np.linalg.norm(y):
            if fresh:
                H = np.eye(n) * (sy / (y @ y))
                fresh = False
            r = 1.0 / sy
            V = np.eye(n) - r * np.outer(s, y)
            H = V @ H @ V.T + r * np.outer(s, s)
        decrease = (f - fn) / max(abs(f), abs(fn), 1.0)
        x, f, g = xn, fn, gn
        if decrease <= ftol:
            return BoundedResult(x, float(f), g, it, nfev, True, "CONVERGENCE: REL_REDUCTION_OF_F <= FACTR*EPSMCH")
    return BoundedResult(x, float(f), g, max_iter, nfev, False, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT")
