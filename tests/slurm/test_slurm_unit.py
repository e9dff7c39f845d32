"""The Slurm executor's parts that need no cluster: options, thread counts, cluster checks, and a
signalled job checkpointing at once (never recorded as failed)."""

import json
import os
import signal
import threading

import pytest

from scaling.config import load_spec
from scaling.store import Store
from scaling.train import expand
from scaling.train import slurm as S
from scaling.train import slurm_queue as Q
from scaling.train import slurm_run as R

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
steps = 400
batch_size = 4
seq_len = 21
lr = 1e-2
eval_points = 3
checkpoint_every = 100000
"""


def test_any_slurm_option_passes_through_with_time_in_minutes():
    opts = S.parse_options(["partition=gpu", "time=120", "account=lab", "qos=high", "mem=64G", "constraint=h100",
                            "cpus-per-task=8", "--gres=gpu:2", "mail_type=END"])
    p = S.build_parameters(opts, max_requeues=2)
    assert p["time"] == 120 and p["cpus_per_task"] == 8 and p["partition"] == "gpu"
    assert p["additional_parameters"] == {"account": "lab", "qos": "high", "mem": "64G", "constraint": "h100",
                                          "gres": "gpu:2", "mail-type": "END"}
    assert p["signal_delay_s"] == 90
    # the sbatch file submitit writes carries every one of them
    from submitit.slurm.slurm import _make_sbatch_string

    args = {k: v for k, v in p.items() if not k.startswith("_")}
    text = _make_sbatch_string(command="x", folder="/tmp/f", **args)
    for flag in ("--time=120", "--cpus-per-task=8", "--partition=gpu", "--account=lab", "--qos=high", "--mem=64G",
                 "--constraint=h100", "--gres=gpu:2", "--signal=USR2@90", "export OMP_NUM_THREADS="):
        assert flag in text, flag


def test_defaults_ask_for_one_cpu_and_short_limits_get_an_early_enough_warning():
    p = S.build_parameters({}, max_requeues=3)
    assert p["cpus_per_task"] == 1 and p["time"] == 60
    assert S.build_parameters({"time": "1"}, max_requeues=3)["signal_delay_s"] == 30  # not before the job starts
    assert [S.minutes(t) for t in ("120", "2:00:00", "90:00", "1-00:00:00", "0:30:01")] == [120, 120, 90, 1440, 31]
    with pytest.raises(S.SlurmError, match="time"):
        S.minutes("two hours")
    with pytest.raises(S.SlurmError, match="KEY=VALUE"):
        S.parse_options(["partition"])


def test_jobs_that_could_never_start_are_refused_with_a_message(monkeypatch):
    class Done:
        returncode, stderr = 0, ""
        stdout = "2|(null)|low*\n2|(null)|high\n"

    monkeypatch.setattr(S, "_run", lambda cmd, timeout=60: Done())
    S.check_cluster(S.build_parameters({}, max_requeues=1))
    with pytest.raises(S.SlurmError, match="cpus_per_task=4: no node .* more than 2 CPUs"):
        S.check_cluster(S.build_parameters({"cpus_per_task": "4"}, max_requeues=1))
    with pytest.raises(S.SlurmError, match="--gpus 1: no node .* has GPUs"):
        S.check_cluster(S.build_parameters({"gpus_per_node": "1"}, max_requeues=1))


def test_torch_threads_follow_the_cpus_slurm_granted(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert R.job_threads() == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert R.job_threads() == len(os.sched_getaffinity(0))


@pytest.fixture
def payload(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(SPEC)
    run = expand(load_spec(p))[0]
    return run, Store(tmp_path / "tiny"), (run.to_dict(), str(tmp_path / "tiny"), 1)


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(getattr(signal, s)) for s in R.SIGNALS}
    yield
    for s, h in saved.items():
        signal.signal(getattr(signal, s), h)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1", "SIGUSR2"])
def test_a_signalled_job_checkpoints_at_once_and_is_not_failed(payload, restore_signals, monkeypatch, signame):
    run, store, p = payload
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")

    def send_after_config():  # once training has started
        while not (store.run_dir(run.run_id) / "config.json").exists():
            threading.Event().wait(0.01)
        os.kill(os.getpid(), getattr(signal, signame))

    timer = threading.Thread(target=send_after_config, daemon=True)
    timer.start()
    row = R.SlurmRun(max_requeues=0)(p)  # no requeues left: stop, keep the checkpoint, say how to resume
    timer.join()
    assert row["status"] == "unfinished" and 0 < row["step"] < 400
    assert signame in row["error"] and "grid run" in row["error"]
    assert store.result(run.run_id) is None  # not failed: nothing recorded as an outcome
    assert store.checkpoint_path(run.run_id).exists()
    event = json.loads((store.run_dir(run.run_id) / Q.REQUEUE_FILE).read_text())
    assert event["signal"] == signame and event["gave_up"] and event["step"] == row["step"]


def test_an_early_signal_is_not_lost_and_the_checkpoint_call_counts_requeues(payload, restore_signals, monkeypatch):
    run, store, p = payload
    monkeypatch.setenv("SCALING_EARLY_SIGNAL", "SIGUSR1")  # caught by scaling.slurm_job before torch loaded
    row = R.SlurmRun(max_requeues=0)(p)
    assert row["status"] == "unfinished" and row["step"] == 1 and "SIGUSR1" in row["error"]
    nxt = R.SlurmRun(max_requeues=3, requeues=1).checkpoint(p)
    assert nxt.function.requeues == 2 and nxt.function.max_requeues == 3 and nxt.args == (p,)
    # resumed without a signal, it finishes from the checkpoint
    row = R.SlurmRun(max_requeues=3)(p)
    assert row["status"] == "done" and row["steps"] == 400


def test_the_coordinator_bears_squeue_failing_and_a_job_missing_once(tmp_path, monkeypatch):
    """squeue failing (slurmctld busy) or a job missing from one listing is not the job's end: the
    coordinator keeps waiting and takes the result the job writes afterwards."""
    from submitit.core.utils import JobPaths, cloudpickle_dump

    store = Store(tmp_path / "study")
    entry = {"job_id": "7", "folder": str(tmp_path / "logs"), "submitted": 0.0}
    paths = JobPaths(entry["folder"], job_id="7", task_id=0)
    paths.result_pickle.parent.mkdir(parents=True)
    row = {"run_id": "r1", "status": "done"}
    # squeue: fails for a while, lists the job, misses it once, fails again, then the result exists
    answers = [None] * 3 + [{"7": ("RUNNING", "None")}, {}, None, None]
    clock = iter(range(0, 1000, 4))  # 4 s per poll: the misses span more than 10 s in all

    def squeue(job_ids):
        if not answers:
            cloudpickle_dump(("success", row), paths.result_pickle)
            return {}
        return answers.pop(0)

    monkeypatch.setattr(S, "squeue_states", squeue)
    monkeypatch.setattr(S.time, "time", lambda: float(next(clock)))
    got = []
    S.SlurmExecutor(store, poll_s=0.0)._wait({"r1": entry}, got.append)
    assert got == [row]

    # squeue failing for longer than SQUEUE_DOWN_S gives the job up: unfinished (resumable), not failed
    monkeypatch.setattr(S, "squeue_states", lambda job_ids: None)
    monkeypatch.setattr(S, "SQUEUE_DOWN_S", 20.0)
    store.checkpoint_path("r2").parent.mkdir(parents=True, exist_ok=True)
    store.checkpoint_path("r2").write_bytes(b"ckpt")
    monkeypatch.setattr(S, "sacct_state", lambda job: "UNKNOWN")
    got = []
    S.SlurmExecutor(store, poll_s=0.0)._wait({"r2": {**entry, "job_id": "8"}}, got.append)
    assert [g["status"] for g in got] == ["unfinished"]


def test_term_asks_accounting_again_while_it_still_has_old_news(monkeypatch):
    """scancel changes the job's state before TERM arrives, but slurmdbd learns it later: a lagging
    RUNNING, or for a job cancelled as it starts PENDING or no entry yet, must not be read as "not
    cancelled" (the job would requeue itself and run again)."""
    answers = ["", "PENDING", "RUNNING", "CANCELLED"]
    monkeypatch.setattr(Q, "_sacct_state", lambda job: answers.pop(0) if len(answers) > 1 else answers[0])
    assert Q.state_behind_term("7_0", wait_s=5.0, every=0.0) == "CANCELLED"
    # a job that stays RUNNING got a plain TERM (scancel -s TERM): asked until the wait is over
    calls = []
    monkeypatch.setattr(Q, "_sacct_state", lambda job: calls.append(job) or "RUNNING")
    assert Q.state_behind_term("7_0", wait_s=0.05, every=0.01) == "RUNNING" and len(calls) >= 2
    # no accounting at all is not waited for
    calls.clear()
    monkeypatch.setattr(Q, "_sacct_state", lambda job: calls.append(job) or None)
    assert Q.state_behind_term("7_0", wait_s=5.0, every=0.0) == "UNKNOWN" and calls == ["7_0"]


def test_the_job_entry_point_keeps_recording_signals_through_submitit(monkeypatch):
    """submitit's own handlers (TERM dropped, USR2 requeued by submitit) must not replace the
    recording ones before SlurmRun installs its handlers; after the job, signals are ignored."""
    import submitit.core._submit as submit
    from submitit.core import job_environment

    import scaling.slurm_job as job

    seen = {}

    def fake_main():
        job_environment.JobEnvironment._handle_signals(None, None, None)  # what process_job calls
        seen.update({name: signal.getsignal(getattr(signal, name)) for name in job.SIGNALS})

    monkeypatch.setattr(submit, "submitit_main", fake_main)
    monkeypatch.setattr(job_environment.JobEnvironment, "_handle_signals", job_environment.JobEnvironment._handle_signals)
    monkeypatch.setattr(job.sys, "argv", ["x", "-u", "-m", "submitit.core._submit", "folder"])
    before = {name: signal.getsignal(getattr(signal, name)) for name in job.SIGNALS}
    try:
        job.main()
        after = {name: signal.getsignal(getattr(signal, name)) for name in job.SIGNALS}
    finally:
        for name, handler in before.items():
            signal.signal(getattr(signal, name), handler)
    assert all(h is job._record for h in seen.values()), seen
    # once the outcome is written, a late warning signal is ignored, not left to kill the exiting
    # process (in CI a time-limit USR2 a second after the run finished made the job FAILED)
    assert all(h == signal.SIG_IGN for h in after.values()), after
