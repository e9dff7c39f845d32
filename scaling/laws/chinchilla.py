"""Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022), and C = 6ND allocation.

Fitted in log space with the log-sum-exp form log L = LSE(a - alpha log N, b - beta log D, e),
A = e^a, B = e^b, E = e^e. The gradient is analytic (softmax weights of the three terms), which
is several times cheaper than autograd on thousands of starts.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Callable

import numpy as np

from scaling.laws.allocation import ComputeOptimal
from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law
from scaling.schema import COMPUTE_CONVENTION

if TYPE_CHECKING:
    import torch

    from scaling.laws.profile import Solver

# Exponent grid profiled by variable projection (both exponents): dense where fits land.
VP_EXPONENTS = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.25, 1.5, 2.0, 2.5])


@register_law
class ChinchillaLaw(ComputeOptimal, Law):
    """L(N, D) = E + A/N^alpha + B/D^beta; x = [N, D] (parameters, tokens)."""

    name = "chinchilla"
    params = (
        Param("E", -5.0, 5.0, log=True),
        Param("A", -20.0, 40.0, log=True),
        Param("B", -20.0, 40.0, log=True),
        Param("alpha", 0.0, 5.0),
        Param("beta", 0.0, 5.0),
    )
    n_inputs = 2
    inits = ("default", "hoffmann")
    compute_convention = COMPUTE_CONVENTION
    """Allocation is under C = 6·N·D with the N and D the law was fitted on (non-embedding N in
    this package's studies), the convention of the runs' `c_6nd` and of `ComputeFrontier`."""

    # ---- numpy form and its linear structure (variable projection) ----
    def np_pred_jac(self, theta: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, b, al, be = theta
        t1 = np.exp(a - al * F[:, 0])
        t2 = np.exp(b - be * F[:, 1])
        E = np.full_like(t1, np.exp(e))
        return E + t1 + t2, np.stack([E, t1, t2, -t1 * F[:, 0], -t2 * F[:, 1]], 1)

    def vp_basis(self, nl: np.ndarray, F: np.ndarray) -> np.ndarray:
        """[G, n, 3]: columns 1, N^-alpha, D^-beta for exponents nl[G] = (alpha, beta)."""
        one = np.ones((len(nl), len(F)))
        return np.stack([one, np.exp(-nl[:, :1] * F[:, 0]), np.exp(-nl[:, 1:2] * F[:, 1])], -1)

    def vp_theta(self, nl: np.ndarray, coef: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.column_stack([np.log(coef), nl])  # (log E, log A, log B, alpha, beta)

    def vp_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.array(list(itertools.product(VP_EXPONENTS, VP_EXPONENTS)))

    def _terms(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        import torch

        e, a, b, al, be = theta.T
        lN, lD = F[:, 0], F[:, 1]
        return torch.stack(
            [a[:, None] - al[:, None] * lN, b[:, None] - be[:, None] * lD, e[:, None].expand(-1, len(lN))]
        )  # [3, S, n]

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.logsumexp(self._terms(theta, F), dim=0)

    def forward_vjp(
        self, theta: torch.Tensor, F: torch.Tensor
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        if self.fit_scale != "log":
            return super().forward_vjp(theta, F)
        import torch

        e, a, b, al, be = theta.T
        # Direct sum of exponentials: E > 0 keeps the sum > 0; an overflow (wild start, x < 1)
        # gives inf, which the engine treats as a rejected point.
        e1 = torch.exp(torch.addmm(a[:, None], -al[:, None], F[:, :1].T))
        e2 = torch.exp(torch.addmm(b[:, None], -be[:, None], F[:, 1:2].T))
        eE = torch.exp(e)
        total = e1 + e2
        total += eE[:, None]
        ones_lN = torch.stack([torch.ones_like(F[:, 0]), -F[:, 0]], 1)
        ones_lD = torch.stack([torch.ones_like(F[:, 1]), -F[:, 1]], 1)

        def vjp(c: torch.Tensor) -> torch.Tensor:
            c = c / total  # d log(total) = d total / total
            ga = (c * e1) @ ones_lN  # [S, 2]: d/da, d/dalpha
            gb = (c * e2) @ ones_lD
            return torch.stack([eE * c.sum(-1), ga[:, 0], gb[:, 0], ga[:, 1], gb[:, 1]], dim=-1)

        return torch.log(total), vjp

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.init == "hoffmann":
            # Hoffmann et al.'s 4,500 starts: alpha, beta in {0,...,2}, e in {-1,...,1}, a, b in {0,...,25}.
            ab = np.arange(0.0, 2.01, 0.5)
            es = np.arange(-1.0, 1.01, 0.5)
            ls = np.arange(0.0, 25.1, 5.0)
            grid = [(e, a, b, al, be) for al, be, e, a, b in itertools.product(ab, ab, es, ls, ls)]
        else:
            # Exponents away from 0 (where A, B are unidentifiable) and E below the smallest loss.
            ab = np.array([0.1, 0.25, 0.4, 0.6, 1.0])
            es = t.min() + np.log([0.3, 0.6, 0.9])  # t = log y
            ls = np.array([0.0, 4.0, 8.0, 12.0, 18.0, 25.0])
            grid = [(e, a, b, al, be) for al, be, e, a, b in itertools.product(ab, ab, es, ls, ls)]
        return np.array(grid, dtype=float)

    # ---- compute-optimal allocation under C = 6 N D ----
    def allocation_from(self, p, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        A, B, alpha, beta = p["A"], p["B"], p["alpha"], p["beta"]
        G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
        n_opt = G * (C / 6.0) ** (beta / (alpha + beta))
        return n_opt, C / (6.0 * n_opt)

    def loss_from(self, p, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]

    def nopt_inverse(self, lc: float) -> tuple[int, "Solver"]:
        """Profile over log B: N_opt = G (C/6)^a, G = (alpha A / (beta B))^(1/(alpha+beta)),
        a = beta/(alpha+beta), so log B = log alpha + log A - log beta - (alpha+beta) log N_opt + beta lc."""
        names = self.param_names
        ia, ib, ial, ibe = (names.index(n) for n in ("A", "B", "alpha", "beta"))

        def solve(th: "torch.Tensor", v: "torch.Tensor") -> "torch.Tensor":
            import torch

            al, be = th[:, ial].clamp_min(1e-12), th[:, ibe].clamp_min(1e-12)
            return torch.log(al) + th[:, ia] - torch.log(be) - (al + be) * v + be * lc

        return ib, solve

    def allocation_exponents(self) -> dict[str, float]:
        """a, b with N_opt ∝ C^a, D_opt ∝ C^b."""
        self._check_fitted()
        al, be = self.params_["alpha"], self.params_["beta"]
        return {"a": be / (al + be), "b": al / (al + be)}
