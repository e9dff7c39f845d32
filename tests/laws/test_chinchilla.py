"""Chinchilla law on Besiroglu et al.'s replication data: the published Hoffmann-recipe fit."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from scaling.laws import ChinchillaLaw, Law, get_law
from scaling.laws.cli_support import fit_result_json


def test_hoffmann_recipe_reproduces_published_fit(hoffmann_fit):
    law = hoffmann_fit
    p = law.params_
    assert p["A"] == pytest.approx(477.8, rel=2e-3)
    assert p["B"] == pytest.approx(2143.9, rel=2e-3)
    assert p["E"] == pytest.approx(1.8172, abs=2e-4)
    assert p["alpha"] == pytest.approx(0.3473, abs=2e-4)
    assert p["beta"] == pytest.approx(0.3672, abs=2e-4)
    assert law.objective_ <= 0.0010183
    assert law.converged_
    # The default solver is variable projection (its exponent grid); the 4,500-start grid engine's
    # counts are checked in tests/laws/test_varpro.py.
    assert law.solver_ == "varpro" and law.n_starts_ == 17 * 17
    assert 1 <= law.n_starts_best_ < law.n_starts_
    assert law.n_points_ == 240
    assert law.at_bounds_ == []


def test_objective_is_sum_of_huber_on_lse_residuals(hoffmann_fit, chinchilla_df):
    from scipy.special import huber

    p = hoffmann_fit.params_
    N, D, y = (chinchilla_df[c].to_numpy() for c in ("N", "D", "loss"))
    pred = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    assert np.sum(huber(1e-3, np.log(pred) - np.log(y))) == pytest.approx(hoffmann_fit.objective_, rel=1e-9)
    np.testing.assert_allclose(hoffmann_fit.predict(chinchilla_df), pred, rtol=1e-12)
    assert hoffmann_fit.score(chinchilla_df) == pytest.approx(hoffmann_fit.r2_, rel=1e-12)


def test_optimal_allocation_minimises_loss_on_the_budget(hoffmann_fit):
    p = hoffmann_fit.params_
    C = 5.76e23
    n_opt, d_opt = hoffmann_fit.optimal_allocation(C)
    assert 6 * n_opt * d_opt == pytest.approx(C, rel=1e-12)

    def loss(logn):
        n = np.exp(logn)
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / (C / (6 * n)) ** p["beta"]

    ref = minimize_scalar(loss, bounds=(10, 40), method="bounded", options={"xatol": 1e-10})
    assert np.log(n_opt) == pytest.approx(ref.x, abs=1e-5)
    ex = hoffmann_fit.allocation_exponents()
    assert ex["a"] + ex["b"] == pytest.approx(1.0)
    assert ex["a"] == pytest.approx(0.3672 / (0.3473 + 0.3672), abs=1e-3)


def test_bootstrap_intervals_overlap_published(hoffmann_fit):
    law = ChinchillaLaw.from_json(hoffmann_fit.to_json())
    law._F, law._t = hoffmann_fit._F, hoffmann_fit._t  # reuse the training data, skip a refit
    law.bootstrap(1000, seed=0)
    published = {"E": (1.769, 1.871), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}
    for k, (lo, hi) in published.items():
        a, b = law.ci_[k]
        assert a < hi and b > lo, (k, law.ci_[k])
        # Same data, same resampling scheme: the intervals should nearly coincide.
        assert a == pytest.approx(lo, abs=0.01) and b == pytest.approx(hi, abs=0.01)
    assert law.boot_converged_ > 0.99
    band = law.optimal_allocation_ci([1e21, 1e24])
    assert (band["N_lo"] < band["N_opt"]).all() and (band["N_opt"] < band["N_hi"]).all()
    iv = law.predict_interval(pd.DataFrame({"N": [1e9, 1e12], "D": [2e10, 2e13]}), kind="confidence")
    pi = law.predict_interval(pd.DataFrame({"N": [1e9, 1e12], "D": [2e10, 2e13]}), kind="prediction")
    assert (iv["lo"] < iv["pred"]).all() and (iv["pred"] < iv["hi"]).all()
    assert ((pi["hi"] - pi["lo"]) > (iv["hi"] - iv["lo"])).all()
    # Extrapolating 1000x in N and D is less certain than interpolating.
    width = (iv["hi"] - iv["lo"]) / iv["pred"]
    assert width[1] > width[0]


def test_json_round_trip_and_cli_object(hoffmann_fit, chinchilla_df, tmp_path):
    hoffmann_fit.save(tmp_path / "fit.json")
    back = Law.load(tmp_path / "fit.json")
    assert isinstance(back, ChinchillaLaw)
    assert back.params_ == hoffmann_fit.params_
    np.testing.assert_allclose(back.predict(chinchilla_df), hoffmann_fit.predict(chinchilla_df), rtol=1e-14)
    obj = fit_result_json(hoffmann_fit)
    assert list(obj) == ["law", "params", "ci95", "objective", "converged", "n_points", "holdout"]
    assert obj["law"] == "chinchilla" and obj["n_points"] == 240
    json.dumps(obj)


def test_holdout_largest_model_extrapolation(chinchilla_df):
    law = get_law("chinchilla").fit(chinchilla_df, x=["N", "D"], y="loss", holdout="N>1e10")
    h = law.holdout_
    assert h["n_test"] == int((chinchilla_df["N"] > 1e10).sum()) and h["n_train"] + h["n_test"] == 240
    assert len(h["rel_error"]) == h["n_test"]
    # Measured reference: fitted below 10B parameters, the 6 larger runs are predicted within ~2-3%.
    assert h["n_test"] == 6
    assert h["mean_abs_rel_error"] == pytest.approx(0.02107, abs=1e-3)
    assert h["max_abs_rel_error"] == pytest.approx(0.03067, abs=1e-3)
    assert law.params_["alpha"] == pytest.approx(0.3238, abs=2e-3)


def test_engine_matches_scipy_from_single_starts(chinchilla_df):
    """Same objective and exact gradient: batched engine and scipy L-BFGS-B agree start by start."""
    import torch
    from scipy.optimize import minimize

    from scaling.laws.engine import minimize_batched
    from scaling.laws.objective import make_objective

    law = get_law("chinchilla")
    X, y = law._design(chinchilla_df, ["N", "D"], "loss")
    fg = make_objective(law.forward_vjp, torch.as_tensor(np.log(X)), torch.as_tensor(np.log(y)))
    lo, hi = law.bounds()
    starts = np.array([[0.5, 5.0, 10.0, 0.5, 0.5], [1.0, 10.0, 5.0, 0.5, 0.5], [0.0, 5.0, 5.0, 0.3, 0.3]])
    res = minimize_batched(fg, starts, lo, hi)

    def f_and_g(p):
        f, g = fg(torch.as_tensor(p[None]), torch.arange(1))
        return float(f[0]), g[0].numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny per-call tensors: OpenMP start-up would dominate scipy's loop
    try:
        refs = [
            minimize(f_and_g, s, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)), options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
            for s in starts
        ]
    finally:
        torch.set_num_threads(threads)
    for i, (ref, th, f) in enumerate(zip(refs, res.theta, res.fun)):
        assert ref.success
        # Same minimum from the same start (the global one from starts 0 and 2, a flat local one
        # from start 1); the engine is never worse.
        assert f <= ref.fun * (1 + 1e-9)
        assert f == pytest.approx(ref.fun, rel=1e-6)
        if i != 1:
            np.testing.assert_allclose(th, ref.x, atol=2e-3)
    assert res.converged.all()
    assert res.fun[0] == pytest.approx(0.0010182740178, rel=1e-9) and res.fun[1] > 0.011
