"""Does `scaling advise` pay? The simulation study on ground-truth laws, one row per law.

Per trial: a pilot of small noisy runs, a fit, then the same compute spent on the advised runs
and on the standard design (the log-spaced ladder at 20 tokens/parameter for L(N) and L(N, D);
one side scaled at a time for encdec; a ladder per variant for select); both refitted, and the
95% residual-bootstrap interval of the target compared (width; does it cover the truth).

    python bench/advise.py [--trials 20] [--boot 200] [--rounds 3] [--target-rounds 1]
                           [--truths chinchilla,demo_power,encdec,select(,dcpt)] [--json]

For L(N) and L(N, D) the advice is spent as the tool is used, in `--rounds` rounds of run, fit,
advise (1: all of it from the pilot's fit), and each design's interval is also measured at the
known noise (the `_known_noise` keys: the width a design buys, without the noise of
re-estimating one run's noise from a dozen residuals). The family targets (encdec, select, dcpt)
take `--target-rounds` (default 1, the figures published so far) and report the same
`_known_noise` keys (each final fit's replicates redrawn at the truth's noise).

Prints, per ground-truth law: median_width_ratio (advised / standard), win_rate (share of trials
where advised is narrower), coverage (share of advised intervals that cover the truth) and the
standard design's coverage, measured in the same run. For the one-input law also the ratio of
linearised widths at the true parameters (median_width_ratio_at_truth: the designs' quality
without the refit's sampling noise) and oracle_width_ratio_at_truth, the best any design over
the same sizes could reach (the c-optimal design at the truth); and the `_oracle` keys: that
design, in whole runs, refitted like the others (the win rate no advice can beat).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

from scaling.advise.simulation import chinchilla_truth, oracle_ratio, power_truth, simulation_study
from scaling.advise.target_simulation import dcpt_truth, encdec_truth, select_truth, target_study

# dcpt (the domain share of a D-CPT pair) is not in the default list: 1.5-4 minutes a trial (86-231 s measured)
TRUTHS = {"chinchilla": chinchilla_truth, "demo_power": power_truth, "encdec": encdec_truth, "select": select_truth,
          "dcpt": dcpt_truth}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of advice for chinchilla and demo_power")
    ap.add_argument("--target-rounds", type=int, default=1,
                    help="rounds of advice for the family targets (encdec, select, dcpt)")
    ap.add_argument("--truths", default="chinchilla,demo_power,encdec,select",
                    help=f"comma-separated, of {', '.join(TRUTHS)}")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # a few pilot fits of noisy data stop at max_iter; counted in the study
    out = {}
    for name in args.truths.split(","):
        truth = TRUTHS[name]()
        t0 = time.perf_counter()
        if name in ("chinchilla", "demo_power"):
            res = simulation_study(truth, args.trials, args.seed, args.boot, known_noise=True, rounds=args.rounds,
                                   oracle=name == "demo_power")
            if name == "demo_power":
                res["oracle_width_ratio_at_truth"] = oracle_ratio(truth)
        else:
            res = target_study(truth, args.trials, args.seed, args.boot, rounds=args.target_rounds, known_noise=True)
        res["seed"] = args.seed
        res["seconds"] = time.perf_counter() - t0
        out[name] = res
    if args.json:
        print(json.dumps(out))
        return
    print(f"{'truth':<12} {'target':<30} {'width ratio':>11} {'win rate':>9} {'coverage':>9} {'cov. std':>9} {'trials':>6}"
          f"   known noise: {'ratio':>6} {'win':>5} {'cov.':>5}")
    for name, r in out.items():
        known = (f"{r['median_width_ratio_known_noise']:>6.3f} {r['win_rate_known_noise']:>5.2f} "
                 f"{r['coverage_known_noise']:>5.2f}" if "win_rate_known_noise" in r else "")
        print(f"{name:<12} {r['target'] + ' @ ' + format(r['at'], '.3g'):<30} {r['median_width_ratio']:>11.3f} "
              f"{r['win_rate']:>9.2f} {r['coverage']:>9.2f} {r['coverage_standard']:>9.2f} {r['trials']:>6}"
              f"                {known}")


if __name__ == "__main__":
    main()
