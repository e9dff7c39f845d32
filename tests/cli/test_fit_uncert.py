"""`scaling fit` with --ci profile, --cluster, --weight, --fix/--tie, --sensitivity, --save manifest."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaling.cli import app


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = []
    for i, N in enumerate(np.geomspace(1e7, 3e9, 8)):
        for step in (1, 2, 3):
            D = N * 6.0 * step
            rows.append({"run_id": f"r{i}", "N": N, "D": D, "w": 1.0 + step,
                         "loss": (1.7 + 400 / N**0.34 + 410 / D**0.28) * np.exp(rng.normal(0, 0.003))})
    path = tmp_path_factory.mktemp("t") / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _run(args):
    r = CliRunner().invoke(app, ["fit", "chinchilla", *args, "--x", "N", "--x", "D", "--y", "loss"])
    assert r.exit_code == 0, r.output
    return r.output


def test_profile_ci_and_allocation_in_json(table):
    out = json.loads(_run([str(table), "--ci", "profile", "--target-compute", "1e22", "--json"]))
    assert out["ci_method"] == "profile"
    for k, (lo, hi) in out["ci95"].items():
        assert lo < out["params"][k] < hi
    a = out["allocation_ci95"]
    assert a["C"] == 1e22 and a["N_opt"]["lo"] < a["N_opt"]["value"] < a["N_opt"]["hi"]
    assert out["warnings"] == []


def test_target_compute_gives_the_allocation_with_bootstrap_intervals_or_none(table):
    out = json.loads(_run([str(table), "--bootstrap", "40", "--target-compute", "1e22", "--json"]))
    a = out["allocation_ci95"]
    assert a["method"] == "bootstrap" and a["C"] == 1e22
    for k in ("N_opt", "D_opt", "tokens_per_param"):
        assert a[k]["lo"] < a[k]["value"] < a[k]["hi"], k
    # the point values are the fitted law's closed form at 6 N D = C, and the loss its prediction there
    p = out["params"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n = G * (1e22 / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
    assert a["N_opt"]["value"] == pytest.approx(n, rel=1e-9) and a["D_opt"]["value"] == pytest.approx(1e22 / (6 * n))
    d = 1e22 / (6 * n)
    assert a["loss"] == pytest.approx(p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"], rel=1e-9)
    plain = json.loads(_run([str(table), "--target-compute", "1e22", "--json"]))["allocation_ci95"]
    assert plain["method"] is None and plain["N_opt"]["lo"] is None
    assert plain["N_opt"]["value"] == pytest.approx(n, rel=1e-6)
    assert "compute-optimal at C = 1e+22 (6ND; 95% bootstrap intervals): N_opt" in _run([str(table), "--bootstrap", "20",
                                                                              "--target-compute", "1e22"])


def test_target_compute_on_a_law_without_an_allocation_is_an_error(table):
    r = CliRunner().invoke(app, ["fit", "power", str(table), "--x", "N", "--y", "loss", "--target-compute", "1e22"])
    assert r.exit_code != 0  # the FitError reaches `scaling`'s main, which prints it as one `error:` line
    assert str(r.exception) == ("--target-compute gives the compute-optimal allocation; the power law has none "
                                "(laws with one: chinchilla, kaplan)")
    r = CliRunner().invoke(app, ["fit", "chinchilla", str(table), "--x", "N", "--x", "D", "--y", "loss",
                                 "--target-compute", "0"])
    assert str(r.exception) == "--target-compute must be > 0 FLOPs, got 0"


def test_cluster_bootstrap_fix_tie_weight_and_manifest(table, tmp_path):
    save = tmp_path / "fit.json"
    out = json.loads(_run([str(table), "--bootstrap", "40", "--cluster", "run_id", "--fix", "E=1.7", "--tie",
                           "beta=alpha", "--weight", "w", "--save", str(save), "--json"]))
    assert out["params"]["E"] == 1.7 and out["params"]["alpha"] == out["params"]["beta"]
    assert out["bootstrap"]["clustered"] and out["bootstrap"]["n_clusters"] == 8
    assert out["bootstrap"]["n"] == 40 and out["bootstrap"]["n_excluded"] >= 0
    m = json.loads((tmp_path / "fit.manifest.json").read_text())
    assert m["objective"]["weight"] == "w" and m["form"]["tied"] == {"beta": "alpha"}
    assert m["uncertainty"]["bootstrap"]["clustered"] and m["source"] == str(table)


def test_sensitivity_json_is_exactly_the_contract(table):
    # The power law keeps this fast; chinchilla's table (a, tokens per parameter) is tested in
    # tests/laws/test_sensitivity.py.
    r = CliRunner().invoke(app, ["fit", "power", str(table), "--x", "N", "--y", "loss", "--sensitivity",
                                 "--target-compute", "1e22", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == {"sensitivity", "target_compute"} and out["target_compute"] == 1e22
    assert {r["axis"] for r in out["sensitivity"]} == {"form", "objective", "init", "points", "range"}
    for row in out["sensitivity"]:
        assert list(row) == ["axis", "choice", "params", "a", "tokens_per_param", "loss_at_target"]
        assert set(row["params"]) == {"L_inf", "x0", "alpha"} and row["a"] is None
    r = CliRunner().invoke(app, ["fit", "power", str(table), "--x", "N", "--y", "loss", "--sensitivity"])
    assert r.exit_code == 0, r.output
    assert "log-Huber delta=0.0001" in r.output and "largest sizes only" in r.output
    assert "alpha = beta" not in r.output  # one exponent: no tied form


def test_sensitivity_table_keeps_a_choice_the_data_cannot_support(tmp_path, monkeypatch):
    """7 sizes: dropping the 5 highest losses leaves 2 points for 3 parameters. That row says so
    and the others print their parameters (the table crashed with a TypeError: under pandas' string
    dtype a choice without an error had NaN there, not None)."""
    N = np.geomspace(2e3, 1e5, 7)
    path = tmp_path / "seven.csv"
    pd.DataFrame({"N": N, "loss": 1.42 + (250 / N) ** 0.63}).to_csv(path, index=False)
    from rich.console import Console

    import scaling.cli.fit

    monkeypatch.setattr(scaling.cli.fit, "console", Console(width=300))  # one table row per line
    r = CliRunner().invoke(app, ["fit", "power", str(path), "--x", "N", "--y", "loss", "--sensitivity"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "only 2 point(s) were given" in r.output and "L_inf=1.42" in r.output


def test_bad_fix_and_ci_are_user_errors(table):
    r = CliRunner().invoke(app, ["fit", "chinchilla", str(table), "--x", "N", "--x", "D", "--y", "loss", "--fix", "E"])
    assert r.exit_code != 0 and "NAME=VALUE" in str(r.output) + str(r.exception)
    r = CliRunner().invoke(app, ["fit", "chinchilla", str(table), "--x", "N", "--x", "D", "--y", "loss", "--ci", "wald"])
    assert r.exit_code != 0 and "--ci" in str(r.output) + str(r.exception)


@pytest.fixture(scope="module")
def seeds_table(tmp_path_factory):
    """The demo's power law at 6 sizes x 4 seeds, noise 0.005 in log loss."""
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(2e3, 2e5, 6), 4)
    loss = (1.42 + (300 / N) ** 0.62) * np.exp(rng.normal(0, 0.005, len(N)))
    path = tmp_path_factory.mktemp("seeds") / "runs.csv"
    pd.DataFrame({"N": N, "seed": np.tile(range(4), 6), "loss": loss}).to_csv(path, index=False)
    return path


def _power(path, *args):
    r = CliRunner().invoke(app, ["fit", "power", str(path), "--x", "N", "--y", "loss", "--bootstrap", "200", "--json",
                                 *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_noise_from_seeds_sets_the_parametric_bootstrap(seeds_table):
    """--noise seeds pools the noise over the replicates (18 degrees of freedom) and the intervals
    are a parametric bootstrap at it; a given noise scales them: at twice the noise, twice as wide
    under least squares (the same draws; measured 1.96). (A Huber fit's delta stays where the data's
    residuals set it, so at twice the noise it is less efficient and wider still: 2.25 with "auto".)"""
    from scaling.laws.validation import replicate_noise

    out = _power(seeds_table, "--noise", "seeds", "--delta", "auto")
    sigma, dof = replicate_noise(pd.read_csv(seeds_table), ["N"], "loss")
    assert out["noise"] == pytest.approx(sigma, rel=1e-12) and dof == 18
    assert out["noise_source"] == "seeds: pooled over replicates, 18 degrees of freedom"
    assert out["bootstrap"]["method"] == "parametric" and out["bootstrap"]["noise"] == out["noise"]
    one, two = (_power(seeds_table, "--noise", str(s), "--loss", "mse") for s in (0.005, 0.01))
    assert one["noise_source"] == "given" and two["bootstrap"]["noise"] == 0.01
    width = {k: np.diff(o["ci95"]["L_inf"])[0] for k, o in (("one", one), ("two", two))}
    assert width["two"] / width["one"] == pytest.approx(2.0, rel=0.05)


def test_noise_from_seeds_without_replicates_is_named_before_the_fit(tmp_path):
    path = tmp_path / "single.csv"
    N = np.geomspace(2e3, 2e5, 6)
    pd.DataFrame({"N": N, "loss": 1.42 + (300 / N) ** 0.62}).to_csv(path, index=False)
    r = CliRunner().invoke(app, ["fit", "power", str(path), "--x", "N", "--y", "loss", "--bootstrap", "20",
                                 "--noise", "seeds"])
    assert r.exit_code != 0 and "no two rows share their 'N'" in str(r.exception)
    assert "warning" not in r.output  # nothing was fitted


def test_a_fit_without_intervals_says_how_to_get_them(table):
    # the table's interval column was all dashes with no word of why
    hint = "no intervals: add --bootstrap 200 (or --ci profile) for 95% intervals"
    assert hint in _run([str(table)])
    assert hint not in _run([str(table), "--bootstrap", "20"]) and hint not in _run([str(table), "--ci", "profile"])
