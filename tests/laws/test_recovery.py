"""Parameter recovery: data generated from known parameters plus noise is fitted back."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scaling.laws import get_law

# Few examples, no shrinking: each example is a full multi-start fit.
FAST = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(
    l_inf=st.floats(1.0, 3.0),
    alpha=st.floats(0.2, 0.8),
    gap=st.floats(0.5, 3.0),  # reducible loss at the smallest x: sets x0
    seed=st.integers(0, 2**16),
)
def test_power_recovers_parameters(l_inf, alpha, gap, seed):
    rng = np.random.default_rng(seed)
    x = np.logspace(6, 12, 20)
    x0 = x[0] * gap ** (1 / alpha)
    y = (l_inf + (x0 / x) ** alpha) * np.exp(rng.normal(0, 0.002, len(x)))
    law = get_law("power", seed=seed).fit(pd.DataFrame({"x": x, "y": y}), x="x", y="y")
    assert law.converged_
    # Tolerances: 0.2% log-noise on 20 points spanning 6 decades.
    assert law.params_["L_inf"] == pytest.approx(l_inf, rel=0.03)
    assert law.params_["alpha"] == pytest.approx(alpha, rel=0.06)
    assert np.log(law.params_["x0"]) == pytest.approx(np.log(x0), abs=0.3)


@FAST
@given(
    E=st.floats(1.0, 2.5),
    alpha=st.floats(0.25, 0.5),
    beta=st.floats(0.25, 0.5),
    seed=st.integers(0, 2**16),
)
def test_chinchilla_recovers_parameters(E, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.logspace(7, 11, 7), 7)
    D = np.tile(np.logspace(8, 12.5, 7), 7)
    n0, d0 = 1e9, 1e10  # mid-grid sizes where the reducible terms are 0.5 and 0.4
    A, B = 0.5 * n0**alpha, 0.4 * d0**beta
    y = (E + A / N**alpha + B / D**beta) * np.exp(rng.normal(0, 0.002, len(N)))
    law = get_law("chinchilla", loss="mse").fit(pd.DataFrame({"N": N, "D": D, "y": y}), x=["N", "D"], y="y")
    assert law.converged_
    # Tolerances for 0.2% log-noise on a 7 x 7 grid: E trades off against small exponents.
    assert law.params_["E"] == pytest.approx(E, rel=0.05)
    assert law.params_["alpha"] == pytest.approx(alpha, abs=0.03)
    assert law.params_["beta"] == pytest.approx(beta, abs=0.03)
    # A and B trade off against the exponents; check the reducible terms mid-grid instead.
    assert law.params_["A"] / n0 ** law.params_["alpha"] == pytest.approx(0.5, rel=0.05)
    assert law.params_["B"] / d0 ** law.params_["beta"] == pytest.approx(0.4, rel=0.05)


def test_linear_scale_and_fixed_parameter():
    rng = np.random.default_rng(1)
    x = np.logspace(6, 11, 15)
    y = 2.0 + (1e8 / x) ** 0.4 + rng.normal(0, 0.002, len(x))
    df = pd.DataFrame({"x": x, "y": y})
    law = get_law("power", scale="linear", loss="mse", fixed={"L_inf": 2.0}).fit(df, x="x", y="y")
    assert law.params_["L_inf"] == 2.0
    assert law.params_["alpha"] == pytest.approx(0.4, abs=0.01)
    assert law.params_["x0"] == pytest.approx(1e8, rel=0.1)
    # R² on the linear scale equals 1 - SS_res / SS_tot of y itself.
    resid = y - law.predict(df)
    assert law.r2_ == pytest.approx(1 - np.sum(resid**2) / np.sum((y - y.mean()) ** 2), rel=1e-10)
