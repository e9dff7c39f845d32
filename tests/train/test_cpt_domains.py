"""Several domains and both continuation schedules in one `cpt` study: base runs shared by every
domain, the domain and schedule recorded per run, clear errors for bad `domains`, single-domain
run ids unchanged, and a tiny end-to-end study whose CPT runs start from the shared base models."""

import hashlib
import sys
from pathlib import Path

import pytest

from scaling import schema
from scaling.config import load_spec, spec_from_dict
from scaling.errors import SpecError
from scaling.store import Store
from scaling.train import InProcessExecutor, expand, run_study
from scaling.train.cpt import SCHEDULES, cpt_options

sys.path.insert(0, str(Path(__file__).parent))
from test_cpt import ZIPF, raw_spec  # noqa: E402

DOMAINS = {"a": {"kind": "zipf_facts", "options": {**ZIPF, "world_seed": 7}},
           "b": {"kind": "zipf_facts", "options": {**ZIPF, "world_seed": 8}},
           "c": {"kind": "markov", "options": {"n_symbols": 16, "order": 1, "branching": 3}}}


def multi(**cpt) -> dict:
    return raw_spec(domain=None, domains=DOMAINS, **cpt)


def test_single_domain_studies_keep_their_run_ids():
    """`domain` studies expand exactly as before `domains` existed (ids pinned from that code)."""
    for schedule, digest in (("rewarm", "b1ddaea8c73cba5c"), ("constant", "da70d753b9f0532d")):
        runs = expand(spec_from_dict(raw_spec(schedule=schedule)))
        assert hashlib.sha256(",".join(sorted(r.run_id for r in runs)).encode()).hexdigest()[:16] == digest
        assert all(schema.CPT_DOMAIN.removeprefix("extra.") not in r.extra for r in runs)


def test_domains_share_base_runs_and_name_each_run():
    runs = expand(spec_from_dict(multi(schedule=["rewarm", "constant"])))
    base = [r for r in runs if r.parent is None]
    cpt = [r for r in runs if r.parent is not None]
    assert len(base) == 2  # one per shape: shared by every domain and schedule
    assert len(cpt) == 2 * 3 * 2 * 2 * 3  # shapes x domains x schedules x D x r
    for b in base:  # trained on the general source alone, so no domain enters its id
        assert b.data["source"] == "zipf_facts" and b.data["options"] == ZIPF
    ids = {b.run_id: b for b in base}
    key = schema.CPT_DOMAIN.removeprefix("extra.")
    sched = schema.CPT_SCHEDULE.removeprefix("extra.")
    seen = set()
    for r in cpt:
        assert r.parent in ids and r.model == ids[r.parent].model
        name = r.extra[key]
        assert r.data["options"]["domain"] == DOMAINS[name]
        assert r.train["schedule"] == SCHEDULES[r.extra[sched]]
        assert name in r.label and r.extra[sched] in r.label
        seen.add((name, r.extra[sched]))
    assert seen == {(d, s) for d in DOMAINS for s in ("rewarm", "constant")}
    assert len({r.label for r in runs}) == len(runs)
    # a domain added to the study leaves the base runs and the other domains' runs as they were
    fewer = expand(spec_from_dict(raw_spec(domain=None, domains={"a": DOMAINS["a"]}, schedule=["rewarm", "constant"])))
    assert {r.run_id for r in fewer} <= {r.run_id for r in runs}


def test_domains_as_a_list_of_named_tables_is_the_same_study(tmp_path: Path):
    shipped = Path(__file__).parents[2] / "runs" / "cpt-domains.toml"
    lines = shipped.read_text().splitlines()
    kept = [line for line in lines if not line.startswith("domains = ")]
    assert len(kept) == len(lines) - 1 and lines[-1] and "[cpt]" in lines  # [cpt] is the last table
    path = tmp_path / "listed.toml"
    path.write_text("\n".join(kept) + '\n[[cpt.domains]]\nname = "code"\nkind = "stdlib_code"\n'
                    '[[cpt.domains]]\nname = "tests"\nkind = "stdlib_tests"\n[[cpt.domains]]\nname = "decimal"\n'
                    'kind = "stdlib_decimal"\n')
    assert [r.run_id for r in expand(load_spec(path))] == [r.run_id for r in expand(load_spec(shipped))]


@pytest.mark.parametrize("change,message", [
    ({"domains": {"a": {"kind": "stdlib_tset"}}}, r"\[cpt\] `domains.a` kind: unknown data source 'stdlib_tset'"),
    ({"domains": [{"name": "a", "kind": "markov"}, {"name": "a", "kind": "zipf_facts"}]},
     r"\[cpt\] `domains` names domain 'a' twice"),
    ({"domains": [{"kind": "markov"}]}, r"\[cpt\] `domains\[0\]` has no `name`"),
    ({"domains": {}}, r"\[cpt\] `domains` is empty"),
    ({"domains": {"a": DOMAINS["a"], "b": DOMAINS["a"]}}, r"\[cpt\] `domains.a` and `domains.b` are the same source"),
    ({"domains": {"a b": DOMAINS["a"]}}, r"\[cpt\] `domains` name 'a b' must be letters"),
    ({"domains": {"a": {"kind": "mixture"}}}, r"\[cpt\] `domains.a` kind must name a \(non-mixture\)"),
    ({"domains": {"a": {"kind": "markov", "options": {"n_symbol": 3}}}}, r"\[cpt\] `general`/`domains.a` sources.*n_symbol"),
    ({"domains": "zipf_facts"}, r"\[cpt\] `domains` must be a table of domains"),
    ({"schedule": ["rewarm", "rewarm"]}, r"\[cpt\] `schedule` has repeated values"),
    ({"schedule": ["rewarm", "linear"]}, r"\[cpt\] `schedule` must be one of 'rewarm', 'constant'.*'linear'"),
    ({"schedule": []}, r"\[cpt\] `schedule` must name at least one"),
])
def test_bad_domains_and_schedules_name_the_key(change, message):
    raw = multi()
    raw["cpt"].update(change)
    with pytest.raises(SpecError, match=message):
        expand(spec_from_dict(raw))


def test_domain_and_domains_together_is_an_error():
    raw = multi()
    raw["cpt"]["domain"] = DOMAINS["a"]
    with pytest.raises(SpecError, match=r"\[cpt\] has both `domain` and `domains`"):
        expand(spec_from_dict(raw))


def test_shipped_domains_study_has_three_domains_and_both_schedules():
    runs = expand(load_spec(Path(__file__).parents[2] / "runs" / "cpt-domains.toml"))
    cpt = [r for r in runs if r.parent]
    assert {r.extra["domain"] for r in cpt} == {"code", "tests", "decimal"}
    assert {r.extra["rewarm"] for r in cpt} == {"continue", "rewarm"}
    assert cpt_options(load_spec(Path(__file__).parents[2] / "runs" / "cpt-domains.toml"))["schedule"] == "continue"
    base = [r for r in runs if r.parent is None]
    assert len(base) == 3 and {r.parent for r in cpt} == {b.run_id for b in base}
    # base models see 25x the largest continuation's tokens (D-CPT's r = 0 assumption needs them trained)
    per_step = 16 * 128
    assert min(b.train["steps"] for b in base) * per_step >= 25 * max(r.extra["cpt_tokens"] for r in cpt)


@pytest.mark.slow
def test_tiny_multi_domain_study_end_to_end(tmp_path: Path):
    from scaling.report.cpt import cpt_table
    from scaling.report.cpt_domains import r0_table, rewarm_paired

    spec = spec_from_dict(multi(domain_shares=[0.0, 1.0], tokens=[168], schedule=["rewarm", "constant"]))
    runs = expand(spec)
    store = Store(tmp_path / "tiny")
    assert run_study(runs, store, InProcessExecutor()) == {"done": 2 + 2 * 3 * 2 * 2}
    df = store.runs()
    cpt = df[df[schema.CPT_ROLE] == "cpt"]
    assert sorted(cpt[schema.CPT_DOMAIN].unique()) == ["a", "b", "c"]
    assert set(cpt[schema.CPT_SCHEDULE]) == {"rewarm", "constant"}
    table = cpt_table(df, store.curves())
    assert len(table) == 24 and sorted(table.domain.unique()) == ["a", "b", "c"]
    base = df[df[schema.CPT_ROLE] == "base"].set_index("run_id")
    for row in table.itertuples():
        parent = cpt.set_index("run_id").loc[row.run_id, "parent"]
        # the shared base model's own general eval is every child's step-0 general loss
        assert row.base_loss_general == pytest.approx(base.loc[parent, "loss_valid"], rel=1e-5)
    # each domain's step-0 loss is the same base model on that domain's eval set
    start = table.groupby(["domain", "N"]).base_loss_domain.agg(["min", "max"])
    assert (start["max"] - start["min"]).abs().max() < 1e-6
    assert table.groupby("N").base_loss_domain.nunique().min() == 3
    # r = 0 runs train on general data only: they cannot differ between domains except by eval set
    at0 = table[table.r == 0].groupby(["N", "schedule"]).loss_general.agg(["min", "max"])
    assert (at0["max"] - at0["min"]).abs().max() < 1e-6
    full = table[table.r == 1.0]
    assert (full.loss_domain < full.base_loss_domain).all()
    assert len(r0_table(table)) == 0  # one budget: nothing to compare
    paired, both = rewarm_paired(table, "rewarm", "constant")
    assert len(both) == 12 and len(paired) == 3 * 2
    # the report: too few runs for the laws, which it says, and the re-warming comparison it can make
    from scaling.report import ReportOptions, build_report

    sections = build_report(spec, store, tmp_path / "report.html", ReportOptions(bootstrap=0))
    titles = [s.title for s in sections]
    assert "Re-warming: domain gained against general forgotten" in titles
    assert any("too few runs" in w for s in sections for w in s.warnings if s.title.startswith("Cross-domain"))
    assert "D-CPT law — domain b" in titles
    rewarm = sections[titles.index("Re-warming: domain gained against general forgotten")]
    for dom in "abc":
        diff = next(a for a in rewarm.answers if a.label.startswith(f"domain {dom}: rewarm minus constant"))
        at1 = both[(both.r == 1.0) & (both.domain == dom)]
        assert diff.value == pytest.approx(float(at1.groupby("N").d_gain.mean().mean()))
