"""The Slurm executor against a real one-node cluster (tests/slurm/cluster.sh): submission, requeue
by scontrol, a time limit shorter than the run, and a coordinator killed and started again."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scaling.config import load_spec
from scaling.store import Store
from scaling.train import InProcessExecutor, expand, run_study
from scaling.train.slurm import SlurmExecutor
from scaling.train.slurm_queue import LIVE_STATES, REQUEUE_FILE, load_registry, sacct_state, squeue_states

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SPEC = """
[study]
name = "{name}"
[data]
source = "zipf_facts"
eval_tokens = 840
[data.options]
n_symbols = 16
n_keys = 40
[model]
shapes = {shapes}
[train]
steps = {steps}
batch_size = 4
seq_len = 21
lr = 1e-2
eval_points = 4
checkpoint_every = 100000
"""
ONE = '[{d_model = 16, n_layers = 1, n_heads = 2}]'
THREE = ('[{d_model = 8, n_layers = 1, n_heads = 2}, {d_model = 16, n_layers = 1, n_heads = 2}, '
         '{d_model = 24, n_layers = 1, n_heads = 2}]')


def write_spec(tmp_path: Path, name: str, shapes: str, steps: int) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(SPEC.format(name=name, shapes=shapes, steps=steps))
    return p


def wait_until(cond, what: str, limit: float = 120.0, every: float = 0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")


def slurm_executor(store, **kw):
    return SlurmExecutor(store, {"time": kw.pop("time", "10"), "cpus_per_task": "1"}, poll_s=1.0, **kw)


def test_a_small_study_is_submitted_and_finishes_with_one_row_per_run(slurm_cluster, tmp_path):
    from scaling.cli import app

    spec = write_spec(tmp_path, "small", THREE, 30)
    res = CliRunner().invoke(app, ["grid", "run", str(spec), "--executor", "slurm", "--slurm", "time=5",
                                   "--slurm", "mem=500M", "--slurm", "comment=scaling-test"])
    assert res.exit_code == 0, res.output
    assert "submitted 3 runs as Slurm job array" in res.output
    store = Store(tmp_path / "small")
    df = store.runs()
    assert len(df) == 3 and (df.status == "done").all() and (df.steps == 30).all()
    registry = load_registry(store)
    assert sorted(registry) == sorted(df.run_id)
    job = next(iter(registry.values()))["job_id"]
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "NumCPUs=1" in out and "TimeLimit=00:05:00" in out and "Comment=scaling-test" in out
    status = CliRunner().invoke(app, ["grid", "status", str(spec)])
    assert status.exit_code == 0 and "3 done" in status.output


def test_scontrol_requeue_resumes_a_running_job_from_its_checkpoint(slurm_cluster, tmp_path):
    spec = write_spec(tmp_path, "requeue", ONE, 3000)
    run = expand(load_spec(spec))[0]
    store = Store(tmp_path / "requeue")
    run_study([run], store, slurm_executor(store, detach=True))  # submit and return
    job = load_registry(store)[run.run_id]["job_id"]
    wait_until(lambda: (store.run_dir(run.run_id) / "config.json").exists(), "training to start")
    time.sleep(1.0)
    subprocess.run(["scontrol", "requeue", job], check=True)
    event = wait_until(lambda: _read(store.run_dir(run.run_id) / REQUEUE_FILE), "the job to checkpoint")
    assert event["signal"] == "SIGTERM" and event["requeues"] == 1 and 0 < event["step"] < 3000
    assert store.checkpoint_path(run.run_id).exists()
    # it stopped at once: no 30 s of training on through Slurm's grace
    wait_until(lambda: squeue_states({job}).get(job, ("",))[0] == "PENDING", "the job to be requeued", 25)
    # Slurm holds the requeued job until its old credential expires (cluster.sh: 10 s), then starts it
    counts = run_study([run], store, slurm_executor(store))  # attaches to the live job, submits nothing
    assert counts == {"done": 1}
    assert load_registry(store)[run.run_id]["job_id"] == job
    row = store.result(run.run_id)
    assert row["steps"] == 3000
    # resumed, not restarted: the same curve as an uninterrupted run, to float precision
    ref = Store(tmp_path / "reference")
    run_study([run], ref, InProcessExecutor(), threads=1)
    assert math.isclose(row["loss"], ref.result(run.run_id)["loss"], rel_tol=1e-6)
    a, b = pd.read_parquet(store.run_dir(run.run_id) / "curves.parquet"), ref.curves()
    assert list(a.step) == list(b.step)


LAGGING_SACCT = """#!/bin/sh
# sacct as a busy slurmdbd answers it: inside a job, for LAG_S seconds after the job's first
# question, the job's state is still PENDING (it started a moment ago; accounting has not heard)
if [ -n "$SLURM_JOB_ID" ]; then
    stamp="$SCALING_TEST_LAG_DIR/first-ask"
    [ -f "$stamp" ] || date +%s > "$stamp"
    if [ $(( $(date +%s) - $(cat "$stamp") )) -lt {lag_s} ]; then
        for a in "$@"; do job="$a"; done
        echo "$job|PENDING"
        exit 0
    fi
fi
exec {real} "$@"
"""


def test_a_cancelled_job_stays_cancelled_while_accounting_lags(slurm_cluster, tmp_path, monkeypatch):
    """scancel a running job whose accounting still says PENDING when TERM comes (in CI a job
    cancelled as it started read that, requeued itself, and ran again: `scontrol requeue`
    accepts a completing cancelled job). The job asks again until accounting knows."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(LAGGING_SACCT.format(lag_s=4, real=shutil.which("sacct")))
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # sbatch passes it to the job
    monkeypatch.setenv("SCALING_TEST_LAG_DIR", str(tmp_path))
    spec = write_spec(tmp_path, "cancel", ONE, 3000)
    run = expand(load_spec(spec))[0]
    store = Store(tmp_path / "cancel")
    run_study([run], store, slurm_executor(store, detach=True))
    job = load_registry(store)[run.run_id]["job_id"]
    wait_until(lambda: (store.run_dir(run.run_id) / "config.json").exists(), "training to start")
    subprocess.run(["scancel", job], check=True)
    event = wait_until(lambda: _read(store.run_dir(run.run_id) / REQUEUE_FILE), "the job to checkpoint", 60)
    assert (tmp_path / "first-ask").exists()  # the job did meet the lagging accounting
    assert event["signal"] == "SIGTERM" and event.get("cancelled") and event["requeues"] == 0
    # a job that requeued itself would be PENDING again here, and its accounting REQUEUED
    wait_until(lambda: squeue_states({job}).get(job, ("GONE",))[0] not in LIVE_STATES,
               "the cancelled job to end (not to requeue itself)", 60)
    assert sacct_state(job) == "CANCELLED"
    assert store.result(run.run_id) is None and store.checkpoint_path(run.run_id).exists()  # resumable


def test_a_time_limit_shorter_than_the_run_requeues_it_until_it_finishes(slurm_cluster, tmp_path):
    spec = write_spec(tmp_path, "timeout", ONE, 1000)
    run = expand(load_spec(spec))[0]
    # size the run to ~45 s of training here, so it cannot finish within a 1-minute limit (Slurm's
    # warning comes 30 s before the limit, so each attempt trains for less than 30 s): it takes at
    # least one requeue. The probe's own training time, not run_study's set-up, sets the pace.
    probe = Store(tmp_path / "probe")
    run_study([run], probe, InProcessExecutor(), threads=1)
    per_step = probe.result(run.run_id)["wall_time"] / 1000
    steps = int(45 / per_step)
    spec = write_spec(tmp_path, "timeout", ONE, steps)
    run = expand(load_spec(spec))[0]
    store = Store(tmp_path / "timeout")
    ex = slurm_executor(store, time="1", detach=True, max_requeues=30)
    run_study([run], store, ex)
    job = load_registry(store)[run.run_id]["job_id"]

    status = wait_until(lambda: (store.result(run.run_id) or {}).get("status")
                        or (_read(store.run_dir(run.run_id) / REQUEUE_FILE) or {}).get("gave_up") and "gave up",
                        "the run to finish", 600, 2)
    assert status == "done"
    row = store.result(run.run_id)
    assert row["steps"] == steps
    event = _read(store.run_dir(run.run_id) / REQUEUE_FILE)
    assert event["requeues"] >= 1 and event["signal"] in ("SIGUSR2", "SIGTERM")
    # the job ends as a success, never as a failure or a timeout (accounting lags a little)
    assert wait_until(lambda: _sacct_states(job) not in ([], ["RUNNING"], ["COMPLETING"]) and _sacct_states(job),
                      "accounting to see the job end", 60) == ["COMPLETED"]


def test_a_killed_coordinator_is_replaced_without_submitting_live_runs_again(slurm_cluster, tmp_path):
    # Every run must outlast the waits below, or it finishes before its job is cancelled (then it is
    # rightly not submitted again) and the survivors are no longer live when the new coordinator
    # starts. A fixed step count failed twice as machines got faster (1,500 steps, then 8,000 in a
    # test that took 31 s): size the runs from this machine's speed on the fastest shape, >= 30 s each.
    probe_spec = write_spec(tmp_path, "probe", THREE, 400)
    fastest = expand(load_spec(probe_spec))[0]  # d_model 8
    probe = Store(tmp_path / "probe")
    run_study([fastest], probe, InProcessExecutor(), threads=1)
    per_step = probe.result(fastest.run_id)["wall_time"] / 400
    spec = write_spec(tmp_path, "kill", THREE, max(8000, int(30 / per_step)))
    store = Store(tmp_path / "kill")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    coord = subprocess.Popen([sys.executable, "-c", "from scaling.cli import main; main()", "grid", "run", str(spec), "--executor", "slurm",
                              "--slurm", "time=10"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        registry = wait_until(lambda: len(load_registry(store)) == 3 and load_registry(store), "the submission")
        jobs = {r: e["job_id"] for r, e in registry.items()}
        wait_until(lambda: all(s[0] == "RUNNING" for s in squeue_states(set(jobs.values())).values())
                   and len(squeue_states(set(jobs.values()))) == 3, "the jobs to run")
    finally:
        coord.send_signal(signal.SIGKILL)
        coord.wait()
    # one job goes away with the coordinator (cancelled): its run has no live job any more
    gone_run, gone_job = sorted(jobs.items())[0]
    subprocess.run(["scancel", gone_job], check=True)
    wait_until(lambda: squeue_states({gone_job}).get(gone_job, ("GONE",))[0] not in LIVE_STATES,
               "the cancelled job to end (not to requeue itself)", 60)
    notes = []
    counts = run_study(expand(load_spec(spec)), store, slurm_executor(store, notify=notes.append))
    assert counts == {"done": 3}
    after = {r: e["job_id"] for r, e in load_registry(store).items()}
    assert {r: j for r, j in after.items() if r != gone_run} == {r: j for r, j in jobs.items() if r != gone_run}
    assert after[gone_run] != gone_job  # only the run without a live job was submitted again
    assert any("2 runs already have live Slurm jobs" in n for n in notes)
    assert len(store.runs()) == 3


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _sacct_states(job: str) -> list[str]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job], capture_output=True, text=True).stdout
    return [s.split()[0] for s in out.split()]
