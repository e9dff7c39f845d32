"""Encoder-decoder law: parameter recovery, reference sizes, and the optimal split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaling.errors import FitError
from scaling.laws.base import Law
from scaling.laws.encdec import EncDecLaw
from scaling.laws.registry import get_law


def _data(alpha, pe, pd_, l_inf, noise=0.002, seed=0):
    rng = np.random.default_rng(seed)
    Ne = np.repeat(np.logspace(4, 6, 5), 5)
    Nd = np.tile(np.logspace(4, 6, 5), 5)
    ref = 1e5  # geometric mean of both grids
    y = (alpha * (ref / Ne) ** pe * (ref / Nd) ** pd_ + l_inf) * np.exp(rng.normal(0, noise, len(Ne)))
    return pd.DataFrame({"Ne": Ne, "Nd": Nd, "loss": y})


@pytest.mark.parametrize("alpha, pe, pd_, l_inf, seed", [(1.5, 0.3, 0.5, 0.4, 0), (0.8, 0.6, 0.2, 1.2, 1)])
def test_recovers_parameters(alpha, pe, pd_, l_inf, seed):
    law = EncDecLaw(loss="mse").fit(_data(alpha, pe, pd_, l_inf, seed=seed), x=["Ne", "Nd"], y="loss")
    assert law.converged_
    assert law.reference_ == pytest.approx({"Ne0": 1e5, "Nd0": 1e5})
    # 0.2% log-noise on a 5×5 grid spanning two decades per side.
    assert law.params_["alpha"] == pytest.approx(alpha, rel=0.03)
    assert law.params_["pe"] == pytest.approx(pe, abs=0.02)
    assert law.params_["pd"] == pytest.approx(pd_, abs=0.02)
    assert law.params_["L_inf"] == pytest.approx(l_inf, rel=0.03)


def test_exact_data_and_json_round_trip():
    df = _data(1.0, 0.4, 0.4, 0.5, noise=0.0)
    law = EncDecLaw(loss="mse").fit(df, x=["Ne", "Nd"], y="loss")
    assert law.predict(df) == pytest.approx(df["loss"].to_numpy(), rel=1e-5)
    again = Law.from_json(law.to_json())  # reference sizes travel in `reference`
    assert isinstance(again, EncDecLaw)
    assert again.predict(df) == pytest.approx(law.predict(df), rel=1e-12)
    assert law.constants is None and again.reference_ == law.reference_  # fit left the options alone
    # a file written before `reference` existed carries the sizes in options.constants
    old = law.to_json()
    old["options"]["constants"] = old.pop("reference")
    assert Law.from_json(old).predict(df) == pytest.approx(law.predict(df), rel=1e-12)
    assert get_law("encdec").name == "encdec"


def test_user_reference_sizes_change_alpha_only():
    df = _data(1.0, 0.3, 0.5, 0.5, noise=0.0)
    law = EncDecLaw(loss="mse", constants={"Ne0": 1e4, "Nd0": 1e6}).fit(df, x=["Ne", "Nd"], y="loss")
    assert law.reference_ == {"Ne0": 1e4, "Nd0": 1e6}
    # alpha·(1e4/Ne)^pe·(1e6/Nd)^pd equals 1·(1e5/Ne)^pe·(1e5/Nd)^pd: alpha = 10^(pe·1 - pd·1).
    assert law.params_["alpha"] == pytest.approx(10 ** (0.3 - 0.5), rel=1e-3)


def test_optimal_split_matches_grid_search():
    law = EncDecLaw(loss="mse").fit(_data(1.5, 0.3, 0.5, 0.4, noise=0.0), x=["Ne", "Nd"], y="loss")
    B = 2e5
    ne, nd = law.optimal_split(B)
    assert ne + nd == pytest.approx(B)
    assert ne / nd == pytest.approx(law.params_["pe"] / law.params_["pd"])
    grid = np.linspace(0.01, 0.99, 9801) * B
    pred = law.predict(np.stack([grid, B - grid], 1))
    assert grid[np.argmin(pred)] == pytest.approx(float(ne), rel=1e-3)
    assert float(ne) == pytest.approx(B * 0.3 / 0.8, rel=0.01)
    with pytest.raises(FitError, match="budget"):
        law.optimal_split(-1.0)
    with pytest.raises(FitError, match="not fitted"):
        EncDecLaw().optimal_split(1e5)


def test_too_few_points():
    with pytest.raises(FitError, match="at least 4"):
        EncDecLaw().fit(_data(1.0, 0.3, 0.3, 0.5).iloc[:3], x=["Ne", "Nd"], y="loss")


def test_replicate_floor_is_the_error_of_a_law_that_knows_each_shapes_mean():
    from scaling.laws.validation import replicate_floor

    df = pd.DataFrame({"ne": [1, 1, 2, 2, 2, 3], "nd": [5, 5, 5, 5, 5, 5],
                       "loss": [0.8, 1.2, 2.0, 2.5, 1.5, 7.0]})
    # shape (1, 5): mean 1.0, errors 0.2/0.8, 0.2/1.2; shape (2, 5): mean 2.0, errors 0, 0.5/2.5, 0.5/1.5;
    # shape (3, 5) has one run and no say
    floor, n = replicate_floor(df, ["ne", "nd"], "loss")
    assert n == 2 and floor == pytest.approx((0.25 + 1 / 6 + 0 + 0.2 + 1 / 3) / 5, rel=1e-12)
    assert replicate_floor(df.drop_duplicates(["ne", "nd"]), ["ne", "nd"], "loss")[1] == 0
    assert np.isnan(replicate_floor(df.drop_duplicates(["ne", "nd"]), ["ne", "nd"], "loss")[0])
