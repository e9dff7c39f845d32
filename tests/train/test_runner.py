"""The runner end to end on tiny grids: store contents, atomicity, resume, divergence, executors."""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from scaling.config import load_spec
from scaling.store import Store
from scaling.train import InProcessExecutor, LocalPoolExecutor, SubmititExecutor, expand, get_family, run_study
from scaling.train.loop import eval_steps, train_run
from scaling.train.optim import lr_at
from scaling.train.run_config import RunConfig

SPEC = """
[study]
name = "tiny"
[data]
source = "zipf_facts"
eval_tokens = 2520
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = [{d_model = 16, n_layers = 1, n_heads = 2}, {d_model = 32, n_layers = 1, n_heads = 4}]
[train]
steps = 30
batch_size = 8
seq_len = 21
lr = 1e-2
eval_points = 4
checkpoint_every = 10
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(SPEC)
    return p


def test_grid_writes_one_row_per_run_and_curves(spec_path):
    spec = load_spec(spec_path)
    runs = expand(spec)
    store = Store(spec_path.parent / "tiny")
    counts = run_study(runs, store, InProcessExecutor())
    assert counts == {"done": 2}
    df = store.runs()
    assert sorted(df.run_id) == sorted(r.run_id for r in runs)
    for col in ("n_params", "n_params_nonemb", "flops", "tokens", "loss", "loss_valid", "bayes_valid", "status",
                "wall_time", "tokens_per_s", "model.d_model", "train.lr", "data.options.n_symbols"):
        assert col in df.columns, col
    assert (df.status == "done").all()
    assert (df.tokens == 30 * 8 * 21).all()
    # the model learns something: final loss below the uniform-prediction loss ln(16)
    assert (df.loss < math.log(16)).all()
    # Bayes loss is a lower bound the model cannot beat on held-out data (up to sampling noise)
    assert (df.loss > df.bayes_valid - 0.05).all()
    curves = store.curves()
    assert set(curves.columns) >= {"run_id", "step", "tokens", "flops", "eval_set", "loss"}
    assert sorted(curves[curves.run_id == runs[0].run_id].step) == eval_steps(30, 4)
    # flops = tokens * analytic flops per token
    row = df.iloc[0]
    assert row.flops == pytest.approx(row.tokens * row.flops_per_token)
    # c_6nd: the laws' convention, 6 * non-embedding N * D, beside the exact FLOPs
    assert (df.c_6nd == 6 * df.n_params_nonemb * df.tokens).all()
    assert (df.c_6nd < df.flops).all()  # the exact count also has the head and attention


def test_killed_run_resumes_to_identical_result(spec_path, tmp_path):
    spec = load_spec(spec_path)
    run = expand(spec)[0]
    family = get_family("decoder")
    device = torch.device("cpu")

    straight = Store(tmp_path / "a")
    full = train_run(run, family.build_task(run, device), straight)

    killed = Store(tmp_path / "b")
    partial = train_run(run, family.build_task(run, device), killed, stop_after=17)
    assert partial["status"] == "unfinished"
    assert killed.status(run.run_id) == "unfinished"
    assert killed.checkpoint_path(run.run_id).is_file()
    resumed = train_run(run, family.build_task(run, device), killed)
    assert resumed["status"] == "done"
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6)
    a = pd.read_parquet(straight.run_dir(run.run_id) / "curves.parquet")
    b = pd.read_parquet(killed.run_dir(run.run_id) / "curves.parquet")
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)


def test_rerun_skips_finished_runs_and_keeps_results(spec_path):
    spec = load_spec(spec_path)
    runs = expand(spec)
    store = Store(spec_path.parent / "tiny")
    # first invocation is "killed" after one run finished and the other got half-way
    run_study(runs[:1], store, InProcessExecutor())
    family = get_family("decoder")
    train_run(runs[1], family.build_task(runs[1], torch.device("cpu")), store, stop_after=12)
    before = store.result(runs[0].run_id)
    assert store.status(runs[1].run_id) == "unfinished"
    counts = run_study(runs, store, InProcessExecutor())
    assert counts == {"done": 2}
    assert store.result(runs[0].run_id) == before
    df = store.runs()
    assert len(df) == 2 and df.run_id.is_unique


def test_nan_loss_records_diverged(spec_path):
    spec = load_spec(spec_path)
    run = expand(spec)[0]
    task = get_family("decoder").build_task(run, torch.device("cpu"))
    calls = []

    def nan_at_step_7(module, inputs, hidden):  # the 8th training forward (step index 7) is NaN
        if module.training:
            calls.append(1)
            return hidden * float("nan") if len(calls) == 8 else None

    task.model.register_forward_hook(nan_at_step_7)
    store = Store(spec_path.parent / "div")
    row = train_run(run, task, store)
    assert row["status"] == "diverged"
    assert store.result(run.run_id)["status"] == "diverged"
    assert row["steps"] == 7  # stopped at the bad step, nothing after it


def test_atomic_writes_leave_no_partial_files(spec_path, monkeypatch):
    spec = load_spec(spec_path)
    runs = expand(spec)
    store = Store(spec_path.parent / "tiny")
    run_study(runs[:1], store, InProcessExecutor())
    good = store.runs()

    def boom(self, *a, **k):
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(KeyboardInterrupt):
        store.rebuild()
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.runs(), good)
    assert not [p for p in store.root.rglob("*.tmp")]


def test_schedules():
    train = {"lr": 1.0, "warmup": 0.1, "min_lr_ratio": 0.1, "schedule": "cosine"}
    assert lr_at(0, 100, train) == pytest.approx(0.1)
    assert lr_at(9, 100, train) == pytest.approx(1.0)
    assert lr_at(99, 100, train) == pytest.approx(0.1, abs=1e-3)
    wsd = {"lr": 1.0, "warmup": 0, "min_lr_ratio": 0.0, "schedule": "wsd", "decay_fraction": 0.2}
    assert lr_at(50, 100, wsd) == 1.0 and lr_at(99, 100, wsd) == pytest.approx(0.0)
    assert lr_at(89, 100, wsd) == pytest.approx(0.5)


@pytest.mark.slow
def test_process_pool_and_submitit_give_the_same_results(spec_path, tmp_path):
    import submitit

    spec = load_spec(spec_path)
    runs = expand(spec)
    a = Store(tmp_path / "pool")
    run_study(runs, a, LocalPoolExecutor(2), threads=1)
    b = Store(tmp_path / "debug")
    run_study(runs, b, SubmititExecutor(submitit.DebugExecutor(folder=str(tmp_path / "logs"))), threads=1)
    ra, rb = a.runs().set_index("run_id"), b.runs().set_index("run_id")
    assert (ra.status == "done").all() and (rb.status == "done").all()
    pd.testing.assert_series_equal(ra.loss.sort_index(), rb.loss.sort_index(), rtol=1e-5)


@pytest.mark.slow
def test_killing_grid_run_and_rerunning_completes_the_study(spec_path):
    """A real SIGKILL of `scaling grid run` mid-study, then a rerun: one row per run, finished runs unchanged."""
    import os
    import signal
    import subprocess
    import sys
    import time

    text = SPEC.replace("steps = 30", "steps = 400").replace("checkpoint_every = 10", "checkpoint_every = 50")
    spec_path.write_text(text)
    store = Store(spec_path.parent / "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "grid", "run", str(spec_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from scaling.train.grid import training_flops

    runs = sorted(expand(load_spec(spec_path)), key=training_flops, reverse=True)  # the order they train in
    deadline = time.time() + 300
    # kill once the first run has finished and the second has written a checkpoint
    while time.time() < deadline:
        if store.status(runs[0].run_id) == "done" and store.checkpoint_path(runs[1].run_id).is_file():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.status(runs[0].run_id) == "done"
    assert store.status(runs[1].run_id) == "unfinished"
    first = store.result(runs[0].run_id)
    r = subprocess.run([sys.executable, "-m", "scaling", "grid", "run", str(spec_path)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "training 1 runs (1 already done)" in r.stdout
    df = store.runs()
    assert len(df) == 2 and df.run_id.is_unique and (df.status == "done").all()
    assert store.result(runs[0].run_id) == first
    assert not list(store.root.rglob("*.tmp"))


def test_chunked_and_reference_loss_give_the_same_training_curve(spec_path, tmp_path, monkeypatch):
    """The trainer's loss through impl='chunked' (forced to really chunk) matches impl='torch' to 1e-5."""
    import scaling.kernels.chunked as chunked

    monkeypatch.setattr(chunked, "SMALL_BYTES", 0)  # no small-problem shortcut
    monkeypatch.setattr(chunked, "CHUNK_BYTES", 16 * 16 * 4)  # 16 rows per chunk
    spec = load_spec(spec_path)
    curves = {}
    for impl in ("chunked", "torch"):
        run = expand(spec)[0]
        run.train["loss_impl"] = impl
        store = Store(tmp_path / impl)
        train_run(run, get_family("decoder").build_task(run, torch.device("cpu")), store)
        curves[impl] = pd.read_parquet(store.run_dir(run.run_id) / "curves.parquet")
    a, b = curves["chunked"].loss.to_numpy(), curves["torch"].loss.to_numpy()
    assert len(a) == len(eval_steps(30, 4)) and abs(a - b).max() < 1e-5


@pytest.mark.slow
def test_pool_workers_stop_when_the_coordinator_is_killed(spec_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    spec_path.write_text(SPEC.replace("steps = 30", "steps = 5000"))
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "grid", "run", str(spec_path), "-w", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store(spec_path.parent / "tiny")
    runs = expand(load_spec(spec_path))
    deadline = time.time() + 120
    while time.time() < deadline and not all(store.run_dir(r.run_id).is_dir() for r in runs):
        time.sleep(0.1)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive() -> list[str]:
        return [pid for pid in children if os.path.exists(f"/proc/{pid}") and
                "zombie" not in open(f"/proc/{pid}/status").read().lower()]

    deadline = time.time() + 30  # the workers notice within seconds; a busy machine may take longer
    while alive() and time.time() < deadline:
        time.sleep(0.2)
    left = alive()
    assert left == [], [open(f"/proc/{p}/cmdline").read().replace("\0", " ")[-120:] for p in left]


def test_longest_runs_are_handed_out_first(spec_path):
    from scaling.train.grid import training_flops

    runs = expand(load_spec(spec_path))
    counts = [get_family(r.family).counts(r) for r in runs]
    expected = [c["flops_per_token"] * 30 * 8 * 21 for c in counts]  # steps x batch x seq_len tokens
    assert [training_flops(r) for r in runs] == pytest.approx(expected, rel=1e-12)
    assert expected[1] > expected[0]  # d_model 32 costs more than 16

    class Recorder:
        def map(self, payloads, on_step, on_done):
            self.order = [RunConfig.from_dict(p[0]).run_id for p in payloads]

    rec = Recorder()
    run_study(runs, Store(spec_path.parent / "order"), rec)
    assert rec.order == [runs[1].run_id, runs[0].run_id]
