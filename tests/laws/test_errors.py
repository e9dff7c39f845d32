"""Bad input raises FitError/DataError naming the problem; the holdout grammar; the registry."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError, FitError, ScalingError
from scaling.laws import LAWS, get_law
from scaling.laws.validation import holdout_mask


@pytest.fixture
def small():
    x = np.logspace(6, 10, 8)
    return pd.DataFrame({"x": x, "y": 2 + (1e7 / x) ** 0.3, "g": [0, 0, 1, 1, 2, 2, 3, 3]})


def test_registry():
    assert {"power", "chinchilla"} <= set(LAWS)
    with pytest.raises(FitError, match="unknown law 'nope'.*chinchilla"):
        get_law("nope")


def test_unknown_column(small):
    with pytest.raises(DataError, match=r"\['loss'\] not found; available columns: \['x', 'y', 'g'\]"):
        get_law("power").fit(small, x="x", y="loss")


def test_nan(small):
    small.loc[3, "y"] = np.nan
    with pytest.raises(DataError, match=r"column 'y' has 1 NaN/inf value\(s\) \(rows \[3\]\)"):
        get_law("power").fit(small, x="x", y="y")


def test_one_input_at_a_single_value_is_named(small):
    small["x"] = 1e7  # every run at one size: any curve through that point fits
    with pytest.raises(FitError, match=r"power: input 'x' takes one value \(1e\+07\) in all 8 rows, so the law cannot "
                                       r"tell how 'y' depends on it; add runs at other values of 'x'"):
        get_law("power").fit(small, x="x", y="y")
    small.loc[0, "x"] = 2e7  # two values: fitted, as before (the CLI warns of parameters at their bounds)
    with pytest.warns(UserWarning):  # one y at x = 2e7 and seven at 1e7: the residuals dwarf the Huber delta
        assert get_law("power").fit(small, x="x", y="y").n_points_ == 8


def test_non_positive_under_log(small):
    small.loc[0, "x"] = 0.0
    with pytest.raises(DataError, match="column 'x' has 1 non-positive value.*takes its log"):
        get_law("power").fit(small, x="x", y="y")


def test_too_few_points(small):
    with pytest.raises(FitError, match="3 free parameters but only 2 point"):
        get_law("power").fit(small.iloc[:2], x="x", y="y")


def test_wrong_number_of_x(small):
    with pytest.raises(FitError, match="chinchilla law takes 2 x column"):
        get_law("chinchilla").fit(small, x=["x"], y="y")


def test_unknown_options(small):
    with pytest.raises(FitError, match="unknown loss 'l1'"):
        get_law("power", loss="l1").fit(small, x="x", y="y")
    with pytest.raises(FitError, match="unknown init 'grid'"):
        get_law("power", init="grid").fit(small, x="x", y="y")
    with pytest.raises(FitError, match="fixed parameter 'E' unknown"):
        get_law("power", fixed={"E": 1.0}).fit(small, x="x", y="y")


def test_not_fitted(small):
    with pytest.raises(FitError, match="not fitted yet"):
        get_law("power").predict(small)
    assert issubclass(FitError, ScalingError) and issubclass(DataError, ScalingError)


def test_holdout_grammar(small):
    m, info = holdout_mask(small, "largest:2", "x")
    assert m.tolist() == [False] * 6 + [True] * 2 and info["column"] == "x"
    m, _ = holdout_mask(small, "largest:2:g", "x")
    assert m.tolist() == [False] * 4 + [True] * 4
    m, _ = holdout_mask(small, 0.3, "x")  # ceil(0.3 * 8) = 3 rows -> the 3 largest x
    assert m.sum() == 3
    m, _ = holdout_mask(small, "frac:0.3:g", "x")  # whole groups: g=3 (2 rows) is too few, g>=2 has 4
    assert m.sum() == 4
    m, info = holdout_mask(small, "x>=1e9", "x")
    assert m.sum() == int((small["x"] >= 1e9).sum()) and info["threshold"] == 1e9
    for bad in ["biggest:2", "largest:x", "frac:1.5", "zz>3"]:
        with pytest.raises(FitError, match="holdout"):
            holdout_mask(small, bad, "x")


def test_holdout_leaving_too_few(small):
    with pytest.raises(FitError, match="leaves 2 training point"):
        get_law("power").fit(small, x="x", y="y", holdout="largest:6")


def test_holdout_and_leave_one_out_on_exact_data(small):
    law = get_law("power").fit(small, x="x", y="y", holdout="largest:2")
    assert law.holdout_["n_train"] == 6 and law.holdout_["n_test"] == 2
    assert law.holdout_["max_abs_rel_error"] < 1e-5  # noiseless data extrapolates exactly
    loo = law.leave_one_out(small, group="g")
    assert loo["g"].tolist() == [0, 1, 2, 3]
    assert (loo["n_test"] == 2).all() and (loo["max_abs_rel_error"] < 1e-5).all()
    assert np.allclose(loo["alpha"], 0.3, atol=1e-4)


def test_non_convergence_is_flagged(small):
    from scaling.laws import FitWarning

    with pytest.warns(FitWarning, match="did not converge"):
        law = get_law("power", max_iter=2).fit(small, x="x", y="y")
    assert law.converged_ is False
    with pytest.raises(FitError, match="did not converge"):
        get_law("power", max_iter=2, strict=True).fit(small, x="x", y="y")
