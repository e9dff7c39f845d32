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

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

# fg(theta[s, P], idx[s]) -> (f[s], g[s, P]); idx are the rows' indices in the full batch,
# so per-start data (bootstrap weights) can be looked up.
ObjectiveFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

STATUS = {0: "running", 1: "gtol", 2: "ftol", 3: "linesearch", 4: "max_iter"}


@dataclass
class EngineOptions:
    """Stopping rules and memory of the batched optimiser."""

    max_iter: int = 1000
    memory: int = 10
    gtol: float = 1e-10  # max |projected gradient|
    ftol: float = 1e-13  # relative decrease of f in one iteration
    max_linesearch: int = 30
    c1: float = 1e-4  # Armijo constant


@dataclass
class BatchResult:
    """Per-start outcome of `minimize_batched` (numpy arrays, one row per start)."""

    theta: np.ndarray  # [S, P]
    fun: np.ndarray  # [S]
    converged: np.ndarray  # [S] bool
    status: np.ndarray  # [S] int, keys of STATUS
    n_iter: np.ndarray  # [S]
    n_evals: int  # batched objective calls


def _two_loop(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """H·g for each row from the stored pairs (newest last; rho = 0 marks an empty slot)."""
    m = S.shape[1]
    q = g.clone()
    alphas = []
    for i in range(m - 1, -1, -1):
        a = rho[:, i] * (S[:, i] * q).sum(-1)
        q = q - a[:, None] * Y[:, i]
        alphas.append(a)
    sy = (S[:, -1] * Y[:, -1]).sum(-1)
    yy = (Y[:, -1] * Y[:, -1]).sum(-1)
    gamma = torch.where(rho[:, -1] > 0, sy / yy.clamp_min(1e-300), torch.ones_like(sy))
    r = gamma[:, None] * q
    for i in range(m):
        b = rho[:, i] * (Y[:, i] * r).sum(-1)
        r = r + S[:, i] * (alphas[m - 1 - i] - b)[:, None]
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
    S_all = torch.zeros(n_s, m, n_p, dtype=dt)
    Y_all = torch.zeros(n_s, m, n_p, dtype=dt)
    rho_all = torch.zeros(n_s, m, dtype=dt)
    status = torch.zeros(n_s, dtype=torch.long)
    n_iter = torch.zeros(n_s, dtype=torch.long)
    # Non-finite starting objectives (overflow at a wild start) are dead on arrival.
    bad = ~torch.isfinite(f_all) | ~torch.isfinite(g_all).all(-1)
    f_all = torch.where(bad, torch.full_like(f_all, float("inf")), f_all)
    status[bad] = 3
    active = torch.nonzero(status == 0).flatten()

    for _ in range(opt.max_iter):
        if active.numel() == 0:
            break
        x, f, g = x_all[active], f_all[active], g_all[active]
        S, Y, rho = S_all[active], Y_all[active], rho_all[active]

        pg = x - torch.minimum(torch.maximum(x - g, lo), hi)
        done_g = pg.abs().amax(-1) <= opt.gtol
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        gf = g * free
        d = -_two_loop(gf, S, Y, rho) * free
        gd = (g * d).sum(-1)
        # Not a descent direction (stale curvature): forget the memory, go steepest descent.
        reset = ~(gd < 0)
        d = torch.where(reset[:, None], -gf, d)
        gd = (g * d).sum(-1)
        no_mem = reset | (rho.sum(-1) == 0)
        t = torch.where(no_mem, 1.0 / d.norm(dim=-1).clamp_min(1e-300), torch.ones_like(f))
        t = t.clamp(max=1e10)

        # Batched backtracking (Armijo on the projected path) with quadratic interpolation.
        x_new = x.clone()
        f_new = f.clone()
        g_new = g.clone()
        pending = ~done_g & (gd < 0)
        ok = torch.zeros_like(pending)
        for _ls in range(opt.max_linesearch):
            pi = torch.nonzero(pending).flatten()
            if pi.numel() == 0:
                break
            xt = torch.minimum(torch.maximum(x[pi] + t[pi, None] * d[pi], lo), hi)
            ft, gt = fg(xt, active[pi])
            n_evals += 1
            decr = (g[pi] * (xt - x[pi])).sum(-1)
            acc = torch.isfinite(ft) & (ft <= f[pi] + opt.c1 * decr) & torch.isfinite(gt).all(-1)
            # A projected step that did not move at all cannot help either.
            acc = acc & (decr < 0)
            ai = pi[acc]
            x_new[ai], f_new[ai], g_new[ai] = xt[acc], ft[acc], gt[acc]
            ok[ai] = True
            pending[ai] = False
            # Shrink the rest: minimiser of the quadratic through f(0), f'(0), f(t), kept in [0.1t, 0.5t].
            ri = ~acc
            tr = t[pi][ri]
            gdr = gd[pi][ri]
            fr = torch.where(torch.isfinite(ft[ri]), ft[ri], torch.full_like(tr, 1e300))
            denom = 2.0 * (fr - f[pi][ri] - gdr * tr)
            tq = torch.where(denom > 0, -gdr * tr * tr / denom.clamp_min(1e-300), 0.5 * tr)
            t[pi[ri]] = torch.minimum(torch.maximum(tq, 0.1 * tr), 0.5 * tr)

        failed = ~done_g & ~ok
        # Failure with curvature memory: retry from steepest descent; without: give up here.
        fail_mem = failed & ~no_mem
        fail_final = failed & no_mem
        s_vec = x_new - x
        y_vec = g_new - g
        sy = (s_vec * y_vec).sum(-1)
        yy = (y_vec * y_vec).sum(-1)
        upd = ok & (sy > 1e-10 * yy) & (sy > 0)
        wipe = (reset | fail_mem)[:, None, None]
        S = torch.where(wipe, torch.zeros_like(S), S)
        Y = torch.where(wipe, torch.zeros_like(Y), Y)
        rho = torch.where(wipe[:, :, 0], torch.zeros_like(rho), rho)
        u3 = upd[:, None, None]
        S = torch.where(u3, torch.cat([S[:, 1:], s_vec[:, None]], 1), S)
        Y = torch.where(u3, torch.cat([Y[:, 1:], y_vec[:, None]], 1), Y)
        rho_new = torch.cat([rho[:, 1:], (1.0 / sy.clamp_min(1e-300))[:, None]], 1)
        rho = torch.where(upd[:, None], rho_new, rho)

        rel = (f - f_new) <= opt.ftol * torch.maximum(f.abs(), f_new.abs()).clamp_min(1e-300)
        done_f = ok & rel
        st = torch.zeros_like(active)
        st[fail_final] = 3
        st[done_f] = 2
        st[done_g] = 1

        x_all[active], f_all[active], g_all[active] = x_new, f_new, g_new
        S_all[active], Y_all[active], rho_all[active] = S, Y, rho
        n_iter[active] += 1
        status[active] = st
        active = active[st == 0]

    status[active] = 4
    conv = (status == 1) | (status == 2)
    # A line search that failed from steepest descent at a stationary point is convergence
    # at machine precision (typical at Huber's kink), not a failure.
    pg_all = x_all - torch.minimum(torch.maximum(x_all - g_all, lo), hi)
    gscale = g_all.abs().amax(-1)
    conv |= (status == 3) & torch.isfinite(f_all) & (pg_all.abs().amax(-1) <= 1e-6 * (1 + f_all.abs()))
    del gscale
    return BatchResult(
        theta=x_all.numpy(),
        fun=f_all.numpy(),
        converged=conv.numpy(),
        status=status.numpy(),
        n_iter=n_iter.numpy(),
        n_evals=n_evals,
    )
