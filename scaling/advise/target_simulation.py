"""Does advice pay for the families' own targets? Ground-truth laws for the encoder share
(encdec), the compute multiplier (select) and the domain share (dcpt), each with a pilot, the
same-cost habit design and the candidates advice chooses from (used by bench/advise.py and the
tests). A trial fits the pilot, spends the habit design's cost on advised runs, refits both and
compares the 95% intervals of the target, as `scaling.advise.simulation` does for L(N) and L(N, D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scaling.advise.design import (Candidate, TargetOptions, _weak_prior, advise, jacobians, target_function,
                                   target_gradients)
from scaling.advise.search import _Design
from scaling.advise.study import candidate_grid
from scaling.laws.registry import get_law

@dataclass
class TargetTruth:
    """A ground-truth law (or D-CPT pair) for one of the families' own targets."""

    name: str
    law: str
    x: list[str]
    params: dict[str, float]
    noise: float
    pilot: pd.DataFrame
    """Inputs (and other columns) of the runs done before advice."""
    standard: pd.DataFrame
    """The same-cost habit design the advised runs are compared with; its cost is the budget."""
    candidates: list[Candidate]
    target: str
    at: float = 0.0
    options: TargetOptions | None = None
    law_options: dict[str, Any] | None = None
    general_params: dict[str, float] | None = None
    """dcpt: the general-loss law's parameters (x = N, D, 1 - r); each run observes both losses."""

    def laws(self) -> list:
        out = []
        for params in [self.params] + ([self.general_params] if self.general_params else []):
            law = get_law(self.law, **(self.law_options or {}))
            if self.law == "select":
                law.variants_ = [law.baseline] + sorted(v for v in pd.unique(self.pilot[law.variant]) if v != law.baseline)
            law.x_ = list(self.x)
            law.theta_ = law.to_theta(params)
            out.append(law)
        return out

    def cost(self, X: pd.DataFrame) -> float:
        return float(sum(c.flops for c in self.match(X)))

    def match(self, X: pd.DataFrame) -> list[Candidate]:
        """The candidate of each row of X (standard designs are drawn from the same candidates)."""
        key = {(tuple(np.round(np.log(c.x), 9)), tuple(sorted((c.columns or {}).items()))): c for c in self.candidates}
        cols = [c for c in X.columns if c not in self.x]
        return [key[(tuple(np.round(np.log(r[self.x].to_numpy(float)), 9)), tuple(sorted((k, r[k]) for k in cols)))]
                for _, r in X.iterrows()]


def _observe_target(truth: TargetTruth, X: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    laws = truth.laws()
    df = X.reset_index(drop=True).copy()
    df["loss"] = laws[0].predict(df) * np.exp(rng.normal(0.0, truth.noise, len(df)))
    if len(laws) > 1:  # the general loss of the same run, seen at the general share 1 - r
        g = df.copy()
        g[truth.x[2]] = 1.0 - g[truth.x[2]]
        df["loss_general"] = laws[1].predict(g) * np.exp(rng.normal(0.0, truth.noise, len(df)))
    return df


def _fit_target(truth: TargetTruth, df: pd.DataFrame, seed: int, n_boot: int) -> list:
    out = []
    for j, y in enumerate(["loss", "loss_general"][:2 if truth.general_params else 1]):
        d = df
        if j == 1:
            d = df.copy()
            d[truth.x[2]] = 1.0 - d[truth.x[2]]
        law = get_law(truth.law, seed=seed, **(truth.law_options or {})).fit(d, x=truth.x, y=y)
        out.append(law.bootstrap(n_boot, seed=seed, method="residual"))
    return out


def _rebootstrap_known_noise(truth: TargetTruth, laws: list, seed: int, n_boot: int) -> list:
    """The same fits, their replicates redrawn parametrically at the truth's noise (each loss of a
    pair has its own, independent noise of that scale)."""
    return [law.bootstrap(n_boot, seed=seed, method="parametric", noise=truth.noise) for law in laws]


def _target_of(truth: TargetTruth, laws: list):
    """The target as a function of the concatenated parameters of the law (and its partner)."""
    return target_function(laws[0], truth.target, truth.at, truth.options, laws[1] if len(laws) > 1 else None)


def _target_estimate(truth: TargetTruth, laws: list) -> float:
    f = _target_of(truth, laws)
    return float(f(np.concatenate([m.theta_ for m in laws])[None])[0])


def _target_interval(truth: TargetTruth, laws: list) -> tuple[float, float]:
    f = _target_of(truth, laws)
    n = min(len(m.boot_theta_) for m in laws)
    values = f(np.concatenate([m.boot_theta_[:n] for m in laws], axis=1))
    lo, hi = np.nanquantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def target_trial(truth: TargetTruth, seed: int, n_boot: int = 100, rounds: int = 1,
                 known_noise: bool = False) -> dict[str, Any]:
    """One trial: pilot, fit, advice at the standard design's cost, both designs run and refitted.
    `rounds` > 1 spends the budget in that many rounds of run, fit, advise (as `run_trial`);
    `known_noise` also redraws each final fit's replicates parametrically at the truth's noise
    (the `_known_noise` keys), which tells a design's coverage apart from its noise estimate's."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rng = np.random.default_rng(seed)
    laws = truth.laws()
    true_value = _target_estimate(truth, laws)
    pilot = _observe_target(truth, truth.pilot, rng)
    budget = truth.cost(truth.standard)
    data, left, parts, first = pilot, budget, [], None
    advised_rng = np.random.default_rng([seed, 1])  # rounds = 1: the stream the single round always had
    for k in range(rounds):
        fitted = _fit_target(truth, data, seed, n_boot)
        advice = advise(fitted[0], truth.candidates, left / (rounds - k), truth.target, truth.at, noise=truth.noise,
                        seed=seed, options=truth.options, partner=fitted[1] if len(fitted) > 1 else None, core=False)
        first = first or advice
        left -= advice.spent
        X = _chosen_frame(truth, advice.chosen)
        new = _observe_target(truth, X, advised_rng) if len(X) else X
        parts.append(new)
        data = pd.concat([data, new], ignore_index=True)
    advised_new = pd.concat(parts, ignore_index=True)
    out: dict[str, Any] = {"seed": seed, "truth": true_value, "advised_runs": len(advised_new),
                           "advised_flops": budget - left, "budget": budget, "rounds": rounds,
                           "expected_narrowing": first.expected_narrowing}
    for name, new in (("advised", advised_new),
                      ("standard", _observe_target(truth, truth.standard, np.random.default_rng([seed, 2])))):
        fitted = _fit_target(truth, pd.concat([pilot, new], ignore_index=True), seed, n_boot)
        lo, hi = _target_interval(truth, fitted)
        out[f"{name}_estimate"] = _target_estimate(truth, fitted)
        out[f"{name}_width"] = hi - lo
        out[f"{name}_covers"] = bool(lo <= true_value <= hi)
        if known_noise:
            lo, hi = _target_interval(truth, _rebootstrap_known_noise(truth, fitted, seed, n_boot))
            out[f"{name}_width_known_noise"] = hi - lo
            out[f"{name}_covers_known_noise"] = bool(lo <= true_value <= hi)
    return out


def target_study(truth: TargetTruth, trials: int, seed: int = 0, n_boot: int = 100, rounds: int = 1,
                 known_noise: bool = False) -> dict[str, Any]:
    rows = pd.DataFrame([target_trial(truth, seed + t, n_boot, rounds, known_noise) for t in range(trials)])
    out = {"law": truth.law, "truth": truth.name, "target": truth.target, "at": truth.at,
           "budget": truth.cost(truth.standard), "noise": truth.noise, "trials": trials, "rounds": rounds,
           "median_advised_runs": float(np.median(rows.advised_runs))}
    for suffix in ("", "_known_noise") if known_noise else ("",):
        ours, std = rows[f"advised_width{suffix}"], rows[f"standard_width{suffix}"]
        out.update({f"median_width_ratio{suffix}": float(np.median(ours / std)),
                    f"win_rate{suffix}": float(np.mean(ours < std)),
                    f"coverage{suffix}": float(np.mean(rows[f"advised_covers{suffix}"])),
                    f"coverage_standard{suffix}": float(np.mean(rows[f"standard_covers{suffix}"]))})
    return out


def encdec_truth(tokens: float = 4e6) -> TargetTruth:
    """L = alpha (Ne0/Ne)^pe (Nd0/Nd)^pd + L_inf with an interior encoder share pe/(pe+pd) = 0.375;
    noise 0.01. Standard design: the encdec habit, one side scaled at a time (the other at the
    middle size), four log-spaced sizes each."""
    law = get_law("encdec", constants={"Ne0": 1e4, "Nd0": 1e4})
    sizes = np.geomspace(2e3, 6.4e4, 6)
    cands = candidate_grid(law, sizes=sizes, tokens=tokens, repeats=16)
    mid, ladder = sizes[2], sizes[[0, 2, 4, 5]]
    standard = pd.DataFrame({"Ne": np.r_[ladder, np.full(4, mid)], "Nd": np.r_[np.full(4, mid), ladder]})
    pilot = pd.DataFrame({"Ne": sizes[[0, 1, 2, 0, 2]], "Nd": sizes[[0, 1, 2, 2, 0]]})
    return TargetTruth("encdec", "encdec", ["Ne", "Nd"], {"alpha": 1.2, "pe": 0.3, "pd": 0.5, "L_inf": 0.8},
                       0.01, pilot, standard, cands, "encoder_share",
                       law_options={"constants": {"Ne0": 1e4, "Nd0": 1e4}})


def select_truth() -> TargetTruth:
    """Besiroglu et al.'s Chinchilla fit for the baseline; the selected data is worth m = 2 of its
    tokens with the same floor, so CM = 2 at every compute. Noise 0.01. Standard design: per
    variant, four log-spaced sizes at 20 tokens per parameter. Target: CM at 1e22 FLOPs."""
    law = get_law("select", variant="variant", baseline="base")
    law.variants_ = ["base", "sel"]
    law.x_ = ["N", "D"]
    sizes = np.geomspace(2e7, 1.6e9, 7)
    cands = candidate_grid(law, sizes=sizes, tokens_per_param=(5, 10, 20, 40, 80), repeats=4)
    pilot = pd.DataFrame([{"N": n, "D": t * n, "variant": v} for v in ("base", "sel")
                          for n in sizes[:3:2] for t in (10, 40)])
    ladder = sizes[[0, 2, 4, 6]]
    standard = pd.DataFrame([{"N": n, "D": 20 * n, "variant": v} for v in ("base", "sel") for n in ladder])
    return TargetTruth("select", "select", ["N", "D"],
                       {"E_base": 1.8169, "E_sel": 1.8169, "A": 482.0, "B": 2085.4, "alpha": 0.3478,
                        "beta": 0.3659, "m_sel": 2.0}, 0.01, pilot, standard, cands, "compute_multiplier",
                       at=1e22, options=TargetOptions(variant="sel"),
                       law_options={"variant": "variant", "baseline": "base"})



def _rows_as(truth: TargetTruth, X: pd.DataFrame, j: int) -> pd.DataFrame:
    if j == 0:
        return X
    g = X.copy()
    g[truth.x[2]] = 1.0 - g[truth.x[2]]
    return g


def target_width_at_truth(truth: TargetTruth, X: pd.DataFrame) -> float:
    """The linearised 95% width of the target after the pilot plus runs X, at the true parameters
    (the design's quality without the refit's sampling noise; see `width_at_truth`)."""
    laws = truth.laws()
    blocks = []
    for j, law in enumerate(laws):
        th = law.theta_[None]
        J = jacobians(law, th, law._as_features(_rows_as(truth, pd.concat([truth.pilot, X], ignore_index=True), j)))
        J = J / truth.noise
        blocks.append(_weak_prior(law)[None] + np.einsum("rnp,rnq->rpq", J, J))
    P = sum(b.shape[1] for b in blocks)
    M, o = np.zeros((1, P, P)), 0
    for b in blocks:
        M[:, o:o + b.shape[1], o:o + b.shape[1]] = b
        o += b.shape[1]
    f = _target_of(truth, laws)
    g = target_gradients(f, np.concatenate([m.theta_ for m in laws])[None])
    return _Design(M, g, np.ones(P, bool)).width()


def _chosen_frame(truth: TargetTruth, chosen: list[Candidate]) -> pd.DataFrame:
    """The inputs (and other columns) of the chosen candidates, one row each."""
    return pd.DataFrame([{**dict(zip(truth.x, c.x)), **(c.columns or {})} for c in chosen])


def advised_design(truth: TargetTruth, seed: int, n_boot: int = 50) -> tuple[pd.DataFrame, Any]:
    """Pilot, fit, and the advised runs at the standard design's cost (no new runs observed)."""
    pilot = _observe_target(truth, truth.pilot, np.random.default_rng(seed))
    fitted = _fit_target(truth, pilot, seed, n_boot)
    advice = advise(fitted[0], truth.candidates, truth.cost(truth.standard), truth.target, truth.at,
                    noise=truth.noise, seed=seed, options=truth.options,
                    partner=fitted[1] if len(fitted) > 1 else None, core=False)
    return _chosen_frame(truth, advice.chosen), advice


def dcpt_truth() -> TargetTruth:
    """A D-CPT pair (domain loss on the domain share r, general loss on 1 - r) whose general-loss
    limit (3% above the base model's) binds: the optimal share at N = 1e8, D = 2e9 is 0.7355.
    Noise 0.01. Pilot: 18 runs, the three sizes at 10 and 40 tokens per parameter and r in
    {0.1, 0.5, 0.9}. Standard design: the mixture sweep, r in {0.1, 0.3, 0.5, 0.7, 0.9} at the two
    largest sizes, 20 tokens per parameter."""
    dom = {"E": 1.2, "A": 30.0, "alpha": 0.35, "B": 200.0, "eta": 0.3, "beta": 0.4, "C": 0.25, "gamma": 0.6,
           "eps": 0.05}
    gen = {**dom, "E": 1.5, "C": 0.06}
    law = get_law("dcpt")
    sizes = np.array([2e7, 5e7, 1e8])
    shares = (0.1, 0.3, 0.5, 0.7, 0.9)
    cands = candidate_grid(law, sizes=sizes, tokens_per_param=(5, 10, 20, 40), shares=shares, repeats=4)
    # the pilot spans all three sizes: from two, the N term (A, alpha) is a ridge the advised runs
    # do not cut (they go mostly to the cheapest size), and the share's interval covered 15 of 20
    pilot = pd.DataFrame([{"N": n, "D": t * n, "r": r} for n in sizes for t in (10, 40) for r in (0.1, 0.5, 0.9)])
    standard = pd.DataFrame([{"N": n, "D": 20 * n, "r": r} for n in sizes[1:] for r in shares])
    base = 1.6438888887775782  # the general loss at r = 0 (general share 1), N = 1e8, D = 2e9
    return TargetTruth("dcpt", "dcpt", ["N", "D", "r"], dom, 0.01, pilot, standard, cands, "domain_share", at=1e8,
                       options=TargetOptions(tokens=2e9, base_loss=base, threshold=0.03), general_params=gen,
                       law_options={"init": "coarse"})

__all__ = ["TargetTruth", "advised_design", "dcpt_truth", "encdec_truth", "select_truth", "target_study", "target_trial",
           "target_width_at_truth"]
