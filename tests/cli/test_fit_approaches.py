"""`scaling fit isoflop | frontier | compare` and `--delta auto` through the CLI."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaling.cli import app
from scaling.datasets import load_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def llama3_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("iso") / "llama3.csv"
    df = load_dataset("llama3_isoflops")
    df[df.condition == "raw_loss"].to_csv(p, index=False)
    return p


def test_isoflop_json_contract(llama3_csv):
    r = runner.invoke(app, ["fit", "isoflop", str(llama3_csv), "--n", "params", "--d", "tokens", "--budget", "budget",
                            "--y", "loss", "--bootstrap", "50", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["law"] == "isoflop" and set(res["params"]) == {"a", "b", "k_n", "k_d"}
    assert res["params"]["b"] == pytest.approx(0.53, abs=0.02) and res["params"]["k_d"] == pytest.approx(0.29, rel=0.1)
    assert set(res["ci95"]) == {"a", "b", "k_n", "k_d"}
    assert len(res["budgets"]) == 10
    for b in res["budgets"]:
        assert {"budget", "n_opt", "d_opt", "loss_opt", "interior"} <= set(b) and b["interior"] is True
    assert {"objective", "converged", "n_points", "holdout"} <= set(res)


def test_isoflop_refusal_is_a_clean_error(tmp_path):
    p = tmp_path / "flat.csv"
    pd.DataFrame({"N": [1e8, 2e8, 4e8] * 2, "D": [1e9] * 6, "C": [1e18] * 3 + [1e19] * 3,
                  "loss": [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]}).to_csv(p, index=False)
    r = runner.invoke(app, ["fit", "isoflop", str(p), "--n", "N", "--d", "D", "--budget", "C", "--y", "loss"])
    assert r.exit_code != 0
    assert "interior minimum" in str(r.exception)


def _curves():
    """Loss curves L = 1.5 + 400 N^-0.3 + 1e3 D^-0.3 for 10 sizes, C from 6 N D."""
    rows = []
    for N in np.geomspace(1e6, 3e8, 10):
        D = np.geomspace(1e7, 1e11, 40)
        rows.append(pd.DataFrame({"run_id": f"r{N:.0f}", "n_params": N, "flops": 6 * N * D,
                                  "loss": 1.5 + 400 * N**-0.3 + 1e3 * D**-0.3, "tokens": D}))
    return pd.concat(rows, ignore_index=True)


def test_frontier_command(tmp_path):
    p = tmp_path / "curves.csv"
    _curves().to_csv(p, index=False)
    r = runner.invoke(app, ["fit", "frontier", str(p), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    # Equal exponents: N_opt ∝ C^0.5 exactly on the envelope of this surface.
    assert res["params"]["a"] == pytest.approx(0.5, abs=0.05)
    assert sum(w["used"] for w in res["winners"]) >= 3


def test_frontier_compute_is_6nd_from_tokens_unless_flops_are_named_or_the_only_compute(tmp_path):
    curves = _curves().assign(flops=lambda d: 1.2 * d.flops)  # exact FLOPs: 6ND plus attention, say
    curves.to_csv(tmp_path / "both.csv", index=False)
    curves.drop(columns="tokens").to_csv(tmp_path / "flops.csv", index=False)
    fit = lambda *a: json.loads(runner.invoke(app, ["fit", "frontier", *map(str, a), "--json"]).output)  # noqa: E731
    six, named, only = fit(tmp_path / "both.csv"), fit(tmp_path / "both.csv", "--flops", "flops"), fit(tmp_path / "flops.csv")
    assert six["compute"] == "6ND (6 x n_params x tokens)" and named["compute"] == only["compute"] == "exact FLOPs (flops)"
    # the same envelope on a compute axis 1.2x longer: a is unchanged and k = k_6ND · 1.2^-a
    assert named["params"]["a"] == pytest.approx(six["params"]["a"], rel=1e-6)
    assert named["params"]["k"] == pytest.approx(six["params"]["k"] * 1.2 ** -six["params"]["a"], rel=1e-6)
    assert only["params"] == named["params"]
    # compare's Approach 1 takes D from its --x column (it required a column named 'tokens')
    curves.rename(columns={"tokens": "D", "n_params": "N"}).to_csv(tmp_path / "nd.csv", index=False)
    r = runner.invoke(app, ["fit", "compare", str(tmp_path / "nd.csv"), "--laws", "power", "--x", "N", "--x", "D",
                            "--y", "loss", "--run", "run_id", "--bootstrap", "0", "--json"])
    first = [a for a in json.loads(r.stdout)["approaches"]["approaches"] if a["approach"] == 1]
    assert first and first[0]["a"] == pytest.approx(six["params"]["a"], rel=1e-9)


def test_frontier_of_a_study_folder_reads_its_curves(tmp_path):
    """A study folder gives its finished runs' curves on one eval set, with the runs' sizes (it gave
    runs.parquet: one final loss per run, and a 'frontier' of two runs with exponent 1)."""
    curves = _curves()
    runs = curves.groupby("run_id", as_index=False).agg(n_params=("n_params", "first"), tokens=("tokens", "last"),
                                                        loss=("loss", "last"))
    runs["status"] = "done"
    runs.loc[0, "status"] = "failed"  # the smallest: left out, as the report leaves it out
    study = tmp_path / "study"
    study.mkdir()
    runs.to_parquet(study / "runs.parquet")
    other = curves.assign(eval_set="other", loss=curves.loss + 1.0)
    curves = curves.drop(columns="n_params").assign(eval_set="valid")
    pd.concat([curves, other.drop(columns="n_params")]).to_parquet(study / "curves.parquet")
    r = runner.invoke(app, ["fit", "frontier", str(study), "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    res = json.loads(r.output)
    done = _curves()[lambda d: d.run_id != runs.run_id[0]]
    from scaling.laws.frontier import ComputeFrontier

    direct = ComputeFrontier(fit_loss=False).fit(done)
    assert res["params"]["a"] == pytest.approx(direct.exponent_, rel=1e-12)
    assert runs.run_id[0] not in {w["run"] for w in res["winners"]}
    # `fit compare --run` on the folder: Approach 1 from the same curves (it read runs.parquet too)
    r = runner.invoke(app, ["fit", "compare", str(study), "--laws", "power", "--x", "n_params", "--x", "tokens",
                            "--y", "loss", "--run", "run_id", "--bootstrap", "0", "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    first = [a for a in json.loads(r.output)["approaches"]["approaches"] if a["approach"] == 1]
    assert first and first[0]["a"] == pytest.approx(direct.exponent_, rel=1e-12)
    # with the non-embedding count there (every study has it), that is the default size, as in the report
    runs.assign(n_params_nonemb=runs.n_params / 2).to_parquet(study / "runs.parquet")
    half = json.loads(runner.invoke(app, ["fit", "frontier", str(study), "--json"]).output)
    assert half["size"] == "n_params_nonemb" and half["params"]["a"] == pytest.approx(res["params"]["a"], rel=1e-9)
    # N and C = 6 N D both halve: N_opt = k C^a gives k' = k 2^(a - 1)
    assert half["params"]["k"] == pytest.approx(res["params"]["k"] * 2 ** (res["params"]["a"] - 1), rel=1e-9)
    r = runner.invoke(app, ["fit", "frontier", str(study), "--eval-set", "nope"])
    assert "no curves on eval set 'nope'; its eval sets are: valid, other" in str(r.exception)
    r = runner.invoke(app, ["fit", "frontier", str(study / "runs.parquet")])
    assert "frontier needs each run's loss curve" in str(r.exception)


def test_compare_ranks_forms_and_approaches(tmp_path):
    p = tmp_path / "curves.csv"
    df = _curves()
    df.to_csv(p, index=False)
    r = runner.invoke(app, ["fit", "compare", str(p), "--laws", "power,chinchilla", "--x", "n_params", "--x", "tokens",
                            "--y", "loss", "--run", "run_id", "--bootstrap", "30", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    forms = res["forms"]
    # The data are an exact chinchilla surface: it must extrapolate best and win on AIC/BIC.
    assert forms[0]["law"] == "chinchilla" and forms[0]["holdout_error"] < 1e-4
    assert forms[0]["rank_aic"] == 1 and forms[0]["rank_bic"] == 1
    ag = res["approaches"]
    by = {a["approach"]: a for a in ag["approaches"]}
    assert set(by) == {1, 3} and "2" in ag["skipped"]
    assert by[3]["a"] == pytest.approx(0.5, abs=1e-4)
    assert by[1]["a"] == pytest.approx(0.5, abs=0.05)
    assert res["warnings"] == []


def test_compare_ranks_the_loss_laws_of_its_inputs_unless_told(tmp_path):
    # --laws was required; without it the command stopped at "Missing option '--laws'"
    p = tmp_path / "curves.csv"
    _curves().to_csv(p, index=False)
    r = runner.invoke(app, ["fit", "compare", str(p), "--x", "n_params", "--x", "tokens", "--y", "loss", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert [f["law"] for f in res["forms"]][0] == "chinchilla" and {f["law"] for f in res["forms"]} == {
        "chinchilla", "kaplan", "power"} and res["skipped"] == {}
    # one input, five sizes: broken_power has more parameters than points, so it is skipped with the reason
    five = tmp_path / "five.csv"
    n = np.geomspace(1e4, 1e6, 5)
    pd.DataFrame({"N": n, "loss": 1.5 + (2e3 / n) ** 0.4}).to_csv(five, index=False)
    r = runner.invoke(app, ["fit", "compare", str(five), "--x", "N", "--y", "loss", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert [f["law"] for f in res["forms"]] == ["power", "power_noconst"] and res["forms"][0]["holdout_error"] < 1e-4
    assert list(res["skipped"]) == ["broken_power"] and "the broken_power law needs at least 6" in res["skipped"]["broken_power"]
    r = runner.invoke(app, ["fit", "compare", str(five), "--x", "N", "--y", "loss"])
    assert "broken_power not ranked: " in r.output
    # a form the user names and that cannot be fitted is an error, as before
    r = runner.invoke(app, ["fit", "compare", str(five), "--laws", "broken_power", "--x", "N", "--y", "loss"])
    assert r.exit_code != 0 and "broken_power" in str(r.exception)
    r = runner.invoke(app, ["fit", "compare", str(five), "--x", "N", "--x", "N", "--x", "N", "--y", "loss"])
    assert "name the law forms to rank with --laws (no default for 3 x columns" in str(r.exception)


def test_compare_names_a_table_of_several_series_and_its_bootstrap_stays_quiet(tmp_path):
    # llama3_isoflops holds each point as the loss and as its exp: compared as one series, the forms had
    # R² -0.38 and no word of why, and degenerate bootstrap replicates printed numpy's "divide by zero"
    p = tmp_path / "llama3.csv"
    load_dataset("llama3_isoflops").to_csv(p, index=False)
    args = ["fit", "compare", str(p), "--laws", "chinchilla", "--x", "params", "--x", "tokens", "--y", "loss",
            "--budget", "budget", "--bootstrap", "30", "--json"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        res = json.loads(r.output)
        assert res["warnings"] == [
            "rows with the same params, tokens, budget differ in loss by up to 2.88x (more than seeds do): the table "
            "holds several series; they differ in condition, experiment; select one with --where"]
        r = runner.invoke(app, [*args, "--where", "condition == 'raw_loss'"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["warnings"] == [] and res["forms"][0]["r2"] > 0.99


def test_delta_auto_cli(tmp_path):
    rng = np.random.default_rng(0)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 7), np.geomspace(1e9, 1e12, 7)))
    loss = (1.7 + 400 / N**0.34 + 1500 / D**0.28) * np.exp(rng.normal(0, 0.02, N.size))
    p = tmp_path / "noisy.csv"
    pd.DataFrame({"N": N, "D": D, "loss": loss}).to_csv(p, index=False)
    base = ["fit", "chinchilla", str(p), "--x", "N", "--x", "D", "--y", "loss", "--json"]
    r = runner.invoke(app, base + ["--delta", "auto"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)["delta"]
    from scaling.laws import get_law

    df = pd.read_csv(p)
    assert d == pytest.approx(get_law("chinchilla", delta="auto").fit(df, x=["N", "D"], y="loss").delta_, rel=1e-9)
    assert 0.5 * 1.345 * 0.02 < d < 1.5 * 1.345 * 0.02  # 1.345 x the noise's sigma (0.02 on log loss), estimated
    r = runner.invoke(app, base + ["--delta", "-1"])
    assert r.exit_code != 0 and "positive number or 'auto'" in str(r.exception)
