"""Whether a law's bootstrap replicates are optima of their own resamples (a module name of its
own, so it never collides with another test folder's helpers)."""

import numpy as np


def replicate_improvements(law, seed: int) -> np.ndarray:
    """For each pairs-bootstrap replicate of `law` (drawn with `seed`, as run_bootstrap draws them:
    counts of each point), how much a tight Gauss-Newton refit on its resample lowers its
    objective, relative to it."""
    from scaling.laws.varpro import GN_TOL, gauss_newton_runner, objective

    n = law.n_points_
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=len(law.boot_theta_))
    lo, hi = law.bounds()
    out = []
    for theta, c in zip(law.boot_theta_, counts):
        rows = np.repeat(np.arange(n), c)
        F, t = law._Fn[rows], law._tn[rows]
        f0 = objective(law, theta, F, t, law.delta_)[0]
        refit = gauss_newton_runner(law, F, t, law.delta_, lo, hi)(theta, GN_TOL, 5000)
        out.append((f0 - refit.fun) / f0)
    return np.array(out)
