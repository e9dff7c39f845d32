"""Sensitivity table (the (Mis)Fitting checklist), identifiability warnings, allocation band plot."""

import numpy as np
import pandas as pd
import pytest

from scaling.laws import get_law
from scaling.laws.validation import collinear_inputs
from scaling.laws.identifiability import identifiability_warnings, isoflop_flatness
from scaling.laws.sensitivity import COLUMNS, answers, sensitivity, sensitivity_json, spread


def _study(seed=0, noise=0.003):
    """Runs with checkpoints (run_id, step), N with and without embeddings, exact FLOPs."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, N in enumerate(np.geomspace(1e7, 3e9, 8)):
        for step in (1, 2, 3, 4):
            D = N * 5.0 * step
            rows.append({"run_id": f"r{i}", "step": step, "N": N, "N_emb": N * 1.1, "D": D, "flops": 6.6 * N * D,
                         "loss": (1.7 + 400 / N**0.34 + 410 / D**0.28) * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table():
    df = _study()
    return df, sensitivity(get_law("chinchilla"), df, ["N", "D"], "loss", target_compute=1e23, n_alt="N_emb",
                           flops="flops", run="run_id", step="step")


def test_sensitivity_rows_cover_every_axis(table):
    df, t = table
    assert set(t.axis) == {"form", "objective", "init", "counting", "points", "range"}
    assert t.error.isna().all(), t.error.dropna().tolist()
    base = get_law("chinchilla").fit(df, ["N", "D"], "loss")
    row = t.iloc[0]
    assert row["choice"] == "as given"
    for k, v in base.params_.items():
        assert row["params"][k] == pytest.approx(v, rel=1e-6)
    ans = answers(base, 1e23)
    assert row["a"] == pytest.approx(0.28 / 0.62, abs=0.03)  # truth beta / (alpha + beta)
    assert row["tokens_per_param"] == pytest.approx(ans["tokens_per_param"], rel=1e-9)
    tied = t[t.choice == "alpha = beta"].iloc[0]
    assert tied["params"]["alpha"] == tied["params"]["beta"] and tied["a"] == pytest.approx(0.5)
    assert t[t.choice == "drop 5 highest loss"].n_points.iloc[0] == len(df) - 5
    assert t[t.choice == "drop early checkpoints"].n_points.iloc[0] == len(df) // 2
    # Exact FLOPs are 6.6 N D: the same C buys N_opt(6 C / 6.6), D = C / (6.6 N).
    flop = t[t.axis == "counting"].set_index("choice")
    k_row = flop.loc[[c for c in flop.index if c.startswith("C = flops")][0]]
    n6, _ = base.optimal_allocation(1e23 * 6 / 6.6)
    assert k_row["tokens_per_param"] == pytest.approx(1e23 / (6.6 * float(n6) ** 2), rel=1e-6)


def test_sensitivity_json_contract_and_spread(table):
    _, t = table
    out = sensitivity_json(t)
    assert set(out) == {"sensitivity", "target_compute"} and out["target_compute"] == 1e23
    assert all(list(r) == COLUMNS for r in out["sensitivity"])
    s = spread(t)
    v = pd.to_numeric(t.tokens_per_param)
    assert s["tokens_per_param"]["min"] == v.min() and s["tokens_per_param"]["max"] == v.max()


def test_a_fit_with_as_many_points_as_free_parameters_is_warned_of():
    """3 points, 3 free parameters: the fit interpolates; with one fixed, 3 points leave one degree."""
    N = np.array([1e6, 4e6, 8e6])
    df = pd.DataFrame({"N": N, "loss": 1.7 + (4e5 / N) ** 0.3})
    warned = [w for w in identifiability_warnings(get_law("power").fit(df, ["N"], "loss")) if "free parameters" in w]
    assert warned == ["power: 3 points for 3 free parameters: the fit passes through every point, so its residuals "
                      "say nothing about the noise and its intervals mean nothing; add runs (or fix a parameter "
                      "with --fix)"]
    fixed = get_law("power", fixed={"L_inf": 1.7}).fit(df, ["N"], "loss")
    assert not any("free parameters" in w for w in identifiability_warnings(fixed))


def test_identifiability_warnings():
    # D = 20 N exactly: the N and D terms are two power laws of one variable, so no fit can tell
    # them apart. Which of the equivalent optima the fit and its replicates land in is an accident
    # of the machine (bootstrap r(alpha, beta) was 0.972 on one, -0.891 on another), so the warning
    # comes from the design itself.
    rng = np.random.default_rng(0)
    N = np.geomspace(1e7, 1e10, 30)
    y = (1.7 + 400 / N**0.34 + 410 / (20 * N) ** 0.28) * np.exp(rng.normal(0, 0.003, 30))
    col = get_law("chinchilla").fit(pd.DataFrame({"N": N, "D": 20 * N, "loss": y}), ["N", "D"], "loss")
    assert col.x_collinear_ == [("N", "D")]
    assert any("inputs N and D move together" in w for w in identifiability_warnings(col))
    # D a power of N (D = 3 N^1.2) is the same trap; one run off the line is not
    assert collinear_inputs(np.stack([N, 3 * N**1.2], 1), ["N", "D"]) == [("N", "D")]
    off = np.stack([N, 20 * N], 1)
    off[5, 1] *= 2
    assert collinear_inputs(off, ["N", "D"]) == []
    # the replicate rule: exponents moving together across replicates are flagged, independent ones not
    boot = rng.normal(0.3, 0.02, 60)
    col.boot_params_ = pd.DataFrame({"alpha": boot, "beta": boot + rng.normal(0, 0.002, 60)})
    assert any("exponents alpha and beta are correlated" in w for w in identifiability_warnings(col))
    col.boot_params_ = pd.DataFrame({"alpha": boot, "beta": rng.normal(0.3, 0.02, 60)})
    assert not any("correlated" in w for w in identifiability_warnings(col))
    # No irreducible term in the data: E runs to its lower bound.
    x = np.geomspace(1e3, 1e6, 12)
    D = x * np.exp(rng.uniform(0, 3, 12))
    y = (300 / x**0.4 + 200 / D**0.3) * np.exp(rng.normal(0, 0.003, 12))
    at = get_law("chinchilla").fit(pd.DataFrame({"N": x, "D": D, "loss": y}), ["N", "D"], "loss")
    assert at.at_bounds_ == ["E"]
    assert any("parameter E" in w and "at its bound" in w for w in identifiability_warnings(at))
    good = get_law("chinchilla").fit(_study(), ["N", "D"], "loss").bootstrap(60)
    assert identifiability_warnings(good) == []


def test_isoflop_flatness():
    u = np.linspace(-2, 2, 9)
    rng = np.random.default_rng(0)
    curved = isoflop_flatness(np.exp(u + 20), 3.0 + 0.05 * u**2 + rng.normal(0, 0.002, 9))
    flat = isoflop_flatness(np.exp(u + 20), 3.0 + 0.0005 * u**2 + rng.normal(0, 0.01, 9))
    assert not curved["flat"] and curved["curvature"] == pytest.approx(0.05, abs=0.005)
    assert flat["flat"]


def test_allocation_band_from_bootstrap_and_profile():
    from scaling.plots.allocation import allocation_band, plot_allocation

    df = _study()
    law = get_law("chinchilla").fit(df, ["N", "D"], "loss").bootstrap(100)
    C = np.array([1e20, 1e22])
    b, p = allocation_band(law, C, "bootstrap"), allocation_band(law, C, "profile")
    for band in (b, p):
        assert (band.N_lo < band.N_opt).all() and (band.N_opt < band.N_hi).all()
        assert np.allclose(band.tpp, C / (6 * band.N_opt**2))
    assert np.allclose(b.N_opt, p.N_opt)
    ratio = (p.N_hi / p.N_lo) / (b.N_hi / b.N_lo)
    assert ((0.2 < ratio) & (ratio < 5)).all()
    fig = plot_allocation(law, 1e19, 1e23, n=4, data_max_compute=float((6 * df.N * df.D).max()))
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
