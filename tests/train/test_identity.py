"""Run identity (issue 9.3): the id hashes what changes the result; stores of the old scheme keep their runs."""

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from scaling.config import load_spec
from scaling.errors import SpecError
from scaling.store import STORE_META, SUPERSEDED, Store
from scaling.train import InProcessExecutor, expand, get_family, pending, run_study, train_run
from scaling.train.run_config import OPERATIONAL_TRAIN_KEYS, RunConfig

SPEC = """
[study]
name = "tiny"
[data]
source = "zipf_facts"
eval_tokens = 1260
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = [{d_model = 16, n_layers = 1, n_heads = 2}, {d_model = 16, n_layers = 2, n_heads = 2}]
[train]
steps = 24
batch_size = 4
seq_len = 21
eval_points = 3
checkpoint_every = 8
"""

# The first scheme, as the code stood before this change: the whole dict hashed, with the
# [train] keys that existed then.
OLD_TRAIN_KEYS = {"steps", "tokens", "tokens_per_param", "min_steps", "batch_size", "seq_len", "lr", "schedule",
                  "warmup", "min_lr_ratio", "decay_fraction", "weight_decay", "beta1", "beta2", "grad_clip",
                  "eval_points", "checkpoint_every", "device", "loss_impl", "threads"}


def old_run_id(self: RunConfig) -> str:
    d = self.to_dict()
    for k in ("study", "label"):
        d.pop(k)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def old_style(run: RunConfig, parent: str | None = None) -> RunConfig:
    """The same run as the old code built it: only the old [train] keys."""
    d = run.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k in OLD_TRAIN_KEYS}
    d["parent"] = parent if run.parent else None
    return RunConfig.from_dict(d)


def spec_runs(tmp_path: Path, text: str = SPEC) -> list[RunConfig]:
    p = tmp_path / "tiny.toml"
    p.write_text(text)
    return expand(load_spec(p))


ALTERNATIVES = {"device": "cpu", "threads": 3, "checkpoint_every": 7, "loss_impl": "torch", "compile": True,
                "micro_batch_size": 2, "nproc": 2, "keep_final": True}


def test_operational_keys_leave_the_id_alone_and_the_rest_change_it(tmp_path):
    run = spec_runs(tmp_path)[0]
    assert set(ALTERNATIVES) == OPERATIONAL_TRAIN_KEYS
    for key, value in ALTERNATIVES.items():
        other = RunConfig.from_dict(run.to_dict())
        assert other.train[key] != value
        other.train[key] = value
        assert other.run_id == run.run_id, key
    for key, value in {"eval_points": 5, "lr": 1e-2, "schedule": "wsd", "steps": 25, "warmup": 0.1,
                       "flops": 1e9}.items():
        other = RunConfig.from_dict(run.to_dict())
        other.train[key] = value
        assert other.run_id != run.run_id, key
    other = RunConfig.from_dict(run.to_dict())
    other.train["some_future_option"] = None  # a new optional key, unset, renames nothing
    assert other.run_id == run.run_id
    other.train.pop("flops")  # a config written before `flops` existed
    assert other.run_id == run.run_id


def test_spec_with_other_operational_settings_expands_to_the_same_ids(tmp_path):
    moved = SPEC.replace("checkpoint_every = 8", 'checkpoint_every = 5\ndevice = "cpu"\nthreads = 2\n'
                         'loss_impl = "torch"\ncompile = true\nnproc = 2\nkeep_final = true\nmicro_batch_size = 2')
    assert [r.run_id for r in spec_runs(tmp_path)] == [r.run_id for r in spec_runs(tmp_path, moved)]
    denser = SPEC.replace("eval_points = 3", "eval_points = 6")  # a denser curve is a different record
    assert not {r.run_id for r in spec_runs(tmp_path)} & {r.run_id for r in spec_runs(tmp_path, denser)}


def test_an_axis_over_an_operational_key_is_no_axis(tmp_path):
    with pytest.raises(SpecError, match="operational \\[train\\] keys do not tell runs apart: checkpoint_every"):
        spec_runs(tmp_path, SPEC + '[grid]\n"train.device" = ["cpu", "auto"]\n')


class Spy(InProcessExecutor):
    def __init__(self):
        self.trained: list[str] = []

    def map(self, payloads, on_step, on_done):
        self.trained += [RunConfig.from_dict(p[0]).run_id for p in payloads]
        super().map(payloads, on_step, on_done)


def test_a_store_of_the_old_scheme_keeps_its_finished_runs(tmp_path, monkeypatch):
    runs = spec_runs(tmp_path)
    store_dir = tmp_path / "store"
    family = get_family("decoder")
    # write the store with the old code's ids and configs: one finished run, one killed mid-way
    with monkeypatch.context() as m:
        m.setattr(RunConfig, "run_id", property(old_run_id))
        old = [old_style(r) for r in runs]
        old_store = Store(store_dir)
        old_store._upgraded = True  # the old code had no upgrade step
        done_row = train_run(old[0], family.build_task(old[0], torch.device("cpu")), old_store)
        train_run(old[1], family.build_task(old[1], torch.device("cpu")), old_store, stop_after=10)
        old_store.rebuild()
        old_ids = [r.run_id for r in old]
    new_ids = [r.run_id for r in runs]
    assert not set(old_ids) & set(new_ids)
    assert sorted(p.name for p in (store_dir / "runs").iterdir()) == sorted(old_ids)

    # the first thing done with the store may be a rebuild: it lists the folders after the upgrade
    shutil.copytree(store_dir, tmp_path / "copy")
    copy = Store(tmp_path / "copy")
    copy.rebuild()
    assert copy.runs()["run_id"].tolist() == [new_ids[0]]

    # upgrade: same study, now moved to another device and checkpoint cadence
    moved = spec_runs(tmp_path, SPEC.replace("checkpoint_every = 8", 'checkpoint_every = 6\ndevice = "cpu"'))
    assert [r.run_id for r in moved] == new_ids
    store, spy = Store(store_dir), Spy()
    assert [r.run_id for r in pending(moved, store)] == [new_ids[1]]  # the finished run is not pending
    counts = run_study(moved, store, spy)
    assert spy.trained == [new_ids[1]]  # only the killed run trains (it resumes), the finished one is kept
    assert counts == {"done": 2}
    assert sorted(p.name for p in (store_dir / "runs").iterdir()) == sorted(new_ids)
    kept = store.result(new_ids[0])
    assert kept["run_id"] == new_ids[0] and kept["loss"] == done_row["loss"] and kept["wall_time"] == done_row["wall_time"]
    table = store.runs()
    assert sorted(table["run_id"]) == sorted(new_ids)
    curves = store.curves()
    assert set(curves["run_id"]) == set(new_ids)  # resumed curve rows (from the checkpoint) carry the new id
    assert sorted(curves.loc[curves["run_id"] == new_ids[1], "step"].unique()) == [1, 5, 24]
    meta = json.loads((store_dir / STORE_META).read_text())
    assert meta["renamed"] == dict(zip(old_ids, new_ids))
    assert Store(store_dir).upgrade() == {}  # once


def _fake_store(root: Path, configs: dict[str, RunConfig], statuses: dict[str, str]) -> None:
    """Run folders as the old code left them (config, result, curves), without training."""
    for folder, run in configs.items():
        d = root / "runs" / folder
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(run.to_dict()))
        if statuses[folder] == "unfinished":
            (d / "checkpoint.pt").write_bytes(b"x")
            continue
        (d / "result.json").write_text(json.dumps({"run_id": folder, "parent": run.parent or "",
                                                   "status": statuses[folder], "loss": 1.0}))
        pd.DataFrame({"run_id": [folder], "step": [1], "tokens": [1], "flops": [1.0], "eval_set": ["v"],
                      "loss": [1.0]}).to_parquet(d / "curves.parquet")


def test_upgrade_maps_parents_and_keeps_the_better_of_two_duplicates(tmp_path):
    base = spec_runs(tmp_path)[0]
    child = RunConfig.from_dict({**base.to_dict(), "parent": base.run_id, "seed": 1000, "label": "cpt"})
    old_base = old_style(base)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(RunConfig, "run_id", property(old_run_id))
        old_parent_id = old_base.run_id
        old_child = old_style(child, parent=old_parent_id)
        old_child_id = old_child.run_id
        gpu = RunConfig.from_dict({**old_base.to_dict(), "train": {**old_base.train, "device": "cuda"}})
        gpu_id = gpu.run_id
    root = tmp_path / "store"
    _fake_store(root, {old_parent_id: old_base, old_child_id: old_child, gpu_id: gpu},
                {old_parent_id: "done", old_child_id: "done", gpu_id: "unfinished"})
    store = Store(root)
    renamed = store.upgrade()
    assert renamed == {old_parent_id: base.run_id, old_child_id: child.run_id}
    assert sorted(p.name for p in (root / "runs").iterdir()) == sorted([base.run_id, child.run_id])
    assert [p.name for p in (root / SUPERSEDED).iterdir()] == [gpu_id]  # the unfinished duplicate is kept aside
    moved_child = root / "runs" / child.run_id
    assert json.loads((moved_child / "config.json").read_text())["parent"] == base.run_id
    assert json.loads((moved_child / "result.json").read_text())["parent"] == base.run_id
    assert set(pd.read_parquet(moved_child / "curves.parquet")["run_id"]) == {child.run_id}
    assert pending([base, child], Store(root)) == []


def test_an_interrupted_upgrade_finishes_on_the_next_load(tmp_path):
    base = spec_runs(tmp_path)[0]
    child = RunConfig.from_dict({**base.to_dict(), "parent": base.run_id, "seed": 1000})
    with pytest.MonkeyPatch.context() as m:
        m.setattr(RunConfig, "run_id", property(old_run_id))
        old_base = old_style(base)
        old_parent_id = old_base.run_id
        old_child = old_style(child, parent=old_parent_id)
        old_child_id = old_child.run_id
    root = tmp_path / "store"
    _fake_store(root, {old_parent_id: old_base, old_child_id: old_child}, {old_parent_id: "done", old_child_id: "done"})
    # killed after the parent was renamed and the child's files rewritten, before the child's rename
    (root / "runs" / old_parent_id).rename(root / "runs" / base.run_id)
    Store._rewrite_ids(root / "runs" / old_child_id, child.run_id, base.run_id)
    assert Store(root).upgrade() == {old_child_id: child.run_id}
    assert pending([base, child], Store(root)) == []


def test_grid_values_keep_the_form_old_stores_hashed(tmp_path):
    # the old code put grid values into the config as written (2, not 2.0); expansion must too,
    # or an upgraded folder's id (recomputed from its config.json) would miss the expanded run
    (run, _) = spec_runs(tmp_path, SPEC + '[grid]\n"train.warmup" = [2]\n')
    assert run.train["warmup"] == 2 and isinstance(run.train["warmup"], int)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(RunConfig, "run_id", property(old_run_id))
        old = old_style(run)
        old_id = old.run_id
    root = tmp_path / "store"
    _fake_store(root, {old_id: old}, {old_id: "done"})
    assert Store(root).upgrade() == {old_id: run.run_id}


def test_upgrade_leaves_folders_it_cannot_read(tmp_path):
    root = tmp_path / "store"
    for name, text in {"aaa": '{"study": "x", "not_a_field": 1}', "bbb": "{half"}.items():
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "config.json").write_text(text)
    assert Store(root).upgrade() == {}
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["aaa", "bbb"]
