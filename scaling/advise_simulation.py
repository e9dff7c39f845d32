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

from scaling.advise import (Candidate, TargetOptions, _Design, _weak_prior, advise, jacobians,
                            target_function, target_gradients)
from scaling.advise_study import candidate_grid
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
    width = np.sqrt(g @ np.linalg.solve(M0 + (A.T * runs) @ A, g)) * 2 * 1.959963984540054
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
        candidates = candidate_grid(fitted, data, sizes=truth.sizes, tokens=truth.tokens, repeats=truth.repeats)
        advice = advise(fitted, candidates, left / (rounds - k), truth.target, truth.at, noise=truth.noise,
                        seed=seed)
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


# ------------------------------------------------------------------ the other targets


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
                        seed=seed, options=truth.options, partner=fitted[1] if len(fitted) > 1 else None)
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
    cands = candidate_grid(law, None, sizes=sizes, tokens=tokens, repeats=16)
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
    cands = candidate_grid(law, None, sizes=sizes, tokens_per_param=(5, 10, 20, 40, 80), repeats=4)
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
                    partner=fitted[1] if len(fitted) > 1 else None)
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
    cands = candidate_grid(law, None, sizes=sizes, tokens_per_param=(5, 10, 20, 40), shares=shares, repeats=4)
    # the pilot spans all three sizes: from two, the N term (A, alpha) is a ridge the advised runs
    # do not cut (they go mostly to the cheapest size), and the share's interval covered 15 of 20
    pilot = pd.DataFrame([{"N": n, "D": t * n, "r": r} for n in sizes for t in (10, 40) for r in (0.1, 0.5, 0.9)])
    standard = pd.DataFrame([{"N": n, "D": 20 * n, "r": r} for n in sizes[1:] for r in shares])
    base = 1.6438888887775782  # the general loss at r = 0 (general share 1), N = 1e8, D = 2e9
    return TargetTruth("dcpt", "dcpt", ["N", "D", "r"], dom, 0.01, pilot, standard, cands, "domain_share", at=1e8,
                       options=TargetOptions(tokens=2e9, base_loss=base, threshold=0.03), general_params=gen,
                       law_options={"init": "coarse"})

__all__ = ["GroundTruth", "TargetTruth", "chinchilla_truth", "encdec_truth", "ladder_cost", "power_truth", "run_trial",
           "advised_design", "dcpt_truth", "select_truth", "simulation_study", "standard_ladder", "target_study",
           "oracle_design", "oracle_ratio", "run_costs", "target_trial", "target_width_at_truth", "width_at_truth"]
