"""Batched L-BFGS-B: many independent box-constrained minimisations advanced together.

scipy minimises one start at a time; fitting a law from thousands of starts (or refitting
a thousand bootstrap replicates) is dominated by that Python loop. Here every start is a
row of one float64 tensor: the objective and its gradient are evaluated for all active
starts in one call, the two-loop recursion and the backtracking line search run as array
operations with per-start masks, and starts that have converged are dropped from the
working set so stragglers do not pay for the rest.

Bounds are handled by projection (projected L-BFGS): variables at a bound whose gradient
points outwards are frozen for the step, the quasi-Newton direction is computed on the
rest and the trial point is projected back into the box.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

# fg(theta[s, P], idx[s]) -> (f[s], g[s, P]); idx are the rows' indices in the full batch,
# so per-start data (bootstrap weights) can be looked up.
ObjectiveFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

STATUS = {0: "running", 1: "gtol", 2: "ftol", 3: "linesearch", 4: "max_iter"}
STATUS_CODE = {name: code for code, name in STATUS.items()}


@dataclass
class EngineOptions:
    """Stopping rules and memory of the batched optimiser."""

    max_iter: int = 1000
    memory: int = 10
    gtol: float = 1e-10  # max |projected gradient|
    ftol: float = 1e-13  # relative decrease of f in one iteration ...
    fscale: float = 1e-300  # ... relative to max(|f|, fscale)
    max_linesearch: int = 30
    c1: float = 1e-4  # Armijo constant
    # Stop early once only this fraction of starts is still running (after 50 iterations):
    # screening stragglers crawl along plateaus and are rarely the best.
    straggler_frac: float = 0.0
    # torch intra-op threads while running (None: leave as is); env SCALING_FIT_THREADS overrides.
    threads: int | None = field(default_factory=lambda: int(os.environ.get("SCALING_FIT_THREADS", "1")))


@dataclass
class BatchResult:
    """Per-start outcome of `minimize_batched` (numpy arrays, one row per start)."""

    theta: np.ndarray  # [S, P]
    fun: np.ndarray  # [S]
    converged: np.ndarray  # [S] bool
    status: np.ndarray  # [S] int, keys of STATUS
    n_iter: np.ndarray  # [S]
    n_evals: int  # batched objective calls


def _two_loop(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, rho: torch.Tensor, newest: int) -> torch.Tensor:
    """H·g for each row from a circular memory whose newest slot is `newest` (rho = 0: empty slot)."""
    m = S.shape[1]
    order = [(newest - k) % m for k in range(m)]  # newest first
    q = g.clone()
    alphas = []
    gamma = torch.ones_like(g[:, 0])
    unset = torch.ones_like(gamma, dtype=torch.bool)
    for i in order:
        a = rho[:, i] * (S[:, i] * q).sum(-1)
        q = q - a[:, None] * Y[:, i]
        alphas.append(a)
        # Initial Hessian scale from each row's newest valid pair.
        valid = unset & (rho[:, i] > 0)
        if bool(valid.any()):
            yy = (Y[:, i] * Y[:, i]).sum(-1).clamp_min(1e-300)
            gamma = torch.where(valid, 1.0 / (rho[:, i] * yy), gamma)
            unset = unset & ~valid
    r = gamma[:, None] * q
    for k, i in enumerate(reversed(order)):
        b = rho[:, i] * (Y[:, i] * r).sum(-1)
        r = r + S[:, i] * (alphas[m - 1 - k] - b)[:, None]
    return r


def minimize_batched(
    fg: ObjectiveFn,
    x0: np.ndarray | torch.Tensor,
    lower: np.ndarray,
    upper: np.ndarray,
    options: EngineOptions | None = None,
) -> BatchResult:
    """Minimise S independent objectives from starts x0[S, P] within [lower, upper] (per column)."""
    opt = options or EngineOptions()
    before = torch.get_num_threads()
    # One thread by default: the arrays are small, so per-op OpenMP barriers dominate and
    # collapse when other processes share the cores.
    if opt.threads:
        torch.set_num_threads(opt.threads)
    try:
        with torch.no_grad():
            return _minimize(fg, x0, lower, upper, opt)
    finally:
        torch.set_num_threads(before)


def _minimize(fg: ObjectiveFn, x0, lower, upper, opt: EngineOptions) -> BatchResult:
    dt = torch.float64
    x_all = torch.as_tensor(np.asarray(x0, dtype=np.float64)).clone()
    n_s, n_p = x_all.shape
    lo = torch.as_tensor(np.broadcast_to(np.asarray(lower, float), (n_p,)).copy(), dtype=dt)
    hi = torch.as_tensor(np.broadcast_to(np.asarray(upper, float), (n_p,)).copy(), dtype=dt)
    x_all = torch.minimum(torch.maximum(x_all, lo), hi)
    m = opt.memory

    idx_all = torch.arange(n_s)
    f_all, g_all = fg(x_all, idx_all)
    n_evals = 1
    status = torch.zeros(n_s, dtype=torch.long)
    n_iter = torch.zeros(n_s, dtype=torch.long)
    # Non-finite starting objectives (overflow at a wild start) are dead on arrival.
    bad = ~torch.isfinite(f_all) | ~torch.isfinite(g_all).all(-1)
    f_all = torch.where(bad, torch.full_like(f_all, float("inf")), f_all)
    status[bad] = 3

    # Working set: rows still running plus a few finished ones, compacted when >10% are done,
    # so per-iteration work (memory updates) does not gather/scatter the whole batch.
    ids = torch.nonzero(status == 0).flatten()
    x, f, g = x_all[ids], f_all[ids], g_all[ids]
    S = torch.zeros(len(ids), m, n_p, dtype=dt)
    Y = torch.zeros(len(ids), m, n_p, dtype=dt)
    rho = torch.zeros(len(ids), m, dtype=dt)
    st = torch.zeros(len(ids), dtype=torch.long)
    its = torch.zeros(len(ids), dtype=torch.long)
    slot = m - 1  # newest slot of the circular memory, shared by all rows

    def flush(rows: torch.Tensor) -> None:
        j = ids[rows]
        x_all[j], f_all[j], g_all[j], status[j], n_iter[j] = x[rows], f[rows], g[rows], st[rows], its[rows]

    for it in range(opt.max_iter):
        live = st == 0
        n_live = int(live.sum())
        if n_live == 0 or (it >= 50 and n_live <= opt.straggler_frac * n_s):
            break
        if n_live < 0.9 * len(ids):
            flush(~live)
            ids, x, f, g, S, Y, rho, st, its = (a[live] for a in (ids, x, f, g, S, Y, rho, st, its))
            live = st == 0

        pg = x - torch.minimum(torch.maximum(x - g, lo), hi)
        done_g = live & (pg.abs().amax(-1) <= opt.gtol)
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        gf = g * free
        d = -_two_loop(gf, S, Y, rho, slot) * free
        gd = (g * d).sum(-1)
        # Not a descent direction (stale curvature): forget the memory, go steepest descent.
        reset = ~(gd < 0)
        d = torch.where(reset[:, None], -gf, d)
        gd = (g * d).sum(-1)
        no_mem = reset | ~(rho > 0).any(-1)
        t = torch.where(no_mem, 1.0 / d.norm(dim=-1).clamp_min(1e-300), torch.ones_like(f))
        t = t.clamp(max=1e10)

        # Batched backtracking (Armijo on the projected path) with quadratic interpolation.
        x_new = x.clone()
        f_new = f.clone()
        g_new = g.clone()
        pending = live & ~done_g & (gd < 0)
        ok = torch.zeros_like(pending)
        for _ls in range(opt.max_linesearch):
            pi = torch.nonzero(pending).flatten()
            if pi.numel() == 0:
                break
            xp, tp, gdp, fp = x[pi], t[pi], gd[pi], f[pi]
            xt = torch.minimum(torch.maximum(xp + tp[:, None] * d[pi], lo), hi)
            ft, gt = fg(xt, ids[pi])
            n_evals += 1
            decr = (g[pi] * (xt - xp)).sum(-1)
            # A projected step that did not move at all cannot help either.
            acc = torch.isfinite(ft) & (ft <= fp + opt.c1 * decr) & torch.isfinite(gt).all(-1) & (decr < 0)
            ai = pi[acc]
            x_new[ai], f_new[ai], g_new[ai] = xt[acc], ft[acc], gt[acc]
            ok[ai] = True
            pending[ai] = False
            # Shrink the rest: minimiser of the quadratic through f(0), f'(0), f(t), kept in [0.1t, 0.5t].
            ri = ~acc
            tr, gdr = tp[ri], gdp[ri]
            fr = torch.where(torch.isfinite(ft[ri]), ft[ri], torch.full_like(tr, 1e300))
            denom = 2.0 * (fr - fp[ri] - gdr * tr)
            tq = torch.where(denom > 0, -gdr * tr * tr / denom.clamp_min(1e-300), 0.5 * tr)
            t[pi[ri]] = torch.minimum(torch.maximum(tq, 0.1 * tr), 0.5 * tr)

        failed = live & ~done_g & ~ok
        # Failure with curvature memory: retry from steepest descent; without: give up here.
        fail_mem = failed & ~no_mem
        fail_final = failed & no_mem
        s_vec = x_new - x
        y_vec = g_new - g
        sy = (s_vec * y_vec).sum(-1)
        yy = (y_vec * y_vec).sum(-1)
        upd = ok & (sy > 1e-10 * yy) & (sy > 0)
        wipe = reset | fail_mem
        if bool(wipe.any()):
            rho[wipe] = 0.0  # an empty slot is skipped by the two-loop recursion
        # Every row writes the next slot; rows without a usable pair write an empty one.
        slot = (slot + 1) % m
        S[:, slot], Y[:, slot] = s_vec, y_vec
        rho[:, slot] = torch.where(upd, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))

        rel = (f - f_new) <= opt.ftol * torch.maximum(f.abs(), f_new.abs()).clamp_min(opt.fscale)
        # A tiny decrease on a steepest-descent step (fresh memory) says little: keep going.
        done_f = ok & rel & ~no_mem
        st = torch.where(fail_final, 3, st)
        st = torch.where(done_f, 2, st)
        st = torch.where(done_g, 1, st)
        x, f, g = x_new, f_new, g_new
        its = its + live.long()

    flush(torch.ones(len(ids), dtype=torch.bool))
    active = ids[st == 0]
    status[active] = 4
    conv = (status == 1) | (status == 2)
    # A line search that failed from steepest descent at a stationary point is convergence
    # at machine precision (typical at Huber's kink), not a failure.
    pg_all = x_all - torch.minimum(torch.maximum(x_all - g_all, lo), hi)
    conv |= (status == 3) & torch.isfinite(f_all) & (pg_all.abs().amax(-1) <= 1e-6 * (1 + f_all.abs()))
    return BatchResult(
        theta=x_all.numpy(),
        fun=f_all.numpy(),
        converged=conv.numpy(),
        status=status.numpy(),
        n_iter=n_iter.numpy(),
        n_evals=n_evals,
    )


@dataclass
class MultiStartResult:
    """Outcome of `multistart`: the polished best and the per-start screening results."""

    theta: np.ndarray  # [P] best
    fun: float
    converged: bool
    status: int
    n_iter: int
    n_starts: int
    n_starts_best: int  # screening starts that ended within `basin_rtol` of the best screened objective
    screen: BatchResult


def multistart(
    fg: ObjectiveFn,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int = 1000,
    n_polish: int = 16,
    basin_rtol: float = 1e-3,
    finish: Callable[[np.ndarray], tuple[np.ndarray, float, bool, int]] | None = None,
) -> MultiStartResult:
    """Screen every start with a loose tolerance, then polish the best few to a tight one.

    Screening is where the grid's thousands of starts are spent; stopping them once progress
    is slow (relative decrease < 1e-6 per iteration, about scipy's default factr for
    objectives near 1e-3) and only driving the most promising
    distinct candidates to full precision finds the same optimum at a fraction of the cost.
    `finish(candidates [K, P]) -> (theta, objective, converged, iterations)` polishes them
    instead of the batched quasi-Newton (laws finished by Gauss-Newton)."""
    screen = minimize_batched(fg, x0, lower, upper, EngineOptions(max_iter=min(max_iter, 300), ftol=1e-6, straggler_frac=0.02))
    fun = np.where(np.isfinite(screen.fun), screen.fun, np.inf)
    order = np.argsort(fun, kind="stable")
    if not np.isfinite(fun[order[0]]):
        return MultiStartResult(screen.theta[order[0]], float("inf"), False, 3, 0, len(fun), 0, screen)
    # Distinct candidates (rounded coordinates) near the best objective, best first.
    picked, seen = [], set()
    near = fun <= fun[order[0]] + 0.01 * abs(fun[order[0]])
    for i in order[near[order]]:
        key = tuple(np.round(screen.theta[i], 4))
        if key in seen:
            continue
        seen.add(key)
        picked.append(i)
        if len(picked) == n_polish:
            break
    idx = np.array(picked)
    # Basin size is judged at screening precision: the polished optimum can sit below every
    # loosely screened start, so compare the screened objectives with the best screened one.
    ref = float(fun[order[0]])
    n_best = max(1, int(np.sum(fun <= ref + basin_rtol * abs(ref) + 1e-14)))
    if finish is not None:
        theta, best, converged, n_iter = finish(screen.theta[idx])
        return MultiStartResult(np.asarray(theta, float), float(best), bool(converged),
                                STATUS_CODE["ftol" if converged else "max_iter"],
                                int(n_iter), len(fun), n_best, screen)
    polish = minimize_batched(
        lambda th, ix: fg(th, torch.as_tensor(idx)[ix]), screen.theta[idx], lower, upper, EngineOptions(max_iter=max_iter)
    )
    pf = np.where(np.isfinite(polish.fun), polish.fun, np.inf)
    b = int(np.argmin(pf))
    best = float(pf[b])
    return MultiStartResult(
        polish.theta[b], best, bool(polish.converged[b]), int(polish.status[b]), int(polish.n_iter[b]), len(fun), n_best, screen
    )
