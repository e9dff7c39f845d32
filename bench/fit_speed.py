"""Chinchilla fit on Epoch's data: a scipy loop over Hoffmann et al.'s 4,500 starts against ours.

Baseline: one scipy.optimize.minimize(method="L-BFGS-B") per start with finite-difference
gradients, the objective written as in the published replication (scipy.special logsumexp +
huber) and, stricter, in plain numpy. A seeded random sample of the grid is timed (a strided
slice would hold only alpha = beta = 0 starts) and scaled to 4,500. Ours: the in-process fit
(variable projection, the default solver), the batched torch grid engine for reference, and the
whole `scaling fit chinchilla ... --init hoffmann --json` process. One thread, one after the
other, in this run.

    python bench/fit_speed.py [--subset 40] [--seed 0] [--repeats 5] [--json]
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy loads: scipy's L-BFGS-B makes tiny BLAS calls whose
# thread start-up otherwise dominates (30x slower on a shared CPU), which would flatter ours.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from scaling.datasets import load_dataset
from scaling.laws import get_law


def load() -> pd.DataFrame:
    return load_dataset("chinchilla_epoch").sort_values("loss").iloc[:-5]  # drop the 5 highest losses


def scipy_loop(df: pd.DataFrame, starts: np.ndarray, objective: str) -> tuple[float, float, float]:
    """Seconds for the loop over `starts` (rows e, a, b, alpha, beta), best objective, mean evaluations."""
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


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=40, help="scipy starts to time (scaled to 4,500)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random sample of starts")
    ap.add_argument("--repeats", type=int, default=5, help="timings per measure of ours (the best is kept)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = ap.parse_args()

    df = load()
    fit = lambda solver: get_law("chinchilla", init="hoffmann", solver=solver).fit(df, x=["N", "D"], y="loss")  # noqa: E731
    law = fit("auto")  # warm-up (first-call imports)
    t_vp = best_of(lambda: fit("auto"), args.repeats)
    grid_law = fit("grid")
    t_grid = best_of(lambda: fit("grid"), 1)

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "chinchilla.csv"
        df[["N", "D", "loss"]].to_csv(csv, index=False)
        cmd = [sys.executable, "-m", "scaling", "fit", "chinchilla", str(csv), "--x", "N", "--x", "D", "--y", "loss",
               "--init", "hoffmann", "--json"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        out = {}

        def run_cli() -> None:
            out["r"] = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)

        t_proc = best_of(run_cli, args.repeats)
        cli = json.loads(out["r"].stdout)

    starts = get_law("chinchilla", init="hoffmann").init_grid(np.zeros((1, 2)), np.zeros(1))
    n_grid = len(starts)
    rng = np.random.default_rng(args.seed)
    sub = starts[rng.choice(n_grid, size=args.subset, replace=False)]
    fig = {
        "n_points": int(law.n_points_),
        "n_grid_starts": n_grid,
        "ours_in_process_s": round(t_vp, 4),
        "ours_objective": law.objective_,
        "ours_converged": law.converged_,
        "ours_solver": law.solver_,
        "grid_engine_s": round(t_grid, 3),
        "grid_engine_objective": grid_law.objective_,
        "whole_process_s": round(t_proc, 3),
        "whole_process_objective": cli["objective"],
        "scipy_subset_starts": len(sub),
        "scipy_subset_seed": args.seed,
    }
    for name in ("recipe", "numpy"):
        t_sub, best_sub, nfev = scipy_loop(df, sub, name)
        t_loop = t_sub / len(sub) * n_grid
        fig[f"scipy_{name}_per_start_ms"] = round(1e3 * t_sub / len(sub), 2)
        fig[f"scipy_{name}_loop_s_scaled"] = round(t_loop, 2)
        fig[f"speedup_in_process_vs_{name}"] = round(t_loop / t_vp, 1)
        fig[f"speedup_process_vs_{name}"] = round(t_loop / t_proc, 1)
        fig[f"speedup_grid_engine_vs_{name}"] = round(t_loop / t_grid, 1)
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
