"""Exit codes and output of each command's failure paths, through a real subprocess.

0: success; 1: the command ran but something failed (a failed run); 2: a usage error (usage
printed, no traceback) or a user error (one `error:` line, no traceback).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

SPEC = """
[study]
name = "codes"
[data]
source = "{source}"
eval_tokens = 64
[data.options]
{options}
[model]
shapes = [{{d_model = 8, n_layers = 1, n_heads = 2}}]
[train]
steps = 3
batch_size = 2
seq_len = 16
eval_points = 2
"""


def scaling(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaling", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def assert_no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.fixture
def table(tmp_path: Path) -> Path:
    n = np.geomspace(1e3, 1e6, 8)
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": n, "loss": 1.5 + (2e3 / n) ** 0.4}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("args, message", [
    (["fit", "power", "runs.csv", "--x", "N", "--y", "loss", "--bogus"], "No such option: --bogus"),
    (["fit"], "Missing argument"),
    (["fit", "power", "runs.csv", "--x", "N"], "Missing option '--y'"),
    (["grid", "run"], "Missing argument"),
    (["grid", "nosuch"], "No such command"),
    (["report", "--nosuch"], "No such option"),
])
def test_usage_errors_print_the_usage_and_exit_2(table, args, message):
    r = scaling(*args, cwd=table.parent)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Usage: scaling" in r.stderr and message in r.stderr
    assert_no_traceback(r)


@pytest.mark.parametrize("args, message", [
    (["fit", "power", "runs.csv", "--x", "nosuch", "--y", "loss"], "nosuch"),
    (["fit", "power", "missing.csv", "--x", "N", "--y", "loss"], "not found"),
    (["fit", "power", "runs.csv", "--x", "N", "--y", "loss", "--where", "N > 1e9"], "selects no rows"),
    (["fit", "power", "runs.csv", "--x", "N", "--y", "loss", "--where", "N > 0 or @os.system('x')"], "`@`"),
    (["fit", "nosuchlaw", "runs.csv", "--x", "N", "--y", "loss"], "nosuchlaw"),
])
def test_fit_errors_exit_2_with_one_error_line(table, args, message):
    r = scaling(*args, cwd=table.parent)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and message in r.stderr
    assert_no_traceback(r)


def test_a_fit_that_fails_in_one_group_of_by_names_the_group(tmp_path):
    n = np.geomspace(1e3, 1e6, 8)
    df = pd.DataFrame({"N": [*n, 1e3, 1e4], "loss": [*(1.5 + (2e3 / n) ** 0.4), 3.0, 2.5],
                       "lang": ["de"] * 8 + ["ru"] * 2})
    df.to_csv(tmp_path / "runs.csv", index=False)
    r = scaling("fit", "power", "runs.csv", "--x", "N", "--y", "loss", "--by", "lang", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr == ("error: [lang = ru, 2 rows] power law has 3 free parameters but only 2 point(s) were "
                        "given; need at least 3\n")
    assert_no_traceback(r)


def test_a_nan_loss_is_named_by_its_row(tmp_path):
    pd.DataFrame({"N": [1e3, 2e3, 4e3, 8e3], "loss": [3.0, float("nan"), 2.6, 2.5]}).to_csv(tmp_path / "nan.csv",
                                                                                          index=False)
    r = scaling("fit", "power", "nan.csv", "--x", "N", "--y", "loss", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    # plain row numbers, not numpy reprs such as "np.int64(1)"
    assert r.stderr.startswith("error: power: column 'loss' has 1 NaN/inf value(s) (rows [1]); drop or fill")
    assert_no_traceback(r)


@pytest.mark.parametrize("command", [["report", "runs/x.toml"], ["demo"], ["grid", "run", "runs/x.toml", "--advise"],
                                     ["advise", "runs/x", "--budget", "1e12"]])
def test_a_bad_delta_is_named_before_anything_runs(tmp_path, command):
    r = scaling(*command, "--delta", "-1", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr == "error: --delta '-1': give a positive number or 'auto'\n"
    assert_no_traceback(r)


@pytest.mark.parametrize("command, message", [
    (["fit", "power", "x.csv", "--x", "N", "--y", "loss", "--bootstrap", "1"], "give 0 (no intervals) or at least 2"),
    (["fit", "isoflop", "x.csv", "--y", "loss", "--bootstrap", "-1"], "give 0 (no intervals) or at least 2"),
    (["plot", "power", "x.csv", "--x", "N", "--y", "loss", "--bootstrap", "1"], "give 0 (no intervals) or at least 2"),
    (["report", "runs/x.toml", "--bootstrap", "1"], "give 0 (no intervals) or at least 2"),
    (["demo", "--bootstrap", "-2"], "give 0 (no intervals) or at least 2"),
    (["advise", "runs/x", "--budget", "1e12", "--bootstrap", "0"], "give at least 2 replicates of the current fit")])
def test_a_bad_bootstrap_count_is_named_before_anything_runs(tmp_path, command, message):
    """Before, `fit` fitted first (and warned) and then failed inside the bootstrap; `advise` too."""
    r = scaling(*command, cwd=tmp_path)  # no data, spec or study there: the count is checked first
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith(f"error: --bootstrap {command[-1]}: {message}") and r.stderr.count("\n") == 1
    assert_no_traceback(r)


@pytest.mark.parametrize("command", [["fit", "nosuchlaw", "x.csv"], ["plot", "nosuchlaw"],
                                     ["fit", "nosuchlaw", "--x", "N", "--y", "loss"]])
def test_an_unknown_law_is_named_before_anything_else(tmp_path, command):
    """Before, a missing option or file was reported first, and the law only after the data were read."""
    r = scaling(*command, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: unknown law 'nosuchlaw'; the laws are: bleu_ce, ") and r.stderr.count("\n") == 1
    assert "chinchilla, " in r.stderr and "power, " in r.stderr
    assert_no_traceback(r)


@pytest.mark.parametrize("args, message", [
    (["--noise", "-1"], "--noise '-1': give a positive number (sd of one run's loss on the fit scale) or 'seeds'"),
    (["--noise", "0.01"], "--noise is the noise of the parametric bootstrap: add --bootstrap N"),
    (["--bootstrap", "20", "--bootstrap-method", "parametric"], "--bootstrap-method parametric needs --noise"),
    (["--bootstrap", "20", "--noise", "seeds", "--bootstrap-method", "pairs"], "--noise is the noise of the parametric")])
def test_a_bad_noise_is_named_before_anything_runs(tmp_path, args, message):
    r = scaling("fit", "power", "x.csv", "--x", "N", "--y", "loss", *args, cwd=tmp_path)  # x.csv does not exist
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith(f"error: {message}")
    assert_no_traceback(r)


def test_spec_errors_exit_2(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.format(source="zipf_facts", options="n_symbols = 16\nn_keys = 40").replace("steps = 3", "steps = 'many'"))
    for cmd in (["grid", "plan"], ["grid", "run"], ["grid", "status"]):
        r = scaling(*cmd, str(spec), cwd=tmp_path)
        assert r.returncode == 2, (cmd, r.returncode, r.stderr)
        assert r.stderr.startswith("error: ") and "bad.toml" in r.stderr and "steps" in r.stderr
        assert_no_traceback(r)

    # the demo outside a checkout: its spec is not there, and the error says where it is
    r = scaling("demo", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("error: runs/demo.toml: no such file here; run `scaling demo` from the root")
    assert_no_traceback(r)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to make the run fail")
def test_failed_runs_exit_1_and_say_so(tmp_path, monkeypatch):
    # The spec is valid; the run fails when training starts (the Triton loss needs CUDA or the interpreter).
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    spec = tmp_path / "codes.toml"
    spec.write_text(SPEC.format(source="zipf_facts", options="n_symbols = 16\nn_keys = 40") + 'loss_impl = "triton"\n')
    r = scaling("grid", "run", str(spec), cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "1 failed" in r.stdout
    assert_no_traceback(r)
    # status says why, under its table (it said only "failed")
    r = scaling("grid", "status", str(spec), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (note,) = [line for line in r.stdout.splitlines() if ": failed: " in line]
    assert note.endswith("/error.txt)") and "failed: KernelInputError: `impl='triton'` needs" in note, note


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_on_a_machine_without_one_is_named_before_any_run(tmp_path):
    # every run failed, one after another, on torch's "AssertionError: Torch not compiled with CUDA enabled"
    spec = tmp_path / "codes.toml"
    spec.write_text(SPEC.format(source="zipf_facts", options="n_symbols = 16\nn_keys = 40") + 'device = "cuda"\n')
    r = scaling("grid", "run", str(spec), cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr == (f"error: {spec}: [train] `device` = 'cuda', but this machine has no CUDA device; use 'auto' "
                        "(a GPU where there is one, else the CPU) or 'cpu'\n")
    assert not (tmp_path / "codes" / "runs").exists()  # nothing started


def test_success_exits_0(table):
    r = scaling("fit", "power", "runs.csv", "--x", "N", "--y", "loss", "--json", cwd=table.parent)
    assert r.returncode == 0, r.stderr
    r = scaling("datasets", "list", cwd=table.parent)
    assert r.returncode == 0 and "llama3_isoflops" in r.stdout


def test_warnings_print_as_one_clean_line(tmp_path):
    # `main()` installs the one-line format; a FitWarning raised afterwards prints no source line.
    code = ("import sys, warnings\nfrom scaling import cli\nfrom scaling.laws.fitting import FitWarning\n"
            "sys.argv = ['scaling', 'datasets', 'path', 'llama3_isoflops']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "warnings.warn('dcpt: fit did not converge; raise max_iter', FitWarning)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "warning: dcpt: fit did not converge; raise max_iter\n"
