"""Law base class: a formula, its parameters' bounds and start grid; fitting is shared.

A subclass declares `name`, `params` (names, bounds in the optimiser's space, whether the
optimiser works on the log of the value), `n_inputs`, and implements `log_pred` (or `pred`)
on batched torch tensors, plus `init_grid`. Everything else comes from here: input checks,
holdout, prediction, bootstrap and profile intervals; the fit itself (robust objective, variable
projection or batched L-BFGS-B from the whole grid, tied parameters) from `scaling.laws.fitting`,
JSON from `scaling.laws.persist`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

if TYPE_CHECKING:  # torch is imported only by the grid engine, bootstrap and torch formulas
    import pandas as pd  # a CSV fit reads scaling.tables.Columns and never imports pandas
    import torch

import numpy as np

from scaling.errors import FitError
from scaling.laws.fitting import FitMixin
from scaling.laws.persist import PersistMixin
from scaling.laws.validation import (check_columns, collinear_inputs, holdout_mask, holdout_report, is_table,
                                     numeric_column, point_weights)


@dataclass(frozen=True)
class Param:
    """A fitted parameter. Bounds are in the optimiser's space (log space when log=True)."""

    name: str
    lower: float
    upper: float
    log: bool = False


class Law(FitMixin, PersistMixin):
    """Base class of all scaling laws (scikit-learn style: options in, fitted values out with `_`).

    Options: loss "huber" (delta) or "mse" on residuals of log y (scale="log") or y ("linear");
    init names the start grid; n_bootstrap > 0 bootstraps after fit; fixed pins parameters;
    constants sets non-fitted constants of the formula; strict raises on non-convergence.
    delta="auto" sets the Huber delta from the residuals (1.345 × a robust, degrees-of-freedom
    corrected sigma, refined over a few fits; see `FitMixin._fit_auto_delta` and `delta_`).
    solver "auto" uses variable projection (scaling.laws.varpro: numpy and scipy only) for laws
    that support it and the batched torch grid engine otherwise; "varpro" or "grid" force one
    (init names the grid engine's start grid). Laws whose fits Gauss-Newton finishes (D-CPT, see
    `vp_polisher`) are finished so under "auto" and "varpro"; "grid" is the batched engine alone.

    Fitted: params_, theta_ (optimiser space), objective_, converged_, n_starts_,
    n_starts_best_ (screening starts ending within 1e-3 relative of the best objective),
    n_iter_, n_points_, r2_/aic_/bic_/sigma_ (on the fit scale), at_bounds_, holdout_, x_, y_,
    delta_ (the Huber delta used), solver_ ("varpro", "grid", or either + "+gauss_newton" when Gauss-Newton finished it)
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
    vp_polisher: ClassVar[str] = "quasi_newton"
    """How variable projection's profiled points are polished in all parameters: "quasi_newton"
    (numpy L-BFGS; scipy's where it stops short) or "gauss_newton" (scipy's bounded least squares:
    laws with many parameters in flat valleys, where a quasi-Newton method crawls)."""

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
    def extra_columns(self) -> list[str]:
        """Columns besides the x columns that `predict` reads from a table (a variant or domain label,
        unique tokens): plots and tables that build prediction frames carry them."""
        return []

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

    def _forward_jac_np(self, theta: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prediction [n], its Jacobian [n, P] in optimiser space), both on the fit scale, from np_pred_jac."""
        p, J = self.np_pred_jac(np.asarray(theta, float), F)
        if self.fit_scale != "log":
            return p, J
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(p), J / p[:, None]  # d log y = dy / y

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

    def __repr__(self) -> str:
        if hasattr(self, "params_"):
            ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            return f"{type(self).__name__}({ps})"
        return f"{type(self).__name__}(loss={self.loss!r}, init={self.init!r})"
