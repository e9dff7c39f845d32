"""Next-run advice: which runs to train so that the answer at the target scale is most certain.

Method (a Bayesian c-optimal design, linearised around each replicate of the current fit):

1. The current fit's uncertainty is a set of parameter draws: a parametric bootstrap at the
   given noise, else the fit's (residual) bootstrap replicates, or, with no runs yet, the
   replicates of a prior fit the user saved. A second law that the same runs inform (the
   general loss of a D-CPT pair) adds its own draws, paired replicate by replicate.
2. For a draw theta_r, the information a set of runs carries about the parameters is
   M_r = P0 + sum_i J_ri J_ri^T / sigma^2, with J_ri the gradient of the fit-scale prediction
   at run i (existing runs and candidates alike; one row per loss a run yields) and sigma the
   noise of one run's loss on the fit scale (robust scale of the current residuals, or given).
   P0 is a weak prior (the parameter box), or the precision of the prior draws with no runs.
3. The target's variance under draw r is g_r^T M_r^-1 g_r (delta method, g_r its gradient; see
   `scaling.advise.targets`), and the criterion is the geometric mean over draws of the 95%
   width 2 * 1.96 * sqrt(variance): averaging over draws makes the design robust to the
   parameters being uncertain, and the geometric mean keeps the widest draws from ruling it.
4. Runs are chosen greedily within the compute budget (rank-one updates of M^-1; a candidate
   may be chosen up to its `repeats`): by expected width removed per FLOP, and by width
   removed; each design is improved by exchange and the better one is kept.

Assumptions: the law's form is right (advice from a wrong form is confidently wrong: check the
held-out error first); one run's loss has independent noise of constant scale on the fit scale;
the linearisation holds over the spread of the draws. Failure modes: with very few runs the
draws can miss the truth and the design is tailored to the wrong law (spend the budget in
rounds of run, fit, advise: `scaling.advise.simulation.run_trial(rounds=...)` measures it); a candidate far beyond
the data is trusted as much as the form is; where the standard design is already near
c-optimal (a power law in N alone) advice gains little (`scaling.advise.simulation.oracle_ratio`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from scaling.advise.search import CORE_MAX, CORE_SHARE, _core, _Design, _exchange, _greedy, _with
from scaling.advise.targets import TargetOptions, target_function
from scaling.errors import FitError
from scaling.laws.base import Law

@dataclass
class Candidate:
    """A run that could be trained: its law inputs (in the law's x order), cost and origin."""

    x: tuple[float, ...]
    flops: float
    label: str = ""
    config: dict[str, Any] | None = None
    """The run's config (RunConfig.to_dict()) when the candidate comes from a spec."""
    columns: dict[str, Any] | None = None
    """Other columns the law reads for this run (select: its variant)."""
    repeats: int = 1
    """How many times it may be chosen: a size grid's point may be trained with several seeds."""


@dataclass
class Advice:
    law: str
    target: str
    at: float
    value: float
    """The target under the current fit."""
    ci95_before: tuple[float, float]
    """Percentile interval of the target over the current draws."""
    expected_width_before: float
    expected_width_after: float
    budget: float
    spent: float
    noise: float
    runs: list[dict[str, Any]] = field(default_factory=list)
    chosen: list[Candidate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What the runs cannot tell the design (see `spread_warnings`)."""
    fitted: Law | None = None
    """The law (with its bootstrap replicates) the advice was computed from."""
    variant: str | None = None
    """compute_multiplier: the selection variant the target is about."""
    core: dict[str, Any] | None = None
    """The fewest advised runs that keep CORE_SHARE of the expected narrowing (see `_core`):
    share_of_narrowing, runs (labels), index (their positions in `runs`), flops, expected_width_after."""

    @property
    def expected_narrowing(self) -> float:
        return self.expected_width_after / self.expected_width_before

    def core_summary(self) -> str:
        """One clause on the core runs, for the CLI and the report ("" when every run is needed)."""
        if not self.core:
            return ""
        c = self.core
        return (f"{len(c['runs'])} of the {len(self.runs)} advised runs ({c['flops']:.3g} FLOPs, "
                f"{c['flops'] / self.spent:.0%} of the spend) give {c['share_of_narrowing']:.0%} of the expected "
                f"narrowing (expected width {c['expected_width_after']:.4g})")

    def to_json(self) -> dict[str, Any]:
        return {"law": self.law, "target": self.target, "at": self.at, "value": self.value,
                "ci95_before": list(self.ci95_before), "expected_width_before": self.expected_width_before,
                "expected_width_after": self.expected_width_after, "expected_narrowing": self.expected_narrowing,
                "budget": self.budget, "spent": self.spent, "noise": self.noise, "runs": self.runs,
                "warnings": self.warnings, **({"variant": self.variant} if self.variant else {}),
                **({"core": self.core} if self.core else {})}


# ------------------------------------------------------------------ linearisation


def _steps(theta: np.ndarray) -> np.ndarray:
    return 1e-5 * (1.0 + np.abs(theta))


def jacobians(law: Law, theta: np.ndarray, F: torch.Tensor) -> np.ndarray:
    """d(fit-scale prediction)/d theta at features F [n, k] for each draw: [R, n, P] (central differences)."""
    R, P = theta.shape
    h = _steps(theta)
    eye = np.eye(P)
    plus = (theta[:, None, :] + h[:, None, :] * eye[None]).reshape(R * P, P)
    minus = (theta[:, None, :] - h[:, None, :] * eye[None]).reshape(R * P, P)
    with torch.no_grad():
        fp = law.forward(torch.as_tensor(plus), F).numpy().reshape(R, P, -1)
        fm = law.forward(torch.as_tensor(minus), F).numpy().reshape(R, P, -1)
    J = (fp - fm) / (2 * h[:, :, None])
    return np.nan_to_num(J.transpose(0, 2, 1), nan=0.0, posinf=0.0, neginf=0.0)


def target_gradients(f: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    R, P = theta.shape
    h = _steps(theta)
    g = np.empty((R, P))
    for j in range(P):
        e = np.zeros(P)
        e[j] = 1.0
        g[:, j] = (f(theta + h[:, j:j + 1] * e) - f(theta - h[:, j:j + 1] * e)) / (2 * h[:, j])
    return np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)


def _free_mask(law: Law) -> np.ndarray:
    return np.array([p.name not in (law.fixed or {}) for p in law.params])


def _weak_prior(law: Law) -> np.ndarray:
    lo, hi = law.bounds()
    width = np.where(hi > lo, hi - lo, 1.0)
    return np.diag(1.0 / width ** 2)


def candidate_features(law: Law, candidates: Sequence[Candidate],
                       inputs: Callable[[Candidate], tuple[float, ...]] | None = None) -> torch.Tensor:
    """The law's features of each candidate run (`inputs` maps a run to the law's x, default its x)."""
    X = np.array([(inputs or (lambda c: c.x))(c) for c in candidates], float)
    if X.ndim != 2 or X.shape[1] != law.n_inputs:
        raise FitError(f"advise: each candidate needs {law.n_inputs} input value(s) for the {law.name} law")
    if not any(c.columns for c in candidates):
        return torch.as_tensor(law.features(X), dtype=torch.float64)
    df = pd.DataFrame(X, columns=law.x_)
    for key in {k for c in candidates for k in (c.columns or {})}:
        df[key] = [(c.columns or {}).get(key) for c in candidates]
    return law._as_features(df)


MIN_DISTINCT = 3
"""Distinct values of an input that pin a term with its own coefficient and exponent (A / N^alpha
over two sizes is one difference for two unknowns)."""


def spread_warnings(law: Law | None, chosen: Sequence[Candidate]) -> list[str]:
    """One line per input of the fitted runs with fewer than MIN_DISTINCT distinct values.

    The design is linearised at replicates of the fit, and those replicates cannot leave a ridge
    the runs do not cut: from two sizes, a D-CPT fit extrapolated N through alpha = 1.8 and 5.0
    (truth 0.35) and put 82% of the advised runs at the cheapest size, and its interval covered
    the truth in 15 of 20 trials (`bench/advise.py --truths dcpt`, README)."""
    seen = getattr(law, "x_distinct_", None)  # None without runs (a prior) or for a loaded fit
    if not seen:
        return []
    out = []
    for i, col in enumerate(law.x_):
        values = seen.get(col, [])
        if len(values) >= MIN_DISTINCT:
            continue
        added = sorted({float(c.x[i]) for c in chosen} - set(values))
        now = ", ".join(f"{v:.3g}" for v in values)
        tail = (f"the advised runs add {col} = {', '.join(f'{v:.3g}' for v in added)}" if added else
                f"none of the advised runs adds one: train a run at another {col} before trusting this advice")
        out.append(f"the runs so far have {len(values)} distinct value(s) of {col} ({now}): a term in {col} with "
                   f"its own exponent needs {MIN_DISTINCT} to be fixed by the data, so the replicates and the "
                   f"design trust the form there; {tail}")
    return out


def residual_noise(law: Law, floor: float = 1e-3) -> float:
    """Robust (MAD) scale of the fit-scale residuals; `floor` keeps a perfect fit from claiming no noise."""
    resid = (law.forward(torch.as_tensor(law.theta_[None]), law._F)[0] - law._t).numpy()
    mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return max(mad, floor)


def _draws(law: Law, seed: int, noise: float | None, n: int = 200) -> np.ndarray:
    """Replicates of the fit: with a known `noise`, a parametric bootstrap at that noise (a handful
    of residuals says little about it: 4 runs of a 3-parameter law leave one degree of freedom);
    else the law's own replicates, or a residual bootstrap when it has none."""
    law._check_fitted()
    if noise is not None and hasattr(law, "_F"):
        from scaling.laws.bootstrap import run_bootstrap

        law = copy.copy(law)  # the caller's replicates stay as they are
        run_bootstrap(law, n, seed, method="parametric", noise=noise)
    elif getattr(law, "boot_theta_", None) is None:
        if not hasattr(law, "_F"):
            raise FitError(f"advise: the {law.name} fit has no bootstrap replicates; save it after --bootstrap N")
        law.bootstrap(200, seed=seed, method="residual")
    draws = np.asarray(law.boot_theta_, float)
    return draws[np.all(np.isfinite(draws), axis=1)]


def _block_prior(law: Law, draws: np.ndarray, sigma: float, has_runs: bool) -> np.ndarray:
    """Information [R, P, P] about one law's parameters before the new runs: its runs' (linearised at
    each draw) plus the weak box prior, or the prior draws' precision when there are no runs."""
    if has_runs:
        J0 = jacobians(law, draws, law._F) / sigma
        return _weak_prior(law)[None] + np.einsum("rnp,rnq->rpq", J0, J0)
    free = _free_mask(law)
    cov = np.cov(draws[:, free].T) if free.sum() > 1 else np.atleast_2d(np.var(draws[:, free]))
    M0 = np.repeat(_weak_prior(law)[None], len(draws), axis=0)
    idx = np.ix_(free, free)
    M0[:, idx[0], idx[1]] = np.linalg.pinv(cov)[None]
    return M0


def advise(law: Law, candidates: Sequence[Candidate], budget: float, target: str = "loss", at: float = 0.0,
           *, n_runs: int | None = None, noise: float | None = None, n_draws: int = 64,
           prior: Law | None = None, seed: int = 0, options: TargetOptions | None = None,
           partner: Law | None = None,
           partner_inputs: Callable[[Candidate], tuple[float, ...]] | None = None, core: bool = True) -> Advice:
    """Choose among `candidates`, within `budget` FLOPs, the runs that shrink the target's interval most.

    `law` is fitted on the runs done so far (it is bootstrapped here if it has no replicates), or
    None with `prior`: a fitted law (e.g. `Law.load` of a saved published fit) whose bootstrap
    replicates stand for the parameter range when no run exists yet. `partner` is a second law
    that each new run also informs (the general-loss law of a D-CPT pair, for target
    domain_share; `partner_inputs` maps a run to its inputs, by default (N, D, 1 - r)); replicate
    i of each law is paired, as in `optimal_domain_share`. `core` names the fewest advised runs
    that give CORE_SHARE of the narrowing (`Advice.core`); simulations skip it.
    """
    if budget <= 0:
        raise FitError(f"advise: --budget must be > 0 FLOPs, got {budget}")
    if not candidates:
        raise FitError("advise: no candidate runs; pass --candidates SPEC or a size range")
    if n_runs is not None and n_runs < 1:
        raise FitError(f"advise: --n-runs must be >= 1, got {n_runs}")
    base = law if law is not None else prior
    if base is None:
        raise FitError("advise: give the runs done so far, or a prior fit (--prior FILE) when there are none")
    if law is None and noise is None:
        raise FitError("advise: with no runs yet, give the noise of one run's loss (--noise, fit scale)")
    if partner is not None and law is None:
        raise FitError("advise: a second (general-loss) law needs the runs done so far, not only a prior")
    opts = options or TargetOptions()
    f = target_function(base, target, at, opts, partner)
    laws = [base] + ([partner] if partner is not None else [])
    draws_each = [_draws(m, seed, noise) for m in laws]
    n = min(len(d) for d in draws_each)
    pick = np.random.default_rng(seed).choice(n, min(n, n_draws), replace=False) if n > n_draws else np.arange(n)
    draws_each = [d[:n][pick] for d in draws_each]
    draws = np.concatenate(draws_each, axis=1)
    values = f(draws)
    finite = np.isfinite(values)  # e.g. CM = inf where the baseline never reaches the loss: no gradient
    if finite.sum() < 2:
        raise FitError(f"advise: the target {target} is undefined (not finite) under {int((~finite).sum())} of "
                       f"{len(draws)} replicates of the current fit; check --at and the fit")
    draws_each, draws = [d[finite] for d in draws_each], draws[finite]
    sigmas = [noise if noise is not None else residual_noise(m) for m in laws]
    inputs = [None, partner_inputs or (lambda c: (c.x[0], c.x[1], 1.0 - c.x[2]))]
    sizes = [d.shape[1] for d in draws_each]
    offsets = np.cumsum([0] + sizes)
    R, P, K = len(draws), int(offsets[-1]), len(candidates)
    M0 = np.zeros((R, P, P))
    Jc = np.zeros((R, K, len(laws), P))
    for b, (m, d, sig) in enumerate(zip(laws, draws_each, sigmas)):
        sl = slice(offsets[b], offsets[b + 1])
        M0[:, sl, sl] = _block_prior(m, d, sig, law is not None)
        Jc[:, :, b, sl] = jacobians(m, d, candidate_features(m, candidates, inputs[b])) / sig
    g = target_gradients(f, draws)
    moves = np.any(g != 0, axis=1)  # a draw whose target no run can move (a share at 0 or 1) tells nothing
    if moves.sum() >= 2 and not moves.all():
        g, M0, Jc = g[moves], M0[moves], Jc[moves]
    free = np.concatenate([_free_mask(m) for m in laws])
    cost = np.array([c.flops for c in candidates], float)
    repeats = np.array([max(int(c.repeats), 1) for c in candidates])
    design = _Design(M0, g, free)
    before = design.width()
    best: tuple[list[int], list[float]] = ([], [])
    for per_flop in (True, False):
        chosen = _greedy(design.copy(), Jc, cost, budget, n_runs, per_flop, repeats.copy())
        chosen = _exchange(design, Jc, cost, budget, chosen, repeats)
        # what the swaps left of the budget is spent greedily again
        left = repeats - np.bincount(chosen, minlength=K)
        more = _greedy(_with(design, Jc, chosen), Jc, cost, budget - cost[chosen].sum(),
                       None if n_runs is None else n_runs - len(chosen), per_flop, left)
        chosen = chosen + more
        d, widths = design.copy(), []
        for k in chosen:
            d.add(Jc[:, k])
            widths.append(d.width())
        if widths and (not best[1] or widths[-1] < best[1][-1]):
            best = (chosen, widths)
    picked = [candidates[k] for k in best[0]]
    center = float(f(np.concatenate([m.theta_ for m in laws])[None])[0])
    lo, hi = np.nanquantile(values, [0.025, 0.975]) if np.isfinite(values).any() else (np.nan, np.nan)
    runs, prev = [], before
    for k, w in zip(*best):
        c = candidates[k]
        runs.append({"label": c.label, "x": dict(zip(base.x_, map(float, c.x))), **(c.columns or {}),
                     "flops": float(c.flops), "expected_width_after": w,
                     "reason": (f"cuts the expected 95% width of {target} from {prev:.4g} to {w:.4g} "
                                f"({(prev - w) / prev:.1%}) for {c.flops:.3g} FLOPs")})
        prev = w
    core_runs = None
    if core and 1 < len(best[0]) <= CORE_MAX:
        keep, width = _core(design, Jc, best[0])
        if len(keep) < len(best[0]):
            core_runs = {"share_of_narrowing": CORE_SHARE, "runs": [runs[j]["label"] for j in keep], "index": keep,
                         "flops": float(sum(cost[best[0][j]] for j in keep)), "expected_width_after": width}
    return Advice(law=base.name, target=target, at=float(at), value=center, ci95_before=(float(lo), float(hi)),
                  expected_width_before=before, expected_width_after=best[1][-1] if best[1] else before,
                  budget=float(budget), spent=float(sum(cost[k] for k in best[0])), noise=float(sigmas[0]),
                  runs=runs, chosen=picked, warnings=spread_warnings(law, picked) + _budget_warnings(cost, budget, best[0], repeats),
                  fitted=base,
                  variant=options.variant if options is not None and target == "compute_multiplier" else None,
                  core=core_runs)


def _budget_warnings(cost: np.ndarray, budget: float, chosen: list[int], repeats: np.ndarray) -> list[str]:
    """Why the advice is empty, or spends little of the budget because the candidates ran out: an
    empty table, or 26% of the budget spent, alone reads as a failure or as the optimum."""
    if chosen:
        spent = float(cost[chosen].sum())
        if len(chosen) >= int(repeats.sum()) and spent < 0.5 * budget:
            return [f"every candidate run was chosen ({len(chosen)}), spending {spent:.3g} of the {budget:.3g} FLOPs "
                    "budget: more candidates could use the rest (with --candidates: more --seeds, or --step-multipliers "
                    "for a law of N and D; without: a wider --sizes or --repeats)"]
        return []
    if cost.min() > budget:
        return [f"no candidate run fits in the budget of {budget:.3g} FLOPs: the cheapest of the {len(cost)} "
                f"candidates costs {cost.min():.3g}; raise --budget or give smaller candidates"]
    return ["no candidate run narrows the target's interval: each leaves its expected width where it is"]


__all__ = ["Advice", "Candidate", "advise", "candidate_features", "jacobians", "residual_noise", "spread_warnings",
           "target_gradients"]
