"""Reports escape what users wrote (issue 9, item 2), open with a summary of their answers
(item 13), flag parameters at their bounds, and say why a BLEU fit failed (item 16)."""

import re

import numpy as np
import pandas as pd
import pytest
from synthetic_stores import (BEST_LR, SIZES, cpt_runs, cpt_spec, curves_for, decoder_runs, decoder_spec, encdec_runs, encdec_spec,
                      write_store)

import scaling.report.encdec as encdec_report
from scaling.errors import FitError, ScalingError
from scaling.report import ReportOptions, Section, Table, build_report, markup
from scaling.report.study import FAMILY_SECTIONS

XSS = "<script>alert(1)</script>"
OPTS = ReportOptions(bootstrap=0)


def _summary_first(html: str) -> None:
    summary = html.index('<section id="summary">')
    first = html.index('<section id="s0">')
    assert summary < first
    assert html.index("<figure") > first if "<figure" in html else True


def test_user_text_is_escaped_everywhere(tmp_path, monkeypatch):
    runs = decoder_runs(budgets=[1e6], lrs=[BEST_LR])
    runs[f"loss_{XSS}"] = runs["loss_valid"]
    runs["label"] = XSS
    store = write_store(tmp_path / "xss", runs)

    def failing(spec, store, runs, opts):
        raise ScalingError(f"cannot fit {XSS}")

    monkeypatch.setitem(FAMILY_SECTIONS, "decoder", FAMILY_SECTIONS["decoder"] + [failing])
    out = tmp_path / "index.html"
    spec = decoder_spec(name="xss", description=XSS)
    spec.study.name = XSS  # a spec file cannot give this name (it is a folder name); escaped all the same
    build_report(spec, store, out, OPTS)
    html = out.read_text()
    assert XSS not in html and "alert(1)</script>" not in html
    assert html.count("<script>") == 1  # the report's own table sorter
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>Study: {escaped}</title>" in html  # study name
    assert f'<p class="sub">{escaped}' in html  # description
    assert f"L(N) on {escaped}" in html  # eval-set name
    assert f"<td>{escaped}</td>" in html  # a column value
    assert f"cannot fit {escaped}" in html  # an error message


def test_markup_escapes_its_arguments():
    assert str(markup("<code>{}</code>", XSS)) == "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"


def test_tables_one_format_per_column_sortable_collapsed_and_scrolling():
    df = pd.DataFrame({"name": ["a", "b"], "tokens_per_s": [163600.0, 9100.0], "loss": [2.0, 1.23456],
                       "n": [1234567, 12], "tiny": [0.000123456, 0.5]})
    html = Table(df).__html__()
    assert "1.64e5" in html and "9.10e3" in html  # not 1.636e+05 beside 9100
    assert ">2.000<" in html and ">1.235<" in html
    assert "1,234,567" in html and "1.23e-4" in html and "5.00e-1" in html
    assert 'class="scroll"' in html and 'class="sortable"' in html and 'data-v="163600.0"' in html
    assert "<details>" not in html
    long = Table(pd.DataFrame({"x": range(30)}), caption="runs").__html__()
    assert long.startswith("<details><summary>runs (30 rows; click to show)</summary>")


def test_decoder_report_opens_with_its_answers(tmp_path):
    store = write_store(tmp_path / "d", decoder_runs(budgets=[1e6], lrs=[BEST_LR]))
    out = tmp_path / "index.html"
    sections = build_report(decoder_spec(), store, out, OPTS)
    html = out.read_text()
    _summary_first(html)
    summary = html[html.index('<section id="summary">'):html.index('<section id="s0">')]
    assert "L_inf at eval set valid, D = 1.0M tokens per run" in summary and "exact Bayes loss 1.5000" in summary
    assert [s.title for s in sections][-1] == "Runs"  # the long runs table comes last
    assert "compute C = 6·N·D, N = non-embedding parameters" in html


def test_encdec_report_opens_with_the_split_and_flags_bounds(tmp_path):
    store = write_store(tmp_path / "e", encdec_runs())
    out = tmp_path / "index.html"
    sections = build_report(encdec_spec(), store, out, OPTS)
    html = out.read_text()
    _summary_first(html)
    summary = html[html.index('<section id="summary">'):html.index('<section id="s0">')]
    assert "encoder share of non-embedding parameters at the optimum (eval set valid)" in summary
    # the truth has pe/(pe+pd) = 1/3
    share = [a for s in sections for a in s.answers if a.label.startswith("encoder share")][0]
    assert share.value == pytest.approx(1 / 3, abs=0.01)
    assert share.heldout_error is not None and share.heldout_error < 0.01


def test_every_parameter_at_a_bound_is_flagged(tmp_path):
    from scaling.report.fits import LawFit, fit_with_holdout, law_section

    runs = decoder_runs(budgets=[1e6], lrs=[BEST_LR])
    runs["loss_flat"] = 3.0 * runs.n_params_nonemb.astype(float) ** -0.2  # no floor: L_inf runs to its bound
    law = fit_with_holdout("power", runs, ["n_params_nonemb"], "loss_flat", OPTS)
    assert "L_inf" in law.at_bounds_
    section = law_section(LawFit("L(N) on flat", law, runs, "largest:1", eval_set="flat"))
    assert any("L_inf" in w and "at its lower bound" in w for w in section.warnings)
    assert "at its lower bound" in section.answers[0].note
    table = section.tables[0].__html__()
    assert "⚠ lower bound" in table


def test_bleu_fit_that_fails_says_why(tmp_path, monkeypatch):
    runs = encdec_runs()
    runs["loss_other"] = runs["loss_valid"] * 1.1
    runs["bleu_other"] = 0.0
    real = encdec_report.fit_with_holdout

    def fit(name, *a, **k):
        if name == "bleu_ce":
            raise FitError("bleu_ce: no start gave a finite objective; check the data's scale")
        return real(name, *a, **k)

    monkeypatch.setattr(encdec_report, "fit_with_holdout", fit)
    section = encdec_report.bleu_section(runs, [("loss_valid", "bleu_valid"), ("loss_other", "bleu_other")], OPTS)
    assert section.warnings == [
        "BLEU fit on valid failed: bleu_ce: no start gave a finite objective; check the data's scale",
        "BLEU fit on other not made: 0 run(s) with BLEU > 0, the fit needs 3"]
    from scaling.report import render_report

    html = render_report("t", [section], tmp_path / "index.html").read_text()
    summary = html[html.index('<section id="summary">'):html.index('<section id="s0">')]
    assert "BLEU fit on valid failed: bleu_ce: no start gave a finite objective" in summary


def test_cpt_report_opens_with_its_summary(tmp_path):
    runs = cpt_runs()
    keep = runs[(runs["extra.role"] == "base") | runs.index.isin(runs.index[-8:])]  # 8 CPT runs: too few to fit
    store = write_store(tmp_path / "c", keep)
    out = tmp_path / "index.html"
    build_report(cpt_spec(), store, out, OPTS)
    html = out.read_text()
    _summary_first(html)
    summary = html[html.index('<section id="summary">'):html.index('<section id="s0">')]
    assert "8 CPT runs: too few to fit the 9-parameter law (needs 10)." in summary


def test_sections_render_plain_text_escaped_and_markup_as_is(tmp_path):
    from scaling.report import render_report

    out = render_report("t", [Section("a", text="x < y"), Section("b", text=markup("<b>{}</b>", "<i>"))],
                        tmp_path / "i.html")
    html = out.read_text()
    assert "x &lt; y" in html and "<b>&lt;i&gt;</b>" in html
    assert re.search(r"No answers yet", html)


def test_encdec_report_compares_source_and_target_original_eval_sets(tmp_path):
    runs = encdec_runs("src_original")
    ne, nd = runs.n_params_enc.astype(float), runs.n_params_dec.astype(float)
    runs["loss_tgt_original"] = 0.8 * (6e3 / ne) ** 0.05 * (6e3 / nd) ** 0.3 + 2.0  # a weaker encoder effect
    runs["bleu_tgt_original"] = 60.0 * np.exp(-0.9 * runs["loss_tgt_original"])
    runs["bayes_src_original"], runs["bayes_tgt_original"] = 1.2, 2.0
    store = write_store(tmp_path / "e", runs)
    out = tmp_path / "index.html"
    sections = build_report(encdec_spec(), store, out, OPTS)
    section = next(s for s in sections if s.title.startswith("Composition bias"))
    table = section.tables[0].df.set_index("eval set")
    assert table.loc["src_original", "pe"] == pytest.approx(0.15, abs=0.01)
    assert table.loc["tgt_original", "pe"] == pytest.approx(0.05, abs=0.01)
    assert table.loc["tgt_original", "pd"] == pytest.approx(0.3, abs=0.01)
    d = runs.sort_values("n_params_nonemb")
    small, large = d.iloc[0], d.iloc[-1]
    gap = 1 - (large.loss_tgt_original - 2.0) / (small.loss_tgt_original - 2.0)
    assert table.loc["tgt_original", "gap to Bayes closed"] == pytest.approx(gap, rel=1e-12)
    per_nat = (large.bleu_tgt_original - small.bleu_tgt_original) / (small.loss_tgt_original - large.loss_tgt_original)
    assert table.loc["tgt_original", "BLEU gained per nat"] == pytest.approx(per_nat, rel=1e-12)
    assert "Composition bias" in out.read_text()


def _encdec_pair(runs: pd.DataFrame, loss: str):
    from scaling.report.fits import fit_with_holdout

    law = fit_with_holdout("encdec", runs, ["n_params_enc", "n_params_dec"], loss, OPTS, holdout="largest:1")
    power = fit_with_holdout("power", runs, ["n_params_nonemb"], loss, OPTS, holdout="largest:1")
    return law, power


@pytest.mark.filterwarnings("ignore::scaling.laws.FitWarning")
def test_leave_one_shape_out_tells_which_law_predicts_left_out_shapes():
    runs = encdec_runs()  # L(Ne, Nd) with pe 0.15, pd 0.3: the split matters beyond total size
    law, power = _encdec_pair(runs, "loss_valid")
    table, text, warnings = encdec_report.shape_out_comparison(runs, law, power)
    assert not warnings and len(table.df) == 9  # a 3 x 3 grid, one run per shape
    assert table.df["runs"].tolist() == [1] * 9
    shapes = runs.assign(shape=runs.n_params_enc.astype(str) + " / " + runs.n_params_dec.astype(str))
    by_hand = law.leave_one_out(shapes, group="shape").set_index("shape").mean_abs_rel_error
    got = table.df.set_index("Ne / Nd left out")["encdec mean |rel. err|"]
    assert got.to_dict() == pytest.approx(by_hand.to_dict(), rel=1e-9)
    assert table.df["encdec mean |rel. err|"].max() < 0.01  # the true form, noise 0.1%
    assert table.df["power mean |rel. err|"].mean() > 0.02
    assert "predicts left-out shapes better, beyond the noise: the split matters" in text

    # the truth a power law in total parameters: the bivariate law cannot win
    n = runs.n_params_nonemb.astype(float)
    runs["loss_total"] = (0.9 * (n / 1e4) ** -0.3 + 1.2) * (1 + 1e-3 * (-1) ** np.arange(len(runs)))
    law, power = _encdec_pair(runs, "loss_total")
    table, text, _ = encdec_report.shape_out_comparison(runs, law, power)
    assert table.df["power mean |rel. err|"].max() < 0.01
    assert table.df["encdec mean |rel. err|"].mean() > 0.01  # a product of powers is not a power of the sum
    assert "The power law in total parameters predicts left-out shapes better, beyond the noise" in text


@pytest.mark.filterwarnings("ignore::scaling.laws.FitWarning")
def test_leave_one_shape_out_needs_three_shapes_and_warns_when_a_fold_cannot_be_fitted():
    runs = encdec_runs()
    law, power = _encdec_pair(runs, "loss_valid")
    shapes = runs.drop_duplicates(["n_params_enc", "n_params_dec"])
    # two shapes: no comparison to make, and nothing to warn of
    assert encdec_report.shape_out_comparison(shapes.iloc[:2], law, power) == (None, "", [])
    # three shapes of one run each: every fold keeps 2 runs, too few for a 4-parameter law
    table, text, warnings = encdec_report.shape_out_comparison(shapes.iloc[:3], law, power)
    assert table is None and text == ""
    assert len(warnings) == 1 and warnings[0].startswith("leave-one-shape-out comparison not made: ")
    assert "encdec" in warnings[0]


def test_encdec_report_states_the_seed_noise_under_its_held_out_errors(tmp_path):
    from markupsafe import escape

    from scaling.report.fits import seed_noise_text

    runs = encdec_runs()  # one run per shape: the noise is unknown, and the report says how to measure it
    store = write_store(tmp_path / "one", runs)
    sections = build_report(encdec_spec(), store, tmp_path / "one.html", OPTS)
    assert "Each shape has one run" in next(s for s in sections if s.title.startswith("Encoder/decoder law")).text
    assert seed_noise_text(runs, ["n_params_enc", "n_params_dec"], "loss_valid") == ""
    # two seeds per shape at +-2% of the shape's loss, +-5% at the largest shape (the held-out one)
    twice = pd.concat([runs.assign(seed=0), runs.assign(seed=1)], ignore_index=True)
    largest = (twice.n_params_nonemb == twice.n_params_nonemb.max()).to_numpy()
    spread = np.where(largest, 0.05, 0.02) * np.where(twice.seed == 0, 1, -1)
    twice["loss_valid"] = twice["loss_valid"] * (1 + spread)
    error = np.abs(spread / (1 + spread))  # (shape mean - run) / run
    text = seed_noise_text(twice, ["n_params_enc", "n_params_dec"], "loss_valid", held=largest)
    assert (f"on average {error.mean():.2%} from the mean of the runs that differ from it only in seed (9 such groups), "
            f"{error[largest].mean():.2%} among the held-out runs") in text
    store = write_store(tmp_path / "two", twice)
    sections = build_report(encdec_spec(), store, tmp_path / "two.html", OPTS)
    section = next(s for s in sections if s.title.startswith("Encoder/decoder law"))
    assert str(escape(text)) in section.text



def test_every_fit_of_the_report_takes_the_huber_delta_it_is_given(tmp_path, monkeypatch):
    """`scaling report --delta`: the laws a report fits (the sections' laws, and the power law
    fitted to the compute frontier's envelope) use the delta given; by default the laws' 1e-3."""
    from scaling.laws import get_law
    from scaling.laws.frontier import ComputeFrontier
    from scaling.report import LawFit

    runs = decoder_runs(budgets=[1e6], lrs=[BEST_LR])
    store = write_store(tmp_path / "d", runs, curves_for(runs))
    frontiers = []
    fit_frontier = ComputeFrontier.fit
    monkeypatch.setattr(ComputeFrontier, "fit", lambda self, *a, **k: frontiers.append(self) or fit_frontier(self, *a, **k))

    def laws(opts):  # (law, the table it was fitted to)
        sections = build_report(decoder_spec(), store, tmp_path / "index.html", opts)
        return ([(s.fit.law, s.fit.data) for s in sections if isinstance(s.fit, LawFit)]
                + [(f.loss_law_, f.envelope_) for f in frontiers[-1:]])

    def rendered(opts):  # the laws, and the report's text
        found = laws(opts)
        return found, (tmp_path / "index.html").read_text()

    (default, default_html), (fixed, fixed_html), (auto, auto_html) = (
        rendered(ReportOptions(bootstrap=0, delta=d)) for d in (None, 0.02, "auto"))
    assert len(default) == 2 and {law.delta_ for law, _ in default} == {1e-3}
    assert {law.delta_ for law, _ in fixed} == {0.02}
    for law, data in auto:  # the delta a fit with delta="auto" of the same table finds
        by_hand = get_law(law.name, delta="auto").fit(data, x=list(law.x_), y=law.y_)
        assert law.delta_ == pytest.approx(by_hand.delta_, rel=1e-9) and law.delta_ != 1e-3
    # each rendering says what its L(N) fit minimised, so two reports of one study can be told apart
    assert "by Huber loss (δ = 0.001) of log residuals;" in default_html
    assert "by Huber loss (δ = 0.02) of log residuals;" in fixed_html
    assert f"by Huber loss (δ = {auto[0][0].delta_:.3g}, auto: from the residuals) of log residuals;" in auto_html


def test_a_study_of_too_few_sizes_says_why_no_law_was_fitted(tmp_path):
    # before, the summary said "no law could be fitted (see the sections below)" and no section said why
    runs = decoder_runs(sizes=SIZES[:3], budgets=[1e6], lrs=[BEST_LR]).drop(columns=["bayes_valid", "bayes_loss"])
    store = write_store(tmp_path / "d", runs, curves_for(runs))
    sections = build_report(decoder_spec(), store, tmp_path / "index.html", OPTS)
    by_title = {s.title: s for s in sections}
    assert by_title["Laws not fitted"].warnings == [
        "L(N) on valid at D = 1.0M tokens per run: 3 finished size(s); L_inf + (N0/N)^alpha has 3 parameters and "
        "needs at least 4 sizes (add shapes to [model] shapes, or wait for the unfinished runs)"]
    assert by_title["Compute-efficient frontier"].warnings == [
        "not fitted: 3 finished size(s); N_opt ∝ C^a needs at least 4"]
    # no Bayes loss in these runs: the curves' caption does not promise its dotted line
    assert by_title["Learning curves"].figures[0][0] == "Eval loss against training tokens for every run (log-log)"
    assert not any(s.answers for s in sections)
    # with a fourth size both are fitted and nothing is reported missing
    runs = decoder_runs(sizes=SIZES[:4], budgets=[1e6], lrs=[BEST_LR])
    sections = build_report(decoder_spec(), write_store(tmp_path / "e", runs, curves_for(runs)), tmp_path / "i.html", OPTS)
    titles = [s.title for s in sections]
    assert "Laws not fitted" not in titles and titles.count("Compute-efficient frontier") == 1
    frontier = sections[titles.index("Compute-efficient frontier")]
    assert not frontier.warnings and frontier.answers
    assert sections[titles.index("Learning curves")].figures[0][0].endswith("; dotted: exact Bayes loss")
