"""`--option KEY=VALUE` sets a law's options that have no flag of their own (dcpt_cross's domain
column, which CLI users could not rename before), and `scaling plot` fits with the same law flags
as `scaling fit` (--fix, --tie, --weight, --asymmetry, --option: before, a plot of a fit made with
--fix drew another fit)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaling.cli import app
from scaling.errors import FitError
from scaling.laws import get_law

runner = CliRunner()


def _cross_domain(tmp_path) -> tuple:
    """Two domains of D-CPT data in a column named `field` (not the law's default `domain`)."""
    rng = np.random.default_rng(0)
    rows = []
    for field, (E, C) in {"code": (1.2, 0.08), "docs": (1.6, 0.05)}.items():
        for N in (1e5, 1e6, 3e6):
            for D in (1e6, 1e7):
                for r in (0.0, 0.3, 1.0):
                    loss = E + 30 / N**0.45 + 400 * r**0.6 / D**0.5 + C / (r + 0.05) ** 0.5
                    rows.append({"field": field, "N": N, "D": D, "r": r, "loss": loss * np.exp(rng.normal(0, 0.002))})
    df = pd.DataFrame(rows)
    path = tmp_path / "cross.csv"
    df.to_csv(path, index=False)
    return df, path


def test_option_sets_the_label_column_and_the_per_domain_coefficients(tmp_path):
    """The CLI's fit equals the Python API's with the same options, parameter for parameter."""
    df, path = _cross_domain(tmp_path)
    args = ["fit", "dcpt_cross", str(path), "--x", "N", "--x", "D", "--x", "r", "--y", "loss", "--json"]
    r = runner.invoke(app, args)
    assert "--option domain=COLUMN" in str(r.exception)  # the default column is absent: the error says how
    r = runner.invoke(app, [*args, "--option", "domain=field", "--option", "per_domain=E,C"])
    assert r.exit_code == 0, (r.output, r.exception)
    out = json.loads(r.stdout)
    law = get_law("dcpt_cross", domain="field", per_domain=("E", "C")).fit(df, x=["N", "D", "r"], y="loss")
    assert {f"{p}_{d}" for p in ("E", "C") for d in ("code", "docs")} <= set(out["params"])
    assert out["params"] == pytest.approx(law.params_, rel=1e-9)


def test_option_values_are_json_where_they_parse(tmp_path):
    """A number is a number: max_iter=3 stops the solver early, as the Python option does."""
    df = pd.DataFrame({"N": np.geomspace(1e6, 1e9, 6)})
    df["loss"] = 1.7 + (4e6 / df["N"]) ** 0.3
    path = tmp_path / "power.csv"
    df.to_csv(path, index=False)
    r = runner.invoke(app, ["fit", "power", str(path), "--x", "N", "--y", "loss", "--json", "--option", "max_iter=3"])
    assert r.exit_code == 0, (r.output, r.exception)
    law = get_law("power", max_iter=3).fit(df, x=["N"], y="loss")
    assert json.loads(r.stdout)["params"] == pytest.approx(law.params_, rel=1e-9)


@pytest.mark.parametrize("option, message", [
    ("colour=red", "law 'power' has no such option; its options are: constants, max_iter"),
    ("loss=mse", "--option loss: use --loss instead"),
    ("fixed=1", "--option fixed: use --fix instead"),
    ("max_iter", "--option 'max_iter' must look like KEY=VALUE"),
])
def test_a_bad_option_is_named_before_the_data_is_read(option, message):
    """FitError (exit 2, one `error:` line in `scaling.cli.main`), raised before the missing file is."""
    for command in ("fit", "plot"):
        r = runner.invoke(app, [command, "power", "no-such-file.csv", "--x", "N", "--y", "loss", "--option", option])
        assert isinstance(r.exception, FitError) and message in str(r.exception)


def test_plot_fits_with_the_flags_fit_takes(tmp_path):
    """--fix pins the parameter in the plotted fit, as in `scaling fit` (the plot ignored it)."""
    df = pd.DataFrame({"N": np.geomspace(1e6, 1e9, 6)})
    df["loss"] = 1.7 + (4e6 / df["N"]) ** 0.3
    path = tmp_path / "power.csv"
    df.to_csv(path, index=False)
    r = runner.invoke(app, ["plot", "power", str(path), "--x", "N", "--y", "loss", "--bootstrap", "0",
                            "--fix", "L_inf=1.5", "--out", str(tmp_path / "fit.png")])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "L_inf = 1.5 " in r.output
    assert (tmp_path / "fit.png").stat().st_size > 0
    fit = runner.invoke(app, ["fit", "power", str(path), "--x", "N", "--y", "loss", "--fix", "L_inf=1.5", "--json"])
    alpha = json.loads(fit.stdout)["params"]["alpha"]
    assert f"alpha = {alpha:.6g}" in r.output
