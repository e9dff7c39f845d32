"""Compute-optimal frontier on curves generated from a known Chinchilla law."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError, FitError
from scaling.laws.frontier import ComputeFrontier

E, A, B, AL, BE = 1.8, 480.0, 2100.0, 0.35, 0.37


def curves() -> pd.DataFrame:
    rows = []
    for i, n in enumerate(np.logspace(7, 10, 19)):
        d = np.logspace(7, 12, 60)
        rows.append(pd.DataFrame({"run_id": f"r{i}", "flops": 6 * n * d, "loss": E + A / n**AL + B / d**BE, "n_params": n}))
    return pd.concat(rows, ignore_index=True)


def test_frontier_recovers_allocation_exponent():
    fr = ComputeFrontier(n_grid=300).fit(curves())
    # True N_opt ∝ C^(beta / (alpha + beta)) for the law the curves come from.
    assert fr.exponent_ == pytest.approx(BE / (AL + BE), abs=0.005)
    lo, hi = fr.exponent_ci_
    assert lo < fr.exponent_ < hi
    G = (AL * A / (BE * B)) ** (1 / (AL + BE))
    C = 1e20
    n_true = G * (C / 6) ** (BE / (AL + BE))
    assert np.log(fr.predict_n_opt(C)) == pytest.approx(np.log(n_true), abs=0.25)
    env = fr.envelope_
    assert (np.diff(env["loss"]) <= 1e-12).all()  # the envelope only goes down with compute
    assert fr.winners_["n_params"].is_monotonic_increasing
    assert fr.loss_law_ is not None and fr.loss_law_.r2_ > 0.99


def test_sizes_from_a_mapping():
    df = curves()
    sizes = df.groupby("run_id")["n_params"].first()
    a = ComputeFrontier(fit_loss=False).fit(df)
    b = ComputeFrontier(fit_loss=False).fit(df.drop(columns="n_params"), sizes=sizes)
    assert b.exponent_ == a.exponent_
    with pytest.raises(DataError, match=r"no size given for run\(s\) \['r0'\]"):
        ComputeFrontier().fit(df, sizes=sizes.drop("r0"))


def test_frontier_errors():
    df = curves()
    with pytest.raises(DataError, match="not found"):
        ComputeFrontier().fit(df, flops="C")
    one = df[df["run_id"] == "r0"]
    with pytest.raises(FitError, match="at least 2 runs"):
        ComputeFrontier().fit(one)
    bad = df.copy()
    bad.loc[0, "n_params"] = 5.0
    with pytest.raises(DataError, match="several 'n_params' values"):
        ComputeFrontier().fit(bad)
