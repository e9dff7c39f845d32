"""One writer per run: a lock file in the run's folder, created with O_EXCL.

The file records who holds the run (host, pid, the process's start time, the Slurm job id if
any, when it took the lock). A lock whose holder is gone is broken, with a message:
- same host and the pid is dead (or now belongs to another process: its start time differs);
- the same Slurm job id as ours: Slurm never runs two instances of one job, so the holder was
  this job before a requeue (possibly on another node).
A lock from another host is respected: its liveness cannot be checked from here.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

LOCK_NAME = "lock"
_BREAK_STALE_S = 60.0  # a break-lock older than this was left by a process that died mid-break


class RunLocked(ScalingError):
    """Another live process (or one on another host) holds the run."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path, self.holder = path, holder
        super().__init__(f"{path.parent.name} is held by {describe(holder)}; if that process is gone, "
                         f"remove {path}")


def _process_start(pid: int) -> str | None:
    """Start time of `pid` in clock ticks since boot (Linux), to tell a reused pid from the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def me() -> dict[str, Any]:
    pid = os.getpid()
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid),
                            "started": time.time()}
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        info["slurm_job_id"] = job
    return info


def describe(holder: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0))))
    job = f", Slurm job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
    return f"{holder.get('host', '?')}:{holder.get('pid', '?')}{job} since {when}"


def read_holder(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # a holder killed between create and write: treat as unknown, empty
        return {}


def stale_reason(holder: dict[str, Any]) -> str | None:
    """Why `holder` is known to be gone, or None when it may be alive."""
    here = me()
    job = holder.get("slurm_job_id")
    if job and job == here.get("slurm_job_id") and holder.get("pid") != here["pid"]:
        return f"it was Slurm job {job} before a requeue"
    if holder.get("host") != here["host"]:
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return None
    if not _alive(pid):
        return f"process {pid} is dead"
    start = _process_start(pid)
    if holder.get("pid_start") and start and start != holder["pid_start"]:
        return f"pid {pid} now belongs to another process"
    return None


class RunLock:
    """`with RunLock(run_dir): ...` holds the run or raises RunLocked; `on_break` hears broken locks."""

    def __init__(self, run_dir: str | Path, on_break: Callable[[str], None] | None = None):
        self.path = Path(run_dir) / LOCK_NAME
        self.on_break = on_break
        self.held = False

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # umask decides
            except FileExistsError:
                holder = read_holder(self.path)
                if holder is None:
                    continue  # released meanwhile
                reason = stale_reason(holder) if holder else _empty_reason(self.path)
                if reason is None:
                    if not holder:  # being written this instant
                        time.sleep(0.05)
                        continue
                    raise RunLocked(self.path, holder) from None
                self._break(holder, reason)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me(), f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return self
        raise RunLocked(self.path, read_holder(self.path) or {})

    def _break(self, holder: dict[str, Any], reason: str) -> None:
        """Remove a stale lock; a second lock file makes the check-and-remove one step among breakers."""
        guard = self.path.with_name(LOCK_NAME + ".break")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > _BREAK_STALE_S:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            time.sleep(0.05)
            return
        try:
            os.close(fd)
            if read_holder(self.path) == holder:  # nobody replaced it in between
                self.path.unlink(missing_ok=True)
                if self.on_break:
                    self.on_break(f"broke the stale lock of {self.path.parent.name} held by "
                                  f"{describe(holder)}: {reason}")
        finally:
            guard.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            self.held = False
            if _mine_on_disk(self.path) is not None:
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _empty_reason(path: Path) -> str | None:
    """A lock file left empty by a holder killed between creating and writing it."""
    try:
        return "its holder left it empty" if time.time() - path.stat().st_mtime > 5.0 else None
    except FileNotFoundError:
        return None


def _mine_on_disk(path: Path) -> dict[str, Any] | None:
    """The lock's content if this process wrote it (never remove a lock someone broke and retook)."""
    holder = read_holder(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        return holder
    return None


def holder_of(run_dir: str | Path) -> tuple[dict[str, Any], str | None] | None:
    """(holder, why it is stale or None) for a run's lock, or None when the run is not locked."""
    holder = read_holder(Path(run_dir) / LOCK_NAME)
    if holder is None:
        return None
    return holder, stale_reason(holder)
