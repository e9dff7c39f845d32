"""Data-selection law, fitted jointly over selection variants, and the compute multiplier.

    L_v(N, D) = E_v + A / N^alpha + B / (m_v · D'_v)^beta

Exponents and A, B are shared; each variant v (a selection method at a keep share) has its own
floor E_v and data multiplier m_v (m = 1 for the unfiltered baseline). D' is the effective data
under repetition (Muennighoff et al. 2023): with U unique tokens seen for D tokens in all,
R = D/U - 1 repeated epochs are worth U · R* · (1 - exp(-R / R*)) fresh tokens (R* = 15.4, their
fit); without a unique-token column D' = D.

The compute multiplier of v at compute C is CM_v(C) = C_base(L_v*(C)) / C: the compute the
baseline needs to reach the loss that v reaches with compute C on its compute-optimal frontier
(C = 6 N D). It is infinite when the baseline never reaches that loss (below its floor) and below
1 when selection hurts. Without repetition and with equal floors CM = m_v exactly, at every C:
L_v(N, D) = L_base(N, m_v D), so v's frontier at C is the baseline's at m_v · C.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import torch

from scaling.errors import DataError, FitError
from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law

R_STAR = 15.4
"""Muennighoff et al. 2023's fitted R_D*: repeated tokens' value decays with this many epochs."""


def effective_tokens(D: np.ndarray, U: np.ndarray | None, r_star: float = R_STAR) -> np.ndarray:
    """D' for D tokens drawn from U unique ones (D' = D when U is None or D <= U)."""
    D = np.asarray(D, float)
    if U is None:
        return D
    U = np.broadcast_to(np.asarray(U, float), D.shape)
    R = np.maximum(D / U - 1.0, 0.0)
    return np.where(D <= U, D, U + U * r_star * (1.0 - np.exp(-R / r_star)))


@register_law
class SelectLaw(Law):
    """Joint law over variants; x = [N, D] plus `variant` (and optional `unique_tokens`) columns.

    Options beyond Law's: variant (column), baseline (its value for the unfiltered data),
    unique_tokens (column of unique tokens per run, for repetition), r_star.
    Fitted beyond Law's: variants_ (order of E_v / m_v), multiplier_ (m per variant).
    """

    name = "select"
    n_inputs = 2
    log_inputs = False  # features are built in _design (log N, log D', variant one-hot)

    def __init__(self, *args: Any, variant: str = "variant", baseline: Any = None, unique_tokens: str | None = None,
                 r_star: float = R_STAR, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variant = variant
        self.baseline = baseline
        self.unique_tokens = unique_tokens
        self.r_star = r_star

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "variant": self.variant, "baseline": self.baseline,
                "unique_tokens": self.unique_tokens, "r_star": self.r_star}

    # ---- parameters depend on the variants found in the data ----
    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        variants = getattr(self, "variants_", None)
        if variants is None:
            raise FitError("select: parameters are known once fitted (one E and m per variant)")
        es = tuple(Param(f"E_{v}", -5.0, 5.0, log=True) for v in variants)
        ms = tuple(Param(f"m_{v}", -6.0, 6.0, log=True) for v in variants[1:])
        return es + (Param("A", -20.0, 40.0, log=True), Param("B", -20.0, 40.0, log=True),
                     Param("alpha", 0.0, 3.0), Param("beta", 0.0, 3.0)) + ms

    def _variants_from(self, df: pd.DataFrame) -> list[str]:
        if self.variant not in df.columns:
            raise DataError(f"select: variant column {self.variant!r} not found; columns are {list(df.columns)} "
                            f"(set --variant)")
        values = [str(v) for v in pd.unique(df[self.variant].astype(str))]
        base = None if self.baseline is None else str(self.baseline)
        if base is None or base not in values:
            raise DataError(f"select: baseline {self.baseline!r} is not a value of column {self.variant!r} "
                            f"(values: {', '.join(values)}); set --baseline to the unfiltered variant")
        return [base] + sorted(v for v in values if v != base)

    def fit(self, df: pd.DataFrame, x: list[str] | str, y: str, holdout: str | float | None = None,
            weight: str | np.ndarray | None = None) -> "SelectLaw":
        self.variants_ = self._variants_from(df)
        super().fit(df, x, y, holdout=holdout, weight=weight)
        self.multiplier_ = {v: (1.0 if i == 0 else self.params_[f"m_{v}"]) for i, v in enumerate(self.variants_)}
        return self

    def _design(self, df: pd.DataFrame, x: list[str], y: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        X, yv = super()._design(df, x, y)
        if (X <= 0).any():
            raise DataError(f"select: columns {x} must be > 0 (parameters and tokens)")
        U = None
        if self.unique_tokens:
            from scaling.laws.validation import numeric_column

            if self.unique_tokens not in df.columns:
                raise DataError(f"select: unique-token column {self.unique_tokens!r} not found")
            U = numeric_column(df, self.unique_tokens, self.name, True)
        v = df[self.variant].astype(str).to_numpy() if self.variant in df.columns else None
        if v is None:
            raise DataError(f"select: variant column {self.variant!r} not found")
        unknown = sorted(set(v) - set(self.variants_))
        if unknown:
            raise DataError(f"select: variant(s) {unknown} were not in the data the law was fitted on")
        onehot = (v[:, None] == np.array(self.variants_)[None]).astype(float)
        feats = np.column_stack([np.log(X[:, 0]), np.log(effective_tokens(X[:, 1], U, self.r_star)), onehot])
        return feats, yv

    def _n_variants(self) -> int:
        return len(self.variants_)

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        k = self._n_variants()
        e = theta[:, :k]  # log E_v
        a, b, al, be = theta[:, k], theta[:, k + 1], theta[:, k + 2], theta[:, k + 3]
        lm = torch.cat([torch.zeros_like(theta[:, :1]), theta[:, k + 4:]], dim=1)  # log m_v, baseline 0
        onehot = F[:, 2:]
        ev = e @ onehot.T  # [S, n]
        lmv = lm @ onehot.T
        lN, lD = F[:, 0], F[:, 1]
        return torch.logsumexp(torch.stack([a[:, None] - al[:, None] * lN,
                                            b[:, None] - be[:, None] * (lD[None] + lmv), ev]), dim=0)

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        k = self._n_variants()
        rows = []
        # Shared terms as chinchilla's default grid, coarser (every variant adds two parameters);
        # every variant starts at the same floor with m = 1.
        for al, be, ef, a, b in itertools.product([0.2, 0.4, 0.7], [0.2, 0.4, 0.7], [0.5, 0.9],
                                                  [2.0, 8.0, 14.0], [2.0, 8.0, 14.0]):
            lm = 0.0
            rows.append([t.min() + np.log(ef)] * k + [a, b, al, be] + [lm] * (k - 1))
        return np.array(rows, float)

    def predict_variant(self, N: np.ndarray, D: np.ndarray, variant: str, unique_tokens: float | None = None) -> np.ndarray:
        self._check_fitted()
        df = pd.DataFrame({self.x_[0]: np.atleast_1d(N), self.x_[1]: np.atleast_1d(D), self.variant: variant})
        if self.unique_tokens:
            df[self.unique_tokens] = unique_tokens if unique_tokens is not None else np.inf
        return self.predict(df)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "variants": self.variants_}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SelectLaw":
        boot = d.get("boot_theta")
        law = super().from_json({**d, "boot_theta": None})  # parameters need the variants first
        law.variants_ = list(d["variants"])
        law.multiplier_ = {v: (1.0 if i == 0 else law.params_[f"m_{v}"]) for i, v in enumerate(law.variants_)}
        if boot is not None:
            law.boot_theta_ = np.array(boot, float)
            law.boot_params_ = pd.DataFrame(law.to_natural(law.boot_theta_), columns=law.param_names)
        return law

    # ---- compute multiplier ----
    def _natural(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter arrays per draw from optimiser-space theta [R, P]."""
        nat = self.to_natural(np.atleast_2d(theta))
        return {p.name: nat[:, j] for j, p in enumerate(self.params)}

    def frontier_loss(self, theta: np.ndarray, variant: str, C: np.ndarray, unique: float | None = None) -> np.ndarray:
        """L_v*(C), the loss on v's compute-optimal frontier (C = 6 N D), per draw: [R, K] for C of
        shape [K] (the same budgets for every draw) or [R, K]."""
        p = self._natural(theta)
        E, A, B, al, be = (p[f"E_{variant}"], p["A"], p["B"], p["alpha"], p["beta"])
        m = p.get(f"m_{variant}", np.ones_like(E))
        C = np.asarray(C, float)
        C = np.broadcast_to(np.atleast_1d(C)[None] if C.ndim <= 1 else C, (len(E), np.atleast_1d(C).shape[-1]))
        # Candidate sizes around the no-repetition optimum; the minimum over a fine log grid.
        Bm = B * m ** (-be)
        G = (al * A / (be * Bm)) ** (1.0 / (al + be))
        n0 = G[:, None] * (C / 6.0) ** (be / (al + be))[:, None]
        grid = np.exp(np.linspace(-np.log(1e3), np.log(1e3), 401))
        N = n0[:, :, None] * grid[None, None]  # [R, C, G]
        D = C[:, :, None] / (6.0 * N)
        Deff = effective_tokens(D, unique, self.r_star) if unique is not None else D
        L = E[:, None, None] + A[:, None, None] / N ** al[:, None, None] + B[:, None, None] / (
            m[:, None, None] * Deff) ** be[:, None, None]
        return L.min(axis=2)

    def compute_multiplier(self, variant: str, C: np.ndarray, theta: np.ndarray | None = None,
                           unique: dict[str, float] | None = None) -> np.ndarray:
        """CM_v(C) per draw [R, len(C)] (default: the fit itself, R = 1); inf where the baseline
        never reaches v's loss. `unique` gives each variant's unique tokens (repetition)."""
        self._check_fitted()
        theta = self.theta_[None] if theta is None else np.atleast_2d(theta)
        C = np.atleast_1d(np.asarray(C, float))
        unique = unique or {}
        base = self.variants_[0]
        target = self.frontier_loss(theta, variant, C, unique.get(variant))  # [R, C]
        floor = self._natural(theta)[f"E_{base}"][:, None]
        lo = np.full(target.shape, np.log(C.min()) - 40.0)
        hi = np.full(target.shape, np.log(C.max()) + 40.0)
        for _ in range(80):  # bisection on log C_base; the baseline frontier decreases in C
            mid = 0.5 * (lo + hi)
            Lb = self.frontier_loss(theta, base, np.exp(mid), unique.get(base))
            reached = Lb <= target
            hi = np.where(reached, mid, hi)
            lo = np.where(reached, lo, mid)
        cm = np.exp(hi) / C[None]
        return np.where(target <= floor * (1 + 1e-12), np.inf, cm)


def cell_bootstrap(law: SelectLaw, df: pd.DataFrame, cells: list[str], n: int = 200, seed: int = 0,
                   starts: int = 3) -> SelectLaw:
    """Paired bootstrap: resample (size, seed) cells with replacement, each cell carrying all its
    variants' runs, so every replicate compares the variants on the same cells. Fills
    boot_theta_, boot_params_, ci_ and boot_converged_ (replicates that did not converge are
    excluded and counted in boot_excluded_)."""
    from scaling.laws.engine import EngineOptions, minimize_batched
    from scaling.laws.objective import make_objective

    law._check_fitted()
    missing = [c for c in cells if c not in df.columns]
    if missing:
        raise DataError(f"select: cell column(s) {missing} not found; columns are {list(df.columns)}")
    if n < 2:
        raise FitError(f"bootstrap needs at least 2 replicates, got {n}")
    keys = pd.MultiIndex.from_frame(df[cells].astype(str)).to_flat_index()
    codes, uniq = pd.factorize(keys)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n, len(uniq)))
    cell_counts = np.stack([np.bincount(d, minlength=len(uniq)) for d in draws])  # [n, cells]
    counts = cell_counts[:, codes].astype(float)  # [n, points]
    lo, hi = law.bounds()
    k = max(int(starts), 1)
    base = np.repeat(law.theta_[None], n * k, axis=0)
    jitter = rng.normal(0.0, 0.05, size=base.shape) * (np.abs(base) + 0.1)
    jitter[::k] = 0.0
    x0 = np.clip(base + jitter, lo, hi)
    group = torch.arange(n).repeat_interleave(k)
    fg = make_objective(law.forward_vjp, law._F, law._t, law.loss, getattr(law, "delta_", law.delta), weights=torch.as_tensor(counts), group=group)
    res = minimize_batched(fg, x0, lo, hi, EngineOptions(max_iter=law.max_iter, ftol=1e-10))
    fun = np.where(np.isfinite(res.fun), res.fun, np.inf).reshape(n, k)
    rows = np.arange(n) * k + np.argmin(fun, axis=1)
    ok = res.converged[rows] & np.isfinite(fun.min(axis=1))
    law.boot_excluded_ = int((~ok).sum())
    if ok.sum() < 2:
        raise FitError(f"select: only {int(ok.sum())} of {n} bootstrap replicates converged; the variants' "
                       f"multipliers are not identified by these runs (vary N and D within each variant)")
    law.boot_theta_ = res.theta[rows][ok]
    law.boot_converged_ = float(np.mean(ok))
    law.boot_params_ = pd.DataFrame(law.to_natural(law.boot_theta_), columns=law.param_names)
    law.boot_method_ = f"cells({', '.join(cells)})"
    law.ci_ = {c: (float(np.quantile(law.boot_params_[c], 0.025)), float(np.quantile(law.boot_params_[c], 0.975)))
               for c in law.param_names}
    return law


def multiplier_summary(law: SelectLaw, compute: list[float] | np.ndarray,
                       unique: dict[str, float] | None = None, level: float = 0.95) -> dict[str, Any]:
    """The JSON contract's `multiplier` and `cm` objects: m per variant with its interval, and
    CM(C) per variant over `compute` with its interval and P(CM < 1) across bootstrap replicates."""
    law._check_fitted()
    q = [(1 - level) / 2, (1 + level) / 2]
    boot = getattr(law, "boot_theta_", None)
    out: dict[str, Any] = {"multiplier": {}, "cm": {}}
    C = np.atleast_1d(np.asarray(compute, float))
    for v in law.variants_[1:]:
        m = float(law.params_[f"m_{v}"])
        ci = list(law.ci_.get(f"m_{v}", (float("nan"), float("nan"))))
        out["multiplier"][v] = {"m": m, "ci95": [float(ci[0]), float(ci[1])]}
        cm = law.compute_multiplier(v, C, unique=unique)[0]
        draws = law.compute_multiplier(v, C, theta=boot, unique=unique) if boot is not None and len(boot) else None
        rows = []
        for j, c in enumerate(C):
            row = {"compute": float(c), "cm": float(cm[j]), "ci95": [float("nan"), float("nan")], "p_below_1": float("nan")}
            if draws is not None:
                lo, hi = np.quantile(draws[:, j], q)
                row["ci95"] = [float(lo), float(hi)]
                row["p_below_1"] = float(np.mean(draws[:, j] < 1.0))
            rows.append(row)
        out["cm"][v] = rows
    return out


__all__ = ["R_STAR", "SelectLaw", "cell_bootstrap", "effective_tokens", "multiplier_summary"]
