"""Runs on Slurm through submitit: job arrays whose jobs checkpoint and requeue when signalled.

In a job, `SlurmRun` (a submitit checkpointable callable, `scaling.train.slurm_run`) trains one run: USR1, USR2 (Slurm's
warning before the time limit) and TERM (preemption, `scontrol requeue`) make the training loop
checkpoint at once; the job then requeues itself, up to `max_requeues` times, and the requeued
job resumes from the checkpoint. Neither a preemption nor a timeout is recorded as `failed`; past
the limit the run stays `unfinished` and the next `grid run` resumes it. Torch threads follow the
CPUs Slurm granted.

In the coordinator, `SlurmExecutor` records every submitted job in the study folder
(`slurm/jobs.json`: run id -> job id and log folder), never submits a run that still has a live
job (it waits on that job instead, or with `detach` returns at once), and reads outcomes from
the store and submitit's result files, so a job that dies without a result is reported and the
other jobs are still waited for. The registry and the scheduler's view of the jobs (squeue,
sacct) are `scaling.train.slurm_queue`; this module holds the `--slurm` options and the executor.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError
from scaling.store import Store
from scaling.train.slurm_queue import LIVE_STATES, job_states, load_registry, sacct_state, save_registry, squeue_states
from scaling.train.slurm_run import SlurmRun

SQUEUE_DOWN_S = 300.0  # how long the coordinator bears squeue failing before it gives the jobs up
# submitit's own parameters; every other --slurm KEY=VALUE goes to sbatch as --KEY=VALUE
_SUBMITIT_KEYS = {"time", "cpus_per_task", "gpus_per_node", "partition", "signal_delay_s", "array_parallelism",
                  "job_name", "setup"}


class SlurmError(ScalingError):
    """Slurm refused the study's jobs or cannot run them as asked."""


# ---------------------------------------------------------------- options (coordinator side)

def parse_options(pairs: list[str]) -> dict[str, str]:
    """`--slurm KEY=VALUE` pairs as a dict; keys with dashes or underscores alike (`cpus-per-task`)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise SlurmError(f"--slurm {pair!r}: expected KEY=VALUE, e.g. --slurm partition=gpu --slurm time=120")
        out[key] = value.strip()
    return out


def minutes(value: str | int) -> int:
    """A Slurm time limit in minutes: `120`, `90:00` (MM:SS), `2:00:00`, `1-12` or `1-12:00:00`."""
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise SlurmError(f"--slurm time={text!r}: give minutes (e.g. time=120) or [D-]HH:MM:SS")
    days, a, b, c = m.groups()
    if days is None and b is None:
        total = int(a)
    elif days is not None:
        total = int(days) * 1440 + int(a) * 60 + int(b or 0) + (1 if c and int(c) else 0)
    elif c is None:  # MM:SS
        total = int(a) + (1 if int(b) else 0)
    else:
        total = int(a) * 60 + int(b) + (1 if int(c) else 0)
    if total < 1:
        raise SlurmError(f"--slurm time={text!r}: a time limit of at least 1 minute is needed")
    return total


def signal_delay(time_min: int) -> int:
    """Seconds before the limit at which Slurm warns the job: 90 s, but half the limit on short jobs
    (a warning due before the job starts would requeue it at once, forever)."""
    return int(min(90, time_min * 30))


def build_parameters(options: dict[str, str], *, max_requeues: int) -> dict[str, Any]:
    """submitit `SlurmExecutor.update_parameters` arguments for `options` (see `parse_options`)."""
    opts = dict(options)
    time_min = minutes(opts.pop("time", "60"))
    try:
        cpus = int(opts.pop("cpus_per_task", "1"))
        gpus = int(opts.pop("gpus_per_node", opts.pop("gpus", "0")) or 0)
        parallel = int(opts.pop("array_parallelism", "256"))
    except ValueError as e:
        raise SlurmError(f"--slurm cpus_per_task/gpus_per_node/array_parallelism must be integers: {e}") from None
    params: dict[str, Any] = {
        "time": time_min, "cpus_per_task": cpus, "signal_delay_s": int(opts.pop("signal_delay_s", signal_delay(time_min))),
        "array_parallelism": parallel, "job_name": opts.pop("job_name", "scaling"),
        # threads must not exceed the CPUs granted; torch reads this before it starts its pools
        "setup": ["export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
                  "export MKL_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}"],
    }
    if gpus:
        params["gpus_per_node"] = gpus
    if "partition" in opts:
        params["partition"] = opts.pop("partition")
    params["additional_parameters"] = {k.replace("_", "-"): v for k, v in opts.items()}
    params["_max_requeues"] = max_requeues
    return params


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"`{cmd[0]}` not found: --executor slurm needs the Slurm client commands on PATH") from None


def check_cluster(params: dict[str, Any]) -> None:
    """Refuse, with a message, jobs that this cluster can never start (they would pend forever)."""
    cmd = ["sinfo", "-h", "-o", "%c|%G|%P"]
    if params.get("partition"):
        cmd += ["-p", str(params["partition"])]
    res = _run(cmd)
    if res.returncode != 0:
        raise SlurmError(f"sinfo failed: {res.stderr.strip() or res.stdout.strip()}")
    rows = [line.split("|") for line in res.stdout.split() if line.count("|") == 2]
    where = f"partition {params['partition']}" if params.get("partition") else "this cluster"
    if not rows:
        raise SlurmError(f"sinfo lists no nodes in {where}; check --slurm partition=...")
    cpus = max(int(re.sub(r"\D", "", c) or 0) for c, _, _ in rows)
    if params["cpus_per_task"] > cpus:
        raise SlurmError(f"--slurm cpus_per_task={params['cpus_per_task']}: no node of {where} has more than "
                         f"{cpus} CPUs, so the jobs would pend forever")
    if params.get("gpus_per_node") and not any("gpu" in g for _, g, _ in rows):
        raise SlurmError(f"--gpus {params['gpus_per_node']}: no node of {where} has GPUs (sinfo shows no "
                         "gres/gpu); drop --gpus or choose a GPU partition with --slurm partition=...")


# ---------------------------------------------------------------- coordinator

class SlurmExecutor:
    """Submit runs as one Slurm job array and wait for them (or `detach`); see the module docstring."""

    def __init__(self, store: Store, options: dict[str, str] | None = None, *, folder: str | Path | None = None,
                 max_requeues: int = 3, detach: bool = False, poll_s: float = 5.0,
                 notify: Callable[[str], None] | None = None):
        self.store = store
        self.params = build_parameters(options or {}, max_requeues=max_requeues)
        self.max_requeues = max_requeues
        self.folder = Path(folder) if folder else store.root / "slurm" / "logs"
        self.detach = detach
        self.poll_s = poll_s
        self.notify = notify or (lambda msg: None)
        self.submitted: list[str] = []
        self.attached: list[str] = []

    def _executor(self):
        import submitit

        params = dict(self.params)
        params.pop("_max_requeues")
        python = f"{shlex.quote(sys.executable)} -u -m scaling.slurm_job"
        ex = submitit.SlurmExecutor(folder=str(self.folder), max_num_timeout=self.max_requeues + 1, python=python)
        ex.update_parameters(**params)
        return ex

    def map(self, payloads, on_step, on_done):
        from scaling.lock import RunLock

        registry_lock = RunLock(self.store.root / "slurm")  # one coordinator submits at a time
        registry_lock.acquire()
        try:
            live = {r: s for r, s in job_states(self.store).items() if s["live"]}
            registry = load_registry(self.store)
            todo = [p for p in payloads if _run_id(p) not in live]
            waiting = {_run_id(p): registry[_run_id(p)] for p in payloads if _run_id(p) in live}
            self.attached += list(waiting)
            if waiting:
                self.notify(f"{len(waiting)} runs already have live Slurm jobs; not submitting them again: "
                            + ", ".join(f"{r} (job {e['job_id']})" for r, e in waiting.items()))
            if todo:
                check_cluster(self.params)

                try:
                    jobs = self._executor().map_array(SlurmRun(self.max_requeues), todo)
                except Exception as e:  # sbatch's refusal, as one line
                    raise SlurmError(f"sbatch refused the jobs: {str(e).strip().splitlines()[-1]}") from None
                now = time.time()
                for p, job in zip(todo, jobs):
                    entry = {"job_id": job.job_id, "folder": str(self.folder), "submitted": now}
                    registry[_run_id(p)] = entry
                    waiting[_run_id(p)] = entry
                save_registry(self.store, registry)
                self.submitted += [_run_id(p) for p in todo]
                self.notify(f"submitted {len(todo)} runs as Slurm job array {jobs[0].job_id.split('_')[0]} "
                            f"(logs: {self.folder})")
        finally:
            registry_lock.release()
        if self.detach or not waiting:
            return
        self._wait(waiting, on_done)

    def _wait(self, waiting: dict[str, dict[str, Any]], on_done) -> None:
        from submitit.core.utils import JobPaths, pickle_load

        last_note = ""
        ended_at: dict[str, float] = {}
        down_since: float | None = None  # when squeue started failing
        while waiting:
            queried = squeue_states({e["job_id"] for e in waiting.values()})
            states = queried or {}
            # squeue failing for a while (slurmctld busy) says nothing about the jobs: treat them as
            # live; failing for SQUEUE_DOWN_S, the jobs count as gone (their runs resume on a rerun)
            if queried is None:
                down_since = time.time() if down_since is None else down_since
            else:
                down_since = None
            squeue_down = down_since is not None and time.time() - down_since < SQUEUE_DOWN_S
            for run_id, entry in list(waiting.items()):
                paths = JobPaths(entry["folder"], job_id=entry["job_id"], task_id=0)
                state = "RUNNING" if squeue_down else states.get(entry["job_id"], ("ENDED", ""))[0]
                if state in LIVE_STATES:
                    ended_at.pop(run_id, None)  # gone for 10 s in a row, not 10 s after a first blip
                row = None
                if paths.result_pickle.exists():
                    try:
                        outcome, value = pickle_load(paths.result_pickle)
                    except Exception:  # being written: next round
                        continue
                    row = value if outcome == "success" else self._record_failure(run_id, entry, value)
                elif state not in LIVE_STATES:
                    # the job is gone without a result file; give the file system a moment first
                    if time.time() - ended_at.setdefault(run_id, time.time()) < 10:
                        continue
                    row = self._ended_without_result(run_id, entry, paths)
                if row is not None:
                    del waiting[run_id]
                    on_done(row)
            note = ", ".join(f"{n} {s.lower()}" for s, n in _count(states).items())
            if waiting and note and note != last_note:
                self.notify(f"slurm: {len(waiting)} jobs outstanding ({note})")
                last_note = note
            if waiting:
                time.sleep(self.poll_s)

    def _record_failure(self, run_id: str, entry: dict[str, Any], trace: str) -> dict[str, Any]:
        """The job raised outside the run's own error handling: record it in the store."""
        result = self.store.result(run_id)
        if result is not None and result.get("status") in ("done", "diverged"):
            return result
        return _failed_row(self.store, run_id, f"Slurm job {entry['job_id']} failed: {trace.strip().splitlines()[-1]}")

    def _ended_without_result(self, run_id: str, entry: dict[str, Any], paths) -> dict[str, Any]:
        result = self.store.result(run_id)
        if result is not None and result.get("status") in ("done", "diverged"):
            return result
        state = sacct_state(entry["job_id"])
        if state in ("TIMEOUT", "PREEMPTED", "CANCELLED", "NODE_FAIL", "REQUEUED", "DEADLINE", "UNKNOWN") \
                or self.store.checkpoint_path(run_id).exists():
            # never a failure of the run: it resumes from its checkpoint on the next `grid run`
            return {"run_id": run_id, "status": "unfinished",
                    "error": f"Slurm job {entry['job_id']} ended ({state}) before the run finished; "
                             f"`scaling grid run` again resumes it (log: {paths.stderr})"}
        return _failed_row(self.store, run_id, f"Slurm job {entry['job_id']} ended ({state}) without a result; "
                                               f"see {paths.stderr}")


def _run_id(payload) -> str:
    from scaling.train.run_config import RunConfig

    return RunConfig.from_dict(payload[0]).run_id


def _count(states: dict[str, tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for state, _ in states.values():
        out[state] = out.get(state, 0) + 1
    return dict(sorted(out.items()))


def _failed_row(store: Store, run_id: str, message: str) -> dict[str, Any]:
    from scaling.train.loop import build_row
    from scaling.train.run_config import RunConfig

    config_path = store.run_dir(run_id) / "config.json"
    if config_path.is_file():
        run = RunConfig.from_dict(json.loads(config_path.read_text()))
        row = build_row(run, {"flops_per_token": float("nan")}, {}, {}, {}, "failed", 0, 0, 0.0, float("nan"))
        row["error"] = message
        store.write_result(run_id, row, [])
        return row
    return {"run_id": run_id, "status": "failed", "error": message}
