"""Preemption: SIGUSR1 / SIGTERM (and Ctrl-C, SIGINT) make the training loop checkpoint at once and stop.

The handler only records the signal; the loop looks at `PreemptFlag.requested` after every
optimiser step (a Python attribute, no device sync), writes the checkpoint and raises
`Preempted`. What happens next is the executor's choice: the local executors let it end the
process (the run stays `unfinished` and resumes from that checkpoint), a Slurm executor
requeues the job. `Preempted` derives from BaseException so that the "record a failing run"
handler (`except Exception`) never records a preemption as `failed`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

DEFAULT_SIGNALS: tuple[int, ...] = (signal.SIGUSR1, signal.SIGTERM)
"""What a scheduler sends before it stops a job (and what DDP's launcher forwards to its ranks)."""
STOP_SIGNALS: tuple[int, ...] = (*DEFAULT_SIGNALS, signal.SIGINT)
"""What a training loop checkpoints and stops on: Ctrl-C too, so it loses no steps."""
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later", what a requeue does
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def exit_code(signum: int) -> int:
    return INTERRUPTED_EXIT_CODE if signum == signal.SIGINT else PREEMPTED_EXIT_CODE


class Preempted(BaseException):
    """Raised by `train_run` after the checkpoint of `step` is on disk, on signal `signum`."""

    def __init__(self, signum: int, step: int, run_id: str = ""):
        what = f"run {run_id}" if run_id else "the runs in flight"
        at = f" at step {step}" if step >= 0 else ""  # -1: not known here (DDP's launcher, a pool's coordinator)
        super().__init__(f"{what} checkpointed{at} on signal {signal.Signals(signum).name}")
        self.signum, self.step, self.run_id = signum, step, run_id

    def __reduce__(self):  # a pool worker's Preempted reaches the coordinator pickled
        return (Preempted, (self.signum, self.step, self.run_id))


class PreemptFlag:
    """Context manager: while active, `signals` set `requested` (the signal number) instead of
    their usual action; the previous handlers come back on exit. Outside the main thread
    (where Python cannot install handlers) it installs nothing and `requested` stays None
    unless `request()` is called."""

    def __init__(self, signals: tuple[int, ...] = DEFAULT_SIGNALS):
        self.signals = signals
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def request(self, signum: int, frame: FrameType | None = None) -> None:
        if self.requested is None:
            self.requested = signum

    def __enter__(self) -> "PreemptFlag":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self.request)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


__all__ = ["DEFAULT_SIGNALS", "INTERRUPTED_EXIT_CODE", "PREEMPTED_EXIT_CODE", "STOP_SIGNALS", "PreemptFlag", "Preempted",
           "exit_code"]
