"""Does advice pay? A simulation study on ground-truth laws (used by bench/advise.py and the tests).

Each trial: a pilot of small runs with noisy losses from the true law; the law is fitted to it;
then the same compute budget is spent twice, on the advised runs and on the standard ladder
(log-spaced sizes; 20 tokens per parameter for L(N, D)); the new runs' losses are drawn from the
truth with the same noise, the law is refitted on pilot + new runs, and the 95% interval of the
target (residual bootstrap percentiles) is compared: its width, and whether it covers the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from scaling.advise.design import _weak_prior, advise, jacobians, target_function, target_gradients
from scaling.advise.search import _Design
from scaling.laws.validation import Z95
from scaling.advise.study import candidate_grid
from scaling.laws.registry import get_law


@dataclass
class GroundTruth:
    name: str
    law: str
    x: list[str]
    params: dict[str, float]
    noise: float
    """Standard deviation of one run's log loss."""
    pilot: np.ndarray
    """[n, k] inputs of the runs done before advice."""
    sizes: np.ndarray
    """Candidate sizes N (the ladder uses the same range)."""
    target: str
    at: float
    tokens: float | None = None
    """Tokens per run for one-input laws (cost 6 N D)."""
    ladder_runs: int = 8
    repeats: int = 16
    """How many times advice may choose one candidate (new seeds of one config are new runs)."""


def chinchilla_truth() -> GroundTruth:
    """Besiroglu et al.'s Chinchilla fit; noise 0.01 in log loss (the scale of its residuals)."""
    n = np.geomspace(2e7, 1e8, 3)
    pilot = np.array([(ni, tpp * ni) for ni in n for tpp in (10, 40)])
    return GroundTruth("chinchilla", "chinchilla", ["N", "D"],
                       {"E": 1.8169, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3659}, 0.01,
                       pilot, np.geomspace(2e7, 2e9, 15), target="loss", at=1e23)


def power_truth() -> GroundTruth:
    """The demo's power law L(N) = 1.42 + (300/N)^0.62 at 4.0M tokens per run; noise 0.005."""
    return GroundTruth("demo_power", "power", ["N"], {"L_inf": 1.42, "x0": 300.0, "alpha": 0.62}, 0.005,
                       np.geomspace(1.6e3, 6e3, 4)[:, None], np.geomspace(1.6e3, 2e5, 20),
                       target="loss", at=1e6, tokens=4.03e6)


def _truth_law(truth: GroundTruth):
    law = get_law(truth.law)
    law.theta_ = law.to_theta(truth.params)
    law.x_ = truth.x
    return law


def _observe(truth: GroundTruth, law, X: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    F = torch.as_tensor(law.features(X), dtype=torch.float64)
    with torch.no_grad():
        mean = law.pred(torch.as_tensor(law.theta_[None]), F)[0].numpy()
    df = pd.DataFrame(X, columns=truth.x)
    df["loss"] = mean * np.exp(rng.normal(0.0, truth.noise, len(mean)))
    return df


def standard_ladder(truth: GroundTruth) -> np.ndarray:
    """The habit: `ladder_runs` log-spaced sizes over the candidates' range (20 tokens per
    parameter for two-input laws). Its cost is the budget both designs spend."""
    ns = np.geomspace(truth.sizes[0], truth.sizes[-1], truth.ladder_runs)
    return np.stack([ns, 20 * ns], axis=1) if len(truth.x) == 2 else ns[:, None]


def run_costs(truth: GroundTruth, X: np.ndarray) -> np.ndarray:
    """Training FLOPs 6 N D of each run of X [n, k] (D = `truth.tokens` for one-input laws)."""
    return 6 * X[:, 0] * (X[:, 1] if X.shape[1] == 2 else truth.tokens)


def ladder_cost(truth: GroundTruth) -> float:
    return float(np.sum(run_costs(truth, standard_ladder(truth))))


def _interval(truth: GroundTruth, df: pd.DataFrame, seed: int, n_boot: int,
              noise: float | None = None) -> tuple[float, float]:
    """95% percentile interval of the target after refitting on df: residual bootstrap (the noise
    estimated from the fit's residuals), or parametric at a known `noise`."""
    law = get_law(truth.law, seed=seed).fit(df, x=truth.x, y="loss")
    if noise is None:
        law.bootstrap(n_boot, seed=seed, method="residual")
    else:
        law.bootstrap(n_boot, seed=seed, method="parametric", noise=noise)
    values = target_function(law, truth.target, truth.at)(law.boot_theta_)
    lo, hi = np.nanquantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def width_at_truth(truth: GroundTruth, X: np.ndarray) -> float:
    """The linearised 95% width the pilot plus runs X would give if the truth were known (noise-free
    figure of a design's quality: what the refitted interval estimates, without its sampling noise)."""
    law = _truth_law(truth)
    th = law.theta_[None]
    J0 = jacobians(law, th, torch.as_tensor(law.features(truth.pilot))) / truth.noise
    Jn = jacobians(law, th, torch.as_tensor(law.features(X))) / truth.noise
    M = _weak_prior(law)[None] + np.einsum("rnp,rnq->rpq", J0, J0) + np.einsum("rnp,rnq->rpq", Jn, Jn)
    g = target_gradients(target_function(law, truth.target, truth.at), th)
    return _Design(M, g, np.ones(len(g[0]), bool)).width()


def _c_optimal(truth: GroundTruth, n_sizes: int, steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The continuous c-optimal design at the true parameters: `n_sizes` log-spaced sizes over the
    candidates' range, the (fractional) number of runs of each that spends the ladder's budget,
    and its linearised 95% width; by Frank-Wolfe on the budget shares, which converges to the
    global optimum since the target's variance is convex in the shares. One-input laws."""
    law = _truth_law(truth)
    th = law.theta_[None]
    sizes = np.geomspace(truth.sizes[0], truth.sizes[-1], n_sizes)
    A = jacobians(law, th, torch.as_tensor(law.features(sizes[:, None])))[0] / truth.noise
    J0 = jacobians(law, th, torch.as_tensor(law.features(truth.pilot)))[0] / truth.noise
    M0 = _weak_prior(law) + J0.T @ J0
    g = target_gradients(target_function(law, truth.target, truth.at), th)[0]
    runs_per_share = ladder_cost(truth) / run_costs(truth, sizes[:, None])
    p = np.full(n_sizes, 1.0 / n_sizes)
    for it in range(steps):
        u = np.linalg.solve(M0 + (A.T * (p * runs_per_share)) @ A, g)
        k = int(np.argmax((A @ u) ** 2 * runs_per_share))  # steepest descent vertex of the variance
        p *= 1 - 2 / (it + 3)
        p[k] += 2 / (it + 3)
    runs = p * runs_per_share
    width = np.sqrt(g @ np.linalg.solve(M0 + (A.T * runs) @ A, g)) * 2 * Z95
    return sizes, runs, float(width)


def oracle_ratio(truth: GroundTruth, n_sizes: int = 200, steps: int = 3000) -> float:
    """The best any design over the candidates' size range could do, as a ratio of the ladder's
    width, both linearised at the true parameters: the continuous c-optimal design (`_c_optimal`:
    budget shares over `n_sizes` log-spaced sizes, any number of runs each). One-input laws."""
    best = _c_optimal(truth, n_sizes, steps)[2]
    return best / width_at_truth(truth, standard_ladder(truth))


def oracle_design(truth: GroundTruth, n_sizes: int = 200, steps: int = 3000) -> np.ndarray:
    """The c-optimal design at the true parameters (`oracle_ratio`'s shares) as whole runs within
    the ladder's budget: each size's runs rounded down, the budget left spent on the sizes with the
    largest remainders. The yardstick no advice from a fitted pilot can beat. One-input laws."""
    sizes, runs, _ = _c_optimal(truth, n_sizes, steps)
    cost = run_costs(truth, sizes[:, None])
    whole = np.floor(runs + 1e-9)
    left = ladder_cost(truth) - float(np.sum(whole * cost))
    for k in np.argsort(-(runs - whole)):
        if runs[k] - whole[k] > 1e-9 and cost[k] <= left:
            whole[k] += 1
            left -= cost[k]
    return np.repeat(sizes, whole.astype(int))[:, None]


def _advise_rounds(truth: GroundTruth, pilot: pd.DataFrame, true_law, seed: int, rounds: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, Any, pd.DataFrame]:
    """The loop the tool is for (run, fit, advise, run) in `rounds` rounds: each round refits on all
    runs so far and spends its share of what is left of the budget on advised runs, which are then
    observed. Returns the advised inputs, the first round's advice and the new runs' losses."""
    data, left, chosen, news, first = pilot, ladder_cost(truth), [], [], None
    for k in range(rounds):
        fitted = get_law(truth.law, seed=seed).fit(data, x=truth.x, y="loss")
        candidates = candidate_grid(fitted, sizes=truth.sizes, tokens=truth.tokens, repeats=truth.repeats)
        advice = advise(fitted, candidates, left / (rounds - k), truth.target, truth.at, noise=truth.noise,
                        seed=seed, core=False)
        first = first or advice
        X = np.array([c.x for c in advice.chosen], float).reshape(-1, len(truth.x))
        left -= advice.spent
        new = _observe(truth, true_law, X, rng)
        chosen.append(X)
        news.append(new)
        data = pd.concat([data, new], ignore_index=True)
    return np.concatenate(chosen), first, pd.concat(news, ignore_index=True)


def run_trial(truth: GroundTruth, seed: int, n_boot: int = 200, known_noise: bool = False, rounds: int = 1,
              oracle: bool = False) -> dict[str, Any]:
    """One trial; `known_noise` also refits each design with a parametric bootstrap at the truth's
    noise (the noise advice planned with), so the width reflects the design, not how well a dozen
    residuals estimate the noise. `rounds` > 1 spends the budget in that many rounds of advice,
    each after refitting on the runs of the rounds before (the tool's loop); `oracle` also runs
    `oracle_design`, the c-optimal design at the truth, as a third design."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rng = np.random.default_rng(seed)
    true_law = _truth_law(truth)
    true_value = float(target_function(true_law, truth.target, truth.at)(true_law.theta_[None])[0])
    pilot = _observe(truth, true_law, truth.pilot, rng)
    X, advice, new = _advise_rounds(truth, pilot, true_law, seed, rounds, np.random.default_rng([seed, 1]))
    out: dict[str, Any] = {"seed": seed, "truth": true_value, "advised_runs": len(X),
                           "advised_flops": float(np.sum(run_costs(truth, X))),
                           "expected_narrowing": advice.expected_narrowing}
    others = {"standard": (standard_ladder(truth), 2), **({"oracle": (oracle_design(truth), 3)} if oracle else {})}
    designs = {"advised": (X, new)}
    for name, (D, stream) in others.items():  # each design's runs get their own noise stream
        designs[name] = (D, _observe(truth, true_law, D, np.random.default_rng([seed, stream])))
    for name, (D, new) in designs.items():
        both = pd.concat([pilot, new], ignore_index=True)
        lo, hi = _interval(truth, both, seed, n_boot)
        out[f"{name}_width"] = hi - lo
        out[f"{name}_width_at_truth"] = width_at_truth(truth, D)
        out[f"{name}_covers"] = bool(lo <= true_value <= hi)
        if not known_noise:
            continue
        lo, hi = _interval(truth, both, seed, n_boot, noise=truth.noise)
        out[f"{name}_width_known_noise"] = hi - lo
        out[f"{name}_covers_known_noise"] = bool(lo <= true_value <= hi)
    return out


def simulation_study(truth: GroundTruth, trials: int, seed: int = 0, n_boot: int = 200,
                     known_noise: bool = False, rounds: int = 1, oracle: bool = False) -> dict[str, Any]:
    """Figures over `trials` seeds: median width ratio advised / standard, win rate, coverage (and,
    with `known_noise`, the same with intervals at the known noise; with `oracle`, the same for
    the c-optimal design at the truth against the standard one: what any advice could reach)."""
    rows = pd.DataFrame([run_trial(truth, seed + t, n_boot, known_noise, rounds, oracle) for t in range(trials)])

    def versus(design: str, suffix: str = "") -> dict[str, float]:
        tag = "" if design == "advised" else f"_{design}"
        ours, std = rows[f"{design}_width{suffix}"], rows[f"standard_width{suffix}"]
        return {f"median_width_ratio{tag}{suffix}": float(np.median(ours / std)),
                f"win_rate{tag}{suffix}": float(np.mean(ours < std)),
                f"coverage{tag}{suffix}": float(np.mean(rows[f"{design}_covers{suffix}"]))}

    out = {"law": truth.law, "truth": truth.name, "target": truth.target, "at": truth.at, "budget": ladder_cost(truth),
           "noise": truth.noise, "trials": trials, "rounds": rounds, **versus("advised"),
           "median_width_ratio_at_truth": float(np.median(rows.advised_width_at_truth / rows.standard_width_at_truth)),
           "coverage_standard": float(np.mean(rows.standard_covers)),
           "median_expected_narrowing": float(np.median(rows.expected_narrowing)),
           "median_advised_runs": float(np.median(rows.advised_runs))}
    if known_noise:
        out.update(versus("advised", "_known_noise"),
                   coverage_standard_known_noise=float(np.mean(rows.standard_covers_known_noise)))
    if oracle:
        out.update(versus("oracle"), **(versus("oracle", "_known_noise") if known_noise else {}))
    return out


__all__ = ["GroundTruth", "chinchilla_truth", "ladder_cost", "oracle_design", "oracle_ratio", "power_truth", "run_costs",
           "run_trial", "simulation_study", "standard_ladder", "width_at_truth"]
