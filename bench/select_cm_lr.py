"""The half-junk compute multiplier against the learning rate: is CM = 2 a property of the data or of the optimiser?

Trains the ground-truth pool of tests/train/test_select_cm.py (clean/junk, junk share 0.5, junk
over its own alphabet, exact floors) at each learning rate of `--lrs`: the unfiltered baseline
and the oracle at keep 0.5, 4 one-layer widths, 2 budgets, 2 seeds. Per learning rate it fits the
`select` law with the exact floors and prints the oracle's CM at the grid's middle compute with
its 95% paired-bootstrap interval (cells = size and seed); then the same at the tuned learning
rate, the one of `--lrs` with the lowest mean loss over seeds in each (variant, size, budget) cell.
If junk only wasted tokens, CM would be 2 at every learning rate.

    python bench/select_cm_lr.py [--lrs 0.003,0.01,0.03,0.06,0.1] [--batch 4] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.config import spec_from_dict
from scaling.laws.select import SelectLaw, cell_bootstrap, multiplier_summary
from scaling.store import Store
from scaling.train import expand, run_study
from scaling.train.executors import local_executor
from scaling.train.select_tables import select_runs

CELL = ["select_variant", "N", "D"]


def spec(lrs: list[float], batch: int, steps: list[int]) -> dict:
    pool = {"n_symbols": 32, "n_keys": 400, "n_docs": 2400, "doc_triples": 32,
            "shares": {"clean": 0.5, "junk": 0.5}, "junk_alphabet": "disjoint"}
    return {
        "study": {"name": "cm-lr", "family": "select"},
        "data": {"source": "facts_pool", "eval_tokens": 4800, "options": pool},
        "model": {"shapes": [{"d_model": d, "n_layers": 1, "n_heads": 2} for d in (8, 12, 16, 24)]},
        "train": {"steps": steps[0], "batch_size": batch, "seq_len": 48, "lr": lrs[0], "eval_points": 2,
                  "weight_decay": 0.0},
        "select": {"methods": {"oracle": {}}, "on_exhausted": "repeat"},
        "grid": {"select": {"keep": [0.5]}, "train": {"steps": steps, "lr": lrs}, "seed": [0, 1]},
    }


def half_junk_cm(df: pd.DataFrame, n_boot: int) -> dict:
    law = SelectLaw(variant="select_variant", baseline="none", floors="column", floor_column="select_floor")
    law.fit(df, x=["N", "D"], y="loss")
    cell_bootstrap(law, df, cells=["N", "seed"], n=n_boot, seed=0)
    C = float(np.exp(np.log(df["C"]).mean()))  # the middle of the grid's compute (log scale), as the test
    row = multiplier_summary(law, [C])["cm"]["oracle@0.5"][0]
    return {"compute": C, "cm": row["cm"], "ci95": row["ci95"], "covers_2": bool(row["ci95"][0] <= 2.0 <= row["ci95"][1])}


def tuned(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Each (variant, size, budget) cell at its learning rate of lowest mean loss over seeds."""
    mean = runs.groupby(CELL + ["lr"])["loss"].mean().reset_index()
    best = mean.loc[mean.groupby(CELL)["loss"].idxmin(), CELL + ["lr"]]
    counts = {v: {str(k): int(n) for k, n in g["lr"].value_counts().sort_index().items()}
              for v, g in best.groupby("select_variant")}
    return runs.merge(best, on=CELL + ["lr"]).reset_index(drop=True), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", default="0.003,0.01,0.03,0.06,0.1")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", default="200,600")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the fit's L1 warning (Huber delta 1e-3), as in the test
    lrs = [float(x) for x in args.lrs.split(",")]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(args.store) if args.store else Path(tmp) / "cm-lr")
        executor, threads = local_executor(args.workers)
        run_study(expand(spec_from_dict(spec(lrs, args.batch, [int(s) for s in args.steps.split(",")]))),
                  store, executor, threads=threads)
        runs = select_runs(store.runs())
    runs = runs.assign(lr=runs["train.lr"])
    out = {"batch": args.batch, "lr": {}, "runs": len(runs)}
    for lr in lrs:
        out["lr"][str(lr)] = half_junk_cm(runs[runs.lr == lr].reset_index(drop=True), args.boot)
    at_best, counts = tuned(runs)
    out["tuned"] = {**half_junk_cm(at_best, args.boot), "best_lr_counts": counts}
    out["seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(out))
        return
    print(f"batch {args.batch}, {out['runs']} runs, {out['seconds']:.0f} s")
    for name, r in [*((f"lr {k}", v) for k, v in out["lr"].items()), ("tuned lr", out["tuned"])]:
        lo, hi = r["ci95"]
        print(f"{name:<10} CM = {r['cm']:.3f} [{lo:.3f}, {hi:.3f}]{'' if r['covers_2'] else '   (excludes 2)'}")
    print("tuned learning rate per cell:", counts)


if __name__ == "__main__":
    main()
