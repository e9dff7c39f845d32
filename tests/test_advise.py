"""`scaling advise`: the design arithmetic against brute force, the choice within budget, the CLI,
and (slow) the simulation study against the standard ladder on a ground-truth law."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from scaling.advise import Candidate, advise, candidate_grid, target_function
from scaling.advise.design import jacobians, target_gradients
from scaling.advise.search import _Design
from scaling.advise.simulation import chinchilla_truth, ladder_cost, simulation_study, standard_ladder
from scaling.cli import app
from scaling.errors import FitError
from scaling.laws import get_law

TRUE = {"E": 1.8169, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3659}


@pytest.fixture(scope="module")
def chinchilla_fit():
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(2e7, 2e8, 4), 2)
    d = n * np.tile([10.0, 40.0], 4)
    loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
    df = pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, 0.01, len(n)))})
    law = get_law("chinchilla").fit(df, x=["N", "D"], y="loss")
    return law.bootstrap(100, seed=0, method="residual"), df


def test_jacobians_match_autograd(chinchilla_fit):
    law, df = chinchilla_fit
    theta = law.boot_theta_[:3]
    J = jacobians(law, theta, law._F)
    for r in range(3):
        th = torch.as_tensor(theta[r:r + 1]).requires_grad_(True)
        out = law.forward(th, law._F)[0]
        exact = torch.stack([torch.autograd.grad(o, th, retain_graph=True)[0][0] for o in out]).numpy()
        np.testing.assert_allclose(J[r], exact, rtol=1e-5, atol=1e-8)


def test_rank_one_updates_equal_direct_inversion(chinchilla_fit):
    law, _ = chinchilla_fit
    theta = law.boot_theta_[:4]
    f = target_function(law, "loss", 1e23)
    g = target_gradients(f, theta)
    J0 = jacobians(law, theta, law._F)
    M0 = np.einsum("rnp,rnq->rpq", J0, J0) / 0.01 ** 2 + np.eye(5)[None] * 1e-2
    X = np.array([[1e9, 2e10], [5e8, 5e9], [2e9, 4e10]])
    Jc = jacobians(law, theta, torch.as_tensor(np.log(X)))
    design = _Design(M0, g, np.ones(5, bool))
    predicted = design.widths_after(Jc[:, :, None] / 0.01)
    for k in range(3):
        M = M0 + np.einsum("rp,rq->rpq", Jc[:, k], Jc[:, k]) / 0.01 ** 2
        var = np.einsum("rp,rpq,rq->r", g, np.linalg.inv(M), g)
        # the criterion: the geometric mean over draws of the 95% width
        assert predicted[k] == pytest.approx(np.exp(np.mean(np.log(2 * 1.959963984540054 * np.sqrt(var)))), rel=1e-8)
    design.add(Jc[:, 1, None] / 0.01)
    M = M0 + np.einsum("rp,rq->rpq", Jc[:, 1], Jc[:, 1]) / 0.01 ** 2
    np.testing.assert_allclose(design.Minv, np.linalg.inv(M), rtol=1e-6, atol=1e-12)


def test_target_functions_against_the_closed_form(chinchilla_fit):
    law, _ = chinchilla_fit
    n_opt, d_opt = law.optimal_allocation(1e23)
    th = law.theta_[None]
    assert target_function(law, "n_opt", 1e23)(th)[0] == pytest.approx(float(n_opt), rel=1e-12)
    assert target_function(law, "tokens_per_param", 1e23)(th)[0] == pytest.approx(float(d_opt / n_opt), rel=1e-12)
    loss = law.predict(np.array([[float(n_opt), float(d_opt)]]))[0]
    assert target_function(law, "loss", 1e23)(th)[0] == pytest.approx(loss, rel=1e-10)


def test_advice_stays_within_budget_and_narrows_the_expected_interval(chinchilla_fit):
    law, df = chinchilla_fit
    cands = candidate_grid(law, sizes=np.geomspace(2e7, 2e9, 10))
    budget = 1e20
    adv = advise(law, cands, budget, "loss", 1e23, noise=0.01)
    assert 0 < adv.spent <= budget and adv.spent == pytest.approx(sum(r["flops"] for r in adv.runs))
    assert adv.expected_width_after < adv.expected_width_before
    widths = [r["expected_width_after"] for r in adv.runs]
    assert all(b <= a for a, b in zip(widths, widths[1:]))  # each run narrows it further
    assert adv.ci95_before[0] < adv.value < adv.ci95_before[1]
    capped = advise(law, cands, budget, "loss", 1e23, noise=0.01, n_runs=2)
    assert len(capped.runs) <= 2
    assert adv.warnings == []


def test_advice_that_ran_out_of_candidates_says_so(chinchilla_fit):
    # three candidates and a budget 100 times their cost: all three are advised, and the advice says
    # the candidates, not the optimum, stopped it at a small share of the budget
    law, _ = chinchilla_fit
    cands = candidate_grid(law, sizes=[2e7, 2e8, 2e9], tokens_per_param=[20.0])
    assert len(cands) == 3
    budget = 100 * sum(c.flops for c in cands)
    adv = advise(law, cands, budget, "loss", 1e23, noise=0.01)
    assert len(adv.runs) == 3 and adv.spent == pytest.approx(budget / 100)
    assert adv.warnings == [
        f"every candidate run was chosen (3), spending {adv.spent:.3g} of the {budget:.3g} FLOPs budget: more "
        "candidates could use the rest (with --candidates: more --seeds, or --step-multipliers for a law of N and D; "
        "without: a wider --sizes or --repeats)"]


def test_core_runs_are_the_fewest_that_keep_90_percent_of_the_narrowing(chinchilla_fit):
    """`_core` (greedy removal) against brute force over every subset of 7 runs."""
    import itertools

    from scaling.advise.search import _core, _with

    law, _ = chinchilla_fit
    theta = law.boot_theta_[:16]
    g = target_gradients(target_function(law, "loss", 1e23), theta)
    J0 = jacobians(law, theta, law._F)
    M0 = np.einsum("rnp,rnq->rpq", J0, J0) / 0.01 ** 2 + np.eye(5)[None] * 1e-2
    X = np.array([[n, n * t] for n, t in [(3e8, 20), (1e9, 20), (2e9, 5), (2e9, 80), (5e8, 40), (4e9, 20), (1e8, 100)]])
    Jc = jacobians(law, theta, torch.as_tensor(np.log(X)))[:, :, None] / 0.01
    design = _Design(M0, g, np.ones(5, bool))
    chosen = list(range(len(X)))
    before, full = design.width(), _with(design, Jc, chosen).width()
    allowed = before - 0.9 * (before - full)
    keep, width = _core(design, Jc, chosen)
    assert width == pytest.approx(_with(design, Jc, keep).width(), rel=1e-12) and width <= allowed
    fewest = next(k for k in range(1, len(X) + 1)
                  if any(_with(design, Jc, list(c)).width() <= allowed for c in itertools.combinations(chosen, k)))
    assert len(keep) == fewest < len(X)
    adv = advise(law, candidate_grid(law, sizes=np.geomspace(2e7, 2e9, 10)), 1e20, "loss", 1e23, noise=0.01)
    core = adv.to_json()["core"]
    assert set(core["runs"]) < {r["label"] for r in adv.runs} and core["flops"] < adv.spent
    assert adv.expected_width_after <= core["expected_width_after"] <= (
        adv.expected_width_before - 0.9 * (adv.expected_width_before - adv.expected_width_after)) * (1 + 1e-12)


def test_runs_at_too_few_sizes_are_warned_of_and_the_warning_says_whether_advice_adds_one(chinchilla_fit):
    law, df = chinchilla_fit
    assert advise(law, candidate_grid(law, sizes=np.geomspace(2e7, 2e9, 10)), 1e20, "loss", 1e23,
                  noise=0.01).warnings == []  # four sizes and eight token budgets
    n = np.repeat([2e7, 4.31e7], 4)
    d = n * np.tile([5.0, 10.0, 20.0, 40.0], 2)
    loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
    two = pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(np.random.default_rng(0).normal(0, 0.01, 8))})
    narrow = get_law("chinchilla").fit(two, x=["N", "D"], y="loss")
    assert narrow.x_distinct_["N"] == pytest.approx(sorted(two.N.unique()))
    widen = advise(narrow, candidate_grid(narrow, sizes=np.geomspace(2e7, 2e9, 10)), 1e20, "loss", 1e23,
                   noise=0.01)
    new_n = sorted({c.x[0] for c in widen.chosen} - set(two.N))
    assert len(widen.warnings) == 1 and new_n  # only N: the eight token budgets are distinct
    assert widen.warnings[0].startswith("the runs so far have 2 distinct value(s) of N (2e+07, 4.31e+07)")
    assert f"the advised runs add N = {new_n[0]:.3g}" in widen.warnings[0]
    stuck = advise(narrow, candidate_grid(narrow, sizes=sorted(two.N.unique())), 1e20, "loss", 1e23, noise=0.01)
    assert "none of the advised runs adds one" in stuck.warnings[0]
    assert stuck.to_json()["warnings"] == stuck.warnings


def test_bad_input_names_what_to_fix(chinchilla_fit):
    law, df = chinchilla_fit
    cands = candidate_grid(law, sizes=[1e8])
    with pytest.raises(FitError, match="--budget must be > 0"):
        advise(law, cands, 0, "loss", 1e23)
    with pytest.raises(FitError, match="unknown advise target 'share'"):
        advise(law, cands, 1e20, "share", 1e23)
    with pytest.raises(FitError, match="needs --at > 0"):
        advise(law, cands, 1e20, "loss", 0)
    with pytest.raises(FitError, match="no candidate runs"):
        advise(law, [], 1e20, "loss", 1e23)
    power = get_law("power").fit(pd.DataFrame({"N": [1e3, 3e3, 1e4, 3e4, 1e5], "loss": [3, 2.5, 2.2, 2.05, 2.0]}),
                                 x="N", y="loss")
    with pytest.raises(FitError, match="needs the tokens per run"):
        candidate_grid(power, sizes=[1e4])
    with pytest.raises(FitError, match="defined for the chinchilla / kaplan law"):
        advise(power, [Candidate((1e5,), 1.0)], 10.0, "n_opt", 1e6)


def test_standard_ladder_spans_the_candidates_at_20_tokens_per_parameter():
    truth = chinchilla_truth()
    ladder = standard_ladder(truth)
    assert ladder[0, 0] == truth.sizes[0] and ladder[-1, 0] == pytest.approx(truth.sizes[-1])
    np.testing.assert_allclose(ladder[:, 1] / ladder[:, 0], 20)
    assert ladder_cost(truth) == pytest.approx(float(np.sum(6 * ladder[:, 0] * ladder[:, 1])))


def test_cli_json(tmp_path):
    n = np.geomspace(2e3, 2e4, 5)
    rng = np.random.default_rng(1)
    pd.DataFrame({"N": n, "tokens": 4e6, "loss": (1.42 + (300 / n) ** 0.62) * np.exp(rng.normal(0, 0.005, 5))}
                 ).to_csv(tmp_path / "runs.csv", index=False)
    r = CliRunner().invoke(app, ["advise", str(tmp_path / "runs.csv"), "--law", "power", "--x", "N", "--y", "loss",
                                 "--budget", "5e12", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["target"] == "loss" and out["at"] == pytest.approx(2e5)  # 10x the largest run by default
    assert out["expected_width_after"] < out["expected_width_before"] and 0 < out["spent"] <= 5e12
    for run in out["runs"]:
        assert run["flops"] == pytest.approx(6 * run["x"]["N"] * 4e6) and "cuts the expected 95% width" in run["reason"]
    r = CliRunner().invoke(app, ["advise", str(tmp_path / "runs.csv"), "--x", "N", "--budget", "0"])
    assert r.exit_code != 0 and "--budget" in str(r.exception or r.output)
    # a misspelt target fails on its name, before the fit and before the other flags it would need
    r = CliRunner().invoke(app, ["advise", str(tmp_path / "runs.csv"), "--x", "N", "--budget", "5e12",
                                 "--target", "n-opt", "--sizes", "1:2:3"])
    assert r.exit_code != 0 and "unknown advise target 'n-opt'; choose from loss, n_opt" in str(r.exception or r.output)
    # --derive as in `scaling fit`: the same advice from a column derived from the table's own
    pd.read_csv(tmp_path / "runs.csv").assign(N=lambda d: d.N / 1e3).rename(columns={"N": "kN"}).to_csv(
        tmp_path / "kilo.csv", index=False)
    r = CliRunner().invoke(app, ["advise", str(tmp_path / "kilo.csv"), "--law", "power", "--derive", "N = kN * 1e3",
                                 "--x", "N", "--y", "loss", "--budget", "5e12", "--json"])
    assert r.exit_code == 0, r.output
    derived = json.loads(r.output)
    assert derived["runs"] == out["runs"] and derived["expected_width_after"] == pytest.approx(out["expected_width_after"])
    assert out["warnings"] == derived["warnings"] == []
    # a table of two series (two eval sets, say) is fitted and advised on as one: say so first
    two = pd.read_csv(tmp_path / "runs.csv").assign(eval_set="valid")
    pd.concat([two, two.assign(eval_set="ood", loss=two.loss * 1.6)]).to_csv(tmp_path / "two.csv", index=False)
    r = CliRunner().invoke(app, ["advise", str(tmp_path / "two.csv"), "--law", "power", "--x", "N", "--y", "loss",
                                 "--budget", "5e12", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["warnings"][0] == (
        "rows with the same N differ in loss by up to 1.6x (more than seeds do): the table holds several series; "
        "they differ in eval_set; select one with --where")


@pytest.mark.slow
def test_simulation_advised_runs_beat_the_standard_ladder_on_chinchilla():
    """Ground truth: Besiroglu et al.'s fit with noise 0.01 in log loss (published residual scale);
    target: the loss at 1e23 FLOPs; same compute for both designs."""
    res = simulation_study(chinchilla_truth(), trials=5, seed=0, n_boot=100)
    assert res["win_rate"] >= 0.8, res
    assert res["median_width_ratio"] < 0.7, res
    assert res["coverage"] >= 0.6, res  # measured coverage of the advised intervals; nominal 0.95


ADVISE_SPEC = """
[study]
name = "adv"
[data]
source = "zipf_facts"
eval_tokens = 630
[data.options]
n_symbols = 16
n_keys = 60
[model]
shapes = [{d_model = 4, n_layers = 1, n_heads = 1}, {d_model = 6, n_layers = 1, n_heads = 1},
          {d_model = 8, n_layers = 1, n_heads = 2}, {d_model = 12, n_layers = 1, n_heads = 2},
          {d_model = 16, n_layers = 1, n_heads = 2}, {d_model = 24, n_layers = 1, n_heads = 2},
          {d_model = 32, n_layers = 1, n_heads = 2}]
[train]
steps = 60
batch_size = 8
seq_len = 21
eval_points = 2
lr = 1e-2
"""


@pytest.mark.slow
def test_grid_run_advise_appends_new_runs_and_retrains_nothing(tmp_path):
    from scaling.advise import advised_runs

    spec = tmp_path / "adv.toml"
    # The first pass trains the five smallest shapes only (the larger two are the candidates).
    spec.write_text(ADVISE_SPEC.replace("{d_model = 24, n_layers = 1, n_heads = 2},\n          {d_model = 32, n_layers = 1, n_heads = 2}]", "]").replace("2},\n          ]", "2}]"))
    r = CliRunner().invoke(app, ["grid", "run", str(spec)])
    assert r.exit_code == 0, r.output
    first = pd.read_parquet(tmp_path / "adv" / "runs.parquet")
    assert len(first) == 5
    spec.write_text(ADVISE_SPEC)  # the same study, its spec now able to express the larger shapes
    root = tmp_path / "adv"
    r = CliRunner().invoke(app, ["advise", str(root), "--x", "n_params_nonemb", "--budget", "2e9",
                                 "--candidates", str(spec), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["runs"] and not advised_runs(root)  # advice alone changes nothing
    r = CliRunner().invoke(app, ["grid", "run", str(spec), "--advise", "--budget", "2e9"])
    assert r.exit_code == 0, r.output
    added = advised_runs(root)
    assert "new run(s) appended" in r.output and added
    after = pd.read_parquet(root / "runs.parquet")
    done_before = first.set_index("run_id")
    for run_id, row in done_before.iterrows():  # finished runs kept as they were
        assert after.set_index("run_id").loc[run_id, "wall_time"] == row["wall_time"]
    from scaling.train.run_config import RunConfig

    new_ids = {RunConfig.from_dict(c).run_id for c in added}
    assert new_ids <= set(after.run_id) and not new_ids & set(first.run_id)
    # a budget below every candidate: nothing appended, nothing trained, and the warning says why
    r = CliRunner().invoke(app, ["grid", "run", str(spec), "--advise", "--budget", "1e3"])
    assert r.exit_code == 0, r.output
    assert "0 new run(s) appended" in r.output and "training 0 runs" in r.output
    assert "warning: no candidate run fits in the budget of 1e+03 FLOPs" in " ".join(r.output.split())


def test_append_goes_to_the_study_folder_the_runs_came_from(tmp_path):
    # A study trained with `grid run SPEC --out DIR`: --append writes to DIR (not to the spec's default
    # folder, where `grid run SPEC` would then retrain everything), and the printed command names DIR.
    from scaling.advise import advised_runs
    from scaling.config import load_spec
    from scaling.train import expand, plan_rows

    spec = tmp_path / "adv.toml"
    spec.write_text(ADVISE_SPEC)
    rows = pd.DataFrame(plan_rows(expand(load_spec(spec))))[:5]  # the five smallest shapes, "trained"
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    pd.DataFrame({"run_id": rows["run_id"], "status": "done", "n_params_nonemb": rows["n_params_nonemb"],
                  "loss": 2.0 + 30.0 * rows["n_params_nonemb"].astype(float) ** -0.5 * (1 + 0.01 * np.arange(5)),
                  }).to_parquet(folder / "runs.parquet")
    args = ["advise", str(folder), "--x", "n_params_nonemb", "--budget", "2e9", "--candidates", str(spec)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"train them with: scaling grid run {spec} --out {folder}" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*args, "--append"])
    assert r.exit_code == 0, r.output
    added = advised_runs(folder)
    assert added and not (tmp_path / "adv").exists()
    from scaling.train.run_config import RunConfig

    assert not {RunConfig.from_dict(c).run_id for c in added} & set(rows["run_id"])  # nothing done is advised
    assert (f"appended {len(added)} new run(s) to the study; train them with: scaling grid run {spec} --out {folder}"
            in " ".join(r.output.split()))


def test_parametric_replicates_spread_with_the_given_noise_and_leave_the_fit_alone(chinchilla_fit):
    from scaling.laws.bootstrap import run_bootstrap

    law, _ = chinchilla_fit
    before = law.boot_theta_.copy()
    sd = {}
    for noise in (0.005, 0.01):
        import copy

        c = copy.copy(law)
        run_bootstrap(c, 100, 0, method="parametric", noise=noise)
        pred = c.forward(torch.as_tensor(c.boot_theta_), c._F).numpy()  # fit-scale predictions at the runs
        sd[noise] = float(np.mean(np.std(pred, axis=0)))
    assert sd[0.01] / sd[0.005] == pytest.approx(2.0, rel=0.1)  # well-identified predictions: spread ∝ noise
    cands = candidate_grid(law, sizes=np.geomspace(2e7, 2e9, 4))
    advise(law, cands, 1e20, "loss", 1e23, noise=0.01)
    np.testing.assert_array_equal(law.boot_theta_, before)
    with pytest.raises(FitError, match="needs the noise scale"):
        run_bootstrap(copy.copy(law), 10, 0, method="parametric")


def test_the_ladder_is_near_c_optimal_for_the_demo_power_law():
    """Why advice gains little on L(N) alone: the best design over the ladder's sizes (continuous
    c-optimal at the true parameters, any number of runs each) is only 17% narrower than the ladder."""
    from scaling.advise.simulation import oracle_ratio, power_truth

    assert oracle_ratio(power_truth()) == pytest.approx(0.834, abs=0.005)


@pytest.mark.slow
def test_rounds_of_advice_recover_from_a_pilot_fitted_to_the_wrong_exponent():
    """Seed 3's four-run pilot of the demo power law fits alpha = 1.49 (truth 0.62). All the budget
    advised from that fit buys runs below 2e4 and an interval wider than the ladder's, at the
    true parameters; three rounds of run, fit, advise see the big runs' losses and recover."""
    from scaling.advise.simulation import oracle_design, power_truth, run_trial, width_at_truth

    truth = power_truth()
    ladder = width_at_truth(truth, standard_ladder(truth))
    once, thrice = (run_trial(truth, 3, n_boot=20, rounds=r) for r in (1, 3))
    assert once["advised_width_at_truth"] / ladder == pytest.approx(1.382, abs=0.01)
    assert thrice["advised_width_at_truth"] / ladder < 0.96
    assert thrice["advised_flops"] <= ladder_cost(truth) * (1 + 1e-9)
    oracle = oracle_design(truth)  # the c-optimal shares in whole runs, within the same budget
    assert float(np.sum(6 * truth.tokens * oracle)) <= ladder_cost(truth) * (1 + 1e-9)
    assert width_at_truth(truth, oracle) / ladder == pytest.approx(0.867, abs=0.005)


def test_advice_fits_with_the_candidates_specs_report_delta_unless_told(tmp_path):
    # The study's report and `grid run --advise` fit with the spec's [report] delta: `scaling advise
    # --candidates SPEC` does too, so the three give one interval; --delta still overrides it.
    from scaling.config import load_spec
    from scaling.train import expand, plan_rows

    spec = tmp_path / "adv.toml"
    spec.write_text(ADVISE_SPEC + "\n[report]\ndelta = 0.5\n")
    rows = pd.DataFrame(plan_rows(expand(load_spec(spec))))[:5]
    folder = tmp_path / "done"
    folder.mkdir()
    pd.DataFrame({"run_id": rows["run_id"], "status": "done", "n_params_nonemb": rows["n_params_nonemb"],
                  "loss": 2.0 + 30.0 * rows["n_params_nonemb"].astype(float) ** -0.5 * (1 + 0.03 * np.array(
                      [0, 1, -1, 2, -2]))}).to_parquet(folder / "runs.parquet")
    args = ["advise", str(folder), "--x", "n_params_nonemb", "--budget", "2e9", "--candidates", str(spec), "--json"]
    out = {}
    for name, extra in (("spec", []), ("flag", ["--delta", "0.5"]), ("laws", ["--delta", "1e-3"])):
        r = CliRunner().invoke(app, [*args, *extra])
        assert r.exit_code == 0, r.output
        out[name] = json.loads(r.output)
    assert out["spec"] == out["flag"]
    assert out["spec"]["value"] != pytest.approx(out["laws"]["value"], rel=1e-6)
