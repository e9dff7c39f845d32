"""Cross-domain D-CPT law (Que et al. 2024): one D-CPT law shared by several domains, each with
its own learnable domain coefficient, so a new domain's law comes from a few of its runs.

    L_d(N, D, r) = E + F/K_d^mu + A/N^alpha + B·r^eta/D^beta + C/(r + eps)^gamma

The paper's domain-specific learnable coefficient K_d enters through F/K_d^mu. With K_d free per
domain, E, F and mu are not separately identifiable (any one of them can be traded against the
K_d), so the fitted parameter per domain is the identifiable sum, the domain floor
E_d = E + F/K_d^mu, named `E_<domain>`. The other eight parameters are shared. Option
`per_domain` also frees other coefficients per domain (for example ("E", "C") when the domains
differ in how fast their share helps, not only in their floors); each costs one parameter per
domain, so the few runs of a new domain must cover as many.

Fitted as `dcpt`: by variable projection on D-CPT's exponent grid (each per-domain coefficient's
column is its term on that domain's points, so the law stays linear in the coefficients; the
non-negative solve has one per domain for each per-domain coefficient plus the shared ones: 7
with 4 domains' floors, `varpro.nnls_active_set`), polished by Gauss-Newton;
init="fine" is the grid engine's. On 180 runs of 4 domains: 2.5 s, against 18.4 s for the grid
engine's 2,916 starts finished the same way (2.9 s against 27.1 s with E, B and C per domain), at
the same optimum (to 1e-14 of the objective, on six designs).

x = [N, D, r] as `dcpt`, plus a `domain` column (option `domain`, like the `select` law's
variant column). `leave_one_domain_out` is the transfer check: fit on every other domain plus
a few runs of one domain (`known`: its `n_known` cheapest, or 4 spanning two budgets, see
KNOWN_DESIGNS), predict that domain's other runs. A domain whose budget term differs (per-domain
B) needs runs at two budgets: from one budget nothing in its few runs says how D acts on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from scaling.errors import DataError, FitError
from scaling.laws.base import Law, Param
from scaling.laws.dcpt import DCPTLaw, _CPTForm
from scaling.laws.registry import register_law
from scaling.laws.validation import as_frame

_SHARED = {p.name: p for p in DCPTLaw.params}


@register_law
class DCPTCrossLaw(_CPTForm):
    """D-CPT with per-domain coefficients; x = [N, D, r] plus a `domain` column.

    Options beyond Law's: domain (column name), per_domain (coefficients freed per domain; "E"
    must be among them). Fitted beyond Law's: domains_ (order of the per-domain parameters).
    """

    name = "dcpt_cross"

    def __init__(self, *args: Any, domain: str = "domain", per_domain: tuple[str, ...] | list[str] = ("E",),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.domain = domain
        self.per_domain = tuple(per_domain)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "domain": self.domain, "per_domain": list(self.per_domain)}

    @property
    def extra_columns(self) -> list[str]:
        return [self.domain]

    def _check_options(self) -> None:
        unknown = [k for k in self.per_domain if k not in ("E", "A", "B", "C")]
        if unknown or "E" not in self.per_domain:
            raise FitError(f"dcpt_cross: per_domain must include 'E' and name only coefficients E, A, B, C; "
                           f"got {list(self.per_domain)}")

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        domains = getattr(self, "domains_", None)
        if domains is None:
            raise FitError("dcpt_cross: parameters are known once fitted (per-domain coefficients)")
        out = []
        for name, p in _SHARED.items():
            if name in self.per_domain:
                out += [Param(f"{name}_{d}", p.lower, p.upper, log=p.log) for d in domains]
            else:
                out.append(p)
        return tuple(out)

    # ---- data: the domain column becomes a one-hot block after [log N, log D, r] ----
    def fit(self, df: pd.DataFrame, x: list[str] | str, y: str, holdout: str | float | None = None,
            weight: str | np.ndarray | None = None) -> "DCPTCrossLaw":
        self._check_options()
        df = as_frame(df)
        if self.domain not in df.columns:
            raise DataError(f"dcpt_cross: domain column {self.domain!r} not found; columns are {list(df.columns)} "
                            f"(set the `domain` option; on the command line `--option domain=COLUMN`)")
        self.domains_ = sorted(str(v) for v in pd.unique(df[self.domain].astype(str)))
        return super().fit(df, x, y, holdout=holdout, weight=weight)

    def _design(self, df: pd.DataFrame, x: list[str], y: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        df = as_frame(df)
        X, yv = super()._design(df, x, y)
        if self.domain not in df.columns:
            raise DataError(f"dcpt_cross: domain column {self.domain!r} not found")
        v = df[self.domain].astype(str).to_numpy()
        unknown = sorted(set(v) - set(self.domains_))
        if unknown:
            raise DataError(f"dcpt_cross: domain(s) {unknown} were not in the data the law was fitted on; "
                            f"refit with a few of their runs (see leave_one_domain_out)")
        onehot = (v[:, None] == np.array(self.domains_)[None]).astype(float)
        return np.column_stack([X, onehot]), yv

    def features(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([super().features(X[:, :3]), X[:, 3:]])

    def _as_features(self, data: pd.DataFrame | np.ndarray) -> torch.Tensor:
        data = as_frame(data)
        if not isinstance(data, pd.DataFrame):
            raise FitError("dcpt_cross: predict from a DataFrame with the x columns and the domain column")
        return super()._as_features(data)

    # ---- formula: per-domain coefficients are picked per row through the one-hot block ----
    def _unpack(self, theta: torch.Tensor, F: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        names = self.param_names
        p: dict[str, torch.Tensor] = {}
        for name in _SHARED:
            if name in self.per_domain:
                idx = [names.index(f"{name}_{d}") for d in self.domains_]
                p[name] = theta[:, idx] @ F[:, 3:].T  # [S, n]
            else:
                p[name] = theta[:, names.index(name)][:, None]  # [S, 1]
        return p

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        p = self._unpack(theta, F)
        lN, lD, r = F[:, 0], F[:, 1], F[:, 2]
        pos = r > 0
        lr = torch.where(pos, torch.log(torch.where(pos, r, torch.ones_like(r))), torch.zeros_like(r))
        zE = p["E"].expand(-1, len(r))
        zA = p["A"] - p["alpha"] * lN
        zB = torch.where(pos, p["B"] - p["beta"] * lD + p["eta"] * lr, torch.full_like(zA, -torch.inf))
        zC = p["C"] - p["gamma"] * torch.log(r + torch.exp(p["eps"]))
        return torch.logsumexp(torch.stack(torch.broadcast_tensors(zE, zA, zB, zC)), dim=0)

    def np_pred_jac(self, theta: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # D-CPT's terms with each per-domain coefficient picked per point by the one-hot block;
        # a per-domain parameter's derivative is the shared one's on its domain's points, 0 elsewhere
        th = dict(zip(self.param_names, np.asarray(theta, float)))
        onehot = F[:, 3:]
        p = {name: onehot @ np.array([th[f"{name}_{d}"] for d in self.domains_]) if name in self.per_domain
             else th[name] for name in _SHARED}
        pred, J = self._pred_jac_by_name(p, F)
        return pred, self._by_parameter(J, self.param_names, onehot, axis=1)

    def _by_parameter(self, shared: dict[str, np.ndarray], names: list[str], onehot: np.ndarray,
                      axis: int) -> np.ndarray:
        """Columns [..., n] by shared name, stacked by parameter name: a per-domain parameter's
        column is the shared one on its domain's points, 0 elsewhere."""
        cols = []
        for name in names:
            base, _, d = name.partition("_")
            cols.append(shared[base] * onehot[:, self.domains_.index(d)] if d else shared[base])
        return np.stack(cols, axis)

    # ---- variable projection: each per-domain coefficient is a D-CPT term's column on its
    # domain's points (the one-hot block), so the law stays linear in exp(E_d), exp(A), exp(B),
    # exp(C) once the exponents are fixed; profiled on D-CPT's exponent grid ----
    def _coef_names(self) -> list[str]:
        return [n for n in self.param_names if n.partition("_")[0] in self.COEFS]

    def vp_basis(self, nl: np.ndarray, F: np.ndarray) -> np.ndarray:
        shared = dict(zip(self.COEFS, self._columns(dict(zip(self._nl(), nl.T)), F)))
        return self._by_parameter(shared, self._coef_names(), F[:, 3:], axis=-1)

    def forward_vjp(self, theta: torch.Tensor, F: torch.Tensor):
        return Law.forward_vjp(self, theta, F)  # autograd: the shared analytic VJP assumes scalar coefficients

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        # The single-domain D-CPT grid on the pooled points, each per-domain coefficient started
        # at its pooled value and each domain's floor moved by its lowest loss over the pooled one.
        pooled = DCPTLaw(init=self.init, seed=self.seed)
        base = pooled.init_grid(F[:, :3], t)
        names = self.param_names
        onehot = F[:, 3:].astype(bool)
        ymin = np.exp(t).min()
        rows = []
        for row in base:
            val = dict(zip(pooled.param_names, row))
            out = []
            for name in names:
                base_name, _, d = name.partition("_")
                if d and base_name in self.per_domain:
                    v = val[base_name]
                    if base_name == "E":
                        k = self.domains_.index(d)
                        v += float(np.log(np.exp(t[onehot[:, k]]).min() / ymin)) if onehot[:, k].any() else 0.0
                    out.append(v)
                else:
                    out.append(val[name])
            rows.append(out)
        return np.array(rows, float)

    def domain_params(self) -> pd.DataFrame:
        """One row per domain: its coefficients (shared ones repeated), for the report."""
        self._check_fitted()
        rows = []
        for d in self.domains_:
            row = {"domain": d}
            for name in _SHARED:
                row[name] = self.params_[f"{name}_{d}" if name in self.per_domain else name]
            rows.append(row)
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "domains": self.domains_}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "DCPTCrossLaw":
        boot = d.get("boot_theta")
        law = super().from_json({**d, "boot_theta": None})  # parameters need the domains first
        law.domains_ = list(d["domains"])
        if boot is not None:
            law.boot_theta_ = np.array(boot, float)
            law.boot_params_ = pd.DataFrame(law.to_natural(law.boot_theta_), columns=law.param_names)
        return law


KNOWN_DESIGNS = ("cheapest", "span")
"""Which few runs a new domain gets: `cheapest`, the n_known smallest N·D (at the grid's cheapest
size and budget, a share sweep: one D, so the domain's own D coefficient B is not identified);
`span`, 4 runs (per seed) at the smallest size, the lowest and highest share r > 0 at the lowest
and highest budget (two D, so B per domain is identified; 2.5x the cheapest design's compute when
the budgets are 4x apart)."""


def known_runs(df: pd.DataFrame, x: list[str], n_known: int, design: str = "cheapest") -> np.ndarray:
    """Mask of a new domain's few runs among its rows (see KNOWN_DESIGNS); x = [N, D, r]."""
    if design not in KNOWN_DESIGNS:
        raise FitError(f"dcpt_cross: known-runs design must be one of {', '.join(KNOWN_DESIGNS)}; got {design!r}")
    N, D = df[x[0]].to_numpy(float), df[x[1]].to_numpy(float)
    if design == "span":
        r = df[x[2]].to_numpy(float)
        small = N == N.min()
        shares = np.unique(r[small & (r > 0)])
        budgets = np.unique(D[small])
        if len(shares) < 2 or len(budgets) < 2:
            raise DataError(f"dcpt_cross: the `span` design needs two shares r > 0 and two budgets D at the "
                            f"smallest size; found r {shares.tolist()} and D {budgets.tolist()}")
        return small & np.isin(r, shares[[0, -1]]) & np.isin(D, budgets[[0, -1]])
    order = np.argsort(N * D, kind="stable")
    mask = np.zeros(len(df), bool)
    mask[order[:n_known]] = True
    return mask


def leave_one_domain_out(df: pd.DataFrame, x: list[str], y: str, domain: str = "domain", n_known: int = 3,
                         pooled: bool = False, known: str = "cheapest", **law_options: Any) -> pd.DataFrame:
    """For each domain: fit on all other domains plus its few known runs (`known_runs(..., known)`),
    predict its other runs. One row per domain: known, n_known, n_test, mean_abs_rel_error,
    max_abs_rel_error.

    `pooled`: the baseline without a domain coefficient (one `dcpt` law over every domain's runs),
    which shows what the per-domain coefficients buy."""
    if domain not in df.columns:
        raise DataError(f"dcpt_cross: domain column {domain!r} not found; columns are {list(df.columns)}")
    names = sorted(str(v) for v in pd.unique(df[domain].astype(str)))
    if len(names) < 2:
        raise DataError(f"dcpt_cross: leave-one-domain-out needs at least 2 domains in column {domain!r}, got {names}")
    labels = df[domain].astype(str).to_numpy()
    rows = []
    for d in names:
        own = df[labels == d]
        known_mask = known_runs(own, x, n_known, known)
        if known_mask.all():
            raise DataError(f"dcpt_cross: domain {d!r} has {len(own)} run(s); need more than the "
                            f"{int(known_mask.sum())} known ones ({known} design)")
        train = pd.concat([df[labels != d], own[known_mask]])
        if pooled:
            law = DCPTLaw(**law_options).fit(train, x=x, y=y)
        else:
            law = DCPTCrossLaw(domain=domain, **law_options).fit(train, x=x, y=y)
        test = own[~known_mask]
        err = law.predict(test) / test[y].to_numpy(float) - 1.0
        rows.append({"domain": d, "known": known, "n_known": int(known_mask.sum()), "n_test": len(test),
                     "mean_abs_rel_error": float(np.mean(np.abs(err))),
                     "max_abs_rel_error": float(np.max(np.abs(err)))})
    return pd.DataFrame(rows)


__all__ = ["KNOWN_DESIGNS", "DCPTCrossLaw", "known_runs", "leave_one_domain_out"]
