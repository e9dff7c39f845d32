"""How a law is fitted; the shared half of `scaling.laws.base.Law`.

The optimiser works on free coordinates (one per group of tied parameters, pinned ones held by
their bounds). The objective is Huber (or mse, or asymmetric) on fit-scale residuals, summed or
averaged, with point weights. Laws with a linear form are fitted by variable projection
(`scaling.laws.varpro`), the rest by the batched multi-start engine (`scaling.laws.engine`);
delta="auto" refits with the Huber delta set from the residuals. A fit fills the fitted
attributes (theta_, params_, objective_, converged_, at_bounds_, r2_, ...) and warns, once, when
it did not converge or when its delta made it least absolute deviations.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from scaling.errors import FitError
from scaling.laws.validation import goodness

if TYPE_CHECKING:
    import torch

HUBER_TUNING = 1.345  # delta / sigma at which Huber keeps 95% efficiency under Gaussian noise
MAD_TO_SIGMA = 1.4826  # sigma / MAD of a Gaussian
AUTO_DELTA_STEPS = 2  # refits after the first robust estimate of sigma (delta="auto")


class FitWarning(UserWarning):
    """A fit finished without meeting its convergence test."""


class FitMixin:
    """Fitting for `Law` (its options, formula hooks and training data `_Fn`, `_tn`, `_w`)."""

    def _n_free(self) -> int:
        tie = self._tie_matrix()
        n = len(self.params) if tie is None else tie.shape[1]
        return n - len({self._tie_root(k) for k in (self.fixed or {})})

    # ---- tied parameters: the optimiser works on one coordinate per group of tied parameters ----
    def _tie_root(self, name: str) -> str:
        seen = {name}
        while name in (self.tied or {}):
            name = self.tied[name]
            if name in seen:
                raise FitError(f"{self.name}: tied parameters form a cycle through {name!r}")
            seen.add(name)
        return name

    def _tie_matrix(self) -> np.ndarray | None:
        """T [P, Q] with full theta = T @ free theta (None without ties)."""
        if not self.tied:
            return None
        names = self.param_names
        for k, v in self.tied.items():
            for n in (k, v):
                if n not in names:
                    raise FitError(f"{self.name}: tied parameter {n!r} unknown; parameters are {names}")
            if self.params[names.index(k)].log != self.params[names.index(v)].log:
                raise FitError(f"{self.name}: cannot tie {k} to {v}: one is fitted on a log scale, the other not")
        roots = [self._tie_root(n) for n in names]
        groups = list(dict.fromkeys(roots))
        T = np.zeros((len(names), len(groups)))
        for i, r in enumerate(roots):
            T[i, groups.index(r)] = 1.0
        return T

    def _to_free(self, theta: np.ndarray) -> np.ndarray:
        """Full optimiser-space theta [..., P] -> free coordinates [..., Q] (first of each tied group)."""
        T = self._tie_matrix()
        return theta if T is None else theta[..., np.argmax(T, axis=0)]

    def _from_free(self, th: np.ndarray) -> np.ndarray:
        T = self._tie_matrix()
        return th if T is None else th @ T.T

    def _free_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.bounds()
        T = self._tie_matrix()
        if T is None:
            return lo, hi
        # A group's box is the intersection of its members' boxes.
        big = np.where(T > 0, 1.0, np.nan)
        return np.nanmax(big * lo[:, None], axis=0), np.nanmin(big * hi[:, None], axis=0)

    def _objective(self, target: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                   group: torch.Tensor | None = None, forward_vjp=None, delta: float | None = None):
        """The fit's objective on free coordinates: point weights, reduction and ties applied.
        `weights[R, n]` with `group` (start -> row) are per-replicate weights (bootstrap counts)."""
        import torch

        from scaling.laws.objective import make_objective

        target = self._t if target is None else target
        w0 = getattr(self, "_w", None)
        n = len(self._t)
        scale = 1.0 / float(n if w0 is None else w0.sum()) if self.reduction == "mean" else 1.0
        if self.reduction not in ("sum", "mean"):
            raise FitError(f"{self.name}: reduction must be 'sum' or 'mean', got {self.reduction!r}")
        if weights is None and (w0 is not None or scale != 1.0):
            weights, group = (torch.ones(1, n, dtype=torch.float64) if w0 is None else w0[None]), "one"
        if weights is not None:
            weights = weights * (1.0 if w0 is None else w0) * scale
        fv = forward_vjp or self.forward_vjp
        delta = float(getattr(self, "delta_", 1e-3) if delta is None else delta)  # the delta the fit used (auto)
        T = self._tie_matrix()
        if T is not None:
            Tt = torch.as_tensor(T, dtype=torch.float64)

            def fv_free(th, F, _fv=fv):
                out, vjp = _fv(th @ Tt.T, F)
                return out, lambda c: vjp(c) @ Tt

            fv = fv_free
        if isinstance(group, str):  # one weight row shared by every start
            fg_one = make_objective(fv, self._F, target, self.loss, delta, weights=weights,
                                    group=None, asymmetry=self.asymmetry)

            def fg(theta, idx):
                return fg_one(theta, torch.zeros_like(idx))

            return fg
        return make_objective(fv, self._F, target, self.loss, delta, weights=weights, group=group,
                              asymmetry=self.asymmetry)

    def _start_grid(self) -> np.ndarray:
        import torch

        init, _, arg = str(self.init).partition(":")
        lo, hi = self._free_bounds()
        if init == "random":
            # Uniform in the optimiser's box (finite bounds); a seeded sample of `arg` starts.
            k = int(arg or 256)
            return np.random.default_rng(self.seed).uniform(lo, hi, size=(k, len(lo)))
        name = (arg or "default") if init == "best" else self.init
        if name not in self.inits:
            raise FitError(f"{self.name}: unknown init {self.init!r}; choose from {list(self.inits)}, "
                           "'random[:K]' or 'best[:GRID]'")
        grid = np.atleast_2d(self.init_grid(self._F.numpy(), self._t.numpy())).astype(float)
        grid = np.unique(np.clip(self._to_free(grid), lo, hi), axis=0) if self.tied else np.clip(grid, lo, hi)
        if init == "best":
            # Best-of-grid: one start, the grid point with the lowest objective.
            with torch.no_grad():
                f, _ = self._objective()(torch.as_tensor(grid), torch.arange(len(grid)))
            grid = grid[[int(torch.argmin(torch.where(torch.isfinite(f), f, torch.inf)))]]
        return grid

    def _uses_varpro(self) -> bool:
        supported = getattr(self, "vp_basis", None) is not None and self.np_pred_jac is not None
        if self.solver == "grid":
            return False
        # Pinned or tied parameters, point weights, a mean objective and the start options
        # random/best change what is fitted or searched: the grid engine handles them.
        ok = supported and self._plain_sum_objective() and self.init in self.inits
        if self.solver == "varpro" and not ok:
            raise FitError(f"{self.name}: solver='varpro' needs a law with a linear form (chinchilla, power, ...), "
                           f"no fixed or tied parameters, no weights and a summed huber or mse objective; "
                           f"use solver='grid'")
        if self.solver not in ("auto", "varpro"):
            raise FitError(f"{self.name}: solver must be 'auto', 'varpro' or 'grid', got {self.solver!r}")
        return ok

    def _plain_sum_objective(self) -> bool:
        """A summed Huber or squared loss of free parameters (no pins, ties, point weights or
        mean): what variable projection and Gauss-Newton least squares minimise."""
        return (not self.fixed and not self.tied and getattr(self, "_w", None) is None
                and self.reduction == "sum" and self.loss in ("huber", "mse"))

    def _polished_by_gauss_newton(self) -> bool:
        """Whether the fit's candidates and its bootstrap replicates are finished by bounded
        Gauss-Newton (`varpro.polish_gauss_newton`): laws that ask for it (`vp_polisher`, D-CPT's
        flat valleys) and have a numpy Jacobian, when the objective is a plain sum of Huber or
        squared residuals of free parameters (no pins, ties, weights or mean), which is what
        least squares with a robust loss minimises. solver="grid" asks for the batched engine alone."""
        return (self.vp_polisher == "gauss_newton" and self.np_pred_jac is not None and self.solver != "grid"
                and self._plain_sum_objective())

    def _fit_auto_delta(self) -> None:
        """delta="auto": delta = 1.345 × a robust sigma of the residuals (the usual Huber tuning).

        First a fit with the Hoffmann delta (robust, nearly L1). An L1-like fit with p free
        parameters puts about p residuals at zero, so their MAD underestimates the noise, badly on
        small designs (8 points, 5 parameters: delta collapsed to the first fit's 1e-3); sigma
        comes from the MAD of the other n - p. Then AUTO_DELTA_STEPS Huber fits, each re-estimating
        sigma from the last one's residuals with the n / (n - p) degrees-of-freedom correction.
        Measured on 72 exp7-like designs (tests/laws/test_delta_auto.py), median error in a:
        plain MAD 1.17% (linear scale) / 1.34% (log); this rule 1.02% / 1.15%, against least
        squares' 1.08% / 1.11%."""
        if self.delta != "auto":
            raise FitError(f"{self.name}: delta must be a number or 'auto', got {self.delta!r}")
        self._fit_tensors(1e-3, warn=False)
        p = self._n_free()
        for step in range(AUTO_DELTA_STEPS + 1):
            r = self._forward_np(self.theta_, self._Fn) - self._tn
            n = len(r)
            dev = np.abs(r - np.median(r))
            if step == 0 and n > p + 2:
                sigma = MAD_TO_SIGMA * float(np.median(np.sort(dev)[p:]))
            else:
                sigma = MAD_TO_SIGMA * float(np.median(dev)) * math.sqrt(n / max(n - p, 1))
            self._fit_tensors(max(HUBER_TUNING * sigma, 1e-12), warn=step == AUTO_DELTA_STEPS)

    def _fit_tensors(self, delta: float = 1e-3, warn: bool = True) -> None:
        lo, hi = self.bounds()
        self.delta_ = float(delta)
        if self.init not in self.inits and str(self.init).partition(":")[0] not in ("random", "best"):
            raise FitError(f"{self.name}: unknown init {self.init!r}; choose from {list(self.inits)}, "
                           "'random[:K]' or 'best[:GRID]'")
        self._screen = None  # per-start screening results (grid engine), for the fit manifest
        if self._uses_varpro():
            from scaling.laws.varpro import fit_varpro

            res = fit_varpro(self, self._Fn, self._tn, delta, lo, hi, max_iter=self.max_iter)
            self.solver_ = "varpro+gauss_newton" if self._polished_by_gauss_newton() else "varpro"
            status = res.status
        else:
            from scaling.laws.engine import STATUS, multistart

            flo, fhi = self._free_bounds()
            theta0 = self._start_grid()
            finish = None
            if self._polished_by_gauss_newton():  # no ties: free coordinates are the parameters
                from scaling.laws.varpro import gauss_newton_finish

                finish = gauss_newton_finish(self, self._Fn, self._tn, delta, lo, hi, self.max_iter)
            res = multistart(self._objective(delta=delta), theta0, flo, fhi, max_iter=self.max_iter, finish=finish)
            self._screen = res.screen
            self._box, self._theta0 = (flo, fhi), theta0
            res.theta = self._from_free(res.theta)
            self.solver_ = "grid" if finish is None else "grid+gauss_newton"
            status = STATUS[res.status]
            plain = not self.tied and getattr(self, "_w", None) is None and self.reduction == "sum"
            if not res.converged and status == "linesearch" and self.np_pred_jac is not None and plain:
                # The engine's absolute gradient test rejects minima on the linear scale (large
                # gradient terms, flat valleys); judge stationarity relative to the terms instead.
                from scaling.laws.varpro import stationary_at

                res.converged = stationary_at(self, res.theta, self._Fn, self._tn, delta, lo, hi)
        if not np.isfinite(res.fun):
            raise FitError(f"{self.name}: no start gave a finite objective; check the data's scale")
        self.theta_ = np.array(res.theta, dtype=float)
        self.params_ = dict(zip(self.param_names, map(float, self.to_natural(self.theta_))))
        self.objective_ = float(res.fun)
        self.converged_ = bool(res.converged)
        self.n_starts_ = int(res.n_starts)
        self.n_starts_best_ = int(res.n_starts_best)
        self.n_iter_ = int(res.n_iter)
        # Parameters pinned by a bound are worth knowing about (an unidentified term, E -> 0, ...).
        pinned = {self._tie_root(k) for k in (self.fixed or {})}
        # a tied parameter is reported once, by the one it is tied to
        free = [self._tie_root(p.name) not in pinned and self._tie_root(p.name) == p.name for p in self.params]
        self.at_bounds_ = [
            p.name for p, f, v, a, b in zip(self.params, free, self.theta_, lo, hi) if f and (v <= a or v >= b)
        ]
        self.n_points_ = int(len(self._tn))
        resid = self._forward_np(self.theta_, self._Fn) - self._tn
        g = goodness(resid, self._tn, self._n_free())
        self.r2_, self.aic_, self.bic_, self.sigma_ = g["r2"], g["aic"], g["bic"], g["sigma"]
        if not warn:
            return
        if self.loss == "huber" and self.delta != "auto" and np.mean(np.abs(resid) > 10 * delta) > 0.5:
            warnings.warn(
                f"{self.name}: most residuals exceed the Huber delta {delta:g} by more than 10x, so the fit is "
                f"effectively least absolute deviations (L1); pass delta='auto' (CLI: --delta auto) to set "
                f"delta from the noise", FitWarning, stacklevel=3)
        if not self.converged_:
            msg = (  # one self-contained line: which law, which target, what to do
                f"{self.name} fit of {getattr(self, 'y_', 'y')} on {', '.join(getattr(self, 'x_', ['x']))} did not converge ({status} "
                f"after {res.n_iter} iterations, objective {res.fun:.6g}, {res.n_starts_best} of {res.n_starts} "
                f"starts in the best basin); raise max_iter (now {self.max_iter}) or check the data"
            )
            if self.strict:
                raise FitError(msg)
            warnings.warn(msg, FitWarning, stacklevel=3)


__all__ = ["AUTO_DELTA_STEPS", "FitMixin", "FitWarning", "HUBER_TUNING", "MAD_TO_SIGMA"]
