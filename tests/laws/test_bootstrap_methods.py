"""Residual bootstrap: with a handful of points it still pins the parameters down and covers the truth."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import FitError
from scaling.laws import get_law


def _data(seed=0, n=7, noise=0.004):
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e3, 1e5, n)
    y = (1.4 + (200 / N) ** 0.6) * np.exp(rng.normal(0, noise, n))
    return pd.DataFrame({"N": N, "loss": y})


def test_residual_bootstrap_covers_truth_and_is_finite():
    covered = 0
    for seed in range(10):
        law = get_law("power").fit(_data(seed), x=["N"], y="loss").bootstrap(200, seed=seed, method="residual")
        lo, hi = law.ci_["L_inf"]
        assert law.boot_method_ == "residual"
        assert 1.2 < lo <= law.params_["L_inf"] <= hi < 1.6  # no degenerate replicate drags the interval to 0
        covered += lo <= 1.4 <= hi
    assert covered >= 8  # nominal 95%; 10 trials


def test_pairs_is_default_and_unknown_method_is_an_error():
    law = get_law("power").fit(_data(), x=["N"], y="loss").bootstrap(20, seed=0)
    assert law.boot_method_ == "pairs"
    with pytest.raises(FitError, match="'pairs', 'residual' or 'parametric'"):
        law.bootstrap(20, method="wild")


def test_replicate_noise_is_the_pooled_within_group_sd():
    """By hand: groups (N=1) log y = ±0.1 and (N=2) 0.2, 0.0, 0.1 give squared deviations 0.02 + 0.02
    over 5 - 2 = 3 degrees of freedom; the single run at N=3 adds nothing."""
    from scaling.errors import DataError
    from scaling.laws.validation import replicate_noise

    df = pd.DataFrame({"N": [1, 1, 2, 2, 2, 3], "loss": np.exp([0.1, -0.1, 0.2, 0.0, 0.1, 5.0])})
    sigma, dof = replicate_noise(df, ["N"], "loss")
    assert dof == 3 and sigma == pytest.approx(np.sqrt(0.04 / 3), rel=1e-12)
    lin = pd.DataFrame({"N": [1, 1, 2, 2], "loss": [1.0, 3.0, 2.0, 2.0]})
    assert replicate_noise(lin, ["N"], "loss", scale="linear") == (pytest.approx(np.sqrt(2.0 / 2)), 2)
    with pytest.raises(DataError, match="no two rows share their 'N'"):
        replicate_noise(df[df.N != 2].drop_duplicates("N"), ["N"], "loss")


def test_replicate_noise_estimates_the_true_noise():
    """6 sizes x 4 seeds (18 degrees of freedom), 200 data sets at a known sd of 0.005 in log loss:
    the root mean square of the estimates is the truth (s^2 is unbiased; measured 0.00497), and
    their spread is that of a chi distribution, about 1 / sqrt(2 x 18) = 0.167 (measured 0.164)."""
    from scaling.laws.validation import replicate_noise

    rng = np.random.default_rng(1)
    N = np.repeat(np.geomspace(2e3, 2e5, 6), 4)
    est = np.array([replicate_noise(pd.DataFrame({"N": N, "loss": 2 * np.exp(rng.normal(0, 0.005, len(N)))}),
                                    ["N"], "loss")[0] for _ in range(200)])
    assert np.sqrt(np.mean(est**2)) == pytest.approx(0.005, rel=0.03)  # about 2.5 standard errors
    assert np.std(est) / 0.005 == pytest.approx(1 / np.sqrt(36), abs=0.03)
