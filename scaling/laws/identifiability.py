"""Identifiability warnings: what a fit cannot tell apart.

- inputs that move together (their logs collinear across the runs, e.g. D = 20 N): no fit can
  separate their terms, and which of its equivalent optima it lands in is an accident;
- strongly correlated exponents across bootstrap replicates (|r| > 0.95): the data fix a
  combination of them, not each one;
- a free parameter at its bound: the optimum lies outside the box, the value is not an estimate;
- flat directions: combinations of parameters along which no fitted prediction changes (the
  Jacobian of the predictions at the runs is rank-deficient, `unpinned`), e.g. E, B and beta of
  B/D^beta when the runs have two token budgets (three parameters for two values): every point
  of that valley fits equally well, so the values printed are one accident among many and an
  extrapolation in D is not determined by the data;
- flat IsoFLOP curves: a budget whose losses show no significant curvature in log N has no
  vertex to read N_opt from (`isoflop_flatness`, for the isoflop law to call per budget).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scaling.laws.base import Law

CORR_LIMIT = 0.95
FLAT_TOL = 1e-6
"""A singular value of the column-normalised Jacobian below FLAT_TOL x the largest is a flat
direction. Exact valleys sit at the rounding level (1e-16); the worst-conditioned of the laws' own
generating designs sits at 1.2e-3 (D-CPT's; tests/laws/test_law_contract.py asserts > 1e-4)."""
NAMED_SHARE = 0.01  # a parameter moves along a flat direction when its share of it is at least this
# (uninvolved parameters sit at the rounding level; involved ones at 0.04 and up in the shipped designs)


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


def prediction_jacobian(law: "Law") -> tuple[np.ndarray, list[str]]:
    """(J [n, q], names): derivatives of the fit-scale predictions at the weighted fitted points
    with respect to the free coordinates (optimiser space: log of log-scaled parameters) that are
    neither fixed nor at a bound; names are the coordinates' parameters (a tied group by its first).
    From the law's numpy Jacobian where it has one (so `scaling fit` stays without torch), else by
    forward-mode autodiff, all coordinates in one batched call of the law's forward."""
    free = law._to_free(law.theta_)
    lo, hi = law._free_bounds()
    inside = np.nonzero((lo < hi) & (free > lo) & (free < hi))[0]
    T = law._tie_matrix()
    names = [str(n) for n in law._to_free(np.asarray(law.param_names))[inside]]
    if law.np_pred_jac is not None:
        J = law._forward_jac_np(law.theta_, law._Fn)[1]
        J = (J if T is None else J @ T)[:, inside]  # full theta = T @ free theta
    else:
        import torch
        import torch.autograd.forward_ad as fwAD

        base = torch.as_tensor(np.repeat(free[None], len(inside), 0), dtype=torch.float64)
        tangent = torch.zeros_like(base)
        tangent[torch.arange(len(inside)), torch.as_tensor(inside)] = 1.0
        with fwAD.dual_level():
            theta = fwAD.make_dual(base, tangent)
            full = theta if T is None else theta @ torch.as_tensor(T, dtype=torch.float64).T
            J = fwAD.unpack_dual(law.forward(full, law._F)).tangent.detach().numpy().T
    w = getattr(law, "_w", None)
    return (J if w is None else J[w.numpy() > 0]), names


def unpinned(law: "Law", tol: float = FLAT_TOL) -> tuple[list[str], int]:
    """(parameters that move along a flat direction, number of flat directions) at the fitted
    optimum; ([], 0) when every free parameter is pinned, and (nothing claimed) when the law has no
    training data (a law loaded from JSON) or its Jacobian is not finite there. Each column is
    scaled to unit norm first, so the test does not depend on the parameters' units."""
    if not hasattr(law, "_Fn") or not hasattr(law, "theta_"):
        return [], 0
    J, names = prediction_jacobian(law)
    if J.shape[1] == 0 or not np.all(np.isfinite(J)):
        return [], 0
    norm = np.linalg.norm(J, axis=0)
    dead = norm == 0  # a parameter no prediction depends on is a flat direction by itself
    live = [n for n, d in zip(names, dead) if not d]
    if not live:
        return names, len(names)
    _, s, vt = np.linalg.svd(J[:, ~dead] / norm[~dead], full_matrices=True)
    s = np.concatenate([s, np.zeros(len(live) - len(s))])  # fewer points than coordinates: the rest are flat
    null = vt[s < tol * s[0]]
    share = np.sqrt((null**2).sum(0))
    moving = [n for n, d in zip(names, dead) if d] + [n for n, v in zip(live, share) if v >= NAMED_SHARE]
    return moving, int(dead.sum()) + len(null)


def flat_warning(law: "Law", what: str = "") -> str | None:
    """One line naming the parameters the runs do not pin (None when they pin all)."""
    names, k = unpinned(law)
    if not names:
        return None
    how = "a combination" if k == 1 else f"{k} combinations"
    return (f"{what or law.name}: {how} of {', '.join(names)} can change without changing any fitted prediction "
            "(a flat direction at the optimum): the runs do not pin these parameters, so their values are one of "
            "many equally good fits and predictions outside the runs' range that depend on them are not "
            "determined; add runs at more distinct values of the inputs these terms act on (e.g. a third "
            "token budget or share), or fix one of them")


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
    flat = flat_warning(law)
    if flat:
        out.append(flat)
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
