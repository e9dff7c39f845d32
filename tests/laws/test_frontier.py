"""Compute-optimal frontier on curves generated from a known Chinchilla law."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError, FitError
from scaling.laws.frontier import ComputeFrontier

E, A, B, AL, BE = 1.8, 480.0, 2100.0, 0.35, 0.37


HEAD = 5e7  # output-head weights: in the exact FLOPs, not in the laws' non-embedding N


def curves() -> pd.DataFrame:
    """Curves whose `flops` column is exact (head included) and whose N is non-embedding."""
    rows = []
    for i, n in enumerate(np.logspace(7, 10, 19)):
        d = np.logspace(7, 12, 60)
        rows.append(pd.DataFrame({"run_id": f"r{i}", "tokens": d, "flops": 6 * (n + HEAD) * d,
                                  "loss": E + A / n**AL + B / d**BE, "n_params": n}))
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
        ComputeFrontier(compute="flops").fit(df, flops="C")
    with pytest.raises(DataError, match="not found"):
        ComputeFrontier().fit(df.drop(columns="tokens"))
    with pytest.raises(FitError, match="compute='6nd'; expected one of 6ND, flops"):
        ComputeFrontier(compute="6nd").fit(df)
    one = df[df["run_id"] == "r0"]
    with pytest.raises(FitError, match="at least 2 runs"):
        ComputeFrontier().fit(one)
    bad = df.copy()
    bad.loc[0, "n_params"] = 5.0
    with pytest.raises(DataError, match="several 'n_params' values"):
        ComputeFrontier().fit(bad)


def test_frontier_and_chinchilla_allocation_share_the_6nd_convention():
    """The default frontier reads C = 6 N D off tokens and non-embedding N, as the Chinchilla
    allocation does; on the exact FLOPs (head included) it would place N_opt elsewhere."""
    from scaling.laws.chinchilla import ChinchillaLaw
    from scaling.schema import describe_compute

    df = curves()
    fr = ComputeFrontier(n_grid=300, fit_loss=False).fit(df)
    assert fr.compute_convention == ChinchillaLaw.compute_convention == "6ND"
    assert "non-embedding" in describe_compute(fr.compute_convention)
    C = np.array([1e19, 1e20])
    truth = {"E": E, "A": A, "B": B, "alpha": AL, "beta": BE}
    n_law, d_law = ChinchillaLaw().allocation_from(truth, C)  # of the law the curves come from
    assert 6 * n_law * d_law == pytest.approx(C)
    assert np.log(fr.predict_n_opt(C)) == pytest.approx(np.log(n_law), abs=0.25)
    exact = ComputeFrontier(n_grid=300, fit_loss=False, compute="flops").fit(df)
    assert exact.compute_convention == "flops"
    # the head's FLOPs shift small models' compute most: the exact-FLOPs exponent is off
    assert abs(exact.exponent_ - BE / (AL + BE)) > 0.02 > abs(fr.exponent_ - BE / (AL + BE))


def test_report_frontier_section_names_the_convention():
    from scaling.report.study import frontier_sections

    df = curves()
    runs = df.groupby("run_id", as_index=False).first()[["run_id", "n_params"]].rename(columns={"n_params": "n_params_nonemb"})
    runs["status"] = "done"
    (section,) = frontier_sections(df.drop(columns="n_params").assign(eval_set="valid"), runs)
    assert "C = 6·N·D (N non-embedding parameters, D training tokens)" in section.text
    assert section.figures


def test_the_exponent_interval_is_students_t_on_the_winners_it_used():
    """A frontier has few winners: its slope's interval takes Student's t with n - 2 degrees of
    freedom (as OLS does), not the normal's 1.96, which at 4 points would be 1.63 times too narrow."""
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    rows = []
    for i, n in enumerate(np.logspace(7, 9, 6)):
        d = np.logspace(7, 11, 40)
        loss = (E + A / n**AL + B / d**BE) * np.exp(rng.normal(0, 0.01))  # one offset per run
        rows.append(pd.DataFrame({"run_id": f"r{i}", "tokens": d, "loss": loss, "n_params": n}))
    fr = ComputeFrontier(fit_loss=False).fit(pd.concat(rows, ignore_index=True))
    used = fr.winners_[fr.winners_["used"]]
    assert 3 <= len(used) <= 5
    ols = sm.OLS(np.log(used["n_params"].to_numpy()), sm.add_constant(np.log(used["c_mid"].to_numpy()))).fit()
    assert fr.exponent_ == pytest.approx(ols.params[1], rel=1e-9)
    assert fr.exponent_ci_ == pytest.approx(tuple(ols.conf_int(0.05)[1]), rel=1e-9)
