"""The quantities `scaling advise` can make certain, as functions of parameter draws.

A target maps draws theta [R, P] (optimiser space; for a pair of laws, the two laws' draws side
by side) to one value per draw. Each must be smooth in theta, since the design uses its
gradient (central differences): argmins are refined off their grids, and a share that sits on a
constraint is solved on it.

- loss: the predicted loss at `at` (an x value for one-input laws; for chinchilla and kaplan a
  compute budget, at its compute-optimal allocation).
- n_opt, tokens_per_param: the compute-optimal N and D/N at compute `at` (chinchilla, kaplan).
- encoder_share: the optimal encoder share Ne / (Ne + Nd) = pe / (pe + pd) (encdec; any budget).
- domain_share: the D-CPT domain share at N = `at`, D = `tokens` that minimises the domain loss
  with the general loss at most (1 + threshold) x `base_loss` (dcpt laws; domain law + general law).
- compute_multiplier: CM of `variant` at compute `at` (select): the baseline's compute to reach the
  loss the variant reaches with compute `at` on its frontier, over `at`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from scaling.errors import FitError
from scaling.laws.allocation import ComputeOptimal
from scaling.laws.base import Law

TARGETS = ("loss", "n_opt", "tokens_per_param", "encoder_share", "domain_share", "compute_multiplier")
# Defined for every law with a compute-optimal allocation (scaling.laws.allocation.allocating_laws)
ALLOCATION_TARGETS = ("n_opt", "tokens_per_param")
LAWS_OF = {"encoder_share": ("encdec",), "domain_share": ("dcpt", "dcpt_additive", "dcpt_chinchilla"),
           "compute_multiplier": ("select",)}


def _laws_of() -> dict[str, tuple[str, ...]]:
    """The laws that define each target other than loss."""
    from scaling.laws.allocation import allocating_laws

    return {**{t: allocating_laws() for t in ALLOCATION_TARGETS}, **LAWS_OF}


@dataclass(frozen=True)
class TargetOptions:
    """What some targets need beyond `at`."""

    variant: str | None = None
    """compute_multiplier: the selection variant (a value of the law's variant column)."""
    unique: dict[str, float] | None = None
    """compute_multiplier: each variant's unique tokens, where selections repeat (see SelectLaw)."""
    tokens: float | None = None
    """domain_share: the CPT tokens D of the target run (`at` is its N)."""
    base_loss: float | None = None
    """domain_share: the base model's general loss, which the general loss may exceed by `threshold`."""
    threshold: float = 0.03


def check_target_name(target: str, law: str | None = None) -> None:
    """Before any work (the CLI calls this first): a misspelt target fails on its own name, and
    with `law` (a registry name) a target that law does not define fails before the fit."""
    if target not in TARGETS:
        raise FitError(f"unknown advise target {target!r}; choose from {', '.join(TARGETS)}")
    if law is not None:
        from scaling.laws.registry import law_class

        _check_law(target, law, law_class(law).n_inputs)


def _check_law(target: str, law: str, n_inputs: int) -> None:
    laws_of = _laws_of()
    allocating = laws_of[ALLOCATION_TARGETS[0]]
    laws = laws_of.get(target) or (f"{', '.join(allocating)} and one-input",)
    loss_too = n_inputs == 1 or law in allocating
    if law in laws or (target == "loss" and loss_too):
        return
    supports = ["loss"] * loss_too + [t for t, v in laws_of.items() if law in v]
    raise FitError(f"advise target {target!r} is defined for the {' / '.join(laws)} law(s), not {law}; the {law} "
                   f"law supports {'target ' + ', '.join(map(repr, supports)) if supports else 'no advise target'}")


def _check(law: Law, target: str, at: float, opts: TargetOptions, partner: Law | None) -> None:
    check_target_name(target)
    _check_law(target, law.name, law.n_inputs)
    if target != "encoder_share" and (not at or at <= 0):
        raise FitError(f"advise target {target!r} needs --at > 0 (an x value, a model size or a compute budget)")
    if target == "domain_share":
        if partner is None:
            raise FitError("advise target 'domain_share' needs the general-loss law too (--y-general COLUMN)")
        if not (opts.tokens and opts.tokens > 0 and opts.base_loss and opts.base_loss > 0):
            raise FitError("advise target 'domain_share' needs --at N, --at-tokens D and --base-loss "
                           "(the base model's general loss), all > 0")
    if target == "compute_multiplier" and opts.variant not in getattr(law, "variants_", [])[1:]:
        raise FitError(f"advise target 'compute_multiplier' needs --variant, one of "
                       f"{', '.join(map(str, getattr(law, 'variants_', [])[1:]))}; got {opts.variant!r}")


def target_function(law: Law, target: str, at: float, options: TargetOptions | None = None,
                    partner: Law | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """theta [R, P] (the law's, then the partner's, in optimiser space) -> target value [R]."""
    opts = options or TargetOptions()
    _check(law, target, at, opts, partner)
    if isinstance(law, ComputeOptimal):
        return _allocation(law, target, at)
    if target == "encoder_share":
        j_e, j_d = law.param_names.index("pe"), law.param_names.index("pd")

        def share(theta: np.ndarray) -> np.ndarray:
            p = law.to_natural(theta)
            with np.errstate(invalid="ignore", divide="ignore"):
                return p[:, j_e] / (p[:, j_e] + p[:, j_d])
        return share
    if target == "compute_multiplier":
        return lambda theta: law.compute_multiplier(opts.variant, np.array([at]), theta=theta, unique=opts.unique)[:, 0]
    if target == "domain_share":
        return _domain_share(law, partner, float(at), float(opts.tokens), opts.base_loss * (1 + opts.threshold))

    def loss(theta: np.ndarray) -> np.ndarray:
        F = torch.as_tensor(law.features(np.array([[at]], float)), dtype=torch.float64)
        with torch.no_grad():
            return law.pred(torch.as_tensor(theta, dtype=torch.float64), F)[:, 0].numpy()
    return loss


def _allocation(law: Law, target: str, at: float) -> Callable[[np.ndarray], np.ndarray]:
    """N_opt, D_opt / N_opt or the loss there, at compute `at` = 6 N D, of each draw."""
    def f(theta: np.ndarray) -> np.ndarray:
        p = dict(zip(law.param_names, law.to_natural(theta).T))
        n, d = law.allocation_from(p, np.full(len(theta), at))
        if target == "n_opt":
            return n
        if target == "tokens_per_param":
            return d / n
        return law.loss_from(p, n, d)  # each draw at its own optimum
    return f


def _loss_at(law: Law, theta: np.ndarray, N: float, D: float, r: float) -> float:
    """One draw's loss at share r."""
    F = torch.as_tensor(law.features(np.array([[N, D, min(max(r, 0.0), 1.0)]])), dtype=torch.float64)
    with torch.no_grad():
        return float(law.pred(torch.as_tensor(theta[None]), F)[0, 0])


def _domain_share(dom: Law, gen: Law, N: float, D: float, limit: float) -> Callable[[np.ndarray], np.ndarray]:
    """The feasible argmin of the domain loss over the share, off the grid: a parabola through the
    best grid point and its neighbours when the minimum is interior, the root of
    L_general(1 - r) = limit (bisection) when the limit binds. NaN where no share is feasible."""
    P = len(dom.param_names)
    s = np.linspace(0.0, 1.0, 401)

    def f(theta: np.ndarray) -> np.ndarray:
        td, tg = theta[:, :P], theta[:, P:]
        with torch.no_grad():
            Fd = dom._as_features(np.stack([np.full_like(s, N), np.full_like(s, D), s], 1))
            Fg = gen._as_features(np.stack([np.full_like(s, N), np.full_like(s, D), 1 - s], 1))
            ld = dom.pred(torch.as_tensor(td), Fd).numpy()
            lg = gen.pred(torch.as_tensor(tg), Fg).numpy()
        ok = lg <= limit
        i = np.argmin(np.where(ok, ld, np.inf), axis=1)
        rows = np.arange(len(theta))
        out = s[i].copy()
        h = s[1] - s[0]
        for k in rows:
            j = i[k]
            if not ok[k].any():
                out[k] = np.nan
            elif 0 < j < len(s) - 1 and ok[k, j - 1] and ok[k, j + 1]:
                a, b, c = ld[k, j - 1], ld[k, j], ld[k, j + 1]
                curv = a - 2 * b + c
                if curv > 0:
                    out[k] = s[j] + 0.5 * h * (a - c) / curv
            else:
                # on the constraint: the neighbour that breaks it brackets the root
                nb = j + 1 if j + 1 < len(s) and not ok[k, j + 1] else j - 1
                if 0 <= nb < len(s) and not ok[k, nb]:
                    lo, hi = s[j], s[nb]
                    for _ in range(40):
                        mid = 0.5 * (lo + hi)
                        g = _loss_at(gen, tg[k], N, D, 1.0 - mid)
                        lo, hi = (mid, hi) if g <= limit else (lo, mid)
                    out[k] = lo
        return out
    return f


__all__ = ["LAWS_OF", "TARGETS", "TargetOptions", "check_target_name", "target_function"]
