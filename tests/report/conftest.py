"""Tiny synthetic stores (no training): runs and curves tables generated from known laws."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.config import spec_from_dict
from scaling.store import Store, atomic_write_parquet

TRUTH = {"E": 1.5, "A": 40.0, "alpha": 0.35, "B": 50.0, "beta": 0.3}
SIZES = [1e3, 3e3, 1e4, 3e4, 1e5]
BUDGETS = [1e6, 4e6, 1.6e7, 6.4e7]
LRS = [3e-3, 1e-2, 3e-2]
BEST_LR = 1e-2


def true_loss(n, d):
    t = TRUTH
    return t["E"] + t["A"] / np.asarray(n, float) ** t["alpha"] + t["B"] / np.asarray(d, float) ** t["beta"]


def lr_penalty(lr):
    return 1.0 + 0.05 * np.log(np.asarray(lr, float) / BEST_LR) ** 2


def decoder_runs(sizes=SIZES, budgets=BUDGETS, lrs=LRS, seeds=(0, 1), name="valid") -> pd.DataFrame:
    """A decoder grid with an lr axis, a token-budget axis and seeds; seeds differ by ±0.1% so
    that their mean is the law's value exactly, and every lr but BEST_LR is worse."""
    rows = []
    for k, (n, d, lr, seed) in enumerate(itertools.product(sizes, budgets, lrs, seeds)):
        loss = float(true_loss(n, d) * lr_penalty(lr) * (1 + (1e-3 if seed == 0 else -1e-3)))
        rows.append({"run_id": f"r{k:04d}", "label": f"n{n:.0e}", "seed": seed, "status": "done",
                     "n_params": int(n * 1.5), "n_params_nonemb": int(n), "model.d_model": int(np.sqrt(n)),
                     "train.lr": lr, "train.steps": int(d / 1000), "steps": int(d / 1000), "tokens": d,
                     "flops": 6.5 * n * d, "c_6nd": 6.0 * n * d, f"loss_{name}": loss, f"bayes_{name}": TRUTH["E"],
                     "loss": loss, "bayes_loss": TRUTH["E"], "wall_time": 10.0 + k, "tokens_per_s": d / (10.0 + k)})
    return pd.DataFrame(rows)


def curves_for(runs: pd.DataFrame, eval_set: str = "valid", points: int = 6) -> pd.DataFrame:
    rows = []
    for r in runs.to_dict("records"):
        for t in np.geomspace(r["tokens"] / 50, r["tokens"], points):
            rows.append({"run_id": r["run_id"], "step": int(t / 1000), "tokens": float(t),
                         "flops": 6.5 * r["n_params_nonemb"] * t, "eval_set": eval_set,
                         "loss": float(true_loss(r["n_params_nonemb"], t) * lr_penalty(r["train.lr"]))})
    return pd.DataFrame(rows)


def write_store(root: Path, runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> Store:
    store = Store(root)
    atomic_write_parquet(root / "runs.parquet", runs)
    atomic_write_parquet(root / "curves.parquet", curves if curves is not None else
                         pd.DataFrame(columns=["run_id", "step", "tokens", "flops", "eval_set", "loss"]))
    return store


def decoder_spec(name="tiny", description="tiny decoder study"):
    return spec_from_dict({"study": {"name": name, "family": "decoder", "description": description},
                           "data": {"source": "zipf_facts"},
                           "model": {"shapes": [{"d_model": 8, "n_layers": 1, "n_heads": 2}]},
                           "train": {"steps": 10, "batch_size": 2, "seq_len": 8}})


@pytest.fixture
def decoder_store(tmp_path):
    runs = decoder_runs(budgets=BUDGETS[:1], lrs=[BEST_LR])
    return write_store(tmp_path / "tiny", runs, curves_for(runs))


def encdec_runs(eval_set="valid", bleu=True) -> pd.DataFrame:
    """A 3 x 3 encoder x decoder width grid from a known L(Ne, Nd), and BLEU = C·exp(k·CE)."""
    rows = []
    for k, (ne, nd) in enumerate(itertools.product([2e3, 6e3, 2e4], [2e3, 6e3, 2e4])):
        loss = (0.8 * (6e3 / ne) ** 0.15 * (6e3 / nd) ** 0.3 + 1.2) * (1 + 1e-3 * ((-1) ** k))
        row = {"run_id": f"e{k:03d}", "label": f"E{ne:.0e}-D{nd:.0e}", "seed": 0, "status": "done",
               "n_params": int(ne + nd + 4000), "n_params_nonemb": int(ne + nd), "n_params_enc": int(ne),
               "n_params_dec": int(nd), "tokens": 1e6, "flops": 6 * (ne + nd) * 1e6, f"loss_{eval_set}": loss,
               "loss": loss, "wall_time": 5.0, "tokens_per_s": 2e5}
        if bleu:
            row[f"bleu_{eval_set}"] = 80.0 * np.exp(-0.9 * loss)
        rows.append(row)
    return pd.DataFrame(rows)


def encdec_spec(name="tiny-encdec"):
    return spec_from_dict({"study": {"name": name, "family": "encdec"}, "data": {"source": "transduction"},
                           "model": {"shapes": [{"enc_d_model": 16, "d_model": 16}]},
                           "train": {"steps": 10, "batch_size": 2}})


def cpt_runs() -> pd.DataFrame:
    """Base runs at 2 sizes and CPT runs over 2 budgets x 4 domain shares from known loss surfaces."""
    rows = []
    sizes, budgets, shares = [2e3, 8e3, 3.2e4], [1e5, 4e5], [0.0, 0.3, 0.6, 1.0]
    for i, n in enumerate(sizes):
        rows.append({"run_id": f"b{i}", "label": f"n{n:.0e}", "seed": 0, "status": "done", "parent": "",
                     "n_params": int(n * 1.3), "n_params_nonemb": int(n), "extra.role": "base", "tokens": 2e6,
                     "flops": 6 * n * 2e6, "loss_general_valid": 2.2 + 20 / n ** 0.3,
                     "loss_domain_valid": 2.6 + 20 / n ** 0.3, "wall_time": 1.0, "tokens_per_s": 1e5})
    for k, (i, d, r) in enumerate(itertools.product(range(len(sizes)), budgets, shares)):
        n = sizes[i]
        dom = 1.9 + 20 / n ** 0.3 + 40 * (1.05 - r) ** 0.8 / d ** 0.3 + 0.02 / (r + 0.1) ** 0.5
        gen = 2.15 + 20 / n ** 0.3 + 0.3 * r ** 1.5 / (1 + d / 1e6)
        rows.append({"run_id": f"c{k:03d}", "label": f"n{n:.0e}", "seed": 1000, "status": "done", "parent": f"b{i}",
                     "n_params": int(n * 1.3), "n_params_nonemb": int(n), "extra.role": "cpt",
                     "extra.base_seed": 0, "extra.N": n, "extra.cpt_tokens": d, "extra.domain_share": r,
                     "extra.general_share": 1 - r, "extra.domain_tokens": r * d, "tokens": d, "flops": 6 * n * d,
                     "loss_general_valid": gen, "loss_domain_valid": dom, "wall_time": 1.0, "tokens_per_s": 1e5})
    return pd.DataFrame(rows)


def cpt_spec(name="tiny-cpt"):
    zipf = {"n_symbols": 16, "n_keys": 40}
    return spec_from_dict({
        "study": {"name": name, "family": "cpt"},
        "data": {"source": "zipf_facts", "options": zipf, "eval_tokens": 1260},
        "model": {"shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}]},
        "train": {"steps": 40, "batch_size": 8, "seq_len": 21, "lr": 1e-2, "eval_points": 3},
        "cpt": {"domain": {"kind": "zipf_facts", "options": {**zipf, "world_seed": 7}},
                "domain_shares": [0.0, 0.3, 0.6, 1.0], "tokens": [1e5, 4e5], "lr": 5e-3}})
