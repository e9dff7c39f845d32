"""One writer per run: processes racing for a run, stale locks, foreign hosts, execute_run under a lock."""

import json
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaling.config import load_spec
from scaling.lock import LOCK_NAME, RunLock, RunLocked, _process_start, holder_of
from scaling.store import Store
from scaling.train import InProcessExecutor, execute_run, expand, run_study

SPEC = """
[study]
name = "tiny"
[data]
source = "zipf_facts"
eval_tokens = 840
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = [{d_model = 16, n_layers = 1, n_heads = 2}]
[train]
steps = 12
batch_size = 4
seq_len = 21
lr = 1e-2
eval_points = 3
"""


def _race(run_dir: str, barrier, results) -> None:
    barrier.wait()
    try:
        with RunLock(run_dir):
            results.put(("held", os.getpid()))
            time.sleep(1.0)  # hold it while the others try
    except RunLocked as e:
        results.put(("locked", e.holder["pid"]))


def test_processes_racing_for_one_run_get_exactly_one_writer(tmp_path):
    ctx = mp.get_context("fork")  # light children: no re-import of torch
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "run"), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = [results.get(timeout=5) for _ in range(n)]
    holders = [pid for what, pid in got if what == "held"]
    assert len(holders) == 1
    # every loser was told who holds it
    assert all(pid == holders[0] for what, pid in got if what == "locked")
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released on exit


def _dead_pid() -> int:
    p = mp.get_context("fork").Process(target=time.sleep, args=(0,))
    p.start()
    p.join()
    return p.pid


def _write_lock(run_dir: Path, **holder) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_NAME).write_text(json.dumps({"started": time.time() - 60, **holder}))


def test_a_stale_lock_of_a_dead_process_is_broken_with_a_message(tmp_path):
    run_dir = tmp_path / "run"
    _write_lock(run_dir, host=socket.gethostname(), pid=_dead_pid())
    messages = []
    with RunLock(run_dir, on_break=messages.append):
        holder = json.loads((run_dir / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert len(messages) == 1 and "dead" in messages[0] and "stale" in messages[0]


def test_a_reused_pid_does_not_keep_a_lock(tmp_path):
    run_dir = tmp_path / "run"  # our own pid, but a start time that is not ours: the holder is gone
    _write_lock(run_dir, host=socket.gethostname(), pid=os.getpid(), pid_start="1")
    messages = []
    RunLock(run_dir, on_break=messages.append).acquire().release()
    assert "another process" in messages[0]


def test_a_live_lock_on_this_host_is_respected(tmp_path):
    run_dir = tmp_path / "run"
    pid = os.getppid()  # alive, ours to read
    _write_lock(run_dir, host=socket.gethostname(), pid=pid, pid_start=_process_start(pid))
    with pytest.raises(RunLocked, match=f"{socket.gethostname()}:{pid}"):
        RunLock(run_dir).acquire()
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == pid  # untouched


def test_a_foreign_host_lock_is_respected_and_the_same_slurm_job_breaks_its_own(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _write_lock(run_dir, host="node-17", pid=1234)
    with pytest.raises(RunLocked, match="node-17:1234"):
        RunLock(run_dir).acquire()
    assert holder_of(run_dir)[1] is None
    # this job, requeued onto another node, takes back the lock its first incarnation left
    _write_lock(run_dir, host="node-17", pid=1234, slurm_job_id="88_3")
    monkeypatch.setenv("SLURM_JOB_ID", "88_3")
    messages = []
    RunLock(run_dir, on_break=messages.append).acquire().release()
    assert "requeue" in messages[0]


@pytest.fixture
def tiny(tmp_path):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    return spec_path, expand(spec)[0], Store(tmp_path / "tiny")


def test_execute_run_never_trains_a_run_held_elsewhere(tiny):
    _, run, store = tiny
    _write_lock(store.run_dir(run.run_id), host="node-17", pid=1234)
    row = execute_run((run.to_dict(), str(store.root), 1))
    assert row["status"] == "locked" and "node-17:1234" in row["error"]
    assert store.result(run.run_id) is None and not store.checkpoint_path(run.run_id).exists()
    assert not (store.run_dir(run.run_id) / "config.json").exists()  # not even started


def test_grid_status_reports_a_foreign_lock(tiny):
    from scaling.cli import app

    spec_path, run, store = tiny
    _write_lock(store.run_dir(run.run_id), host="node-17", pid=1234)
    res = CliRunner().invoke(app, ["grid", "status", str(spec_path)])
    assert res.exit_code == 0, res.output
    assert "node-17:1234" in res.output and "locked" in res.output


def test_a_finished_run_is_returned_not_retrained_and_a_later_success_clears_error_txt(tiny):
    _, run, store = tiny
    err = store.run_dir(run.run_id) / "error.txt"
    err.parent.mkdir(parents=True)
    err.write_text("Traceback: an old failure")
    assert run_study([run], store, InProcessExecutor()) == {"done": 1}
    assert not err.exists()
    first = store.result(run.run_id)
    mtime = (store.run_dir(run.run_id) / "result.json").stat().st_mtime_ns
    again = execute_run((run.to_dict(), str(store.root), 1))  # e.g. a Slurm job requeued after finishing
    assert again == first
    assert (store.run_dir(run.run_id) / "result.json").stat().st_mtime_ns == mtime


def test_a_failed_run_records_the_steps_it_ran(tiny, monkeypatch):
    import scaling.train.loop as loop

    _, run, store = tiny
    real = loop.lr_at

    def breaks_at_step_7(step, total, train):
        if step == 7:
            raise RuntimeError("boom at step 7")
        return real(step, total, train)

    monkeypatch.setattr(loop, "lr_at", breaks_at_step_7)
    row = execute_run((run.to_dict(), str(store.root), 1))
    assert row["status"] == "failed" and "boom" in row["error"]
    assert row["steps"] == 7 and row["wall_time"] > 0
    assert store.result(run.run_id)["steps"] == 7
    assert "boom at step 7" in (store.run_dir(run.run_id) / "error.txt").read_text()
    assert not (store.run_dir(run.run_id) / LOCK_NAME).exists()  # released on the failure path too
