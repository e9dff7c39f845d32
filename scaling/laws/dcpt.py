"""D-CPT law (Que et al. 2024): loss after continual pre-training as a function of (N, D, r).

    L(N, D, r) = E + A/N^alpha + B·r^eta/D^beta + C/(r + eps)^gamma

x = [N, D, r]: non-embedding parameters, CPT tokens, and the share of the corpus whose loss
is modelled (the domain share for the domain loss, the general share 1 - r for the general
loss). r may be 0, so the formula sees [log N, log D, r] rather than logs of every input.
Fitted in log space as a log-sum-exp of the four terms with an analytic gradient; by default by
variable projection (E, A, B, C solved on a grid of the exponents and eps, then polished; see
`scaling.laws.varpro`), with init="fine" by the batched engine from a grid of all nine.
At r = 0 the D term B·r^eta/D^beta vanishes (0^eta = 0 even as eta -> 0, so the law jumps
there when eta is small): D-CPT says the loss of a corpus absent from the mixture does not
depend on D. Where it does (an undertrained base model), `dcpt_additive` fits r = 0 better.

Variants for comparison: `dcpt_chinchilla` (E + A/N^alpha + B/D^beta; r ignored) and
`dcpt_additive` (eta = 0: the data and mixture terms separable, a nested special case like
the simpler parameterisations the paper compares against).
A pair of fitted laws (domain loss on the domain share, general loss on the general share)
answers the CPT question: `optimal_domain_share` (the share minimising the domain loss with
the general loss within a threshold of the base model's, with a bootstrap interval) and
`loss_vs_share_curves`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import pandas as pd
import torch

from scaling.errors import DataError, FitError
from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law

_LOG_COEF = (-20.0, 80.0)  # log A, B, C: wide, since B/D^beta with D ~ 1e12 needs log B >> 40


class _CPTForm(Law):
    """Shared machinery: which of the terms (N, D with r^eta, r) a variant has."""

    n_inputs = 3
    log_inputs = False
    has_eta: ClassVar[bool] = True
    has_r_term: ClassVar[bool] = True

    # ---- inputs ----
    def features(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if (X[:, 0] <= 0).any() or (X[:, 1] <= 0).any():
            raise DataError(f"{self.name}: N and D (first two x columns) must be > 0; drop base/untrained rows")
        r = X[:, 2]
        if (r < 0).any() or (r > 1).any():
            raise DataError(f"{self.name}: the share r (third x column) must lie in [0, 1], got {r.min():g}..{r.max():g}")
        return np.stack([np.log(X[:, 0]), np.log(X[:, 1]), r], axis=1)

    # ---- parameters by name (absent ones take their neutral value) ----
    def _unpack(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return {p.name: theta[:, j] for j, p in enumerate(self.params)}

    def _terms(self, theta: torch.Tensor, F: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Log of each additive term [K, S, n] and the pieces the gradient needs."""
        p = self._unpack(theta)
        lN, lD, r = F[:, 0], F[:, 1], F[:, 2]
        n = len(lN)
        pos = r > 0
        lr = torch.where(pos, torch.log(torch.where(pos, r, torch.ones_like(r))), torch.zeros_like(r))
        z = [p["E"][:, None].expand(-1, n), p["A"][:, None] - p["alpha"][:, None] * lN]
        zB = p["B"][:, None] - p["beta"][:, None] * lD
        if self.has_eta:
            zB = torch.where(pos, zB + p["eta"][:, None] * lr, torch.full_like(zB, -torch.inf))
        z.append(zB)
        aux = {"lN": lN, "lD": lD, "lr": lr}
        if self.has_r_term:
            eps = torch.exp(p["eps"])[:, None]
            log_re = torch.log(r[None, :] + eps)  # [S, n]
            z.append(p["C"][:, None] - p["gamma"][:, None] * log_re)
            aux.update(eps=eps, log_re=log_re, r=r, gamma=p["gamma"][:, None])
        return torch.stack(z), aux

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._terms(theta, F)[0], dim=0)

    def forward_vjp(
        self, theta: torch.Tensor, F: torch.Tensor
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        if self.fit_scale != "log":
            return super().forward_vjp(theta, F)
        z, aux = self._terms(theta, F)
        # Direct sum of exponentials (as ChinchillaLaw): E > 0 keeps the sum > 0, an overflow
        # from a wild start gives inf, which the engine rejects; cheaper than logsumexp's max pass.
        ez = torch.exp(z)  # [K, S, n]
        total = ez.sum(0)
        lse = torch.log(total)
        names = self.param_names

        def vjp(c: torch.Tensor) -> torch.Tensor:
            q = (c / total) * ez  # [K, S, n]: c times the softmax weights d lse / d z_k
            g = {"E": q[0].sum(-1), "A": q[1].sum(-1), "alpha": -(q[1] @ aux["lN"]),
                 "B": q[2].sum(-1), "beta": -(q[2] @ aux["lD"])}
            if self.has_eta:
                g["eta"] = q[2] @ aux["lr"]
            if self.has_r_term:
                g["C"] = q[3].sum(-1)
                g["gamma"] = -(q[3] * aux["log_re"]).sum(-1)
                g["eps"] = -(q[3] * aux["gamma"] * aux["eps"] / (aux["r"][None, :] + aux["eps"])).sum(-1)
            return torch.stack([g[k] for k in names], dim=-1)

        return lse, vjp

    # ---- numpy form and its linear structure (variable projection): E, A, B, C enter linearly
    # once the exponents (alpha, beta, eta, gamma) and eps are fixed ----
    COEFS: ClassVar[tuple[str, ...]] = ("E", "A", "B", "C")
    NONLINEAR: ClassVar[tuple[str, ...]] = ("alpha", "beta", "eta", "gamma", "eps")
    VP_AXES: ClassVar[dict[str, tuple[float, ...]]] = {
        "alpha": (0.05, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0), "beta": (0.05, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0),
        "eta": (0.0, 0.2, 0.5, 1.0, 2.5), "gamma": (0.05, 0.2, 0.5, 1.0, 2.0, 3.5, 5.0),
        "eps": tuple(np.log([1e-4, 1e-3, 0.01, 0.05, 0.3, 1.5, 10.0])),
    }
    """Exponent grid of the profile, spanning the whole box (small studies put beta, gamma and eps
    at their bounds): 12,005 points for dcpt, 2,401 without eta, 49 for the Chinchilla variant;
    init="coarse" keeps every other value. init="fine" is the grid engine's (start grid plus Sobol)."""
    vp_polish: ClassVar[int] = 8
    """Distinct profile optima polished: the E and r terms trade off, so basins lie close."""
    vp_engine_polish: ClassVar[bool] = True
    """Polished by the batched engine: with nine parameters in flat valleys the numpy polish
    stopped up to 2.6e-6 (relative) above the old 2,916-start grid's optimum on the shipped
    studies' fits; the engine's L-BFGS from the same points is within 7e-7 of it, or below."""

    def _nl(self) -> list[str]:
        return [k for k in self.NONLINEAR if k in self.param_names]

    def _columns(self, nl: dict[str, np.ndarray], F: np.ndarray) -> list[np.ndarray]:
        """The terms without their coefficients, [G, n] each, in COEFS order (those the form has)."""
        lN, lD, r = F[:, 0], F[:, 1], F[:, 2]
        G = len(nl["alpha"])
        cols = [np.ones((G, len(lN))), np.exp(-nl["alpha"][:, None] * lN)]
        zB = -nl["beta"][:, None] * lD
        if self.has_eta:  # r^eta with 0^eta = 0: no D term for a corpus absent from the mixture
            pos = r > 0
            lr = np.log(np.where(pos, r, 1.0))
            cols.append(np.where(pos, np.exp(zB + nl["eta"][:, None] * lr), 0.0))
        else:
            cols.append(np.exp(zB))
        if self.has_r_term:
            cols.append(np.exp(-nl["gamma"][:, None] * np.log(r[None, :] + np.exp(nl["eps"])[:, None])))
        return cols

    def np_pred_jac(self, theta: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = dict(zip(self.param_names, np.asarray(theta, float)))
        lN, lD, r = F[:, 0], F[:, 1], F[:, 2]
        with np.errstate(over="ignore", invalid="ignore"):
            cols = self._columns({k: np.array([p[k]]) for k in self._nl()}, F)
            terms = {c: np.exp(p[c]) * col[0] for c, col in zip(self.COEFS, cols)}
            J = dict(terms)  # d/d log coefficient
            J["alpha"] = -lN * terms["A"]
            J["beta"] = -lD * terms["B"]
            if self.has_eta:
                J["eta"] = np.log(np.where(r > 0, r, 1.0)) * terms["B"]
            if self.has_r_term:
                eps = np.exp(p["eps"])
                J["gamma"] = -np.log(r + eps) * terms["C"]
                J["eps"] = -p["gamma"] * eps / (r + eps) * terms["C"]
            return sum(terms.values()), np.stack([J[k] for k in self.param_names], 1)

    def _uses_varpro(self) -> bool:
        return self.init != "fine" and super()._uses_varpro()

    def vp_basis(self, nl: np.ndarray, F: np.ndarray) -> np.ndarray:
        return np.stack(self._columns(dict(zip(self._nl(), nl.T)), F), -1)

    def vp_theta(self, nl: np.ndarray, coef: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            v = {**dict(zip(self.COEFS, np.log(coef).T)), **dict(zip(self._nl(), nl.T))}
        return np.stack([v[k] for k in self.param_names], 1)

    def vp_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        axes = [np.array(self.VP_AXES[k])[::2 if self.init == "coarse" else 1] for k in self._nl()]
        return np.array(list(itertools.product(*axes)))

    def __init__(self, *args, max_iter: int = 5000, **kwargs) -> None:
        # Nine parameters, two of them (E and the r term at small gamma) nearly interchangeable:
        # the polish needs more iterations than a five-parameter law's default 1000.
        super().__init__(*args, max_iter=max_iter, **kwargs)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """As declared, except E's, which is scale-free: 1e-3 x min(loss) <= E <= max(loss).

        Every other term is positive, so E cannot exceed the losses; its floor stands for
        E = 0 (indistinguishable at any noise level), so a fit at the floor is reported in
        `at_bounds_` as E -> 0 (E absorbed by the other terms), in whatever units the loss is."""
        lo, hi = super().bounds()
        if "E" in self.param_names and "E" not in (self.fixed or {}) and hasattr(self, "_t"):
            y = np.exp(self._t.numpy()) if self.fit_scale == "log" else self._t.numpy()
            j = self.param_names.index("E")
            lo[j], hi[j] = np.log(1e-3 * y.min()), np.log(y.max())
        return lo, hi

    # ---- starts: exponents on a grid, each coefficient set so its term is a given fraction of
    # the loss at the median point (scale-free, so any data's units work). 2,916 starts for
    # dcpt (972 without eta, 54 for the Chinchilla variant): the batched engine screens them
    # together, and the best basin holds many starts instead of one of 96 ----
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {
        "alpha": (0.2, 0.5, 1.0), "beta": (0.2, 0.5, 1.0), "eta": (0.0, 0.3, 1.0), "gamma": (0.2, 0.6, 1.5),
        "eps": (0.01, 0.1, 1.0), "fE": (0.3, 0.6, 0.9), "fA": (0.1, 0.3), "fB": (0.15,), "fC": (0.1, 0.3),
    }
    COARSE: ClassVar[dict[str, tuple[float, ...]]] = {
        "alpha": (0.3, 0.8), "beta": (0.2, 0.6), "eta": (0.0, 0.3, 1.0), "gamma": (0.2, 0.8), "eps": (0.02, 0.3),
        "fE": (0.4, 0.8), "fA": (0.15,), "fB": (0.15,), "fC": (0.15,),
    }
    """init="coarse": 96 starts (the grid before 2,916), for quick looks; it can miss the best basin."""
    inits = ("default", "fine", "coarse")
    FINE_EXTRA = 2048
    """init="fine": the default grid plus this many scrambled-Sobol starts over the same ranges."""

    def _start_values(self, v: dict[str, float], F: np.ndarray, t: np.ndarray) -> list[float]:
        y = np.exp(t)
        lN, lD, r = np.median(F[:, 0]), np.median(F[:, 1]), F[:, 2]
        lr = np.log(np.median(r[r > 0])) if (r > 0).any() else 0.0
        r_med = float(np.median(r))
        ymed, ymin = float(np.median(y)), float(y.min())
        val = {"E": np.log(v["fE"] * ymin), "alpha": v["alpha"], "beta": v["beta"],
               "A": np.log(v["fA"] * ymed) + v["alpha"] * lN}
        val["B"] = np.log(v["fB"] * ymed) + v["beta"] * lD - v.get("eta", 0.0) * lr
        if self.has_eta:
            val["eta"] = v["eta"]
        if self.has_r_term:
            val.update(gamma=v["gamma"], eps=np.log(v["eps"]),
                       C=np.log(v["fC"] * ymed) + v["gamma"] * np.log(r_med + v["eps"]))
        return [val[k] for k in self.param_names]

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        axes = self.COARSE if self.init == "coarse" else self.GRID
        names = [k for k in axes if k in self.param_names or k[1:] in self.param_names]
        combos = [dict(zip(names, c)) for c in itertools.product(*(axes[k] for k in names))]
        if self.init == "fine":
            from scipy.stats import qmc

            u = qmc.Sobol(len(names), scramble=True, seed=self.seed).random(self.FINE_EXTRA)
            lo = np.array([min(self.GRID[k]) for k in names])
            hi = np.array([max(self.GRID[k]) for k in names])
            combos += [dict(zip(names, row)) for row in lo + u * (hi - lo)]
        return np.array([self._start_values(v, F, t) for v in combos], dtype=float)


@register_law
class DCPTLaw(_CPTForm):
    """L(N, D, r) = E + A/N^alpha + B·r^eta/D^beta + C/(r + eps)^gamma; x = [N, D, r]."""

    name = "dcpt"
    params = (
        Param("E", -5.0, 5.0, log=True),
        Param("A", *_LOG_COEF, log=True),
        Param("alpha", 0.0, 5.0),
        Param("B", *_LOG_COEF, log=True),
        Param("eta", 0.0, 5.0),
        Param("beta", 0.0, 5.0),
        Param("C", *_LOG_COEF, log=True),
        Param("gamma", 0.0, 5.0),
        Param("eps", float(np.log(1e-4)), float(np.log(10.0)), log=True),
    )


@register_law
class DCPTAdditiveLaw(_CPTForm):
    """L(N, D, r) = E + A/N^alpha + B/D^beta + C/(r + eps)^gamma (D-CPT with eta = 0)."""

    name = "dcpt_additive"
    has_eta = False
    params = tuple(p for p in DCPTLaw.params if p.name != "eta")


@register_law
class DCPTChinchillaLaw(_CPTForm):
    """L(N, D) = E + A/N^alpha + B/D^beta; takes x = [N, D, r] like dcpt but ignores r."""

    name = "dcpt_chinchilla"
    has_eta = False
    has_r_term = False
    vp_engine_polish = False  # five parameters: the numpy polish reaches the engine's optimum, faster
    params = tuple(p for p in DCPTLaw.params if p.name in ("E", "A", "alpha", "B", "beta"))


CPT_LAWS = ("dcpt", "dcpt_additive", "dcpt_chinchilla")
"""The D-CPT law and the variants it is compared with, in report order."""


# ------------------------------------------------------------------ answers


@dataclass(frozen=True)
class ShareChoice:
    """The recommended domain share for one target (N, D), with its bootstrap interval."""

    N: float
    D: float
    domain_share: float
    """Share minimising the predicted domain loss subject to the general-loss limit (NaN if none)."""
    lo: float
    hi: float
    """Bootstrap percentile interval of the share (NaN without a bootstrap)."""
    domain_loss: float
    general_loss: float
    general_limit: float
    """(1 + threshold) x the base model's general loss."""
    feasible: bool
    """Whether some share keeps the predicted general loss within the limit."""
    binding: bool
    """Whether the general-loss limit (not the domain loss's own minimum) sets the share."""
    boot_feasible: float
    """Fraction of bootstrap replicates with a feasible share."""


def _share_grid(shares: np.ndarray | None) -> np.ndarray:
    s = np.linspace(0.0, 1.0, 1001) if shares is None else np.asarray(shares, dtype=float)
    if s.ndim != 1 or len(s) == 0 or (s < 0).any() or (s > 1).any():
        raise FitError("shares must be a non-empty 1-d array of values in [0, 1]")
    return s


def _check_pair(law_domain: Law, law_general: Law) -> None:
    for role, law in (("law_domain", law_domain), ("law_general", law_general)):
        law._check_fitted()
        if law.n_inputs != 3:
            raise FitError(f"{role}: expected a CPT law with x = [N, D, share], got {law.name} with {law.n_inputs} input(s)")


def _curves(law: Law, N: float, D: float, shares: np.ndarray, boot: bool) -> np.ndarray:
    """Predicted losses [R, len(shares)]: the fit (R = 1) or every bootstrap replicate."""
    X = np.stack([np.full_like(shares, N), np.full_like(shares, D), shares], axis=1)
    F = law._as_features(X)
    theta = law.boot_theta_ if boot else law.theta_[None]
    with torch.no_grad():
        return law.pred(torch.as_tensor(theta), F).numpy()


def _argmin_feasible(dom: np.ndarray, gen: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: index of the lowest domain loss among shares with gen <= limit, and feasibility."""
    ok = gen <= limit
    masked = np.where(ok, dom, np.inf)
    return np.argmin(masked, axis=1), ok.any(axis=1)


def optimal_domain_share(
    law_domain: Law, law_general: Law, N: float, D: float, base_general_loss: float,
    threshold: float = 0.03, shares: np.ndarray | None = None, level: float = 0.95,
) -> ShareChoice:
    """The domain share r minimising L_domain(N, D, r) subject to
    L_general(N, D, 1 - r) <= (1 + threshold) · base_general_loss.

    `law_domain` is fitted with x = [N, D, domain share], `law_general` with x = [N, D,
    general share]. Shares are searched on a grid (default 1001 points in [0, 1]). With
    bootstrap replicates on both laws, replicate i of each gives one share; the interval is
    their percentile interval over feasible replicates.
    """
    _check_pair(law_domain, law_general)
    if not (N > 0 and D > 0):
        raise FitError(f"optimal_domain_share: N and D must be > 0, got N={N}, D={D}")
    if not base_general_loss > 0:
        raise FitError(f"optimal_domain_share: base_general_loss must be > 0, got {base_general_loss}")
    if threshold < 0:
        raise FitError(f"optimal_domain_share: threshold must be >= 0 (e.g. 0.03 for 3%), got {threshold}")
    s = _share_grid(shares)
    limit = (1.0 + threshold) * base_general_loss
    dom, gen = _curves(law_domain, N, D, s, False), _curves(law_general, N, D, 1.0 - s, False)
    i, ok = _argmin_feasible(dom, gen, limit)
    feasible = bool(ok[0])
    best = int(i[0])
    binding = feasible and int(np.argmin(dom[0])) != best
    lo = hi = np.nan
    boot_feasible = np.nan
    if getattr(law_domain, "boot_theta_", None) is not None and getattr(law_general, "boot_theta_", None) is not None:
        n = min(len(law_domain.boot_theta_), len(law_general.boot_theta_))
        bd = _curves(law_domain, N, D, s, True)[:n]
        bg = _curves(law_general, N, D, 1.0 - s, True)[:n]
        bi, bok = _argmin_feasible(bd, bg, limit)
        boot_feasible = float(bok.mean())
        if bok.any():
            q = [(1 - level) / 2, (1 + level) / 2]
            lo, hi = (float(v) for v in np.quantile(s[bi[bok]], q))
    return ShareChoice(
        N=float(N), D=float(D), domain_share=float(s[best]) if feasible else np.nan, lo=lo, hi=hi,
        domain_loss=float(dom[0, best]) if feasible else np.nan,
        general_loss=float(gen[0, best]) if feasible else np.nan, general_limit=float(limit),
        feasible=feasible, binding=bool(binding), boot_feasible=boot_feasible,
    )


def loss_vs_share_curves(
    law_domain: Law, law_general: Law, N: float, D: float, shares: np.ndarray | None = None, level: float = 0.95,
) -> pd.DataFrame:
    """Predicted domain and general loss against the domain share at (N, D), with bootstrap bands.

    Columns: domain_share, domain_loss, domain_lo, domain_hi, general_loss, general_lo,
    general_hi (bands NaN for a law without bootstrap replicates).
    """
    _check_pair(law_domain, law_general)
    s = _share_grid(shares if shares is not None else np.linspace(0.0, 1.0, 201))
    out = {"domain_share": s}
    for role, law, x in (("domain", law_domain, s), ("general", law_general, 1.0 - s)):
        out[f"{role}_loss"] = _curves(law, N, D, x, False)[0]
        if getattr(law, "boot_theta_", None) is not None:
            lo, hi = np.quantile(_curves(law, N, D, x, True), [(1 - level) / 2, (1 + level) / 2], axis=0)
        else:
            lo = hi = np.full_like(s, np.nan)
        out[f"{role}_lo"], out[f"{role}_hi"] = lo, hi
    return pd.DataFrame(out)


# ------------------------------------------------------------------ held-out comparison

SPLITS = ("leave-out-ratio", "leave-out-size", "leave-out-tokens")


def holdout_folds(df: pd.DataFrame, x: list[str]) -> dict[str, list[np.ndarray]]:
    """Held-out masks per split, as in the paper's generalisation checks.

    leave-out-ratio: one fold per interior share (each held out in turn; the extreme shares
    stay in training so the fits interpolate in r); leave-out-size: the largest N;
    leave-out-tokens: the largest D.
    """
    n_col, d_col, r_col = x
    out: dict[str, list[np.ndarray]] = {}
    shares = np.unique(df[r_col].to_numpy(float))
    out["leave-out-ratio"] = [(df[r_col] == s).to_numpy() for s in shares[1:-1]]
    for split, col in (("leave-out-size", n_col), ("leave-out-tokens", d_col)):
        v = df[col].to_numpy(float)
        out[split] = [v == v.max()] if len(np.unique(v)) > 1 else []
    return out


def _huber_mean(r: np.ndarray, delta: float) -> float:
    a = np.abs(r)
    return float(np.mean(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else np.nan


def compare_laws(df: pd.DataFrame, x: list[str], y: str, laws: tuple[str, ...] = CPT_LAWS,
                 delta: float | str = 1e-3, points: bool = False, **law_options
                 ) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Fit each law on all points and on every held-out split; one row per (law, split).

    Columns: law, split, n_train, n_test, huber (mean Huber loss of log residuals, delta as
    the fit's: with delta "auto", that of the law's fit on all points), r2 (R² of the loss
    values), mean_abs_rel_error, max_abs_rel_error. Folds of a split are pooled. With `points`,
    also each held-out prediction's error (law, split, row: the position in df, rel_error =
    prediction / measured - 1), so laws can be compared point by point
    (`scaling.laws.validation.paired_difference`).
    """
    from scaling.laws.registry import get_law

    folds = holdout_folds(df, x)
    yv = df[y].to_numpy(float)
    rows, point_rows = [], []
    for name in laws:
        law = get_law(name, delta=delta, **law_options).fit(df, x=x, y=y)
        pred, scored = law.predict(df), float(law.delta_)
        rows.append({"law": name, "split": "all points (fit)", "n_train": len(df), "n_test": len(df),
                     "huber": _huber_mean(np.log(pred / yv), scored), "r2": _r2(pred, yv),
                     "mean_abs_rel_error": float(np.mean(np.abs(pred / yv - 1))),
                     "max_abs_rel_error": float(np.max(np.abs(pred / yv - 1)))})
        for split in SPLITS:
            preds, truth, n_train, where = [], [], [], []
            for mask in folds[split]:
                if (~mask).sum() < law._n_free():
                    continue
                m = get_law(name, delta=delta, **law_options).fit(df[~mask], x=x, y=y)
                preds.append(m.predict(df[mask]))
                truth.append(yv[mask])
                n_train.append(int((~mask).sum()))
                where.append(np.flatnonzero(mask))
            if not preds:
                continue
            p, t = np.concatenate(preds), np.concatenate(truth)
            rel = p / t - 1
            point_rows.append(pd.DataFrame({"law": name, "split": split, "row": np.concatenate(where),
                                            "rel_error": rel}))
            rows.append({"law": name, "split": split, "n_train": int(np.mean(n_train)), "n_test": len(t),
                         "huber": _huber_mean(np.log(p / t), scored), "r2": _r2(p, t),
                         "mean_abs_rel_error": float(np.mean(np.abs(rel))),
                         "max_abs_rel_error": float(np.max(np.abs(rel)))})
    table = pd.DataFrame(rows)
    if not points:
        return table
    return table, (pd.concat(point_rows, ignore_index=True) if point_rows
                   else pd.DataFrame(columns=["law", "split", "row", "rel_error"]))
