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

from scaling.advise import advise, candidate_grid, target_function
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


def ladder_cost(truth: GroundTruth) -> float:
    X = standard_ladder(truth)
    return float(np.sum(6 * X[:, 0] * (X[:, 1] if X.shape[1] == 2 else truth.tokens)))


def _interval(truth: GroundTruth, df: pd.DataFrame, seed: int, n_boot: int) -> tuple[float, float]:
    law = get_law(truth.law, seed=seed).fit(df, x=truth.x, y="loss")
    law.bootstrap(n_boot, seed=seed, method="residual")
    values = target_function(law, truth.target, truth.at)(law.boot_theta_)
    lo, hi = np.nanquantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def run_trial(truth: GroundTruth, seed: int, n_boot: int = 200) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    true_law = _truth_law(truth)
    true_value = float(target_function(true_law, truth.target, truth.at)(true_law.theta_[None])[0])
    pilot = _observe(truth, true_law, truth.pilot, rng)
    fitted = get_law(truth.law, seed=seed).fit(pilot, x=truth.x, y="loss")
    fitted.bootstrap(n_boot, seed=seed, method="residual")
    candidates = candidate_grid(fitted, pilot, sizes=truth.sizes, tokens=truth.tokens)
    advice = advise(fitted, candidates, ladder_cost(truth), truth.target, truth.at, noise=truth.noise, seed=seed)
    out: dict[str, Any] = {"seed": seed, "truth": true_value, "advised_runs": len(advice.chosen),
                           "advised_flops": advice.spent,
                           "expected_narrowing": advice.expected_narrowing}
    designs = {"advised": np.array([c.x for c in advice.chosen], float).reshape(-1, len(truth.x)),
               "standard": standard_ladder(truth)}
    for name, X in designs.items():
        new = _observe(truth, true_law, X, np.random.default_rng([seed, 1 if name == "advised" else 2]))
        lo, hi = _interval(truth, pd.concat([pilot, new], ignore_index=True), seed, n_boot)
        out[f"{name}_width"] = hi - lo
        out[f"{name}_covers"] = bool(lo <= true_value <= hi)
    return out


def simulation_study(truth: GroundTruth, trials: int, seed: int = 0, n_boot: int = 200) -> dict[str, Any]:
    """Figures over `trials` seeds: median width ratio advised / standard, win rate, coverage."""
    rows = pd.DataFrame([run_trial(truth, seed + t, n_boot) for t in range(trials)])
    return {"law": truth.law, "truth": truth.name, "target": truth.target, "at": truth.at, "budget": ladder_cost(truth),
            "noise": truth.noise, "trials": trials,
            "median_width_ratio": float(np.median(rows.advised_width / rows.standard_width)),
            "win_rate": float(np.mean(rows.advised_width < rows.standard_width)),
            "coverage": float(np.mean(rows.advised_covers)),
            "coverage_standard": float(np.mean(rows.standard_covers)),
            "median_expected_narrowing": float(np.median(rows.expected_narrowing)),
            "median_advised_runs": float(np.median(rows.advised_runs))}


__all__ = ["GroundTruth", "chinchilla_truth", "power_truth", "ladder_cost", "run_trial", "simulation_study",
           "standard_ladder"]
