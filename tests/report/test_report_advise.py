"""The report's "which runs next" section (`scaling report --advise-budget`)."""

import re
from pathlib import Path

import pytest

from scaling.config import load_spec
from scaling.report import ReportOptions, build_report

from synthetic_stores import BEST_LR, decoder_runs, write_store

SPEC = """
[study]
name = "tiny"
family = "decoder"
[data]
source = "zipf_facts"
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = [{d_model = 8, n_layers = 1, n_heads = 2}, {d_model = 16, n_layers = 1, n_heads = 2},
          {d_model = 32, n_layers = 2, n_heads = 2}, {d_model = 64, n_layers = 2, n_heads = 4}]
[train]
steps = 1000
batch_size = 4
seq_len = 21
"""


def test_report_shows_the_advised_runs_and_the_expected_narrowing(tmp_path):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    runs = decoder_runs(sizes=[1e3, 2e3, 4e3, 8e3, 1.6e4], budgets=[84000.0], lrs=[BEST_LR])
    store = write_store(tmp_path / "tiny", runs)
    out = tmp_path / "index.html"
    sections = build_report(load_spec(spec_path), store, out, ReportOptions(bootstrap=50, advise_budget=2e9))
    section = next(s for s in sections if s.title == "Which runs next")
    assert section.answers and section.answers[0].ci[0] < section.answers[0].value < section.answers[0].ci[1]
    html = out.read_text()
    assert "Which runs next" in html and "Advised runs, in the order chosen" in html
    m = re.search(r"narrow its expected 95% width from ([0-9.e+-]+) to ([0-9.e+-]+)", html)
    assert m and float(m.group(2)) < float(m.group(1))
    assert f"Train them with one command: scaling grid run {spec_path} --advise --budget 2e+09" in html
    assert f"--append, then scaling grid run {spec_path})" in html and "Assumes the law&#39;s form is right" in html
    # 3 runs, each needed for 90% of the narrowing (4.9%, 2.4%, 1.4%): no core to name
    assert "Diminishing returns" not in html and "core" not in section.tables[0].df
    # a study folder other than the spec's default: the commands name it
    elsewhere = write_store(tmp_path / "elsewhere", runs)
    build_report(load_spec(spec_path), elsewhere, out, ReportOptions(bootstrap=50, advise_budget=2e9))
    html = out.read_text()
    assert f"scaling grid run {spec_path} --out {elsewhere.root} --advise --budget 2e+09" in html
    assert f"--append, then scaling grid run {spec_path} --out {elsewhere.root})" in html
    # a budget below the cheapest candidate: no run, no command to train them, and why
    sections = build_report(load_spec(spec_path), store, out, ReportOptions(bootstrap=50, advise_budget=1e3))
    section = next(s for s in sections if s.title == "Which runs next")
    assert "no run advised for 1e+03 FLOPs, so its expected 95% width stays" in section.text
    assert "Train them" not in section.text and not section.tables
    assert "Warning: no candidate run fits in the budget of 1e+03 FLOPs" in section.text
    # with 5e9 FLOPs, 3 of the 4 advised runs give 90% of it: named in the text and the table
    sections = build_report(load_spec(spec_path), store, out, ReportOptions(bootstrap=50, advise_budget=5e9))
    section = next(s for s in sections if s.title == "Which runs next")
    core = re.search(r"Diminishing returns: (\d+) of the 4 advised runs", section.text)
    table = section.tables[0].df
    assert core and 0 < int(core.group(1)) == (table["core"] == "yes").sum() < len(table)  # 3 of 4 here



def test_study_advice_fits_with_the_reports_huber_delta(tmp_path, monkeypatch):
    import scaling.advise.study
    from scaling.advise.study import advise_study

    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    store = write_store(tmp_path / "tiny", decoder_runs(sizes=[1e3, 2e3, 4e3, 8e3, 1.6e4], budgets=[84000.0],
                                                       lrs=[BEST_LR]))
    assert advise_study(spec_path, store.root, 2e9).fitted.delta_ == 1e-3  # the law's default
    assert advise_study(spec_path, store.root, 2e9, delta=0.02).fitted.delta_ == 0.02
    advised = []
    monkeypatch.setattr(scaling.advise.study, "advise_study", lambda *a, **k: advised.append(advise_study(*a, **k))
                        or advised[-1])
    build_report(load_spec(spec_path), store, tmp_path / "index.html",
                 ReportOptions(bootstrap=0, advise_budget=2e9, delta=0.02))
    assert [a.fitted.delta_ for a in advised] == [0.02]  # the report's "which runs next" section

ENCDEC_SPEC = """
[study]
name = "tiny-encdec"
family = "encdec"
[data]
source = "transduction"
[model]
shapes = [{enc_d_model = 8, d_model = 8}, {enc_d_model = 32, d_model = 8}, {enc_d_model = 8, d_model = 32},
          {enc_d_model = 32, d_model = 32}]
[train]
steps = 10
batch_size = 2
"""


def test_encdec_report_advises_runs_for_the_encoder_share(tmp_path):
    from synthetic_stores import encdec_runs

    spec_path = tmp_path / "tiny-encdec.toml"
    spec_path.write_text(ENCDEC_SPEC)
    store = write_store(tmp_path / "tiny-encdec", encdec_runs())
    out = tmp_path / "index.html"
    sections = build_report(load_spec(spec_path), store, out, ReportOptions(bootstrap=50, advise_budget=1e12))
    titles = [s.title for s in sections]
    k = titles.index("Which runs next")
    assert titles[0].startswith("Encoder/decoder law") and titles[k + 1:] == ["Runs"], titles  # after the family's own sections
    answer = sections[k].answers[0]
    assert answer.label.startswith("encoder_share (now)")
    # The synthetic law's share is pe / (pe + pd) = 0.15 / 0.45.
    assert answer.ci[0] < 1 / 3 < answer.ci[1] and abs(answer.value - 1 / 3) < 0.02
    html = out.read_text()
    assert "--law encdec --x n_params_enc --x n_params_dec --target encoder_share" in html
    m = re.search(r"narrow its expected 95% width from ([0-9.e+-]+) to ([0-9.e+-]+)", html)
    assert m and float(m.group(2)) < float(m.group(1))


def test_select_study_advice_targets_the_best_variants_multiplier(tmp_path):
    """A select store from the select law with m = 2 for oracle@0.5 (equal floors, so CM = 2 at any
    compute) and m = 5 for ppl_high@0.1 over a floor 0.5 higher (CM < 1 at these computes: a
    large m is not a large CM); advice on runs the select-facts spec can express, through the
    report's section, is about oracle@0.5."""
    import shutil

    import numpy as np
    import pandas as pd

    from scaling import schema
    from scaling.report.advise import advise_sections
    from scaling.store import Store

    spec_path = tmp_path / "select-facts.toml"
    shutil.copy(Path(__file__).parents[2] / "runs" / "select-facts.toml", spec_path)
    spec = load_spec(spec_path)
    rows = []
    for N in np.geomspace(2e3, 3e4, 4):
        for tpp in (8, 32):
            for seed in (0, 1):
                for v, m, E in (("none", 1.0, 1.5), ("oracle@0.5", 2.0, 1.5), ("ppl_high@0.1", 5.0, 2.0)):
                    D = N * tpp
                    loss = (E + 40.0 / N ** 0.4 + 300.0 / (m * D) ** 0.35) * np.exp(
                        np.random.default_rng([int(N), tpp, seed, int(m)]).normal(0, 0.002))
                    rows.append({schema.RUN_ID: f"{v}-{int(N)}-{tpp}-{seed}", "family": "select", schema.STATUS: "done",
                                 schema.SEED: seed, schema.N_PARAMS_NONEMB: N, schema.TOKENS: D, schema.C_6ND: 6 * N * D,
                                 "flops": 6 * N * D, schema.LOSS: loss,
                                 schema.EXTRA_PREFIX + schema.SELECT_METHOD: v.split("@")[0],
                                 schema.EXTRA_PREFIX + schema.SELECT_VARIANT: v,
                                 schema.EXTRA_PREFIX + schema.SELECT_KEEP: {"none": 1.0, "oracle@0.5": 0.5}.get(v, 0.1),
                                 schema.KEPT_TOKENS: 1e12, schema.UNIQUE_TOKENS: 1e12, schema.EPOCHS: 0.01})
    runs = pd.DataFrame(rows)
    store = write_store(tmp_path / spec.name, runs)
    (section,) = advise_sections(spec, Store(store.root), runs, ReportOptions(bootstrap=0, advise_budget=5e10))
    answer = section.answers[0]
    assert answer.label.startswith("compute_multiplier of oracle@0.5 at ")
    assert answer.value == pytest.approx(2.0, rel=0.05) and answer.ci[0] < 2.0 < answer.ci[1]
    table = section.tables[0].df
    assert len(table) > 0 and set(table["run"].str.rsplit("-", n=1).str[-1].str.split(" ").str[0]) <= {"none", "oracle@0.5", "ppl_high@0.1"}
    assert "Train them with one command: scaling grid run " in section.text and "--append" not in section.text


def test_study_advice_refuses_cpt_and_names_a_missing_store(tmp_path):
    from scaling.advise.study import advise_study
    from scaling.errors import DataError, FitError

    runs_dir = Path(__file__).parents[2] / "runs"
    with pytest.raises(FitError, match=r"advice for a cpt study needs the law's own inputs: use scaling advise .* --law dcpt"):
        advise_study(runs_dir / "cpt-domains.toml", tmp_path / "none", 1e12)
    with pytest.raises(DataError, match=r"runs.parquet: no such table; run `scaling grid run`"):
        advise_study(runs_dir / "select-facts.toml", tmp_path / "none", 1e12)
