"""The `select` law: recovery of known multipliers, the exact CM of a pure data multiplier, the
effective-data formula, the paired cell bootstrap, and bad input."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError
from scaling.laws import get_law
from scaling.laws.select import SelectLaw, cell_bootstrap, effective_tokens, multiplier_summary

TRUE = {"A": 482.0, "B": 2085.0, "alpha": 0.35, "beta": 0.37}
VARIANTS = {"base": (1.8, 1.0), "oracle": (1.8, 2.0), "dsir": (1.75, 1.4)}


def make_runs(noise: float, seed: int = 0, seeds: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for v, (E, m) in VARIANTS.items():
        for N in np.geomspace(1e7, 3e8, 5):
            for tpp in (10, 20, 40):
                for s in range(seeds):
                    D = N * tpp
                    L = E + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / (m * D) ** TRUE["beta"]
                    rows.append({"N": N, "D": D, "variant": v, "seed": s, "tpp": tpp,
                                 "loss": L * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    df = make_runs(noise=0.0)
    return get_law("select", variant="variant", baseline="base").fit(df, x=["N", "D"], y="loss"), df


def test_recovers_known_multipliers_and_floors(fitted):
    law, _ = fitted
    assert law.converged_
    for v, (E, m) in VARIANTS.items():
        assert law.params_[f"E_{v}"] == pytest.approx(E, rel=1e-4)
        assert law.multiplier_[v] == pytest.approx(m, rel=1e-4)
    for k in ("alpha", "beta"):
        assert law.params_[k] == pytest.approx(TRUE[k], rel=1e-4)


def test_pure_data_multiplier_has_cm_equal_to_m_at_every_compute(fitted):
    law, _ = fitted
    cm = law.compute_multiplier("oracle", [1e18, 1e20, 1e22, 1e24])[0]
    np.testing.assert_allclose(cm, 2.0, rtol=2e-3)  # equal floors: CM = m exactly (up to the fit)
    # A lower floor makes selection worth more the more compute there is; eventually infinite.
    dsir = law.compute_multiplier("dsir", [1e18, 1e22, 1e26, 1e40])[0]
    assert dsir[0] < dsir[1] < dsir[2] and np.isinf(dsir[3])


def test_effective_tokens_formula():
    U = 1e9
    np.testing.assert_allclose(effective_tokens(np.array([5e8, 1e9]), U), [5e8, 1e9])
    D = 5e9  # 4 repeated epochs beyond the first
    assert effective_tokens(np.array([D]), U)[0] == pytest.approx(U + U * 15.4 * (1 - np.exp(-4 / 15.4)))
    assert effective_tokens(np.array([1e15]), U)[0] == pytest.approx(U * 16.4, rel=1e-9)  # saturates at U (1 + R*)


def test_repetition_makes_the_multiplier_shrink_with_compute():
    law = get_law("select", variant="variant", baseline="base")
    rows = []
    for v, m, U in (("base", 1.0, 1e13), ("small", 2.0, 2e9)):
        for N in np.geomspace(1e7, 3e8, 5):
            for tpp in (10, 20, 40):
                D = N * tpp
                De = effective_tokens(np.array([D]), U)[0]
                rows.append({"N": N, "D": D, "variant": v, "U": U,
                             "loss": 1.8 + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / (m * De) ** TRUE["beta"]})
    law = SelectLaw(variant="variant", baseline="base", unique_tokens="U").fit(pd.DataFrame(rows), x=["N", "D"], y="loss")
    assert law.multiplier_["small"] == pytest.approx(2.0, rel=1e-3)
    cm = law.compute_multiplier("small", [1e17, 1e20, 1e22], unique={"base": 1e13, "small": 2e9})[0]
    assert cm[0] == pytest.approx(2.0, rel=2e-2) and cm[0] > cm[1] > cm[2]


def test_paired_cell_bootstrap_covers_the_truth():
    df = make_runs(noise=0.005, seed=3)
    df["cell"] = df["N"].astype(str) + "/" + df["tpp"].astype(str)
    law = get_law("select", variant="variant", baseline="base").fit(df, x=["N", "D"], y="loss")
    cell_bootstrap(law, df, ["N", "tpp"], n=100, seed=0)
    assert law.boot_excluded_ + len(law.boot_theta_) == 100
    lo, hi = law.ci_["m_oracle"]
    assert lo < 2.0 < hi and hi / lo < 3
    s = multiplier_summary(law, [1e20, 1e22])
    assert set(s["multiplier"]) == {"dsir", "oracle"} and len(s["cm"]["oracle"]) == 2
    row = s["cm"]["oracle"][0]
    assert row["ci95"][0] <= row["cm"] <= row["ci95"][1] and 0 <= row["p_below_1"] <= 1


def test_round_trip(fitted, tmp_path):
    law, df = fitted
    law.save(tmp_path / "s.json")
    back = SelectLaw.load(tmp_path / "s.json")
    np.testing.assert_allclose(back.predict(df), law.predict(df), rtol=1e-12)
    assert back.multiplier_ == pytest.approx(law.multiplier_)


def test_bad_input_names_the_column():
    df = make_runs(noise=0.0)
    with pytest.raises(DataError, match="baseline 'none' is not a value of column 'variant'"):
        get_law("select", variant="variant", baseline="none").fit(df, x=["N", "D"], y="loss")
    with pytest.raises(DataError, match="variant column 'method' not found"):
        get_law("select", variant="method", baseline="base").fit(df, x=["N", "D"], y="loss")


def test_cli_json_contract(tmp_path):
    import json

    from typer.testing import CliRunner

    from scaling.cli import app

    df = make_runs(noise=0.003, seed=5)
    df.to_csv(tmp_path / "sel.csv", index=False)
    r = CliRunner().invoke(app, ["fit", "select", str(tmp_path / "sel.csv"), "--variant", "variant", "--baseline",
                                 "base", "--x", "N", "--x", "D", "--y", "loss", "--cell", "N", "--cell", "tpp",
                                 "--bootstrap", "40", "--compute", "1e20,1e22", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["law"] == "select" and {"E_base", "m_oracle", "m_dsir", "alpha"} <= set(out["params"])
    assert set(out["multiplier"]) == {"oracle", "dsir"}
    m = out["multiplier"]["oracle"]
    assert m["ci95"][0] < 2.0 < m["ci95"][1]
    rows = out["cm"]["oracle"]
    assert [row["compute"] for row in rows] == [1e20, 1e22]
    assert set(rows[0]) == {"compute", "cm", "ci95", "p_below_1"}
    r = CliRunner().invoke(app, ["fit", "select", str(tmp_path / "sel.csv"), "--variant", "variant", "--baseline",
                                 "nope", "--x", "N", "--x", "D", "--y", "loss"])
    assert r.exit_code != 0 and "baseline 'nope'" in str(r.exception)
    # --delta as for every law ("auto": from the noise); the estimate barely moves at this noise
    r = CliRunner().invoke(app, ["fit", "select", str(tmp_path / "sel.csv"), "--variant", "variant", "--baseline",
                                 "base", "--x", "N", "--x", "D", "--y", "loss", "--delta", "auto", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["multiplier"]["oracle"]["m"] == pytest.approx(m["m"], rel=0.02)
    r = CliRunner().invoke(app, ["fit", "select", str(tmp_path / "sel.csv"), "--variant", "variant", "--baseline",
                                 "base", "--x", "N", "--x", "D", "--y", "loss", "--delta", "-1"])
    assert r.exit_code != 0 and "--delta" in str(r.exception)


def repeated_runs(r_star: float, m_small: float = 2.0, U_small: float = 2e9, E_small: float = 1.8) -> pd.DataFrame:
    """The baseline never repeats; `small` keeps U_small unique tokens, repeated up to 40 epochs."""
    rows = []
    for v, m, U, E in (("base", 1.0, 1e13, 1.8), ("small", m_small, U_small, E_small)):
        for N in np.geomspace(1e7, 3e8, 5):
            for tpp in (5, 20, 80, 270):
                D = N * tpp
                De = effective_tokens(np.array([D]), U, r_star)[0]
                rows.append({"N": N, "D": D, "variant": v, "U": U,
                             "loss": E + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / (m * De) ** TRUE["beta"]})
    return pd.DataFrame(rows)


def test_fitted_r_star_is_recovered_and_the_multiplier_shrinks_with_compute():
    df = repeated_runs(r_star=3.0)
    assert df.loc[df.variant == "small", "D"].max() / 2e9 > 40  # up to 40 epochs of the small selection
    law = SelectLaw(variant="variant", baseline="base", unique_tokens="U", r_star="fit").fit(df, x=["N", "D"], y="loss")
    assert law.converged_
    assert law.params_["R_star"] == pytest.approx(3.0, rel=1e-3)
    assert law.multiplier_["small"] == pytest.approx(2.0, rel=1e-3)
    assert law.params_["E_small"] == pytest.approx(1.8, rel=1e-4)
    unique = {"base": 1e13, "small": 2e9}
    cm = law.compute_multiplier("small", [1e16, 1e19, 1e21, 1e23], unique=unique)[0]
    assert cm[0] == pytest.approx(2.0, rel=2e-2) and cm[0] > cm[1] > cm[2] > cm[3]
    # Muennighoff's R* = 15.4 on the same runs values the repeated tokens too highly: a worse fit
    fixed = SelectLaw(variant="variant", baseline="base", unique_tokens="U").fit(df, x=["N", "D"], y="loss")
    assert fixed.objective_ > 100 * max(law.objective_, 1e-12)


def test_shared_floors_tie_every_floor_to_the_baseline():
    df = make_runs(noise=0.0)
    df = df[df.variant != "dsir"]  # the two variants whose floors are equal
    law = SelectLaw(variant="variant", baseline="base", floors="shared").fit(df, x=["N", "D"], y="loss")
    assert law.params_["E_oracle"] == law.params_["E_base"] == pytest.approx(1.8, rel=1e-4)
    assert law.multiplier_["oracle"] == pytest.approx(2.0, rel=1e-4)
    assert law.tied is not None and law.get_params()["tied"] is None  # the option itself is unchanged
    np.testing.assert_allclose(law.compute_multiplier("oracle", [1e18, 1e24])[0], 2.0, rtol=2e-3)
    cell_bootstrap(law, df.assign(cell=df["N"].astype(str)), ["N", "tpp"], n=20, seed=0)
    np.testing.assert_array_equal(law.boot_params_["E_oracle"], law.boot_params_["E_base"])  # ties hold in replicates
    with pytest.raises(Exception, match="floors must be one of"):
        SelectLaw(variant="variant", baseline="base", floors="equal").fit(df, x=["N", "D"], y="loss")
    with pytest.raises(Exception, match="r_star='fit' needs a unique-token column"):
        SelectLaw(variant="variant", baseline="base", r_star="fit").fit(df, x=["N", "D"], y="loss")


def test_known_floors_from_a_column_are_held_fixed():
    df = make_runs(noise=0.0)
    df["floor"] = df["variant"].map({v: E for v, (E, _) in VARIANTS.items()})
    law = SelectLaw(variant="variant", baseline="base", floors="column", floor_column="floor").fit(df, x=["N", "D"], y="loss")
    for v, (E, m) in VARIANTS.items():
        assert law.params_[f"E_{v}"] == E  # pinned, not fitted
        assert law.multiplier_[v] == pytest.approx(m, rel=1e-4)
    assert law.get_params()["fixed"] is None and law._n_free() == 6  # A, B, alpha, beta, two m
    back = SelectLaw.from_json(law.to_json())
    assert back.floors_known_ == law.floors_known_
    # the values it found, as plain numbers (no numpy reprs such as "np.float64(...)")
    with pytest.raises(DataError, match=r"one positive floor per variant; variant '\w+' has \[[0-9.e+]+(, [0-9.e+]+)+\]$"):
        SelectLaw(variant="variant", baseline="base", floors="column", floor_column="N").fit(df, x=["N", "D"], y="loss")
    with pytest.raises(DataError, match="floors='column' needs floor_column"):
        SelectLaw(variant="variant", baseline="base", floors="column").fit(df, x=["N", "D"], y="loss")


def test_cli_floors_and_fitted_r_star(tmp_path):
    import json

    from typer.testing import CliRunner

    from scaling.cli import app

    repeated_runs(r_star=3.0).to_csv(tmp_path / "rep.csv", index=False)
    r = CliRunner().invoke(app, ["fit", "select", str(tmp_path / "rep.csv"), "--variant", "variant", "--baseline", "base",
                                 "--x", "N", "--x", "D", "--y", "loss", "--unique-tokens", "U", "--r-star", "fit",
                                 "--floors", "shared", "--compute", "1e16,1e21", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["params"]["R_star"] == pytest.approx(3.0, rel=1e-3) and out["params"]["E_small"] == out["params"]["E_base"]
    cm = [row["cm"] for row in out["cm"]["small"]]
    assert cm[0] == pytest.approx(2.0, rel=2e-2) and cm[1] < cm[0]
    r = CliRunner().invoke(app, ["fit", "select", str(tmp_path / "rep.csv"), "--variant", "variant", "--baseline", "base",
                                 "--x", "N", "--x", "D", "--y", "loss", "--r-star", "many"])
    assert r.exit_code != 0 and "--r-star must be a number or 'fit'" in (r.output + str(r.exception))
