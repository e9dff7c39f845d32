"""1,000-replicate bootstrap of the Chinchilla fit: vectorised replicates vs a scipy refit loop.

Baseline = refitting each resample with scipy.optimize.minimize(method="L-BFGS-B") from the
best fit (finite-difference gradients, default tolerance); a subset of replicates is timed and
scaled. The engine runs twice: its default (3 starts per replicate, ftol 1e-10) and matched to
the baseline (1 start, ftol 1e-8).

    python bench/bootstrap.py [--replicates 1000] [--subset 20] [--json]
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
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).parent))
from fit_speed import load  # noqa: E402

from scaling.laws import get_law  # noqa: E402

PUBLISHED = {"E": (1.769, 1.871), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}


def scipy_refits(df, theta: np.ndarray, n: int, seed: int) -> float:
    lN, lD, ly = (np.log(df[c].to_numpy()) for c in ("N", "D", "loss"))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(n):
        w = rng.multinomial(len(ly), np.full(len(ly), 1 / len(ly)))

        def obj(p, w=w):
            e, a, b, al, be = p
            r = np.logaddexp(np.logaddexp(a - al * lN, b - be * lD), e) - ly
            d = np.clip(r, -1e-3, 1e-3)
            return float(np.sum(w * d * (r - 0.5 * d)))

        minimize(obj, theta, method="L-BFGS-B")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=20, help="scipy refits to time (scaled)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = ap.parse_args()

    df = load()
    law = get_law("chinchilla", init="hoffmann").fit(df, x=["N", "D"], y="loss")
    t0 = time.perf_counter()
    law.bootstrap(args.replicates, seed=0)
    t_vec = time.perf_counter() - t0
    ci_default = dict(law.ci_)
    # Matched to the baseline: one start per replicate, a tolerance near scipy's default factr.
    t0 = time.perf_counter()
    law.bootstrap(args.replicates, seed=0, starts=1, ftol=1e-8)
    t_matched = time.perf_counter() - t0
    ci_matched = dict(law.ci_)
    law.ci_ = ci_default
    t_sub = scipy_refits(df, law.theta_, args.subset, seed=1)
    t_loop = t_sub / args.subset * args.replicates

    fig = {
        "replicates": args.replicates,
        "torch_threads": torch.get_num_threads(),
        "vectorised_s": round(t_vec, 2),
        "scipy_loop_s_scaled": round(t_loop, 1),
        "speedup": round(t_loop / t_vec, 1),
        "vectorised_matched_s": round(t_matched, 2),
        "speedup_matched": round(t_loop / t_matched, 1),
        "ci95_alpha_matched": [round(v, 4) for v in ci_matched["alpha"]],
        "replicates_converged": law.boot_converged_,
        **{f"ci95_{k}": [round(v, 4) for v in law.ci_[k]] for k in ("E", "A", "B", "alpha", "beta")},
        "overlaps_published": all(law.ci_[k][0] < hi and law.ci_[k][1] > lo for k, (lo, hi) in PUBLISHED.items()),
    }
    if args.json:
        print(json.dumps(fig))
        return
    print(f"{'measure':24s} value")
    for k, v in fig.items():
        print(f"{k:24s} {v}")
    print("published 95%: " + ", ".join(f"{k} {lo}-{hi}" for k, (lo, hi) in PUBLISHED.items()))


if __name__ == "__main__":
    main()
