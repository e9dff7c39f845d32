"""Chinchilla Approach 2 (IsoFLOP profiles) on Llama 3's points and on data with a known optimum."""

import numpy as np
import pandas as pd
import pytest

from scaling.datasets import load_dataset
from scaling.errors import FitError
from scaling.laws.isoflop import IsoFlopLaw, vertex


@pytest.fixture(scope="module")
def llama3():
    # Two renderings of the same runs (raw loss and exp of it); the vertices are the same.
    df = load_dataset("llama3_isoflops")
    return df[df.condition == "raw_loss"]


def test_llama3_tokens_law_matches_paper(llama3):
    # Llama 3 paper (Dubey et al. 2024, sec. 3.2.1): N*(C) = A C^alpha tokens, (alpha, A) = (0.53, 0.29).
    law = IsoFlopLaw(n_bootstrap=200, seed=0).fit(llama3, n="params", d="tokens", budget="budget", y="loss")
    assert law.params_["b"] == pytest.approx(0.53, abs=0.02)
    assert law.params_["k_d"] == pytest.approx(0.29, rel=0.10)
    assert law.budgets_.interior.all() and len(law.budgets_) == 10
    # Every point has 6 N D = C, so the two profiles must give a + b = 1.
    assert law.params_["a"] + law.params_["b"] == pytest.approx(1.0, abs=0.02)
    lo, hi = law.ci_["b"]
    assert lo < law.params_["b"] < hi and hi - lo < 0.06  # 0.040 measured
    assert law.n_boot_excluded_ == 0
    assert (law.budgets_.d_lo <= law.budgets_.d_opt).all() and (law.budgets_.d_opt <= law.budgets_.d_hi).all()


def _synthetic(budgets, offsets=None, n_pts=9, a=0.5, k_n=0.1):
    """Exact parabolas in log N around N_opt = k_n C^a (no noise); D = C / (6 N)."""
    rows = []
    for j, C in enumerate(budgets):
        centre = np.log(k_n * C**a) + (0.0 if offsets is None else offsets[j])
        lN = centre + np.linspace(-1.5, 1.5, n_pts)
        lopt = np.log(k_n * C**a)
        rows.append(pd.DataFrame({"N": np.exp(lN), "D": C / (6 * np.exp(lN)), "C": C,
                                  "loss": 2.0 + 10 * C**-0.05 + 0.1 * (lN - lopt) ** 2}))
    return pd.concat(rows, ignore_index=True)


def test_recovers_known_exponents_and_flags_exterior_vertices():
    budgets = [1e18, 1e19, 1e20, 1e21]
    df = _synthetic(budgets, offsets=[0, 0, 0, 3.0])  # the last budget's optimum lies below its samples
    law = IsoFlopLaw().fit(df, n="N", d="D", budget="C", y="loss")
    assert law.budgets_.interior.tolist() == [True, True, True, False]
    assert "outside the sampled range" in law.budgets_.reason.iloc[-1]
    assert law.params_["a"] == pytest.approx(0.5, abs=1e-9)
    assert law.params_["k_n"] == pytest.approx(0.1, rel=1e-7)
    assert law.params_["b"] == pytest.approx(0.5, abs=1e-9)
    assert law.params_["k_d"] == pytest.approx(1 / 0.6, rel=1e-7)  # D_opt = C / (6 k_n C^a)
    assert law.tokens_per_param(1e22) == pytest.approx((1e22 / 0.6) ** 1 / (0.1 * 1e22**0.5) ** 2 * 0.1, rel=1e-6)
    js = law.budgets_json()
    assert [b["interior"] for b in js] == [True, True, True, False]


def test_refuses_with_fewer_than_three_interior_budgets():
    df = _synthetic([1e18, 1e19, 1e20], offsets=[0, 0, -3.0])
    with pytest.raises(FitError, match=r"only 2 of 3 budget\(s\).*need 3"):
        IsoFlopLaw().fit(df, n="N", d="D", budget="C", y="loss")


def test_vertex_rejects_concave_profiles():
    x = np.linspace(0, 1, 5)
    assert vertex(x, -(x - 0.5) ** 2)[2:] == (False, "curvature not positive (no minimum)")
    v, yv, ok, _ = vertex(x, (x - 0.3) ** 2 + 1)
    assert ok and v == pytest.approx(0.3) and yv == pytest.approx(1.0)
