"""Store files (issue 9.5, 9.6): atomic writes that honour the umask, checkpoints that survive damage."""

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from scaling.cli import app
from scaling.config import load_spec
from scaling.store import Store, atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_parquet
from scaling.train import InProcessExecutor, expand, get_family, run_study, train_run

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
shapes = [{d_model = 16, n_layers = 1, n_heads = 2}]
[train]
steps = 20
batch_size = 4
seq_len = 21
eval_points = 3
checkpoint_every = 5
keep_final = true
"""


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.bin", b"abc")
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    atomic_write_parquet(tmp_path / "c.parquet", pd.DataFrame({"x": [1, 2]}))
    with atomic_open(tmp_path / "sub" / "d.pt") as f:
        torch.save({"w": torch.ones(2)}, f)
    for name in ("a.bin", "b.json", "c.parquet", "sub/d.pt"):
        assert mode(tmp_path / name) == expected, name
    assert pd.read_parquet(tmp_path / "c.parquet")["x"].tolist() == [1, 2]
    assert torch.load(tmp_path / "sub" / "d.pt")["w"].tolist() == [1.0, 1.0]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "t.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write(b"{half")
            raise RuntimeError("killed")
    assert target.read_text().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_every_file_the_tool_writes_is_shared_readable(tmp_path, umask):
    umask(0o022)
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    runs = expand(load_spec(spec_path))
    for r in runs:  # final.pt is written for parents of other runs, or on request
        r.train["keep_final"] = True
    store = Store(tmp_path / "store")
    run_study(runs, store, InProcessExecutor())
    again = Store(tmp_path / "store2")  # a checkpoint too (a killed run)
    train_run(runs[0], get_family("decoder").build_task(runs[0], torch.device("cpu")), again, stop_after=7)
    rng = np.random.default_rng(0)
    n = np.geomspace(1e4, 1e7, 12)
    pd.DataFrame({"N": n, "loss": 1.5 + 40 * n ** -0.3 * np.exp(rng.normal(0, 0.003, n.size))}).to_csv(
        tmp_path / "pts.csv", index=False)
    result = CliRunner().invoke(app, ["plot", "power", str(tmp_path / "pts.csv"), "--x", "N", "--y", "loss",
                                      "--bootstrap", "0", "--out", str(tmp_path / "figs" / "fit.png")])
    assert result.exit_code == 0, result.output
    from scaling.laws import get_law

    get_law("power").fit(pd.read_csv(tmp_path / "pts.csv"), x="N", y="loss").save(tmp_path / "law.json")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("tiny.toml", "pts.csv")]
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    run = f"runs/{runs[0].run_id}"
    assert {f"store/{run}/config.json", f"store/{run}/result.json", f"store/{run}/curves.parquet",
            f"store/{run}/final.pt", "store/runs.parquet", "store/curves.parquet", f"store2/{run}/checkpoint.pt",
            "figs/fit.png", "figs/fit-residuals.png", "law.json"} <= names
    assert {p.relative_to(tmp_path).as_posix(): oct(mode(p)) for p in written if mode(p) != 0o644} == {}


def test_an_unreadable_checkpoint_is_moved_aside_and_the_run_restarts(tmp_path):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    (run,) = expand(load_spec(spec_path))
    family = get_family("decoder")
    whole = train_run(run, family.build_task(run, torch.device("cpu")), Store(tmp_path / "whole"))

    store = Store(tmp_path / "damaged")
    partial = train_run(run, family.build_task(run, torch.device("cpu")), store, stop_after=12)
    assert partial["status"] == "unfinished"
    ckpt = store.checkpoint_path(run.run_id)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # a truncated file, as a full disk or a crash leaves it
    with pytest.warns(RuntimeWarning, match=r"unreadable checkpoint .*moved aside to checkpoint\.pt\.corrupt-.*"
                                            r"restarts from step 0"):
        row = train_run(run, family.build_task(run, torch.device("cpu")), store)
    assert row["status"] == "done" and row["steps"] == 20
    # restarted from step 0: the same result as the run that was never interrupted
    assert row["loss"] == whole["loss"] and row["train_loss"] == whole["train_loss"]
    assert (pd.read_parquet(store.run_dir(run.run_id) / "curves.parquet")["loss"].tolist()
            == pd.read_parquet(Store(tmp_path / "whole").run_dir(run.run_id) / "curves.parquet")["loss"].tolist())
    (kept,) = store.run_dir(run.run_id).glob("checkpoint.pt.corrupt-*")
    assert kept.read_bytes() == data[: len(data) // 2]  # kept, not deleted
    assert not ckpt.exists()


def test_damaged_store_files_are_rebuilt_or_named_with_their_fix(tmp_path):
    from scaling.errors import DataError

    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    runs = expand(load_spec(spec_path))
    run_study(runs, Store(tmp_path / "s"), InProcessExecutor())
    runs_before, curves_before = Store(tmp_path / "s").runs(), Store(tmp_path / "s").curves()
    assert len(runs_before) == 1 and len(curves_before) > 0
    # the study tables are derived from the run folders: a damaged one is rebuilt, with a warning
    for name, before in (("runs.parquet", runs_before), ("curves.parquet", curves_before)):
        (tmp_path / "s" / name).write_bytes(b"not parquet")
        with pytest.warns(RuntimeWarning, match=rf"{name}: not a readable parquet table .*rebuilt it from the run"):
            again = Store(tmp_path / "s").runs() if name == "runs.parquet" else Store(tmp_path / "s").curves()
        pd.testing.assert_frame_equal(again, before)
    # a run's own result and the store's id file are the record: named, with what to do, never overwritten
    result = Store(tmp_path / "s").run_dir(runs[0].run_id) / "result.json"
    result.write_text("{")
    with pytest.raises(DataError, match=r"result\.json: not valid JSON .*delete it and `scaling grid run` resumes"):
        Store(tmp_path / "s").status(runs[0].run_id)
    assert result.read_text() == "{"
    (tmp_path / "s" / "store.json").write_text("{")
    with pytest.raises(DataError, match=r"store\.json: not valid JSON .*delete it: the next command re-derives"):
        Store(tmp_path / "s").run_ids()
