"""Batched L-BFGS-B against scipy's L-BFGS-B on single starts, with and without active bounds."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from scaling.laws.engine import EngineOptions, minimize_batched, multistart


def rosen_fg(theta: torch.Tensor, idx: torch.Tensor):
    x, y = theta[:, 0], theta[:, 1]
    f = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    g = torch.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], -1)
    return f, g


def rosen_np(p):
    t = torch.as_tensor(p[None], dtype=torch.float64)
    f, g = rosen_fg(t, torch.arange(1))
    return float(f[0]), g[0].numpy()


STARTS = np.array([[-1.2, 1.0], [2.0, 2.0], [-0.5, -0.5], [0.0, 3.0], [1.5, -1.0]])


def test_unbounded_rosenbrock_matches_scipy():
    res = minimize_batched(rosen_fg, STARTS, [-10, -10], [10, 10])
    assert res.converged.all()
    for s, th in zip(STARTS, res.theta):
        ref = minimize(rosen_np, s, jac=True, method="L-BFGS-B", bounds=[(-10, 10)] * 2, options={"ftol": 1e-15, "gtol": 1e-12})
        np.testing.assert_allclose(th, ref.x, atol=1e-6)
        np.testing.assert_allclose(th, [1.0, 1.0], atol=1e-6)


def test_active_bound_matches_scipy():
    # Minimum constrained by x <= 0.5: the optimum sits on the bound.
    lo, hi = [-2.0, -2.0], [0.5, 2.0]
    res = minimize_batched(rosen_fg, STARTS, lo, hi)
    ref = minimize(rosen_np, STARTS[0], jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)), options={"ftol": 1e-15, "gtol": 1e-12})
    assert res.converged.all()
    for th, f in zip(res.theta, res.fun):
        np.testing.assert_allclose(th, ref.x, atol=1e-6)
        assert f == pytest.approx(ref.fun, rel=1e-8)
        assert th[0] == 0.5


def test_max_iter_is_flagged_not_converged():
    res = minimize_batched(rosen_fg, STARTS[:2], [-10, -10], [10, 10], EngineOptions(max_iter=3))
    assert not res.converged.any()
    assert (res.status == 4).all()


def test_nonfinite_start_is_dead_others_fine():
    def fg(theta, idx):
        f, g = rosen_fg(theta, idx)
        f = torch.where(theta[:, 0] > 5, torch.full_like(f, float("nan")), f)
        return f, g

    res = minimize_batched(fg, np.array([[6.0, 0.0], [-1.2, 1.0]]), [-10, -10], [10, 10])
    assert not res.converged[0] and res.converged[1]
    np.testing.assert_allclose(res.theta[1], [1.0, 1.0], atol=1e-6)


def test_multistart_finds_global_of_double_well():
    # f = (x^2 - 1)^2 + 0.3 x: global minimum near x = -1.04, local near x = +0.96.
    def fg(theta, idx):
        x = theta[:, 0]
        return (x**2 - 1) ** 2 + 0.3 * x, (4 * x * (x**2 - 1) + 0.3)[:, None]

    starts = np.linspace(-2, 2, 9)[:, None]
    res = multistart(fg, starts, [-3.0], [3.0])
    ref = minimize(lambda p: ((p[0] ** 2 - 1) ** 2 + 0.3 * p[0]), [-1.0], method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
    assert res.converged
    assert res.theta[0] == pytest.approx(ref.x[0], abs=1e-6)
    assert res.n_starts == 9
    assert 1 <= res.n_starts_best < 9  # starts right of the barrier end in the other well
