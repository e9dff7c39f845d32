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
answers the CPT question (`scaling.laws.dcpt_share`); `scaling.laws.dcpt_compare` scores the
variants on held-out splits.
"""

from __future__ import annotations

import itertools
from typing import Callable, ClassVar

import numpy as np
import torch

from scaling.errors import DataError
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
    vp_polisher: ClassVar[str] = "gauss_newton"
    """Nine parameters in flat valleys: the numpy quasi-Newton stopped up to 2.6e-6 (relative) above
    the grid engine's optimum on the shipped studies' fits, and the batched engine's L-BFGS took
    hundreds to 5,000 iterations. Measured on 22 fits (tests/laws/test_dcpt.py's and
    test_dcpt_cross.py's designs, test_cpt.py's 16-run study; deltas 1e-3 and 0.01), Gauss-Newton
    from the same points gives the engine's objective to 9 digits on the 18 well-determined fits
    and -8.9e-6, -2.4e-6, 0, +2.0e-6 (relative) on the 16-run study's, in 45 s against 133 s."""

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
        pred, J = self._pred_jac_by_name(dict(zip(self.param_names, np.asarray(theta, float))), F)
        return pred, np.stack([J[k] for k in self.param_names], 1)

    def _pred_jac_by_name(self, p: dict[str, float | np.ndarray], F: np.ndarray
                          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Prediction [n] and its derivative [n] in each (optimiser-space) parameter, by name.
        The log coefficients E, A, B, C may be per-point arrays [n] (dcpt_cross's per-domain
        ones); the exponents and eps are scalars."""
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
            return sum(terms.values()), J

    def _uses_varpro(self) -> bool:
        return self.init != "fine" and super()._uses_varpro()

    def vp_basis(self, nl: np.ndarray, F: np.ndarray) -> np.ndarray:
        return np.stack(self._columns(dict(zip(self._nl(), nl.T)), F), -1)

    def _coef_names(self) -> list[str]:
        """The linear coefficients' names, in the order of vp_basis's columns."""
        return [k for k in self.COEFS if k in self.param_names]

    def vp_theta(self, nl: np.ndarray, coef: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            v = {**dict(zip(self._coef_names(), np.log(coef).T)), **dict(zip(self._nl(), nl.T))}
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
    vp_polisher = "quasi_newton"  # five parameters: the numpy polish reaches the optimum, faster
    params = tuple(p for p in DCPTLaw.params if p.name in ("E", "A", "alpha", "B", "beta"))


CPT_LAWS = ("dcpt", "dcpt_additive", "dcpt_chinchilla")
"""The D-CPT law and the variants it is compared with, in report order."""
