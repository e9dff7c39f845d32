"""In a Slurm job: train one run, and on USR1/USR2 (Slurm's warning before the time limit) or
TERM (preemption, `scontrol requeue`) checkpoint at once and requeue, up to `max_requeues`
times; the requeued job resumes from the checkpoint. A cancelled job (asked of accounting,
`slurm_queue.state_behind_term`) stays cancelled. Torch threads follow the CPUs Slurm granted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from submitit.helpers import Checkpointable

from scaling.slurm_job import EARLY_SIGNAL_ENV, SIGNALS
from scaling.store import Store, atomic_write_json
from scaling.train.slurm_queue import REQUEUE_FILE, state_behind_term

def job_threads() -> int:
    """The CPUs Slurm granted this job (SLURM_CPUS_PER_TASK, else the CPU affinity mask)."""
    granted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if granted.isdigit() and int(granted) > 0:
        return int(granted)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class SlurmRun(Checkpointable):
    """Train one run in a Slurm job; checkpoint and requeue on USR1/USR2/TERM (submitit's protocol:
    `checkpoint` returns the call to make when the job starts again)."""

    def __init__(self, max_requeues: int = 3, requeues: int = 0):
        self.max_requeues = max_requeues
        self.requeues = requeues

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.core.utils import DelayedSubmission

        return DelayedSubmission(SlurmRun(self.max_requeues, self.requeues + 1), *args, **kwargs)

    def __call__(self, payload) -> dict[str, Any]:
        import torch

        from scaling.train.executors import execute_run

        caught: list[str] = []
        early = os.environ.pop(EARLY_SIGNAL_ENV, None)
        if early:
            caught.append(early)
        for name in SIGNALS:
            signal.signal(getattr(signal, name), lambda signum, frame: caught.append(signal.Signals(signum).name))
        config, root, threads = payload[:3]
        threads = threads or job_threads()
        torch.set_num_threads(threads)
        row = execute_run((config, root, threads, *payload[3:]), should_stop=lambda: bool(caught))
        if not caught or row.get("status") != "unfinished":
            return row
        run_dir = Store(root).run_dir(row["run_id"])
        job_id = os.environ.get("SLURM_ARRAY_JOB_ID") and f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
        job_id = job_id or os.environ.get("SLURM_JOB_ID", "")
        event = {"job_id": job_id, "signal": caught[0], "step": row.get("step"), "requeues": self.requeues,
                 "max_requeues": self.max_requeues, "at": time.time()}
        # TERM comes from preemption, `scontrol requeue`, the time limit, and scancel alike: ask
        # accounting which, so that a cancelled job stays cancelled (UNKNOWN: no accounting; requeue)
        state = state_behind_term(job_id) if caught[0] == "SIGTERM" and job_id else "UNKNOWN"
        if state == "CANCELLED":
            event["cancelled"] = True
            atomic_write_json(run_dir / REQUEUE_FILE, event)
            row["error"] = f"Slurm job {job_id} cancelled at step {row.get('step')}; `scaling grid run` again resumes it"
            return row
        if self.requeues >= self.max_requeues:
            event["gave_up"] = True
            atomic_write_json(run_dir / REQUEUE_FILE, event)
            row["error"] = (f"stopped by {caught[0]} at step {row.get('step')} after {self.requeues} requeues "
                            f"(--max-requeues {self.max_requeues}); `scaling grid run` again resumes it")
            return row
        event["requeues"] = self.requeues + 1
        atomic_write_json(run_dir / REQUEUE_FILE, event)
        # Slurm requeues a preempted job, or one `scontrol requeue` named, by itself
        self._requeue(payload, job_id, ask_slurm=state not in ("REQUEUED", "PREEMPTED"))
        return row  # only reached outside Slurm

    def _requeue(self, payload, job_id: str, ask_slurm: bool = True) -> None:
        """Rewrite submitit's pickle with the next call, ask Slurm to requeue this job, and exit
        without a result (the coordinator keeps waiting for the requeued job)."""
        import submitit
        from submitit.core.utils import DelayedSubmission, temporary_save_path

        try:
            env = submitit.JobEnvironment()
            paths = env.paths
        except Exception:  # not in a submitit job (tests call it directly)
            return
        nxt = self.checkpoint(payload)
        nxt.set_timeout(DelayedSubmission.load(paths.submitted_pickle)._timeout_min, self.max_requeues + 1)
        with temporary_save_path(paths.submitted_pickle) as tmp:
            nxt.dump(tmp)
        if ask_slurm:  # Slurm may refuse a job it is already requeueing: harmless
            res = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
            print(f"scaling: checkpointed; scontrol requeue {job_id}: rc {res.returncode} {res.stderr.strip()}",
                  file=sys.stderr, flush=True)
        else:
            print(f"scaling: checkpointed; Slurm requeues job {job_id}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(3)  # no result file: submitit must not see this attempt as the job's outcome


__all__ = ["SIGNALS", "SlurmRun", "job_threads"]
