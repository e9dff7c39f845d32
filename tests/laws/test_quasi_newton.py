"""The numpy bounded quasi-Newton that polishes variable-projection fits (no scipy import)."""

import numpy as np
import pytest

from scaling.laws.quasi_newton import minimize_bounded


def rosenbrock(x):
    f = 100.0 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    g = np.array([-400.0 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]), 200.0 * (x[1] - x[0] ** 2)])
    return f, g


def test_unconstrained_minimum_is_found_to_tight_tolerance():
    res = minimize_bounded(rosenbrock, np.array([-1.2, 1.0]), np.full(2, -5.0), np.full(2, 5.0))
    assert res.success and res.x == pytest.approx([1.0, 1.0], abs=1e-7) and res.fun < 1e-14


def test_bound_constrained_quadratic_matches_its_exact_solution():
    # min |x - c|^2_A over a box: the KKT point of a random convex quadratic, found by brute force
    # over the 3^n active sets (each coordinate at lo, at hi, or free).
    rng = np.random.default_rng(3)
    n = 4
    M = rng.normal(size=(n, n))
    A = M @ M.T + 0.5 * np.eye(n)
    c = rng.normal(scale=2.0, size=n)
    lo, hi = np.full(n, -0.5), np.full(n, 0.7)

    def fg(x):
        r = x - c
        return float(r @ A @ r), 2 * A @ r

    import itertools

    best = None
    for pattern in itertools.product((0, 1, 2), repeat=n):
        x = np.where(np.array(pattern) == 0, lo, hi).astype(float)
        free = np.array(pattern) == 2
        if free.any():  # solve A_ff (x_f - c_f) = -A_fb (x_b - c_b)
            b = ~free
            x[free] = c[free] - np.linalg.solve(A[np.ix_(free, free)], A[np.ix_(free, b)] @ (x[b] - c[b]))
        if np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12) and (best is None or fg(x)[0] < fg(best)[0]):
            best = x
    res = minimize_bounded(fg, np.zeros(n), lo, hi)
    assert res.success
    assert res.x == pytest.approx(best, abs=1e-7)
    assert np.any(np.isclose(res.x, lo) | np.isclose(res.x, hi))  # the test exercises active bounds


def test_a_start_where_the_objective_is_not_finite_is_reported():
    res = minimize_bounded(lambda x: (np.inf, np.full(1, np.nan)), np.zeros(1), -np.ones(1), np.ones(1))
    assert not res.success and "not finite" in res.message


def test_the_iteration_limit_is_reported_as_not_converged():
    res = minimize_bounded(rosenbrock, np.array([-1.2, 1.0]), np.full(2, -5.0), np.full(2, 5.0), max_iter=3)
    assert not res.success and res.nit == 3 and "ITERATIONS" in res.message
