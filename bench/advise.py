"""Does `scaling advise` pay? The simulation study on ground-truth laws, one row per law.

Per trial: a pilot of small noisy runs, a fit, then the same compute spent on the advised runs
and on the standard log-spaced ladder (20 tokens/parameter for L(N, D)); both refitted, and the
95% residual-bootstrap interval of the target compared (width; does it cover the truth).

    python bench/advise.py [--trials 20] [--boot 200] [--json]

Prints, per ground-truth law: median_width_ratio (advised / standard), win_rate (share of trials
where advised is narrower), coverage (share of advised intervals that cover the truth) and the
standard ladder's coverage, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

from scaling.advise_simulation import chinchilla_truth, power_truth, simulation_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # a few pilot fits of noisy data stop at max_iter; counted in the study
    out = {}
    for truth in (chinchilla_truth(), power_truth()):
        t0 = time.perf_counter()
        res = simulation_study(truth, args.trials, args.seed, args.boot)
        res["seconds"] = time.perf_counter() - t0
        out[truth.name] = res
    if args.json:
        print(json.dumps(out))
        return
    print(f"{'truth':<12} {'target':<22} {'width ratio':>11} {'win rate':>9} {'coverage':>9} {'cov. ladder':>11} {'trials':>6}")
    for name, r in out.items():
        print(f"{name:<12} {r['target'] + ' @ ' + format(r['at'], '.3g'):<22} {r['median_width_ratio']:>11.3f} "
              f"{r['win_rate']:>9.2f} {r['coverage']:>9.2f} {r['coverage_standard']:>11.2f} {r['trials']:>6}")


if __name__ == "__main__":
    main()
