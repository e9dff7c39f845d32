"""Flat directions: parameter combinations that no fitted prediction depends on, found from the
rank of the prediction Jacobian at the optimum, and named in the fit's warnings."""

import numpy as np
import pandas as pd
import pytest

from scaling.laws import get_law
from scaling.laws.base import Law
from scaling.laws.identifiability import FLAT_TOL, identifiability_warnings, prediction_jacobian, unpinned


def _two_budgets(seed: int = 0) -> pd.DataFrame:
    """Chinchilla runs at five sizes crossed with two token budgets."""
    N = np.repeat(np.geomspace(1e7, 1e9, 5), 2)
    D = np.tile([1e9, 4e9], 5)
    y = (1.7 + 400 / N**0.34 + 410 / D**0.28) * np.exp(np.random.default_rng(seed).normal(0, 0.002, 10))
    return pd.DataFrame({"N": N, "D": D, "loss": y})


def _valley(law, names: list[str], k: int) -> None:
    """Moving along the flat direction (in optimiser space) leaves every prediction unchanged to
    second order, and a step across it does not: the check names a real valley."""
    J, cols = prediction_jacobian(law)
    Jn = J / np.linalg.norm(J, axis=0)
    _, s, vt = np.linalg.svd(Jn, full_matrices=False)
    assert (s < FLAT_TOL * s[0]).sum() == k
    v = vt[-1] / np.linalg.norm(J, axis=0)  # back to optimiser units
    free = law._to_free(law.theta_)
    idx = [law.param_names.index(c) for c in cols]
    step = 1e-3 / np.abs(v).max()
    moved = free.copy()
    moved[idx] += step * v
    base = law._forward_np(law._from_free(free), law._Fn)
    along = law._forward_np(law._from_free(moved), law._Fn)
    across = free.copy()
    across[idx] += step * vt[0] / np.linalg.norm(J, axis=0)
    off = law._forward_np(law._from_free(across), law._Fn)
    assert np.abs(along - base).max() < 1e-5 * np.abs(off - base).max()
    assert {c for c, x in zip(cols, vt[-1]) if abs(x) >= 0.01} <= set(names)


def test_two_token_budgets_leave_E_B_and_beta_unpinned():
    # E + B / D^beta takes two values on two budgets: three parameters, one flat direction
    law = get_law("chinchilla").fit(_two_budgets(), ["N", "D"], "loss")
    assert law.converged_ and law.at_bounds_ == []
    assert unpinned(law) == (["E", "B", "beta"], 1)
    _valley(law, ["E", "B", "beta"], 1)
    (w,) = [w for w in identifiability_warnings(law) if "flat direction" in w]
    assert w.startswith("chinchilla: a combination of E, B, beta can change without changing any fitted prediction")
    # fixing one of the three pins the rest
    fixed = get_law("chinchilla", fixed={"beta": 0.28}).fit(_two_budgets(), ["N", "D"], "loss")
    assert unpinned(fixed) == ([], 0)
    assert not any("flat direction" in w for w in identifiability_warnings(fixed))


def _domains(shares: tuple[float, ...]) -> pd.DataFrame:
    rows = [{"domain": d, "N": N, "D": D, "r": r,
             "loss": E + 30 / N**0.45 + 400 * r**0.6 / D**0.5 + 0.08 / (r + 0.05) ** 0.5}
            for d, E in {"code": 1.2, "docs": 1.6, "tests": 0.9}.items()
            for N in (1e5, 1e6, 3e6) for D in (1e6, 3e6, 1e7) for r in shares]
    df = pd.DataFrame(rows)
    df["loss"] *= np.exp(np.random.default_rng(0).normal(0, 0.002, len(df)))
    return df


def test_three_shares_leave_the_share_term_of_cross_domain_dcpt_unpinned():
    # E_d + C/(r + eps)^gamma: four parameters per domain for three shares
    law = get_law("dcpt_cross", domain="domain").fit(_domains((0.0, 0.3, 1.0)), ["N", "D", "r"], "loss")
    names, k = unpinned(law)
    assert k >= 1 and {"C", "gamma", "eps"} <= set(names)
    assert not {"A", "alpha"} & set(names)  # the size term is pinned by three sizes
    # a fourth share pins it
    four = get_law("dcpt_cross", domain="domain").fit(_domains((0.0, 0.2, 0.5, 1.0)), ["N", "D", "r"], "loss")
    assert unpinned(four) == ([], 0)


def test_a_power_law_on_two_sizes_is_flat_and_a_loaded_law_has_nothing_to_check(tmp_path):
    x = np.repeat([1e6, 1e7], 4)
    y = (1.5 + (3e4 / x) ** 0.3) * np.exp(np.random.default_rng(1).normal(0, 0.003, 8))
    law = get_law("power").fit(pd.DataFrame({"N": x, "loss": y}), ["N"], "loss")
    names, k = unpinned(law)
    assert k == 1 and len(names) >= 2 and set(names) <= {"L_inf", "x0", "alpha"}
    law.save(tmp_path / "law.json")
    assert unpinned(Law.load(tmp_path / "law.json")) == ([], 0)  # no training data: nothing claimed


@pytest.mark.parametrize("tied", [False, True])
def test_tied_exponents_are_one_coordinate(tied):
    df = _two_budgets()
    opts = {"tied": {"beta": "alpha"}} if tied else {}
    law = get_law("chinchilla", **opts).fit(df, ["N", "D"], "loss")
    names, k = unpinned(law)
    # tied exponents: E + A/N^a + B/D^a has no flat direction on five sizes and two budgets
    assert (names, k) == (([], 0) if tied else (["E", "B", "beta"], 1))


@pytest.mark.parametrize("tied", [False, True])
def test_the_numpy_jacobian_is_the_autodiff_one(tied, monkeypatch):
    """Laws with a numpy Jacobian (what keeps `scaling fit` free of torch) give the autodiff one."""
    law = get_law("chinchilla", **({"tied": {"beta": "alpha"}} if tied else {})).fit(_two_budgets(), ["N", "D"], "loss")
    assert law.np_pred_jac is not None
    J, names = prediction_jacobian(law)
    monkeypatch.setattr(type(law), "np_pred_jac", None)
    J_ad, names_ad = prediction_jacobian(law)
    assert names == names_ad and J.shape == J_ad.shape
    np.testing.assert_allclose(J, J_ad, rtol=1e-10, atol=1e-12)
