"""Chinchilla fit from Hoffmann et al.'s 4,500-start grid: batched engine vs a scipy loop.

Baseline = the same recipe as a loop: one scipy.optimize.minimize(method="L-BFGS-B") per start
with finite-difference gradients, with the objective written as in the published replication
(scipy.special logsumexp + huber) and, stricter, in plain numpy. A spread subset of starts is
timed and scaled to 4,500. Everything runs in this process on one thread, one after the other.

    python bench/fit_speed.py [--subset 30] [--json]
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy loads: scipy's L-BFGS-B makes tiny BLAS calls whose
# thread start-up otherwise dominates (30x slower on a shared CPU), which would flatter the
# batched engine (itself run on one torch thread).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from scaling.laws import get_law

DATA = Path("/work/shared/data/chinchilla_epoch_svg_extracted.csv")


def load() -> pd.DataFrame:
    df = pd.read_csv(DATA).rename(columns={"Model Size": "N", "Training FLOP": "C"})
    df = df.sort_values("loss").iloc[:-5]  # drop the 5 highest-loss points
    df["D"] = df["C"] / (6 * df["N"])
    return df


def scipy_loop(df: pd.DataFrame, starts: np.ndarray, objective: str) -> tuple[float, float, float]:
    """Seconds for the loop over `starts` (rows e, a, b, alpha, beta), best objective, mean evaluations.

    objective "recipe": scipy.special logsumexp + huber, as the published replication writes it;
    "numpy": np.logaddexp and an inline Huber, ~4x cheaper per call (the stricter baseline)."""
    lN, lD, ly = np.log(df["N"].to_numpy()), np.log(df["D"].to_numpy()), np.log(df["loss"].to_numpy())

    def recipe(p: np.ndarray) -> float:
        e, a, b, al, be = p
        pred = logsumexp([a - al * lN, b - be * lD, np.full_like(lN, e)], axis=0)
        return float(np.sum(huber(1e-3, pred - ly)))

    def plain(p: np.ndarray) -> float:
        e, a, b, al, be = p
        r = np.logaddexp(np.logaddexp(a - al * lN, b - be * lD), e) - ly
        d = np.clip(r, -1e-3, 1e-3)
        return float(np.sum(d * (r - 0.5 * d)))

    obj = recipe if objective == "recipe" else plain
    t0 = time.perf_counter()
    results = [minimize(obj, s, method="L-BFGS-B") for s in starts]
    elapsed = time.perf_counter() - t0
    return elapsed, min(r.fun for r in results), float(np.mean([r.nfev for r in results]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=30, help="scipy starts to time (scaled to 4,500)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = ap.parse_args()

    df = load()
    law = get_law("chinchilla", init="hoffmann")
    law.fit(df, x=["N", "D"], y="loss")  # warm-up (allocations, first-call overheads)
    t0 = time.perf_counter()
    law = get_law("chinchilla", init="hoffmann").fit(df, x=["N", "D"], y="loss")
    t_vec = time.perf_counter() - t0
    n_grid = law.n_starts_

    grid = law._start_grid()
    sub = grid[np.linspace(0, len(grid) - 1, args.subset).round().astype(int)]
    fig = {
        "n_starts": n_grid,
        "vectorised_s": round(t_vec, 3),
        "objective": law.objective_,
        "converged": law.converged_,
        "n_starts_best": law.n_starts_best_,
        "scipy_subset_starts": len(sub),
    }
    for name in ("recipe", "numpy"):
        t_sub, best_sub, nfev = scipy_loop(df, sub, name)
        t_loop = t_sub / len(sub) * n_grid
        fig[f"scipy_{name}_per_start_ms"] = round(1e3 * t_sub / len(sub), 2)
        fig[f"scipy_{name}_loop_s_scaled"] = round(t_loop, 2)
        fig[f"speedup_vs_{name}"] = round(t_loop / t_vec, 1)
    fig["scipy_mean_evals_per_start"] = round(nfev, 1)
    fig["scipy_subset_best_objective"] = best_sub
    if args.json:
        print(json.dumps(fig))
        return
    print(f"{'measure':34s} value")
    for k, v in fig.items():
        print(f"{k:34s} {v}")


if __name__ == "__main__":
    main()
