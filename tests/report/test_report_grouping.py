"""Size laws never average across what matters (issue 9, items 7 and 10): one law per token
budget, the per-size best over tuning axes, seeds averaged only; E of L(N, D) against Bayes."""

import numpy as np
import pandas as pd
import pytest
from synthetic_stores import BEST_LR, BUDGETS, LRS, TRUTH, decoder_runs

from scaling.report import ReportOptions, size_fits
from scaling.report.grouping import budget_key, classify_axes, size_groups
from scaling.report.study import budget_fits, chinchilla_section

OPTS = ReportOptions(bootstrap=0)


def test_axes_are_classified_by_what_a_size_law_does_with_them():
    runs = decoder_runs()
    axes = classify_axes(runs)
    # model.d_model changes only with size: part of the size, not an axis
    assert axes == {"seed": ["seed"], "tuning": ["train.lr"], "group": []}
    key, kind = budget_key(runs)
    assert kind == "D" and sorted(key.unique()) == BUDGETS


def test_one_law_per_token_budget_on_the_per_size_best_lr():
    runs = decoder_runs()
    fits = size_fits(runs, OPTS)
    assert [f.budget for f in fits] == ["D = 1.0M tokens per run", "D = 4.0M tokens per run",
                                        "D = 16M tokens per run", "D = 64M tokens per run"]
    for fit, d in zip(fits, BUDGETS):
        assert len(fit.data) == 5 and (fit.data["train.lr"] == BEST_LR).all()
        # at a fixed D the law in N is L_inf + (x0/N)^alpha with L_inf = E + B/D^beta
        assert fit.law.params_["L_inf"] == pytest.approx(TRUTH["E"] + TRUTH["B"] / d ** TRUTH["beta"], rel=1e-6)
        assert fit.law.params_["alpha"] == pytest.approx(TRUTH["alpha"], rel=1e-5)
        notes = " ".join(fit.notes)
        assert "averaged over seeds only (2 per point)" in notes
        assert "per-size best over train.lr" in notes and "train.lr=0.01 at every size" in notes
        assert "one law per token budget" in notes


def test_the_mean_over_lr_would_have_been_biased():
    """The failure this guards against: pooling lrs shifts L_inf by the mean lr penalty."""
    runs = decoder_runs(budgets=BUDGETS[:1])
    pooled = runs.groupby("n_params_nonemb", as_index=False)["loss_valid"].mean()
    best = size_groups(runs, "loss_valid")[0].data
    penalty = np.mean(1 + 0.05 * np.log(np.asarray(LRS) / BEST_LR) ** 2)
    np.testing.assert_allclose(pooled.loss_valid / best.loss_valid, penalty, rtol=1e-9)
    assert penalty > 1.03


def test_tokens_per_parameter_budgets_get_one_law_each():
    rows = []
    for tpp in (5, 20):
        part = decoder_runs(budgets=[1.0], lrs=[BEST_LR])
        part["tokens"] = part.n_params_nonemb * tpp
        rows.append(part)
    runs = pd.concat(rows, ignore_index=True)
    groups = size_groups(runs, "loss_valid")
    assert [g.label for g in groups] == ["D/N = 5 tokens per parameter", "D/N = 20 tokens per parameter"]


def test_other_data_axes_get_their_own_law():
    a, b = decoder_runs(budgets=BUDGETS[:1], lrs=[BEST_LR]), decoder_runs(budgets=BUDGETS[:1], lrs=[BEST_LR])
    a["data.options.zipf_exponent"], b["data.options.zipf_exponent"] = 1.2, 1.4
    b["loss_valid"] += 0.1
    groups = size_groups(pd.concat([a, b], ignore_index=True), "loss_valid")
    assert [g.label for g in groups] == ["D = 1.0M tokens per run, data.options.zipf_exponent = 1.2",
                                         "D = 1.0M tokens per run, data.options.zipf_exponent = 1.4"]
    np.testing.assert_allclose(groups[1].data.loss_valid - groups[0].data.loss_valid, 0.1, rtol=1e-9)


def test_varying_budget_compares_E_of_chinchilla_with_the_bayes_loss():
    runs = decoder_runs()
    (fit,) = budget_fits(runs, OPTS)
    for k in ("E", "alpha", "beta"):
        assert fit.law.params_[k] == pytest.approx(TRUTH[k], rel=1e-5)
    section = chinchilla_section(fit, runs)
    labels = [a.label for a in section.answers]
    assert labels[0] == "E of L(N, D) (eval set valid)" and "+0.00%" in section.answers[0].note
    assert "compute C = 6·N·D, N = non-embedding parameters" in str(section.text)
    # D/N at the largest grid compute: C/(6 N_opt^2) from the known law's allocation
    t = TRUTH
    c = float(runs.c_6nd.max())
    g = (t["alpha"] * t["A"] / (t["beta"] * t["B"])) ** (1 / (t["alpha"] + t["beta"]))
    n_opt = g * (c / 6) ** (t["beta"] / (t["alpha"] + t["beta"]))
    assert section.answers[-1].value == pytest.approx(c / (6 * n_opt**2), rel=1e-4)


def test_single_budget_names_the_budget_it_compares_at():
    from scaling.report.fits import law_section

    runs = decoder_runs(budgets=[4.032e6], lrs=[BEST_LR])
    (fit,) = size_fits(runs, OPTS)
    section = law_section(fit)
    assert section.answers[0].label == "L_inf at eval set valid, D = 4.0M tokens per run"
    assert "Compared: L_inf at D = 4.0M tokens per run" in str(section.text)
    assert budget_fits(runs, OPTS) == []  # one D: no law in D, no E to compare


def test_the_runs_table_shows_the_settings_that_differ_between_runs():
    from scaling.report.study import runs_table

    runs = decoder_runs(sizes=[1e3, 2e3], budgets=[84000.0], lrs=LRS)
    runs["train.beta1"] = 0.9  # the same for every run: left out
    table = runs_table(runs).df
    assert list(table.columns[:4]) == ["label", "run_id", "seed", "train.lr"]
    assert "train.beta1" not in table.columns and "train.steps" not in table.columns  # one budget: no axis
    assert sorted(table["train.lr"].unique()) == sorted(LRS)
    one_lr = runs_table(decoder_runs(sizes=[1e3, 2e3], budgets=[84000.0], lrs=[BEST_LR])).df
    assert not [c for c in one_lr.columns if c.startswith("train.")]
