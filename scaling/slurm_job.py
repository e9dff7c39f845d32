"""Entry point of a Slurm job: catch preemption signals from the first instant, then run submitit.

Slurm may signal a job (USR1/USR2 before the time limit, TERM on preemption or requeue) before
Python has imported torch and submitit and before the job's own handler exists; the default
action of USR1/USR2 kills the process, and the run dies without a checkpoint. This module is
deliberately light: it records such early signals in the environment (read by
`scaling.train.slurm_run.SlurmRun`) and hands over to submitit's job runner, without letting
submitit replace the recording handlers (its TERM handler drops the signal).

Run as `python -u -m scaling.slurm_job -u -m submitit.core._submit FOLDER` (submitit's command,
behind the `python` that the Slurm executor gives it).
"""

from __future__ import annotations

import os
import signal
import sys

EARLY_SIGNAL_ENV = "SCALING_EARLY_SIGNAL"
SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM")


def _record(signum, frame) -> None:
    os.environ[EARLY_SIGNAL_ENV] = signal.Signals(signum).name


def main() -> None:
    for name in SIGNALS:
        signal.signal(getattr(signal, name), _record)
    folder = sys.argv[-1]
    from submitit.core import job_environment
    from submitit.core._submit import submitit_main

    # submitit would swap these handlers for its own once the job is unpickled: TERM "bypassed"
    # (lost) and USR2 requeued by submitit, until SlurmRun installs its handlers. Keep recording
    # instead: SlurmRun reads what came (it checkpoints and requeues itself).
    job_environment.JobEnvironment._handle_signals = lambda self, paths, submission: None

    sys.argv = [sys.argv[0], folder]
    try:
        submitit_main()
    finally:
        # The job's outcome is written. A warning signal that comes now (the time limit's USR2 a
        # moment after the run finished) must not kill the process: Python restores the default
        # action, "terminate", while it shuts down, and Slurm then calls a finished job FAILED.
        for name in SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_IGN)


if __name__ == "__main__":
    main()
