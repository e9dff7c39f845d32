"""Variable projection: search only a law's exponents, solve its linear coefficients inside.

A law whose prediction is `basis(nl, x) @ coef` once its nonlinear parameters `nl` (exponents)
are fixed (chinchilla: [1, N^-alpha, D^-beta] @ [E, A, B]; power: [1, x^-alpha] @ [L_inf,
x0^alpha]; D-CPT: [1, N^-alpha, r^eta D^-beta, (r + eps)^-gamma] @ [E, A, B, C]) is profiled
on a grid of `nl`: for each grid point the best non-negative coefficients are found by
iteratively reweighted non-negative least squares (Gauss-Newton steps for residuals of log y,
Huber weights for the Huber loss), batched over the whole grid. The best few distinct grid
points are then polished in all parameters on the exact objective: by the numpy quasi-Newton of
`scaling.laws.quasi_newton` (scipy's L-BFGS-B only where it stops short of a stationary point),
or, for a law whose `vp_polisher` is "gauss_newton" (D-CPT's nine parameters), by scipy's bounded
Gauss-Newton least squares. A numpy-polished fit imports neither torch nor scipy.

A law opts in by implementing `vp_basis`, `vp_theta`, `vp_grid` and `np_pred_jac` (see
`scaling.laws.chinchilla`); `Law.solver` chooses between this and the batched grid engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scaling.laws.base import Law

N_INNER = 6  # reweighting / Gauss-Newton sweeps of the inner solve
N_POLISH = 4  # distinct grid optima polished in all parameters
RIDGE = 1e-12  # relative ridge on the (column-normalised) Gram matrix: degenerate exponents
POLISH = "auto"  # auto: numpy quasi-Newton, scipy where it stops short; numpy; scipy (for comparisons)


@dataclass
class VarProResult:
    theta: np.ndarray  # [P] optimiser space
    fun: float
    converged: bool
    status: str  # scipy's message of the best polish
    n_iter: int
    n_starts: int  # grid points profiled
    n_starts_best: int  # grid points whose profiled objective is within 1e-3 of the best one (gauss_newton:
    # starts whose screened objective is within 1e-3 of the best screened one)


# ---- objective (numpy twin of scaling.laws.objective) ----
def rho(r: np.ndarray, loss: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-residual loss and derivative: Huber (0.5 r² inside delta) or squared error."""
    if loss == "huber":
        d = np.clip(r, -delta, delta)
        return d * (r - 0.5 * d), d
    return r * r, 2.0 * r


def objective(law: "Law", theta: np.ndarray, F: np.ndarray, t: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Objective and gradient at one optimiser-space theta[P], on the law's fit scale. A step to
    a theta where the prediction overflows gets an infinite objective (the optimiser backs off),
    so overflow there is expected and not warned about."""
    with np.errstate(over="ignore", invalid="ignore"):
        p, J = law.np_pred_jac(theta, F)
        if law.fit_scale == "log":
            if not (p > 0).all():
                return np.inf, np.full(len(theta), np.nan)
            r = np.log(p) - t
            f, d = rho(r, law.loss, delta)
            g = (d / p) @ J
        else:
            f, d = rho(p - t, law.loss, delta)
            g = d @ J
        fs = float(f.sum())
    return (fs, g) if np.isfinite(fs) else (np.inf, np.full(len(theta), np.nan))


# ---- batched non-negative least squares for a few coefficients ----
def nnls_active_set(G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """argmin_{c >= 0} c'Gc - 2h'c for each row of G[B, m, m], h[B, m]: Lawson and Hanson's
    active-set method, batched (every row takes its steps together; rows that are done wait).

    Rows whose full-support solution is non-negative are done at once (the problem is convex;
    about five in six of a D-CPT grid). For the others the passive set grows by the coefficient
    whose gradient most wants it; when the solve on the passive set leaves a coefficient
    non-positive, the step stops at the boundary and drops it. Exact like trying every support
    (what this replaced: 2^m - 1 solves, too many for dcpt_cross's 7 to 13 coefficients, one per
    domain for each per-domain one) and faster from m = 4 (D-CPT's fit 0.81 s -> 0.71 s)."""
    B, m = h.shape
    eye = np.eye(m, dtype=bool)
    scale = np.trace(G, axis1=1, axis2=2)[:, None, None] / m
    Gr = G + RIDGE * scale * np.eye(m)
    best = np.linalg.solve(Gr, h[..., None])[..., 0]
    rest = np.nonzero(~(best >= 0).all(-1))[0]
    if rest.size == 0:
        return best
    G, Gr, h = G[rest], Gr[rest], h[rest]
    tol = 1e-12 * np.abs(h).max(-1, keepdims=True).clip(1e-300)
    x = np.zeros_like(h)
    P = np.zeros(h.shape, dtype=bool)

    def solve_on(rows: np.ndarray, P: np.ndarray) -> np.ndarray:
        both = P[:, :, None] & P[:, None, :]
        A = np.where(both, Gr[rows], eye)  # identity outside the passive set: those come out 0
        return np.linalg.solve(A, np.where(P, h[rows], 0.0)[..., None])[..., 0]

    for _ in range(3 * m):
        w = h - (G @ x[..., None])[..., 0]  # minus half the gradient
        want = ~P & (w > tol)
        rows = np.nonzero(want.any(-1))[0]
        if rows.size == 0:
            break
        P[rows, np.argmax(np.where(want[rows], w[rows], -np.inf), -1)] = True
        for _ in range(m + 1):
            s = solve_on(rows, P[rows])
            ok = (s > 0) | ~P[rows]
            done = ok.all(-1)
            x[rows[done]] = np.where(P[rows[done]], s[done], 0.0)
            rows, s = rows[~done], s[~done]
            if rows.size == 0:
                break
            xr, Pr = x[rows], P[rows]
            blocked = Pr & (s <= 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(blocked, xr / (xr - s), np.inf)
            step = np.clip(ratio.min(-1, keepdims=True), 0.0, 1.0)
            xr = xr + step * (s - xr)
            x[rows] = np.where(Pr, np.maximum(xr, 0.0), 0.0)
            P[rows] = Pr & (xr > tol[rows]) & ~(blocked & (ratio <= step))
    best[rest] = x
    return best


def _wnnls(Phi: np.ndarray, w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Non-negative c minimising sum_n w (Phi c - z)² per grid row; Phi[G, n, m], w, z [G, n]."""
    # Stacked matmul, not einsum: einsum's batched contraction is ~8x slower here, and this is
    # most of a D-CPT fit's time (12,005 grid rows, each solve 7 times).
    PwT = (Phi * w[..., None]).transpose(0, 2, 1)
    G = PwT @ Phi
    h = (PwT @ z[..., None])[..., 0]
    inv = 1.0 / np.sqrt(np.diagonal(G, axis1=1, axis2=2)).clip(1e-300)  # unit weighted columns
    G = G * inv[:, :, None] * inv[:, None, :]
    return nnls_active_set(G, h * inv) * inv


PROFILE_CHUNK = 4_000_000
"""Basis elements (grid rows x points x coefficients) profiled at a time: dcpt_cross's 12,005-row
grid on 180 runs with 10 coefficients is 21.6 million (173 MB, and the solves hold several such)."""


def profile(law: "Law", nl: np.ndarray, F: np.ndarray, t: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Best coefficients [G, m] and objective [G] for each row of nl [G, q], in chunks of rows."""
    m = law.vp_basis(nl[:1], F).shape[-1]
    rows = max(1, PROFILE_CHUNK // (len(t) * m))
    parts = [_profile_rows(law, nl[i:i + rows], F, t, delta) for i in range(0, len(nl), rows)]
    return np.concatenate([c for c, _ in parts]), np.concatenate([f for _, f in parts])


def _profile_rows(law: "Law", nl: np.ndarray, F: np.ndarray, t: np.ndarray, delta: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    Phi = law.vp_basis(nl, F)  # [G, n, m], prediction = Phi @ coef on the y scale
    G, n, _ = Phi.shape
    log = law.fit_scale == "log"
    y = np.exp(t) if log else t
    ones = np.ones((G, n))
    # First solve: relative least squares for log residuals (log p - log y ≈ (p - y) / y).
    coef = _wnnls(Phi, ones / (y * y) if log else ones, np.broadcast_to(y, (G, n)))
    for _ in range(N_INNER if (log or law.loss == "huber") else 0):
        p = (Phi @ coef[..., None])[..., 0]
        if log:
            pos = p > 0
            r = np.where(pos, np.log(np.where(pos, p, 1.0)), -50.0) - t
            pp = np.where(pos, p, y)
        else:
            r = p - t
        w = ones if law.loss == "mse" else np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        if log:
            # Gauss-Newton: log(Phi c') ≈ log p + Phi (c' - c) / p, i.e. rows Phi / p, target 1 - r.
            coef = _wnnls(Phi, w / (pp * pp), pp * (1.0 - r))
        else:
            coef = _wnnls(Phi, w, np.broadcast_to(t, (G, n)))
    p = (Phi @ coef[..., None])[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (np.log(p) - t) if log else (p - t)
    f = rho(r, law.loss, delta)[0].sum(-1)
    return coef, np.where(np.isfinite(f), f, np.inf)


def _pick(nl: np.ndarray, f: np.ndarray, k: int) -> list[int]:
    """Best grid points, at least two grid steps apart (per coordinate, in rank units)."""
    ranks = np.stack([np.unique(c, return_inverse=True)[1] for c in nl.T], 1)
    out: list[int] = []
    for i in np.argsort(f, kind="stable"):
        if not np.isfinite(f[i]):
            break
        if all(np.abs(ranks[i] - ranks[j]).max() > 2 for j in out):
            out.append(int(i))
            if len(out) == k:
                break
    return out


def stationary(theta: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray, gscale: np.ndarray) -> bool:
    """Each |pg_j| <= 1e-6 × sum_n |term_nj| of g_j: the gradient has cancelled to a millionth of
    its own terms. Absolute tests fail on the linear scale, where terms are large and a flat
    valley stops the line search before |g| reaches an absolute threshold."""
    pg = theta - np.clip(theta - g, lo, hi)
    return bool(np.all(np.isfinite(pg)) and np.all(np.abs(pg) <= 1e-6 * np.maximum(gscale, 1e-300)))


def stationary_at(law: "Law", theta: np.ndarray, F, t, delta: float, lo, hi) -> bool:
    """`stationary` at theta for the law's objective (numpy form)."""
    f, g = objective(law, theta, F, t, delta)
    return bool(np.isfinite(f)) and stationary(theta, g, lo, hi, grad_scale(law, theta, F, t, delta))


def grad_scale(law: "Law", theta: np.ndarray, F: np.ndarray, t: np.ndarray, delta: float) -> np.ndarray:
    """Per parameter, the sum of |terms| of its gradient: what rounding errors in it are relative to."""
    p, J = law.np_pred_jac(theta, F)
    if law.fit_scale == "log":
        d = rho(np.log(np.abs(p) + 1e-300) - t, law.loss, delta)[1] / p
    else:
        d = rho(p - t, law.loss, delta)[1]
    return np.abs(d) @ np.abs(J)


def polish(law: "Law", theta0: np.ndarray, F, t, delta: float, lo, hi, max_iter: int):
    """All parameters from theta0 to tight tolerances: our bounded quasi-Newton (numpy), then
    scipy's L-BFGS-B from where it stopped if it stopped short of a stationary point (scipy.optimize
    loads only then: importing it costs a `scaling fit` process more than the fit)."""
    from scaling.laws.quasi_newton import minimize_bounded

    def fg(th):
        return objective(law, th, F, t, delta)

    res = minimize_bounded(fg, theta0, lo, hi, max_iter=max_iter)
    if POLISH == "numpy" or (POLISH == "auto" and stationary_at(law, res.x, F, t, delta, lo, hi)):
        return res
    from scipy.optimize import minimize

    start = res.x if POLISH == "auto" else np.clip(theta0, lo, hi)
    sp = minimize(fg, start, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                  options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-14, "maxls": 50})
    return sp if POLISH == "scipy" or sp.fun <= res.fun else res


# Gauss-Newton polish: every start to a loose tolerance first, then the best few to a tight one
GN_SCREEN_TOL, GN_SCREEN_EVALS = 1e-6, 100
GN_KEEP = 1e-4  # starts screened within this relative objective of the best are polished tight ...
GN_MAX_TIGHT = 3  # ... at most this many
GN_TOL = 1e-10  # scipy's xtol, ftol and gtol of the tight pass


def gauss_newton_runner(law: "Law", F, t, delta: float, lo, hi):
    """`run(theta0, tol, evals)`: bounded Gauss-Newton from theta0, i.e. scipy's trust-region
    reflective least squares on the fit-scale residuals with Huber's loss as its robust loss
    (scipy's "huber" with f_scale = delta is this module's `rho` exactly). Its result's `fun` is
    this module's objective (mse: r², not scipy's r²/2), `nit` its evaluations, and its message
    "max_iter" when it ran out of them."""
    from scipy.optimize import least_squares

    last: list = [None, None, None]  # theta, fit-scale prediction and Jacobian: scipy asks for the
    # Jacobian where it just evaluated

    def pred_jac(th):
        if last[0] is None or not np.array_equal(last[0], th):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                last[:] = [np.array(th), *law._forward_jac_np(th, F)]
        return last[1], last[2]

    def residuals(th):
        return pred_jac(th)[0] - t  # non-finite: scipy shrinks the step

    def jacobian(th):
        return pred_jac(th)[1].copy()  # scipy scales it in place (robust loss)

    robust = {"loss": "huber", "f_scale": delta} if law.loss == "huber" else {"loss": "linear"}

    def run(th, tol, evals):
        res = least_squares(residuals, np.clip(th, lo, hi), jac=jacobian, bounds=(lo, hi), method="trf",
                            xtol=tol, ftol=tol, gtol=tol, max_nfev=evals, **robust)
        res.fun = objective(law, res.x, F, t, delta)[0]
        res.nit = res.nfev
        if res.status == 0:
            res.message = "max_iter"  # as the engine says it
        return res

    return run


def polish_gauss_newton(law: "Law", starts: np.ndarray, F, t, delta: float, lo, hi, max_iter: int):
    """The best of `starts` [K, P] polished by bounded Gauss-Newton (`gauss_newton_runner`). With
    nine parameters in flat valleys (D-CPT: the E and r terms trade off) a quasi-Newton method
    crawls for thousands of iterations; Gauss-Newton's J'J model of the curvature gets there in
    tens to hundreds of steps. "trf" rather than "dogbox": with exponents at their bounds (small
    studies) dogbox crawled and stopped 0.6% above the optimum. Every start is first polished
    loosely and only the best few tightly, like the batched engine's screen. Returns scipy's
    result for the best and how many starts screened within 1e-3 of the best screened objective
    (the engine's count of starts in the best basin)."""
    run = gauss_newton_runner(law, F, t, delta, lo, hi)
    screened = sorted((run(th, GN_SCREEN_TOL, min(GN_SCREEN_EVALS, max_iter)) for th in starts), key=lambda r: r.fun)
    ref = screened[0].fun
    tight = [run(r.x, GN_TOL, max_iter) for r in screened[:GN_MAX_TIGHT] if r.fun <= ref + GN_KEEP * abs(ref)]
    best = min(tight, key=lambda r: r.fun)
    # trf is an interior method: a parameter whose optimum is its bound (E -> 0) stays a hair inside,
    # and `at_bounds_` would miss it; the projected quasi-Newton puts it on the bound in a step or two
    last = polish(law, best.x, F, t, delta, lo, hi, max_iter)
    if last.fun <= best.fun:
        best.x, best.fun = np.asarray(last.x, float), float(last.fun)
    # many starts in the best basin, or one lucky start? Judged at screening precision, as the
    # batched engine judges it (the tight optimum can sit below every screened start)
    return best, sum(r.fun <= ref + 1e-3 * abs(ref) for r in screened)


def profiled_starts(law: "Law", F: np.ndarray, t: np.ndarray, delta: float, lo: np.ndarray, hi: np.ndarray
                    ) -> tuple[np.ndarray, int, int]:
    """The best distinct points of the profiled exponent grid as full parameter vectors [K, P]
    (clipped to the box), the number of grid points and how many lie within 1e-3 of the best."""
    nl = np.atleast_2d(law.vp_grid(F, t))
    coef, f = profile(law, nl, F, t, delta)
    picks = _pick(nl, f, getattr(law, "vp_polish", N_POLISH))
    if not picks:
        return np.clip(law.vp_theta(nl[:1], coef[:1]), lo, hi), len(f), 0
    ref = float(f[picks[0]])
    n_best = max(1, int(np.sum(f <= ref + 1e-3 * abs(ref) + 1e-14)))
    return np.clip(law.vp_theta(nl[picks], coef[picks]), lo, hi), len(f), n_best


def fit_varpro(law: "Law", F: np.ndarray, t: np.ndarray, delta: float, lo: np.ndarray, hi: np.ndarray,
               max_iter: int = 1000) -> VarProResult:
    """Profile the law's exponent grid, then polish the best distinct candidates (by Gauss-Newton
    where `Law._polished_by_gauss_newton` says so, else by the numpy quasi-Newton)."""
    starts, n_grid, n_best = profiled_starts(law, F, t, delta, lo, hi)
    if n_best == 0:
        return VarProResult(starts[0], np.inf, False, "no finite start", 0, n_grid, 0)
    if law._polished_by_gauss_newton():
        best, n_best = polish_gauss_newton(law, starts, F, t, delta, lo, hi, max_iter)
    else:
        best = None
        for th in starts:
            res = polish(law, th, F, t, delta, lo, hi, max_iter)
            if best is None or res.fun < best.fun:
                best = res
    theta, fun, conv = _judged(law, best, F, t, delta, lo, hi, max_iter)
    msg = best.message if isinstance(best.message, str) else best.message.decode()
    return VarProResult(theta, fun, conv, msg, int(best.nit), n_grid, n_best)


def _judged(law: "Law", best, F, t, delta: float, lo, hi, max_iter: int) -> tuple[np.ndarray, float, bool]:
    """A polish's point, its objective and whether it converged: scipy stops on a relative
    decrease of f (converged) or on a line search that cannot improve a stationary point (also
    converged); only max_iter or a non-stationary point is a failure."""
    theta = np.asarray(best.x, float)
    fun, _ = objective(law, theta, F, t, delta)
    conv = bool(np.isfinite(fun)) and (
        (best.success and best.nit < max_iter) or stationary_at(law, theta, F, t, delta, lo, hi))
    return theta, float(fun), conv


def gauss_newton_finish(law: "Law", F, t, delta: float, lo, hi, max_iter: int):
    """`finish(candidates)` for `engine.multistart`: the candidates polished by Gauss-Newton
    (`polish_gauss_newton`), as (theta, objective, converged, evaluations). For laws the grid
    engine fits whose fit Gauss-Newton finishes (D-CPT and dcpt_cross with init="fine")."""
    def finish(starts: np.ndarray) -> tuple[np.ndarray, float, bool, int]:
        best, _ = polish_gauss_newton(law, starts, F, t, delta, lo, hi, max_iter)
        theta, fun, conv = _judged(law, best, F, t, delta, lo, hi, max_iter)
        return theta, fun, conv, int(best.nit)

    return finish
