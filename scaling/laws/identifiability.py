"""Identifiability warnings: what a fit cannot tell apart.

- inputs that move together (their logs collinear across the runs, e.g. D = 20 N): no fit can
  separate their terms, and which of its equivalent optima it lands in is an accident;
- strongly correlated exponents across bootstrap replicates (|r| > 0.95): the data fix a
  combination of them, not each one;
- a free parameter at its bound: the optimum lies outside the box, the value is not an estimate;
- flat IsoFLOP curves: a budget whose losses show no significant curvature in log N has no
  vertex to read N_opt from (`isoflop_flatness`, for the isoflop law to call per budget).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scaling.laws.base import Law

CORR_LIMIT = 0.95


def exponents(law: "Law") -> list[str]:
    """Free parameters fitted on a linear scale (exponents; log-scaled ones are coefficients)."""
    pinned = {law._tie_root(k) for k in (law.fixed or {})}
    roots, out = set(), []
    for p in law.params:
        r = law._tie_root(p.name)
        if not p.log and r not in pinned and r not in roots:
            roots.add(r)
            out.append(p.name)
    return out


def identifiability_warnings(law: "Law", corr_limit: float = CORR_LIMIT) -> list[str]:
    """Human-readable warnings (empty when none applies)."""
    out = []
    n_free = law._n_free()
    if getattr(law, "n_points_", 0) and law.n_points_ <= n_free:
        out.append(f"{law.name}: {law.n_points_} points for {n_free} free parameters: the fit passes through "
                   "every point, so its residuals say nothing about the noise and its intervals mean nothing; "
                   "add runs (or fix a parameter with --fix)")
    for a, b in getattr(law, "x_collinear_", []) or []:
        out.append(f"{law.name}: inputs {a} and {b} move together across the runs (log {b} is a linear function "
                   f"of log {a}, e.g. a fixed tokens-per-parameter ratio), so the terms in {a} and {b} cannot be "
                   f"told apart; add runs that vary {b} at a fixed {a}")
    for name in getattr(law, "at_bounds_", []) or []:
        out.append(f"{law.name}: parameter {name} = {law.params_[name]:.4g} sits at its bound; it is not "
                   "identified by these data (fix it with --fix, or widen the data's range)")
    boot = getattr(law, "boot_params_", None)
    if boot is not None and len(boot) >= 10:
        ex = exponents(law)
        for i, a in enumerate(ex):
            for b in ex[i + 1:]:
                va, vb = boot[a].to_numpy(), boot[b].to_numpy()
                if va.std() == 0 or vb.std() == 0:
                    continue
                r = float(np.corrcoef(va, vb)[0, 1])
                if abs(r) > corr_limit:
                    out.append(f"{law.name}: exponents {a} and {b} are correlated r = {r:.3f} across bootstrap "
                               f"replicates (|r| > {corr_limit}); the data pin down a combination, not each "
                               f"(consider --tie {b}={a} or more varied sizes)")
    return out


def isoflop_flatness(n: np.ndarray, loss: np.ndarray, min_t: float = 2.0) -> dict[str, Any]:
    """Quadratic least squares of loss in log n for one compute budget: curvature, its standard
    error and t = curvature / se; "flat" when the curvature is not significantly positive
    (t < min_t), so the vertex (N_opt) is not determined by these points."""
    u = np.log(np.asarray(n, float))
    y = np.asarray(loss, float)
    if len(u) < 4:
        return {"curvature": float("nan"), "se": float("nan"), "t": float("nan"), "flat": True, "n": len(u)}
    u = u - u.mean()
    X = np.stack([np.ones_like(u), u, u * u], 1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    s2 = float(resid @ resid) / max(len(u) - 3, 1)
    cov = s2 * np.linalg.pinv(X.T @ X)
    se = float(np.sqrt(max(cov[2, 2], 0.0)))
    t = float(coef[2] / se) if se > 0 else (np.inf if coef[2] > 0 else -np.inf)
    return {"curvature": float(coef[2]), "se": se, "t": t, "flat": bool(t < min_t), "n": len(u)}
