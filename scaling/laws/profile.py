"""Profile-likelihood intervals for a fitted law's parameters and for derived answers.

The objective is a sum of Huber (or squared) terms, not a log-likelihood, so "profile
likelihood" needs a definition. We use the robust likelihood-ratio test of M-estimation
(Schrader & Hettmansperger 1980): for an objective sum_i rho(r_i) with score psi = rho',

    Lambda(v) = 2 [f(v) - f_hat] * E[psi'] / E[psi^2]   ~   chi^2_1,

where f(v) is the objective minimised with the profiled quantity held at v. E[psi'] and
E[psi^2] are estimated from the fit's residuals (with n - p degrees of freedom in E[psi^2]),
which estimates the residual scale that a Huber objective with a fixed delta leaves implicit.
For squared error this is the usual F-style interval Delta(RSS) / sigma_hat^2 < chi^2_1; for
Huber with delta -> infinity the same. For Huber at delta 1e-3 on log loss most residuals lie
outside delta, so E[psi'] is the fraction of points inside delta: when none is, the test has
no information and we refuse (raise FitError naming --delta).

The interval is {v : Lambda(v) <= chi^2_1(level)}. Each profile point is a constrained refit;
all points of one sweep run as one batch through the batched L-BFGS-B, warm-started from the
best fit. A derived answer (N_opt at a compute budget) is profiled by solving the constraint
for one parameter (the law's `nopt_inverse`: log B of Chinchilla's form, log D_c of Kaplan's),
so the refit stays unconstrained; D_opt and tokens per parameter at the same budget are
monotone in N_opt, and profile intervals map through monotone functions, so theirs follow
from N_opt's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from scipy.stats import chi2

from scaling.errors import FitError
from scaling.laws.allocation import ComputeOptimal
from scaling.laws.engine import EngineOptions, minimize_batched
from scaling.laws.objective import residual_loss

if TYPE_CHECKING:
    from scaling.laws.base import Law

# solve(full_theta[S, P] with a placeholder in column j, v[S]) -> column j's value making the
# profiled quantity equal v (torch, differentiable in the other columns).
Solver = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

N_STEPS = 28  # geometric sweep: offsets step0 * 2**k, k < N_STEPS, on each side
SWEEP_ITER = 200
CHUNK = 6  # sweep points refitted per batch
N_REFINE = 24  # linear points inside the bracket that crosses the threshold


def lr_scale(law: "Law") -> float:
    """c with 2 c (f(v) - f_hat) ~ chi^2_1: E[psi'] / E[psi^2] at the fitted residuals,
    divided by the objective's own scale (point weights, mean reduction)."""
    if law.loss == "mae":
        raise FitError(f"{law.name}: profile intervals need a loss with a second derivative; "
                       "log-MAE has none (use huber or mse, or the bootstrap)")
    with torch.no_grad():
        r = (law.forward(torch.as_tensor(law.theta_[None]), law._F)[0] - law._t).numpy()
    rt = torch.as_tensor(r)
    delta = float(law.delta_)  # the delta the fit used: `delta` may be 'auto'
    _, psi = residual_loss(rt, law.loss, delta, law.asymmetry)
    h = 1e-7 * max(delta, 1e-6) if law.loss in ("huber", "asymmetric") else 1e-6
    dpsi = (residual_loss(rt + h, law.loss, delta, law.asymmetry)[1]
            - residual_loss(rt - h, law.loss, delta, law.asymmetry)[1]) / (2 * h)
    w = np.ones_like(r) if getattr(law, "_w", None) is None else law._w.numpy()
    sw = w.sum()
    dof = max(sw - law._n_free(), 1.0)
    e_dpsi = float((w * dpsi.numpy()).sum() / sw)
    e_psi2 = float((w * psi.numpy() ** 2).sum() / dof)
    if e_dpsi <= 0 or e_psi2 <= 0:
        raise FitError(f"{law.name}: no residual lies inside the Huber delta ({delta:g}), so the objective "
                       "carries no likelihood-ratio information; refit with a larger --delta (or --delta auto, "
                       "or --loss mse) to get profile intervals")
    obj_scale = 1.0 / sw if law.reduction == "mean" else 1.0
    return e_dpsi / e_psi2 / obj_scale


class _Profiler:
    """Constrained refits of one law along one free coordinate (or a solved one)."""

    def __init__(self, law: "Law", j: int, solve: Solver | None = None):
        law._check_fitted()
        if not hasattr(law, "_F"):
            raise FitError(f"{law.name}: profile intervals need the training data; refit this law")
        self.law, self.solve = law, solve
        T = law._tie_matrix()
        self.T = torch.as_tensor(np.eye(len(law.params)) if T is None else T, dtype=torch.float64)
        self.q = int(torch.argmax(self.T[j]))  # free coordinate of full parameter j
        self.j = j
        if solve is not None and int(self.T[:, self.q].sum()) != 1:
            raise FitError(f"{law.name}: cannot profile through {law.param_names[j]}, it is tied to another parameter")
        self.fg = law._objective()
        lo, hi = law._free_bounds()
        self.keep = [i for i in range(len(lo)) if i != self.q]
        self.lo, self.hi = lo[self.keep], hi[self.keep]
        self.qlo, self.qhi = lo[self.q], hi[self.q]
        self.f_hat = float(law.objective_)
        self.c = lr_scale(law)
        self.free_hat = law._to_free(law.theta_)

    def _full(self, th_red: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        cols = list(th_red.unbind(-1))
        if self.solve is None:
            cols.insert(self.q, v)
        else:
            cols.insert(self.q, torch.zeros_like(v))
            full = torch.stack(cols, -1) @ self.T.T
            cols[self.q] = self.solve(full, v)
        return torch.stack(cols, -1)

    def refit(self, values: np.ndarray, starts: np.ndarray | None = None,
              max_iter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Objective minimised with the profiled quantity at each value; (f [S], free theta [S, Q])."""
        v_all = torch.as_tensor(np.array(values, float))
        x0 = np.repeat(self.free_hat[None, self.keep], len(values), 0) if starts is None else starts[:, self.keep]

        def fg(th: torch.Tensor, idx: torch.Tensor):
            with torch.enable_grad():
                tr = th.detach().requires_grad_(True)
                full = self._full(tr, v_all[idx])
            f, g = self.fg(full.detach(), idx)
            (gr,) = torch.autograd.grad(full, tr, g)
            return f, gr

        res = minimize_batched(fg, np.clip(x0, self.lo, self.hi), self.lo, self.hi,
                               EngineOptions(max_iter=max_iter or self.law.max_iter))
        with torch.no_grad():
            full = self._full(torch.as_tensor(res.theta), v_all).numpy()
        f = np.where(np.isfinite(res.fun), res.fun, np.inf)
        if self.solve is not None:  # a solved log B outside its box is not an admissible fit
            f = np.where((full[:, self.q] < self.qlo) | (full[:, self.q] > self.qhi), np.inf, f)
        return f, full

    def stat(self, f: np.ndarray) -> np.ndarray:
        return 2.0 * self.c * (f - self.f_hat)

    def interval(self, center: float, level: float, bounds: tuple[float, float]) -> dict:
        """Profile interval of the coordinate (optimiser space) around `center`."""
        thr = float(chi2.ppf(level, 1))
        step0 = 1e-3 * max(abs(center), 1e-2)
        out: dict = {"threshold": thr}
        for side, sgn in (("lo", -1.0), ("hi", 1.0)):
            # Widen in chunks and stop at the first chunk that crosses: far values cost the most.
            vals, f, full = np.zeros(0), np.zeros(0), np.zeros((0, len(self.free_hat)))
            for k0 in range(0, N_STEPS, CHUNK):
                v = np.clip(center + sgn * step0 * 2.0 ** np.arange(k0, k0 + CHUNK), *bounds)
                v = v[np.abs(v - center) > np.abs(vals[-1] - center)] if len(vals) else v[v != center]
                if len(v) == 0:
                    break
                # Sweep points only need to say "beyond the threshold"; the bracket is refined below.
                fc, fullc = self.refit(v, max_iter=SWEEP_ITER)
                vals, f, full = np.concatenate([vals, v]), np.concatenate([f, fc]), np.concatenate([full, fullc])
                if (self.stat(fc) > thr).any():
                    break
            lam = self.stat(f)
            over = np.nonzero(lam > thr)[0]
            if len(over) == 0:
                out[side], out[side + "_open"] = float(vals[-1]), True  # never crosses: open to the bound
                continue
            k = int(over[0])
            inner = center if k == 0 else vals[k - 1]
            grid = np.linspace(inner, vals[k], N_REFINE + 1)[1:]
            start = np.repeat((self.free_hat if k == 0 else self.law._to_free(full[k - 1]))[None], len(grid), 0)
            f2, _ = self.refit(grid, start)
            lam2 = np.concatenate([[0.0 if k == 0 else lam[k - 1]], self.stat(f2)])
            pts = np.concatenate([[inner], grid])
            cross = np.nonzero(lam2 > thr)[0]
            if len(cross) == 0:  # the loosely swept bracket end overstated its objective
                lam2, pts = np.append(lam2, lam[k]), np.append(pts, vals[k])
                cross = [len(pts) - 1]
            i = int(cross[0])
            a, b = lam2[i - 1], lam2[i]
            t = 0.0 if not np.isfinite(b) or b == a else (thr - a) / (b - a)
            out[side], out[side + "_open"] = float(pts[i - 1] + t * (pts[i] - pts[i - 1])), False
        return out


def profile_intervals(law: "Law", level: float = 0.95, names: list[str] | None = None) -> dict[str, dict]:
    """Profile interval of each free parameter: {name: {"lo", "hi", "lo_open", "hi_open"}} in the
    parameter's natural units (an open side sits at the parameter's bound)."""
    out = {}
    pinned = {law._tie_root(k) for k in (law.fixed or {})}
    for j, p in enumerate(law.params):
        if (names and p.name not in names) or law._tie_root(p.name) in pinned:
            continue
        pr = _Profiler(law, j)
        iv = pr.interval(float(law._to_free(law.theta_)[pr.q]), level, (pr.qlo, pr.qhi))
        back = np.exp if p.log else float
        out[p.name] = {"lo": float(back(iv["lo"])), "hi": float(back(iv["hi"])),
                       "lo_open": iv["lo_open"], "hi_open": iv["hi_open"]}
    return out


def profile_allocation(law: "Law", C: float, level: float = 0.95, flops_per_param_token: float = 6.0) -> dict:
    """N_opt, D_opt and tokens per parameter at compute C (C = k N D, k = 6 by default), each
    {"value", "lo", "hi"} from the profile of log N_opt."""
    if C <= 0:
        raise FitError("profile_allocation: compute budget C must be > 0")
    if not isinstance(law, ComputeOptimal):
        raise FitError(f"{law.name}: no compute-optimal allocation to profile; use a law of N and D such as chinchilla")
    j, solve = law.nopt_inverse(float(np.log(C / flops_per_param_token)))
    n_hat = float(law.optimal_allocation(C * 6.0 / flops_per_param_token)[0])  # its allocation assumes C = 6ND
    pr = _Profiler(law, j, solve)
    iv = pr.interval(float(np.log(n_hat)), level, (-np.inf, np.inf))
    n_lo, n_hi = float(np.exp(iv["lo"])), float(np.exp(iv["hi"]))
    d = lambda n: C / (flops_per_param_token * n)  # noqa: E731 - D_opt from N_opt at this budget
    return {
        "C": float(C),
        "N_opt": {"value": float(n_hat), "lo": n_lo, "hi": n_hi},
        "D_opt": {"value": d(n_hat), "lo": d(n_hi), "hi": d(n_lo)},
        "tokens_per_param": {"value": d(n_hat) / n_hat, "lo": d(n_hi) / n_hi, "hi": d(n_lo) / n_lo},
        "open": bool(iv["lo_open"] or iv["hi_open"]),
    }
