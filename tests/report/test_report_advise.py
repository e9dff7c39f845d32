"""The report's "which runs next" section (`scaling report --advise-budget`)."""

import re

from scaling.config import load_spec
from scaling.report import ReportOptions, build_report

from conftest import BEST_LR, decoder_runs, write_store

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
    assert "--append, then scaling grid run" in html and "Assumes the law&#39;s form is right" in html
