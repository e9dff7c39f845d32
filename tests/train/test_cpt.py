"""The `cpt` family: [cpt] validation, grid expansion (base runs, parents, exact mixtures,
schedules) and a tiny end-to-end study whose CPT runs start from their base model's losses."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling.config import spec_from_dict
from scaling.data import build_source
from scaling.errors import DataError, SpecError
from scaling.store import Store
from scaling.train import InProcessExecutor, expand, run_study
from scaling.train.cpt import CPT_SEED_OFFSET, cpt_options
from scaling.train.optim import load_parent_optimizer, lr_at, make_optimizer

ZIPF = {"n_symbols": 16, "n_keys": 60}


def raw_spec(**cpt) -> dict:
    table = {"domain": {"kind": "zipf_facts", "options": {**ZIPF, "world_seed": 7}},
             "domain_shares": [0.0, 0.5, 1.0], "tokens": [500, 1000], "lr": 5e-3}
    table.update(cpt)
    return {
        "study": {"name": "tinycpt", "family": "cpt"},
        "data": {"source": "zipf_facts", "options": ZIPF, "eval_tokens": 1260},
        "model": {"shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}, {"d_model": 32, "n_layers": 1, "n_heads": 4}]},
        "train": {"steps": 40, "batch_size": 8, "seq_len": 21, "lr": 1e-2, "eval_points": 3},
        "cpt": {k: v for k, v in table.items() if v is not None},
    }


@pytest.mark.parametrize("change,message", [
    ({"domain": None}, r"\[cpt\] missing required key `domain`"),
    ({"domain_shares": [0.2, 1.5]}, r"\[cpt\] `domain_shares` must be <= 1.0"),
    ({"domain_shares": []}, r"\[cpt\] `domain_shares` must be a non-empty list"),
    ({"tokens": [0]}, r"\[cpt\] `tokens` must be > 0"),
    ({"schedule": "linear"}, r"\[cpt\] `schedule` must be one of 'rewarm', 'constant'"),
    ({"warmup": -1}, r"\[cpt\] `warmup` must be >= 0"),
    ({"ratio": 0.5}, r"\[cpt\] unknown key `ratio`"),
    ({"domain": {"kind": "mixture"}}, r"\[cpt\] `domain` kind must name a \(non-mixture\)"),
    ({"general": "zipf_facts"}, r"\[cpt\] `general` must be a table"),
    ({"domain": {"kind": "zipf_facts", "options": {"n_symbol": 3}}}, r"\[cpt\] `general`/`domain` sources.*n_symbol"),
    ({"domain": {"kind": "zipf_facts", "options": {"n_symbols": 8, "n_keys": 10}}}, r"\[cpt\] `general`/`domain`.*vocab"),
])
def test_cpt_table_errors_name_the_key(change, message):
    with pytest.raises(SpecError, match=message):
        expand(spec_from_dict(raw_spec(**change)))


def test_grid_axes_other_than_seed_rejected():
    raw = raw_spec()
    raw["grid"] = {"train.lr": [1e-3, 3e-3]}
    with pytest.raises(SpecError, match=r"\[grid\] `train.lr` is not an axis of family 'cpt'"):
        expand(spec_from_dict(raw))


def test_expansion_base_runs_then_children():
    spec = spec_from_dict(raw_spec(schedule="constant", warmup=3))
    runs = expand(spec)
    base = [r for r in runs if r.parent is None]
    cpt = [r for r in runs if r.parent is not None]
    assert len(base) == 2 and len(cpt) == 2 * 2 * 3
    assert runs[:2] == base  # parents first
    for b in base:
        assert b.data["source"] == "mixture" and b.data["options"]["domain_share"] == 0.0
        assert b.train["steps"] == 40 and b.extra["role"] == "base"
    ids = {b.run_id: b for b in base}
    for r in cpt:
        parent = ids[r.parent]
        assert r.model == parent.model and r.extra["N"] == parent.extra["N"]
        assert r.seed == parent.seed + CPT_SEED_OFFSET  # fresh general data, not a replay of the base run's
        share = r.data["options"]["domain_share"]
        assert r.extra["domain_share"] == share and r.extra["general_share"] == 1 - share
        assert r.train["steps"] == math.ceil(r.extra["cpt_tokens"] / 168) and r.extra["cpt_tokens"] % 168 == 0
        assert r.train["schedule"] == "constant" and r.train["warmup"] == 3 and r.train["lr"] == 5e-3
        # the recorded domain tokens are what the mixture source will draw, exactly
        src = build_source("mixture", r.data["options"], seed=0)
        assert r.extra["domain_tokens"] == src.domain_tokens(r.train["steps"], 8, 21)
    assert sorted({r.extra["cpt_tokens"] for r in cpt}) == [504, 1008]  # 500, 1000 rounded up to whole steps
    rewarm = expand(spec_from_dict(raw_spec()))
    assert {r.train["schedule"] for r in rewarm if r.parent} == {"cosine"}


@pytest.mark.parametrize("base_train, base_final", [
    ({}, 1e-2 * 0.1),  # cosine to the default floor
    ({"schedule": "wsd", "min_lr_ratio": 0.05, "decay_fraction": 0.25}, 1e-2 * 0.05),
    ({"schedule": "constant"}, 1e-2),
])
def test_continue_schedule_holds_the_base_runs_final_lr(base_train, base_final):
    raw = raw_spec(schedule=["continue", "rewarm"], warmup=0)
    raw["train"].update(base_train)
    runs = expand(spec_from_dict(raw))
    base = {r.run_id: r for r in runs if r.parent is None}
    cont = [r for r in runs if r.parent and r.extra["rewarm"] == "continue"]
    rewarm = [r for r in runs if r.parent and r.extra["rewarm"] == "rewarm"]
    assert len(cont) == len(rewarm) == 2 * 2 * 3
    for r in cont:
        b = base[r.parent]
        steps = b.train["steps"]
        # the base's own last learning rate, from its schedule, is where the continuation stays
        assert lr_at(steps - 1, steps, b.train) == pytest.approx(base_final, rel=0.02)
        assert r.train["schedule"] == "constant" and r.train["lr"] == pytest.approx(base_final, rel=1e-12)
        assert {lr_at(k, r.train["steps"], r.train) for k in range(r.train["steps"])} == {r.train["lr"]}
        assert r.train["warmup"] == 0 and r.train["parent_optimizer"] is True
    assert {r.train["lr"] for r in rewarm} == {5e-3}  # the re-warm still goes to [cpt] lr
    assert not any(r.train.get("parent_optimizer") for r in rewarm)


def test_continue_runs_resume_the_base_runs_adam_moments(tmp_path: Path):
    spec = spec_from_dict(raw_spec(schedule="continue", domain_shares=[0.0, 1.0], tokens=[168]))
    runs = expand(spec)
    store = Store(tmp_path / "tinycpt")
    assert run_study(runs, store, InProcessExecutor()) == {"done": 2 + 2 * 2}
    for base in (r for r in runs if r.parent is None):
        state = torch.load(store.final_optimizer_path(base.run_id), weights_only=True)
        assert {int(v["step"]) for v in state["state"].values()} == {40}  # the base's 40 Adam steps

    # the mechanism: a child's optimiser takes the parent's moments and keeps its own settings
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    parent = make_optimizer(model, {"lr": 1e-2, "weight_decay": 0.1})
    for _ in range(3):
        model(torch.randn(5, 4)).square().mean().backward()
        parent.step()
        parent.zero_grad()
    child_run = next(r for r in runs if r.parent)
    torch.save(parent.state_dict(), store.final_optimizer_path(child_run.parent))
    child = make_optimizer(model, {"lr": 1e-3, "weight_decay": 0.0})
    load_parent_optimizer(child, store, child_run)
    for p in model.parameters():
        assert torch.equal(child.state[p]["exp_avg"], parent.state[p]["exp_avg"])
        assert torch.equal(child.state[p]["exp_avg_sq"], parent.state[p]["exp_avg_sq"])
        assert int(child.state[p]["step"]) == 3
    assert {g["weight_decay"] for g in child.param_groups} == {0.0} and {g["lr"] for g in child.param_groups} == {1e-3}

    store.final_optimizer_path(child_run.parent).unlink()  # a base trained before optimiser states were kept
    with pytest.raises(DataError, match=rf"parent run {child_run.parent} has no final_optimizer.pt.*Delete"):
        load_parent_optimizer(make_optimizer(model, {"lr": 1e-3}), store, child_run)


def test_general_defaults_to_data_source():
    opts = cpt_options(spec_from_dict(raw_spec()))
    assert opts["general"] == {"kind": "zipf_facts", "options": ZIPF}
    assert opts["threshold"] == 0.03 and opts["schedule"] == "rewarm"


def test_exact_share_seen_in_training_batches():
    spec = spec_from_dict(raw_spec(domain_shares=[0.3]))
    run = [r for r in expand(spec) if r.parent][0]
    src = build_source("mixture", run.data["options"], seed=0)
    n_seq = run.train["steps"] * 8
    is_domain = src.is_domain(np.arange(n_seq))
    assert int(is_domain.sum()) * 21 == run.extra["domain_tokens"] == math.floor(n_seq * 0.3) * 21


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path: Path):
    from scaling.report import ReportOptions, build_report
    from scaling.report.cpt import cpt_table

    spec = spec_from_dict(raw_spec(domain_shares=[0.0, 0.3, 0.6, 1.0], tokens=[168, 336]))
    runs = expand(spec)
    store = Store(tmp_path / "tinycpt")
    assert run_study(runs, store, InProcessExecutor()) == {"done": 2 + 2 * 2 * 4}
    df = store.runs()
    for col in ("loss_general_valid", "loss_domain_valid", "extra.domain_share", "extra.cpt_tokens", "extra.N"):
        assert col in df.columns
    curves = store.curves()
    table = cpt_table(df)
    assert len(table) == 16
    for row in table.itertuples():
        start = curves[(curves.run_id == row.run_id) & (curves.step == 0)].set_index("eval_set").loss
        # every CPT run starts from its base model: step-0 losses are the base run's final losses
        assert start["general/valid"] == pytest.approx(row.base_loss_general, rel=1e-5)
        assert start["domain/valid"] == pytest.approx(row.base_loss_domain, rel=1e-5)
    # the domain set differs from the general one, so continuing on domain data lowers the domain loss
    full = table[table.r == 1.0]
    assert (full.loss_domain < full.base_loss_domain).all()
    sections = build_report(spec, store, tmp_path / "report.html", ReportOptions(bootstrap=10))
    titles = [s.title for s in sections]
    assert "Recommended domain share" in titles and "Held-out error: D-CPT against its variants" in titles
    rec = sections[titles.index("Recommended domain share")].fit
    assert 0.0 <= rec["recommended r"].iloc[-1] <= 1.0
    assert (tmp_path / "tinycpt" / "cpt.parquet").is_file()


def test_seed_axis_gives_one_base_run_per_shape_and_seed():
    raw = raw_spec()
    raw["grid"] = {"seed": [0, 1]}
    runs = expand(spec_from_dict(raw))
    base = {r.run_id: r for r in runs if r.parent is None}
    assert len(base) == 4 and len(runs) == 4 + 2 * 2 * 2 * 3
    for r in runs:
        if r.parent:
            assert r.extra["base_seed"] == base[r.parent].seed
            assert r.seed == base[r.parent].seed + CPT_SEED_OFFSET
