"""Law base class: a formula, its parameters' bounds and start grid; fitting is shared.

A subclass declares `name`, `params` (names, bounds in the optimiser's space, whether the
optimiser works on the log of the value), `n_inputs`, and implements `log_pred` (or `pred`)
on batched torch tensors, plus `init_grid`. Everything else (the robust objective, batched
L-BFGS-B from the whole grid, bootstrap, holdout, JSON) comes from here.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

if TYPE_CHECKING:  # torch is imported only by the grid engine, bootstrap and torch formulas
    import pandas as pd  # a CSV fit reads scaling.tables.Columns and never imports pandas
    import torch

import numpy as np

from scaling.errors import FitError
from scaling.laws.validation import (check_columns, goodness, holdout_mask, holdout_report, is_table,
                                     numeric_column)

HUBER_TUNING = 1.345  # delta / sigma at which Huber keeps 95% efficiency under Gaussian noise
MAD_TO_SIGMA = 1.4826  # sigma / MAD of a Gaussian
AUTO_DELTA_STEPS = 2  # refits after the first robust estimate of sigma (delta="auto")


class FitWarning(UserWarning):
    """A fit finished without meeting its convergence test."""


def point_weights(df: pd.DataFrame, weight: str | np.ndarray | None, law: str) -> np.ndarray | None:
    """Per-row weights from a column name or an array (finite, >= 0, not all 0), or None."""
    if weight is None:
        return None
    if isinstance(weight, str):
        check_columns(df, [weight], law)
        w = numeric_column(df, weight, law, positive=False)
    else:
        w = np.asarray(weight, dtype=float).ravel()
        if len(w) != len(df):
            raise FitError(f"{law}: {len(w)} weights for {len(df)} rows; give one weight per row")
    if not np.all(np.isfinite(w)) or (w < 0).any() or not (w > 0).any():
        raise FitError(f"{law}: weights must be finite and >= 0 with at least one > 0 (weight {weight!r})")
    return w


@dataclass(frozen=True)
class Param:
    """A fitted parameter. Bounds are in the optimiser's space (log space when log=True)."""

    name: str
    lower: float
    upper: float
    log: bool = False


def collinear_inputs(X: np.ndarray, names: list[str]) -> list[tuple[str, str]]:
    """Pairs of inputs whose logs lie on one line across the rows (one is a power of the other, e.g.
    D = 20 N exactly): a law cannot tell their terms apart, whatever its fit finds."""
    out = []
    with np.errstate(all="ignore"):
        logs = np.log(np.asarray(X, float))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = logs[:, i], logs[:, j]
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or a.std() == 0 or b.std() == 0:
                continue
            if abs(np.corrcoef(a, b)[0, 1]) > 1 - 1e-9:
                out.append((names[i], names[j]))
    return out


class Law:
    """Base class of all scaling laws (scikit-learn style: options in, fitted values out with `_`).

    Options: loss "huber" (delta) or "mse" on residuals of log y (scale="log") or y ("linear");
    init names the start grid; n_bootstrap > 0 bootstraps after fit; fixed pins parameters;
    constants sets non-fitted constants of the formula; strict raises on non-convergence.
    delta="auto" sets the Huber delta from the residuals (1.345 × a robust, degrees-of-freedom
    corrected sigma, refined over a few fits; see `_fit_auto_delta` and `delta_`). solver "auto" uses variable projection (scaling.laws.varpro: numpy and
    scipy only) for laws that support it and the batched torch grid engine otherwise; "varpro"
    or "grid" force one (init names the grid engine's start grid).

    Fitted: params_, theta_ (optimiser space), objective_, converged_, n_starts_,
    n_starts_best_ (screening starts ending within 1e-3 relative of the best objective),
    n_iter_, n_points_, r2_/aic_/bic_/sigma_ (on the fit scale), at_bounds_, holdout_, x_, y_,
    delta_ (the Huber delta used), solver_ ("varpro" or "grid")
    (after fit_and_check with a holdout: holdout_fit_, the copy fitted without the held-out rows);
    after bootstrap: ci_, boot_theta_, boot_params_, boot_converged_.
    """

    name: ClassVar[str] = "law"
    params: ClassVar[tuple[Param, ...]] = ()
    n_inputs: ClassVar[int] = 1
    default_scale: ClassVar[Literal["log", "linear"]] = "log"
    log_inputs: ClassVar[bool] = True  # features are log(x): every x must be > 0
    default_constants: ClassVar[dict[str, float]] = {}
    inits: ClassVar[tuple[str, ...]] = ("default",)

    def __init__(
        self,
        loss: Literal["huber", "mse"] = "huber",
        delta: float | Literal["auto"] = 1e-3,
        init: str = "default",
        scale: Literal["log", "linear"] | None = None,
        n_bootstrap: int = 0,
        seed: int = 0,
        fixed: dict[str, float] | None = None,
        constants: dict[str, float] | None = None,
        max_iter: int = 1000,
        strict: bool = False,
        solver: Literal["auto", "varpro", "grid"] = "auto",
        tied: dict[str, str] | None = None,
        reduction: Literal["sum", "mean"] = "sum",
        asymmetry: float = 10.0,
    ) -> None:
        self.loss = loss
        self.delta = delta
        self.init = init
        self.scale = scale
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.fixed = fixed
        self.constants = constants
        self.max_iter = max_iter
        self.strict = strict
        self.solver = solver
        self.tied = tied  # {"beta": "alpha"}: beta is fitted equal to alpha
        self.reduction = reduction  # objective summed or averaged over points
        self.asymmetry = asymmetry  # loss="asymmetric": weight on over-predictions

    # ---- formula hooks (override log_pred or pred, and init_grid) ----
    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """log prediction [S, n] for optimiser-space theta[S, P] and features F[n, k]."""
        return self.pred(theta, F).log()

    def pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """Prediction [S, n] on the y scale."""
        return self.log_pred(theta, F).exp()

    # Optional numpy hooks. np_pred_jac(theta[P], F[n, k]) -> (prediction [n] on the y scale,
    # its Jacobian [n, P] in optimiser space) lets predict/score run without torch; with
    # vp_basis / vp_theta / vp_grid as well, the law is fitted by variable projection.
    np_pred_jac: ClassVar[Callable[..., tuple[np.ndarray, np.ndarray]] | None] = None
    vp_engine_polish: ClassVar[bool] = False
    """Variable projection's profiled points are polished by the batched torch engine instead of
    the numpy quasi-Newton (laws with many parameters in flat valleys, where the engine's L-BFGS
    reaches the grid engine's optimum and the numpy polish stops slightly short)."""

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Starting points [S, P] in optimiser space for features F and fit-scale target t."""
        raise NotImplementedError

    def features(self, X: np.ndarray) -> np.ndarray:
        """Inputs as the formula sees them (log x by default)."""
        return np.log(X) if self.log_inputs else X

    # ---- derived helpers ----
    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def const(self) -> dict[str, float]:
        """Fixed (non-fitted) constants of the formula, defaults overridden by `constants=`."""
        return {**self.default_constants, **(self.constants or {})}

    @property
    def fit_scale(self) -> str:
        s = self.scale or self.default_scale
        if s not in ("log", "linear"):
            raise FitError(f"{self.name}: scale must be 'log' or 'linear', got {s!r}")
        return s

    def forward(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """Prediction on the fit scale (log y or y)."""
        return self.log_pred(theta, F) if self.fit_scale == "log" else self.pred(theta, F)

    def forward_vjp(
        self, theta: torch.Tensor, F: torch.Tensor
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Fit-scale prediction and its vector-Jacobian product (autograd; override for speed)."""
        import torch

        th = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.forward(th, F)

        def vjp(c: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(out, th, c, retain_graph=False)
            return g

        return out.detach(), vjp

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """Optimiser space -> parameter values (exp of log-parameters)."""
        th = np.array(theta, dtype=float, copy=True)
        for j, p in enumerate(self.params):
            if p.log:
                th[..., j] = np.exp(th[..., j])
        return th

    def to_theta(self, values: dict[str, float]) -> np.ndarray:
        """Parameter values -> optimiser space."""
        out = []
        for p in self.params:
            v = float(values[p.name])
            if p.log and v <= 0:
                raise FitError(f"{self.name}: parameter {p.name} must be > 0, got {v}")
            out.append(np.log(v) if p.log else v)
        return np.array(out)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Box bounds in optimiser space, with `fixed` parameters pinned."""
        lo = np.array([p.lower for p in self.params], float)
        hi = np.array([p.upper for p in self.params], float)
        for k, v in (self.fixed or {}).items():
            if k not in self.param_names:
                raise FitError(f"{self.name}: fixed parameter {k!r} unknown; parameters are {self.param_names}")
            j = self.param_names.index(k)
            p = self.params[j]
            lo[j] = hi[j] = np.log(v) if p.log else v
        return lo, hi

    def get_params(self) -> dict[str, Any]:
        """Constructor options (JSON-ready), as scikit-learn's get_params."""
        keys = ["loss", "delta", "init", "scale", "n_bootstrap", "seed", "fixed", "constants", "max_iter", "strict",
                "solver", "tied", "reduction", "asymmetry"]
        return {k: getattr(self, k) for k in keys}

    def clone(self, **overrides: Any) -> "Law":
        """Unfitted copy with the same options."""
        return type(self)(**{**self.get_params(), **overrides})

    # ---- data ----
    def _design(self, df: pd.DataFrame, x: list[str], y: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        if len(x) != self.n_inputs:
            raise FitError(f"{self.name} law takes {self.n_inputs} x column(s), got {len(x)}: {x}")
        check_columns(df, list(x) + ([y] if y else []), self.name)
        X = np.stack([numeric_column(df, c, self.name, self.log_inputs) for c in x], axis=1)
        yv = numeric_column(df, y, self.name, self.fit_scale == "log") if y else None
        return X, yv

    def _target(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.fit_scale == "log" else y

    def _as_features(self, data: pd.DataFrame | np.ndarray) -> torch.Tensor:
        import torch

        return torch.as_tensor(self._as_features_np(data), dtype=torch.float64)

    def _as_features_np(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        if is_table(data):
            X, _ = self._design(data, self.x_, None)
        else:
            X = np.asarray(data, dtype=float)
            X = X[:, None] if X.ndim == 1 else X
            if X.shape[1] != self.n_inputs:
                raise FitError(f"{self.name}: expected {self.n_inputs} input column(s), got {X.shape[1]}")
        return self.features(X)

    # The training data in numpy (_Fn, _tn); torch views for the grid engine and bootstrap.
    @property
    def _F(self) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.array(self._Fn, dtype=np.float64))

    @_F.setter
    def _F(self, value: Any) -> None:
        self._Fn = np.asarray(value, dtype=np.float64)

    @property
    def _t(self) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.array(self._tn, dtype=np.float64))

    @_t.setter
    def _t(self, value: Any) -> None:
        self._tn = np.asarray(value, dtype=np.float64)

    def _pred_np(self, theta: np.ndarray, F: np.ndarray) -> np.ndarray:
        """Prediction [n] on the y scale at one theta, numpy when the law has np_pred_jac."""
        if self.np_pred_jac is not None:
            return self.np_pred_jac(np.asarray(theta, float), F)[0]
        import torch

        return self.pred(torch.as_tensor(np.asarray(theta, float)[None]), torch.as_tensor(F))[0].numpy()

    def _forward_np(self, theta: np.ndarray, F: np.ndarray) -> np.ndarray:
        """Prediction [n] on the fit scale."""
        if self.np_pred_jac is None:
            import torch

            return self.forward(torch.as_tensor(np.asarray(theta, float)[None]), torch.as_tensor(F))[0].numpy()
        p = self._pred_np(theta, F)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(p) if self.fit_scale == "log" else p

    def _check_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise FitError(f"{self.name} law is not fitted yet: call fit(df, x=..., y=...) first")

    # ---- fitting ----
    def fit(self, df: pd.DataFrame, x: list[str] | str, y: str, holdout: str | float | None = None,
            weight: str | np.ndarray | None = None) -> "Law":
        """Fit from the whole start grid. With `holdout` (grammar in scaling.laws.validation, e.g.
        "largest:1", 0.2, "N>1e9") the law is fitted on the remaining rows and holdout_ reports the
        relative error on the held-out ones. `weight` (a column name or an array, one value >= 0 per
        row) weights each point's term of the objective."""
        x = [x] if isinstance(x, str) else list(x)
        w = point_weights(df, weight, self.name)
        if holdout is not None and str(holdout).lower() not in ("", "none"):
            check_columns(df, x + [y], self.name)
            mask, info = holdout_mask(df, holdout, x[0])
            n_free = self._n_free()
            if mask.all() or (~mask).sum() < n_free:
                raise FitError(
                    f"holdout {holdout!r} leaves {(~mask).sum()} training point(s); the {self.name} law "
                    f"needs at least {n_free}: hold out fewer"
                )
            self.fit(df[~mask], x, y, weight=None if w is None else w[~mask])
            test = df[mask]
            self.holdout_ = holdout_report(self.predict(test), self._design(test, x, y)[1], info, int((~mask).sum()))
            return self
        X, yv = self._design(df, x, y)
        n_free = self._n_free()
        if len(yv) < n_free:
            raise FitError(
                f"{self.name} law has {n_free} free parameters but only {len(yv)} point(s) were given; "
                f"need at least {n_free}"
            )
        self.x_, self.y_ = x, y
        # which values each input took: advice warns when too few pin a term's exponent
        self.x_distinct_ = {c: np.unique(X[:, i]).tolist() for i, c in enumerate(x)}
        if len(x) == 1 and len(self.x_distinct_[x[0]]) == 1:  # any curve through one x fits: nothing to learn
            raise FitError(f"{self.name}: input {x[0]!r} takes one value ({self.x_distinct_[x[0]][0]:g}) in all "
                           f"{len(yv)} rows, so the law cannot tell how {y!r} depends on it; add runs at other "
                           f"values of {x[0]!r} (or check --where)")
        self.x_collinear_ = collinear_inputs(X, x)
        self._Fn = self.features(X)
        self._tn = self._target(yv)
        if w is None:
            self._w = None
        else:
            import torch

            self._w = torch.tensor(w, dtype=torch.float64)
        self.weight_ = weight if isinstance(weight, str) else (None if w is None else "array")
        self._fit_auto_delta() if isinstance(self.delta, str) else self._fit_tensors(float(self.delta))
        self.holdout_ = {}
        self.ci_ = {}
        if self.n_bootstrap:
            self.bootstrap(self.n_bootstrap, seed=self.seed)
        return self

    def fit_and_check(self, df: pd.DataFrame, x: list[str] | str, y: str, holdout: str | float | None = None,
                      weight: str | np.ndarray | None = None) -> "Law":
        """Fit on all rows; with `holdout`, `holdout_` reports how a copy fitted without the
        held-out rows predicts them (the extrapolation check beside the reported parameters)."""
        held = self.clone().fit(df, x, y, holdout=holdout, weight=weight) if holdout else None
        self.fit(df, x, y, weight=weight)
        self.holdout_ = held.holdout_ if held is not None else {}
        self.holdout_fit_ = held  # the fit that never saw the held-out rows: what a check figure draws
        return self

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
        ok = (supported and not self.fixed and not self.tied and getattr(self, "_w", None) is None
              and self.reduction == "sum" and self.loss in ("huber", "mse") and self.init in self.inits)
        if self.solver == "varpro" and not ok:
            raise FitError(f"{self.name}: solver='varpro' needs a law with a linear form (chinchilla, power, ...), "
                           f"no fixed or tied parameters, no weights and a summed huber or mse objective; "
                           f"use solver='grid'")
        if self.solver not in ("auto", "varpro"):
            raise FitError(f"{self.name}: solver must be 'auto', 'varpro' or 'grid', got {self.solver!r}")
        return ok

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
        profiled = self._uses_varpro()
        if profiled and not self.vp_engine_polish:
            from scaling.laws.varpro import fit_varpro

            res = fit_varpro(self, self._Fn, self._tn, delta, lo, hi, max_iter=self.max_iter)
            self.solver_ = "varpro"
            status = res.status
        else:
            from scaling.laws.engine import STATUS, multistart

            flo, fhi = self._free_bounds()
            if profiled:  # the profile's best points, polished by the batched engine
                from scaling.laws.varpro import profiled_starts

                theta0, n_grid, _ = profiled_starts(self, self._Fn, self._tn, delta, lo, hi)
            else:
                theta0 = self._start_grid()
            res = multistart(self._objective(delta=delta), theta0, flo, fhi, max_iter=self.max_iter,
                             screen_starts=not profiled)
            # Profiled starts have no screening pass: the manifest then describes the exponent grid.
            self._screen = None if profiled else res.screen
            self._box, self._theta0 = (flo, fhi), theta0
            res.theta = self._from_free(res.theta)
            self.solver_ = "grid"
            if profiled:  # n_starts_best: polished points that reached the best basin
                self.solver_, res.n_starts = "varpro+engine", n_grid
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

    # ---- using a fit ----
    def predict(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Predictions on the y scale for a DataFrame with the x columns, or an array [n, k]."""
        self._check_fitted()
        return self._pred_np(self.theta_, self._as_features_np(data))

    def score(self, df: pd.DataFrame) -> float:
        """R² on the fit scale (log y for log-scale laws)."""
        self._check_fitted()
        _, yv = self._design(df, self.x_, self.y_)
        t = self._target(yv)
        pred = self._forward_np(self.theta_, self._as_features_np(df))
        return 1.0 - float(np.sum((t - pred) ** 2) / np.sum((t - t.mean()) ** 2))

    def bootstrap(self, n: int = 1000, seed: int | None = None, starts: int = 3, ftol: float = 1e-10,
                  method: str = "pairs", cluster: np.ndarray | pd.Series | None = None,
                  noise: float | None = None) -> "Law":
        """Refit n resampled data sets (vectorised; `starts` per replicate: the best fit and jitters
        around it; `ftol` relative stopping tolerance; `method` "pairs", "residual" or "parametric"
        (Gaussian noise of scale `noise` on the fit scale); `cluster` one label per fitted row to
        resample whole clusters, see `scaling.laws.bootstrap.run_bootstrap`);
        fills ci_ (95%), boot_params_ and boot_n_excluded_ (replicates that did not converge)."""
        from scaling.laws.bootstrap import run_bootstrap

        self._check_fitted()
        if not hasattr(self, "_F"):
            raise FitError(f"{self.name}: bootstrap needs the training data; refit this law (loaded laws keep none)")
        labels = None if cluster is None else np.asarray(cluster)
        run_bootstrap(self, n, self.seed if seed is None else seed, starts, ftol=ftol, method=method, cluster=labels,
                      noise=noise)
        return self

    def profile(self, level: float = 0.95) -> "Law":
        """Profile-likelihood intervals (see `scaling.laws.profile`): fills ci_ and profile_."""
        from scaling.laws.profile import profile_intervals

        self._check_fitted()
        self.profile_ = profile_intervals(self, level)
        self.ci_ = {k: (v["lo"], v["hi"]) for k, v in self.profile_.items()}
        self.ci_method_ = "profile"
        return self

    def predict_interval(
        self, data: pd.DataFrame | np.ndarray, level: float = 0.95, kind: Literal["confidence", "prediction"] = "confidence"
    ) -> pd.DataFrame:
        """Columns pred, lo, hi: bootstrap band of the mean ("confidence") or of a new observation
        ("prediction", adding residual noise of the fit)."""
        from scaling.laws.bootstrap import interval

        return interval(self, data, level, kind)

    def leave_one_out(self, df: pd.DataFrame, group: str | None = None, y: str | None = None, x: list[str] | None = None) -> pd.DataFrame:
        """Refit leaving out each distinct value of `group` (default: first x); one row per value."""
        from scaling.laws.bootstrap import leave_one_out

        return leave_one_out(self, df, group, x, y)

    @classmethod
    def with_params(cls, values: dict[str, float], x: list[str], y: str, **options: Any) -> "Law":
        """A law set to published parameter values (no data), to predict or compare with."""
        law = cls(**options)
        law.x_, law.y_ = list(x), y
        law.theta_ = law.to_theta(values)
        law.params_ = {k: float(values[k]) for k in law.param_names}
        law.ci_, law.holdout_ = {}, {}
        return law

    # ---- persistence ----
    def to_json(self) -> dict[str, Any]:
        """Everything needed to predict again, JSON-ready."""
        self._check_fitted()
        boot = getattr(self, "boot_theta_", None)
        return {
            "law": self.name,
            "options": self.get_params(),
            "x": self.x_,
            "y": self.y_,
            "params": self.params_,
            "theta": [float(v) for v in self.theta_],
            "ci95": {k: [float(a), float(b)] for k, (a, b) in getattr(self, "ci_", {}).items()},
            "objective": self.objective_,
            "converged": self.converged_,
            "n_points": self.n_points_,
            "n_starts": self.n_starts_,
            "n_starts_best": self.n_starts_best_,
            "r2": self.r2_,
            "aic": self.aic_,
            "bic": self.bic_,
            "sigma": self.sigma_,
            "holdout": self.holdout_,
            "boot_theta": None if boot is None else boot.tolist(),
            "bootstrap": getattr(self, "boot_info_", None),
            "weight": getattr(self, "weight_", None),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Law":
        """Rebuild a fitted law from `to_json()` output (dispatches on d["law"] from the base class)."""
        from scaling.laws.registry import law_class

        klass = law_class(d["law"]) if cls is Law else cls
        law = klass(**d["options"])
        law.x_, law.y_ = d["x"], d["y"]
        law.theta_ = np.array(d["theta"], float)
        law.params_ = dict(d["params"])
        law.ci_ = {k: tuple(v) for k, v in d.get("ci95", {}).items()}
        for k in ["objective", "converged", "n_points", "n_starts", "n_starts_best", "r2", "aic", "bic", "sigma", "holdout"]:
            setattr(law, k + "_", d[k])
        if d.get("bootstrap") is not None:
            law.boot_info_ = dict(d["bootstrap"])
        if d.get("boot_theta") is not None:
            import pandas as pd

            law.boot_theta_ = np.array(d["boot_theta"], float)
            law.boot_params_ = pd.DataFrame(law.to_natural(law.boot_theta_), columns=law.param_names)
        return law

    def save(self, path: str | Path) -> None:
        from scaling.store import atomic_write_bytes

        atomic_write_bytes(path, json.dumps(self.to_json(), indent=1).encode())

    @classmethod
    def load(cls, path: str | Path) -> "Law":
        return cls.from_json(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        if hasattr(self, "params_"):
            ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            return f"{type(self).__name__}({ps})"
        return f"{type(self).__name__}(loss={self.loss!r}, init={self.init!r})"
