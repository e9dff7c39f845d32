"""Fit manifest: form, objective, per-start optimiser outcomes, data hash, uncertainty method."""

import json

import numpy as np
import pandas as pd

from scaling.laws import get_law
from scaling.laws.manifest import data_hash, fit_manifest, manifest_path, write_manifest


def _df(seed=0):
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e7, 1e10, 20)
    D = N * np.exp(rng.uniform(1, 4, 20))
    return pd.DataFrame({"N": N, "D": D, "loss": (1.7 + 400 / N**0.34 + 410 / D**0.28) * np.exp(rng.normal(0, 0.003, 20))})


def test_manifest_records_the_fit(tmp_path):
    df = _df()
    law = get_law("chinchilla", delta=1e-2, reduction="mean", fixed={"E": 1.7}, tied={"beta": "alpha"})
    law.fit(df, ["N", "D"], "loss").bootstrap(20, seed=3)
    m = fit_manifest(law, dropped=[{"rule": "--where N > 0", "n": 0}], counting={"C": "6ND"})
    assert m["law"] == "chinchilla" and m["form"]["tied"] == {"beta": "alpha"} and m["form"]["fixed"] == {"E": 1.7}
    assert m["objective"] == {"loss": "huber", "delta": 1e-2, "delta_used": 1e-2, "reduction": "mean",
                              "asymmetry": None, "weight": None, "value": law.objective_}
    auto = get_law("chinchilla", delta="auto").fit(df, ["N", "D"], "loss")
    assert fit_manifest(auto)["objective"]["delta"] == "auto"  # the option, and the delta it chose:
    assert fit_manifest(auto)["objective"]["delta_used"] == auto.delta_ != 1e-3
    opt = m["optimizer"]
    assert opt["n_starts"] == law.n_starts_ == len(opt["per_start"]["status"]) == len(opt["per_start"]["bound_hits"])
    assert sum(opt["status_counts"].values()) == law.n_starts_
    assert opt["coordinates"] == ["E", "A", "B", "alpha=beta"] and "E" not in opt["bound_hit_counts"]
    hits = np.array(opt["per_start"]["bound_hits"])
    assert opt["bound_hit_counts"]["alpha=beta"] == int(((hits >> 3) & 1).sum())
    assert m["uncertainty"] == {"method": "bootstrap", "bootstrap": law.boot_info_}
    assert m["dropped"][0]["rule"] == "--where N > 0" and m["counting"] == {"C": "6ND"}
    assert m["version"] and m["n_points"] == 20
    # The hash follows the data, not the object.
    assert m["data_sha256"] == data_hash(get_law("chinchilla").fit(df, ["N", "D"], "loss"))
    assert m["data_sha256"] != data_hash(get_law("chinchilla").fit(_df(1), ["N", "D"], "loss"))
    path = write_manifest(law, manifest_path(tmp_path / "fit.json"))
    assert path.name == "fit.manifest.json" and json.loads(path.read_text())["law"] == "chinchilla"


def test_manifest_names_profile_method():
    law = get_law("power_noconst", loss="mse").fit(pd.DataFrame({"x": [1.0, 2, 4, 8, 16, 32], "y": [3, 2.6, 2.3, 2.0, 1.75, 1.52]}), "x", "y")
    law.profile()
    m = fit_manifest(law)
    assert m["uncertainty"]["method"] == "profile" and m["uncertainty"]["profile"]["open_sides"] == []


def test_manifest_of_a_variable_projection_fit(tmp_path):
    # The default solver for chinchilla: no per-start screening, an exponent grid instead.
    law = get_law("chinchilla").fit(_df(), ["N", "D"], "loss")
    assert law.solver_ == "varpro"
    m = fit_manifest(law)
    assert m["optimizer"]["solver"] == "varpro" and "per_start" not in m["optimizer"]
    assert m["start_grid"]["n_starts"] == law.n_starts_ and m["start_grid"]["space"].startswith("exponents only")
    assert json.loads(write_manifest(law, manifest_path(tmp_path / "f.json")).read_text())["optimizer"]["converged"]


def test_cli_fit_save_writes_the_manifest(tmp_path):
    from typer.testing import CliRunner

    import scaling.cli

    csv = tmp_path / "d.csv"
    _df().to_csv(csv, index=False)
    r = CliRunner().invoke(scaling.cli.app, ["fit", "chinchilla", str(csv), "--x", "N", "--x", "D", "--y", "loss",
                                             "--bootstrap", "10", "--save", str(tmp_path / "fit.json"), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "fit.manifest.json").read_text())
    assert m["optimizer"]["solver"] == "varpro" and m["uncertainty"]["bootstrap"]["n"] == 10
