"""The CLI as users run it: CliRunner for the commands, a subprocess for error output."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaling.cli import app
from scaling.datasets import dataset_path

SPEC = """
[study]
name = "cli"
[data]
source = "zipf_facts"
eval_tokens = 1260
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = [{d_model = 8, n_layers = 1, n_heads = 2}, {d_model = 16, n_layers = 1, n_heads = 2}]
[train]
steps = 6
batch_size = 4
seq_len = 21
eval_points = 3
"""

runner = CliRunner()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "cli.toml"
    p.write_text(SPEC)
    return p


def test_grid_plan_run_status(spec):
    r = runner.invoke(app, ["grid", "plan", str(spec)])
    assert r.exit_code == 0, r.output
    assert "2 runs" in r.output and "pending" in r.output and "n_params_nonemb" in r.output
    r = runner.invoke(app, ["grid", "run", str(spec)])
    assert r.exit_code == 0, r.output
    assert "2 done" in r.output
    runs = pd.read_parquet(spec.parent / "cli" / "runs.parquet")
    assert len(runs) == 2 and (runs.status == "done").all()
    r = runner.invoke(app, ["grid", "status", str(spec)])
    assert r.exit_code == 0 and "2 done" in r.output
    # running again trains nothing
    r = runner.invoke(app, ["grid", "run", str(spec)])
    assert "training 0 runs (2 already done)" in r.output


def test_a_study_folder_is_named_the_same_way_by_grid_and_report(spec, tmp_path):
    # grid's --out (the study folder) also reads --store, as in `scaling report`, whose --out is the
    # HTML file; a report --out that is a folder gets its index.html
    folder = tmp_path / "elsewhere"
    r = runner.invoke(app, ["grid", "run", str(spec), "--store", str(folder)])
    assert r.exit_code == 0, r.output
    assert len(pd.read_parquet(folder / "runs.parquet")) == 2 and not (spec.parent / "cli").exists()
    r = runner.invoke(app, ["grid", "status", str(spec), "--out", str(folder)])
    assert r.exit_code == 0 and "2 done" in r.output
    (tmp_path / "html").mkdir()
    r = runner.invoke(app, ["report", str(spec), "--store", str(folder), "--out", str(tmp_path / "html"),
                            "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    assert "<html" in (tmp_path / "html" / "index.html").read_text()


def test_fit_json_on_synthetic_power_law(tmp_path):
    n = np.geomspace(1e3, 1e6, 9)
    y = 1.5 + (2e3 / n) ** 0.4
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": n, "loss": y}).to_csv(path, index=False)
    r = runner.invoke(app, ["fit", "power", str(path), "--x", "N", "--y", "loss", "--holdout", "largest:1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) >= {"law", "params", "ci95", "objective", "converged", "n_points", "holdout"}
    assert out["law"] == "power" and out["converged"] and out["n_points"] == 9
    assert out["params"]["L_inf"] == pytest.approx(1.5, rel=1e-4)
    assert out["params"]["alpha"] == pytest.approx(0.4, rel=1e-3)
    assert out["params"]["x0"] == pytest.approx(2e3, rel=1e-3)
    assert out["holdout"]["max_abs_rel_error"] < 1e-4


def _run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scaling", *args], capture_output=True, text=True, cwd=cwd)


def test_user_errors_print_one_line_without_traceback(spec, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.replace("d_model = 16, n_layers = 1, n_heads = 2", "d_model = 15, n_layers = 1, n_heads = 2"))
    r = _run_cli("grid", "plan", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "bad.toml" in r.stderr and "`d_model` (15) must be divisible by `n_heads` (2)" in r.stderr
    csv = tmp_path / "few.csv"
    pd.DataFrame({"N": [1e3, 1e4], "loss": [3.0, 2.5]}).to_csv(csv, index=False)
    r = _run_cli("fit", "power", str(csv), "--x", "N", "--y", "loss")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "3 free parameters" in r.stderr
    r = _run_cli("fit", "power", str(csv), "--x", "params", "--y", "loss")
    assert r.returncode == 2 and "params" in r.stderr and "Traceback" not in r.stderr


def test_report_is_self_contained(spec, tmp_path):
    text = SPEC.replace("shapes = [{d_model = 8, n_layers = 1, n_heads = 2}, {d_model = 16, n_layers = 1, n_heads = 2}]",
                        "rule = {n_layers = [1, 2, 3, 4], aspect_ratio = 8, head_dim = 4}")
    spec.write_text(text)
    assert runner.invoke(app, ["grid", "run", str(spec)]).exit_code == 0
    out = tmp_path / "report" / "index.html"
    r = runner.invoke(app, ["report", str(spec), "--out", str(out), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    assert "L_inf" in html and "held-out" in html and "Bayes loss" in html


NMT = dataset_path("nmt_gordon2021")
PARAMS = "params = 2*Layers*(4*ModelSize**2 + 2*ModelSize*FeedForward)"


def test_nmt_joint_law_and_bleu_law_per_language_pair():
    """Gordon et al.'s NMT runs through the CLI: a joint parameters/data law and BLEU = C·exp(k·CE) per pair."""
    r = runner.invoke(app, ["fit", "chinchilla", str(NMT), "--derive", PARAMS, "--x", "params", "--x", "data_bytes",
                            "--y", "ent_dev", "--where", "data_bytes > 5 * 2**20", "--by", "Lang", "--json"])
    assert r.exit_code == 0, r.output
    fits = json.loads(r.output)["fits"]
    assert set(fits) == {"deen", "ruen", "zhen"}
    for fit in fits.values():
        assert fit["converged"] and fit["r2"] > 0.97
        assert 0.05 < fit["params"]["alpha"] < 2 and 0.05 < fit["params"]["beta"] < 2
    r = runner.invoke(app, ["fit", "bleu_ce", str(NMT), "--x", "ent_dev", "--y", "bleu_dev", "--by", "Lang", "--json"])
    assert r.exit_code == 0, r.output
    fits = json.loads(r.output)["fits"]
    # regression references measured with this engine (Huber delta 1e-3 on log BLEU)
    expected = {"deen": (76.54, -0.4726), "ruen": (63.56, -0.4314), "zhen": (84.11, -0.4259)}
    for lang, fit in fits.items():
        assert fit["converged"] and fit["r2"] > 0.96
        assert fit["params"]["C"] == pytest.approx(expected[lang][0], rel=2e-3)
        assert fit["params"]["k"] == pytest.approx(expected[lang][1], rel=2e-3)


def test_plot_writes_prediction_and_residual_plots(tmp_path):
    n = np.geomspace(1e3, 1e6, 8)
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": n, "loss": 1.5 + (2e3 / n) ** 0.4}).to_csv(path, index=False)
    out = tmp_path / "fig" / "fit.png"
    r = runner.invoke(app, ["plot", "power", str(path), "--x", "N", "--y", "loss", "--holdout", "largest:2",
                            "--bootstrap", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for p in (out, out.with_name("fit-residuals.png")):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
