"""Data-selection law, fitted jointly over selection variants, and the compute multiplier.

    L_v(N, D) = E_v + A / N^alpha + B / (m_v · D'_v)^beta

Exponents and A, B are shared; each variant v (a selection method at a keep share) has its own
floor E_v and data multiplier m_v (m = 1 for the unfiltered baseline). D' is the effective data
under repetition (Muennighoff et al. 2023): with U unique tokens seen for D tokens in all,
R = D/U - 1 repeated epochs are worth U · R* · (1 - exp(-R / R*)) fresh tokens (R* = 15.4, their
fit); without a unique-token column D' = D. With `r_star="fit"` R* is a fitted parameter (one,
shared by the variants): Muennighoff et al. fitted it to their models, and how fast repeated
tokens lose their value depends on the data and the model's scale (a 10k-parameter model on a
world of facts is not a 1B-parameter model on web text), so a study whose variants repeat their
selections for different numbers of epochs can measure it.

Floors: `floors="free"` fits one E_v per variant; `"shared"` ties every E_v to the baseline's,
where the floors are known to be equal (e.g. junk a model tells from the target at its first
token); `"column"` holds each E_v at a known value from `floor_column` (facts_pool reports the
exact floor of every selection as `select_floor`). Free floors let the fit explain a data
multiplier by a floor gap, which makes CM drift with compute (on tiny models, far above their
floors, fitted floors land well off the exact ones, even below the Bayes loss).

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
from scaling.laws.validation import as_frame

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


def log_effective_tokens(lD: torch.Tensor, lU: torch.Tensor, r_star: torch.Tensor) -> torch.Tensor:
    """log D' [S, n] from log D and log U [n] and R* [S, 1], differentiable in R* (torch form of
    `effective_tokens`)."""
    R = torch.clamp(torch.exp(lD - lU) - 1.0, min=0.0)[None]  # repeated epochs beyond the first
    repeated = lU[None] + torch.log1p(r_star * -torch.expm1(-R / r_star))
    return torch.where(R > 0, repeated, lD[None].expand_as(repeated))


@register_law
class SelectLaw(Law):
    """Joint law over variants; x = [N, D] plus `variant` (and optional `unique_tokens`) columns.

    Options beyond Law's: variant (column), baseline (its value for the unfiltered data),
    unique_tokens (column of unique tokens per run, for repetition), r_star (a number, or "fit"),
    floors ("free": one E per variant, or "shared": one E for all).
    Fitted beyond Law's: variants_ (order of E_v / m_v), multiplier_ (m per variant).
    """

    name = "select"
    n_inputs = 2
    log_inputs = False  # features are built in _design (log N, log D', variant one-hot)

    FLOORS = ("free", "shared", "column")

    def __init__(self, *args: Any, variant: str = "variant", baseline: Any = None, unique_tokens: str | None = None,
                 r_star: float | str = R_STAR, floors: str = "free", floor_column: str | None = None,
                 **kwargs: Any) -> None:
        self.floor_column = floor_column
        super().__init__(*args, **kwargs)
        self.variant = variant
        self.baseline = baseline
        self.unique_tokens = unique_tokens
        self.r_star = r_star
        self.floors = floors

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "tied": self._user_tied, "variant": self.variant, "baseline": self.baseline,
                "unique_tokens": self.unique_tokens, "r_star": self.r_star, "floors": self.floors,
                "floor_column": self.floor_column, "fixed": self._user_fixed}

    # `tied` as the engine reads it: the user's ties, plus every floor tied to the baseline's
    # once the variants are known when floors="shared" (the option itself is never changed).
    @property
    def tied(self) -> dict[str, str] | None:
        variants = getattr(self, "variants_", None)
        if getattr(self, "floors", "free") != "shared" or not variants:
            return self._user_tied
        return {**(self._user_tied or {}), **{f"E_{v}": f"E_{variants[0]}" for v in variants[1:]}}

    @tied.setter
    def tied(self, value: dict[str, str] | None) -> None:
        self._user_tied = value

    # `fixed` likewise: with floors="column", every E_v pinned to its value in `floor_column`.
    @property
    def fixed(self) -> dict[str, float] | None:
        floors = getattr(self, "floors_known_", None)
        if getattr(self, "floors", "free") != "column" or floors is None:
            return self._user_fixed
        return {**(self._user_fixed or {}), **{f"E_{v}": e for v, e in floors.items()}}

    @fixed.setter
    def fixed(self, value: dict[str, float] | None) -> None:
        self._user_fixed = value

    def _known_floors(self, df: pd.DataFrame) -> dict[str, float]:
        """floors="column": each variant's floor from `floor_column` (one value per variant)."""
        col = self.floor_column
        if not col or col not in df.columns:
            raise DataError(f"select: floors='column' needs floor_column naming a column of known floors "
                            f"(e.g. select_floor), got {col!r}; columns are {list(df.columns)}")
        out = {}
        for v, g in df.groupby(df[self.variant].astype(str)):
            vals = pd.to_numeric(g[col], errors="coerce").to_numpy(float)
            if not np.isfinite(vals).all() or (vals <= 0).any() or np.ptp(vals) > 1e-9 * abs(vals[0]):
                raise DataError(f"select: column {col!r} must hold one positive floor per variant; variant {v!r} "
                                f"has {sorted(set(np.round(vals, 12).tolist()))}")
            out[v] = float(vals[0])
        return out

    @property
    def fits_r_star(self) -> bool:
        return self.r_star == "fit"

    @property
    def extra_columns(self) -> list[str]:
        return [self.variant] + ([self.unique_tokens] if self.unique_tokens else [])

    def _check_options(self) -> None:
        if self.floors not in self.FLOORS:
            raise FitError(f"select: floors must be one of {', '.join(map(repr, self.FLOORS))}, got {self.floors!r}")
        if self.fits_r_star:
            if not self.unique_tokens:
                raise FitError("select: r_star='fit' needs a unique-token column (set --unique-tokens)")
        elif isinstance(self.r_star, bool) or not isinstance(self.r_star, (int, float)) or not self.r_star > 0:
            raise FitError(f"select: r_star must be a number > 0 or 'fit', got {self.r_star!r}")

    # ---- parameters depend on the variants found in the data ----
    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        variants = getattr(self, "variants_", None)
        if variants is None:
            raise FitError("select: parameters are known once fitted (one E and m per variant)")
        es = tuple(Param(f"E_{v}", -5.0, 5.0, log=True) for v in variants)
        ms = tuple(Param(f"m_{v}", -6.0, 6.0, log=True) for v in variants[1:])
        rs = (Param("R_star", np.log(0.05), np.log(1e4), log=True),) if self.fits_r_star else ()
        return es + (Param("A", -20.0, 40.0, log=True), Param("B", -20.0, 40.0, log=True),
                     Param("alpha", 0.0, 3.0), Param("beta", 0.0, 3.0)) + ms + rs

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
        self._check_options()
        df = as_frame(df)
        self.variants_ = self._variants_from(df)
        if self.floors == "column":
            self.floors_known_ = self._known_floors(df)
        super().fit(df, x, y, holdout=holdout, weight=weight)
        self.multiplier_ = {v: (1.0 if i == 0 else self.params_[f"m_{v}"]) for i, v in enumerate(self.variants_)}
        return self

    def _design(self, df: pd.DataFrame, x: list[str], y: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        df = as_frame(df)
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
        # log U beside log D; U = D (no repetition) where there is no unique-token column, so D' is
        # computed in log_pred with a fixed or fitted R*.
        lU = np.log(X[:, 1]) if U is None else np.log(U)
        feats = np.column_stack([np.log(X[:, 0]), np.log(X[:, 1]), lU, onehot])
        return feats, yv

    def _n_variants(self) -> int:
        return len(self.variants_)

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        k = self._n_variants()
        e = theta[:, :k]  # log E_v
        a, b, al, be = theta[:, k], theta[:, k + 1], theta[:, k + 2], theta[:, k + 3]
        lm = torch.cat([torch.zeros_like(theta[:, :1]), theta[:, k + 4:2 * k + 3]], dim=1)  # log m_v, baseline 0
        onehot = F[:, 3:]
        ev = e @ onehot.T  # [S, n]
        lmv = lm @ onehot.T
        lN = F[:, 0]
        r_star = theta[:, -1:].exp() if self.fits_r_star else torch.full_like(theta[:, :1], float(self.r_star))
        lD = log_effective_tokens(F[:, 1], F[:, 2], r_star)  # [S, n]
        return torch.logsumexp(torch.stack([(a[:, None] - al[:, None] * lN).expand_as(lD),
                                            b[:, None] - be[:, None] * (lD + lmv), ev]), dim=0)

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        k = self._n_variants()
        rows = []
        # Shared terms as chinchilla's default grid, coarser (every variant adds two parameters);
        # every variant starts at the same floor with m = 1; a fitted R* starts at 1, 5 and 15.4 epochs.
        r_starts = [np.log(1.0), np.log(5.0), np.log(R_STAR)] if self.fits_r_star else [None]
        for al, be, ef, a, b, r in itertools.product([0.2, 0.4, 0.7], [0.2, 0.4, 0.7], [0.5, 0.9],
                                                     [2.0, 8.0, 14.0], [2.0, 8.0, 14.0], r_starts):
            rows.append([t.min() + np.log(ef)] * k + [a, b, al, be] + [0.0] * (k - 1) + ([] if r is None else [r]))
        return np.array(rows, float)

    def predict_variant(self, N: np.ndarray, D: np.ndarray, variant: str, unique_tokens: float | None = None) -> np.ndarray:
        self._check_fitted()
        df = pd.DataFrame({self.x_[0]: np.atleast_1d(N), self.x_[1]: np.atleast_1d(D), self.variant: variant})
        if self.unique_tokens:
            df[self.unique_tokens] = unique_tokens if unique_tokens is not None else np.inf
        return self.predict(df)

    def to_json(self) -> dict[str, Any]:
        out = {**super().to_json(), "variants": self.variants_}
        if getattr(self, "floors_known_", None) is not None:
            out["floors_known"] = self.floors_known_
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SelectLaw":
        boot = d.get("boot_theta")
        law = super().from_json({**d, "boot_theta": None})  # parameters need the variants first
        law.variants_ = list(d["variants"])
        if "floors_known" in d:
            law.floors_known_ = {str(k): float(v) for k, v in d["floors_known"].items()}
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
        r_star = p["R_star"][:, None, None] if self.fits_r_star else self.r_star
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
        Deff = effective_tokens(D, unique, r_star) if unique is not None else D
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
    variants' runs, so every replicate compares the variants on the same cells. It is the law's
    cluster bootstrap with one cluster per cell, so the fit's objective, tied and fixed parameters
    hold in every replicate. Fills boot_theta_, boot_params_, ci_ and boot_converged_ (replicates
    that did not converge are excluded and counted in boot_excluded_)."""
    from scaling.laws.bootstrap import run_bootstrap

    law._check_fitted()
    missing = [c for c in cells if c not in df.columns]
    if missing:
        raise DataError(f"select: cell column(s) {missing} not found; columns are {list(df.columns)}")
    if len(df) != law.n_points_:
        raise DataError(f"select: the cell bootstrap needs the {law.n_points_} rows the law was fitted on, "
                        f"got {len(df)}")
    keys = pd.MultiIndex.from_frame(df[cells].astype(str)).to_flat_index()
    codes, _ = pd.factorize(keys)
    try:
        run_bootstrap(law, n, seed, starts=starts, cluster=codes)
    except FitError as e:
        raise FitError(f"select: {e}; the variants' multipliers are not identified by these runs "
                       f"(vary N and D within each variant)") from None
    law.boot_excluded_ = law.boot_n_excluded_
    law.boot_method_ = f"cells({', '.join(cells)})"
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


def study_law(select: pd.DataFrame, baseline: str, seed: int = 0, floors: str = "auto",
              delta: float | str | None = None) -> SelectLaw:
    """The select law as a study's report and advice fit it, on `select_runs`' table (columns of
    `scaling.schema`): the unique-token column is distinct documents' tokens, or kept tokens in a
    store trained before runs recorded `unique_tokens` (there duplicated documents count as unique);
    `floors` "auto" holds known floors fixed where the pool knows them (free floors let the fit
    explain a multiplier by a floor gap, so CM drifts with compute) and fits one per variant
    elsewhere; "free" and "shared" are the law's own options ([select] `floors` of the spec);
    `delta` is the Huber delta (None: the law's default). R* is fitted where a selection repeats
    for 4 or more epochs beside runs that do not repeat (enough to measure it)."""
    from scaling import schema

    unique = (schema.UNIQUE_TOKENS if schema.UNIQUE_TOKENS in select and select[schema.UNIQUE_TOKENS].notna().all()
              else schema.KEPT_TOKENS)
    known = schema.SELECT_FLOOR in select and select[schema.SELECT_FLOOR].notna().all()
    repeats = schema.EPOCHS in select and (select[schema.EPOCHS] >= 4).any() and (select[schema.EPOCHS] <= 1).any()
    options: dict[str, Any] = ({"floors": "column", "floor_column": schema.SELECT_FLOOR} if floors == "auto" and known
                               else {} if floors == "auto" else {"floors": floors})
    if repeats:
        options["r_star"] = "fit"
    if delta is not None:
        options["delta"] = delta
    return SelectLaw(variant=schema.SELECT_VARIANT, baseline=baseline, unique_tokens=unique, seed=seed, **options)


__all__ = ["R_STAR", "SelectLaw", "cell_bootstrap", "effective_tokens", "multiplier_summary", "study_law"]
