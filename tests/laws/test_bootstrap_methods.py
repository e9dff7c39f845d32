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
