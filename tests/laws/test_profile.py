"""Profile-likelihood intervals: exact on a linear model, comparable with Epoch's bootstrap on
Chinchilla; cluster bootstrap; non-converged replicates excluded and counted."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import FitError
from scaling.laws import get_law
from scaling.laws.profile import lr_scale, profile_allocation

# Besiroglu et al. 2024, bootstrap 95% intervals on the same 240 points.
EPOCH_CI = {"E": (1.769, 1.871), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}


def test_profile_equals_wald_interval_on_a_log_linear_model():
    # With squared error, log L = alpha (log x0 - log x) is linear regression: the profile
    # interval of the slope is exactly slope -/+ sqrt(chi2_1) * sigma_hat / sqrt(Sxx).
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e7, 30)
    y = (1e2 / x) ** 0.3 * np.exp(rng.normal(0, 0.02, len(x)))
    law = get_law("power_noconst", loss="mse").fit(pd.DataFrame({"x": x, "y": y}), "x", "y").profile()
    lx, ly = np.log(x), np.log(y)
    slope, icpt = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + icpt)
    se = np.sqrt(resid @ resid / (len(x) - 2) / np.sum((lx - lx.mean()) ** 2))
    lo, hi = law.ci_["alpha"]
    assert law.ci_method_ == "profile"
    assert lo == pytest.approx(-slope - 1.959964 * se, abs=2e-5)
    assert hi == pytest.approx(-slope + 1.959964 * se, abs=2e-5)


def test_profile_on_epoch_chinchilla_is_the_same_order_as_their_bootstrap(chinchilla_df):
    # Measured: widths E 0.067, alpha 0.045, beta 0.042 against Epoch's 0.102, 0.056, 0.084. The
    # profile assumes the form is right and residuals are exchangeable, with the scale estimated
    # from the 39 of 240 residuals inside delta; the pairs bootstrap also carries leverage of the
    # few largest models and heavy tails, so it is wider, most for beta (the data-size term).
    law = get_law("chinchilla", init="hoffmann").fit(chinchilla_df, ["N", "D"], "loss").profile()
    for name, (elo, ehi) in EPOCH_CI.items():
        lo, hi = law.ci_[name]
        assert lo < law.params_[name] < hi
        ratio = (hi - lo) / (ehi - elo)
        assert 1 / 3 < ratio < 1.0, (name, lo, hi, ratio)
        assert elo < law.params_[name] < ehi
    assert not any(v["lo_open"] or v["hi_open"] for v in law.profile_.values())


def test_profile_allocation_is_consistent_and_brackets_the_bootstrap_centre(hoffmann_fit):
    C = 5.76e23
    out = profile_allocation(hoffmann_fit, C)
    n, d, tpp = out["N_opt"], out["D_opt"], out["tokens_per_param"]
    n_hat, d_hat = hoffmann_fit.optimal_allocation(C)
    assert n["value"] == pytest.approx(float(n_hat), rel=1e-9)
    assert n["lo"] < n["value"] < n["hi"] and tpp["lo"] < tpp["value"] < tpp["hi"]
    assert d["lo"] == pytest.approx(C / (6 * n["hi"]), rel=1e-12)
    assert tpp["hi"] == pytest.approx(C / (6 * n["lo"] ** 2), rel=1e-12)
    # Measured: N_opt 73.2B in (57.0B, 94.9B); about +-25% around the estimate.
    assert 0.6 < n["lo"] / n["value"] < 0.95 and 1.05 < n["hi"] / n["value"] < 1.6


def test_profile_refuses_log_mae():
    df = pd.DataFrame({"x": np.geomspace(1, 1e4, 12)})
    df["y"] = (50 / df.x) ** 0.5 * np.exp(np.random.default_rng(1).normal(0, 0.3, 12))
    assert lr_scale(get_law("power_noconst", loss="mse").fit(df, "x", "y")) > 0
    with pytest.raises(FitError, match="log-MAE"):
        get_law("power_noconst", loss="mae").fit(df, "x", "y").profile()


def _runs(seed=0, n_runs=12, n_ckpt=6):
    """Several checkpoints per run sharing one run-level offset (correlated within a run)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_runs):
        N = 1e3 * 2.0 ** r
        off = rng.normal(0, 0.03)
        for k in range(n_ckpt):
            rows.append({"run_id": f"r{r}", "N": N * 1.01 ** k, "loss": (1.5 + (300 / N) ** 0.5) * np.exp(off + rng.normal(0, 0.002))})
    return pd.DataFrame(rows)


def test_cluster_bootstrap_is_wider_than_pairs_for_correlated_checkpoints():
    df = _runs()
    law = get_law("power").fit(df, "N", "loss")
    pairs = law.bootstrap(200, seed=0).ci_["alpha"]
    clus = law.bootstrap(200, seed=0, cluster=df["run_id"]).ci_["alpha"]
    assert law.boot_info_["clustered"] and law.boot_info_["n_clusters"] == 12
    # Pairs treat 72 checkpoints as independent; there are 12 independent runs.
    assert (clus[1] - clus[0]) > 1.5 * (pairs[1] - pairs[0])
    with pytest.raises(FitError, match="2 clusters"):
        law.bootstrap(20, cluster=np.zeros(len(df)))


def test_non_converged_replicates_are_excluded_and_counted():
    df = _runs(n_ckpt=1)
    law = get_law("power").fit(df, "N", "loss")
    law.max_iter = 20  # most replicates stop before convergence (measured: 36 of 50)
    law.bootstrap(50, seed=0, starts=1)
    assert 10 < law.boot_n_excluded_ < 50
    with pytest.raises(FitError, match="converged"):
        law.max_iter = 5
        law.bootstrap(50, seed=0, starts=1)
    assert len(law.boot_params_) == 50 - law.boot_n_excluded_
    assert law.to_json()["bootstrap"]["n_excluded"] == law.boot_n_excluded_
    law.max_iter = 1000
    law.bootstrap(50, seed=0)
    assert law.boot_n_excluded_ == 0 and len(law.boot_params_) == 50


def test_a_fit_with_delta_auto_profiles_with_the_delta_it_used(chinchilla_df):
    """`--delta auto --ci profile` raised a TypeError (the profile read the option 'auto', not the
    fitted `delta_`). Its intervals are those of a fit given that delta as a number."""
    auto = get_law("chinchilla", delta="auto").fit(chinchilla_df, ["N", "D"], "loss")
    assert auto.delta == "auto" and auto.delta_ > 1e-3  # measured 0.0066 on these points
    fixed = get_law("chinchilla", delta=auto.delta_).fit(chinchilla_df, ["N", "D"], "loss")
    assert fixed.params_ == pytest.approx(auto.params_, rel=1e-6)
    auto.profile()
    fixed.profile()
    for name in ("E", "alpha", "beta"):
        assert auto.ci_[name] == pytest.approx(fixed.ci_[name], rel=1e-4), name
        assert auto.ci_[name][0] < auto.params_[name] < auto.ci_[name][1]
    out = profile_allocation(auto, 1e24)
    assert out["N_opt"]["lo"] < out["N_opt"]["value"] < out["N_opt"]["hi"]
