"""What is known about a study's Slurm jobs: the registry of submitted jobs in the study folder
(`slurm/jobs.json`: run id -> job id and log folder), and the scheduler's view of them from
squeue (live jobs) and sacct (accounting: why a job ended, or why it got TERM). Read by the
coordinator (`scaling.train.slurm`), by `scaling grid status`, and in the job
(`scaling.train.slurm_run`); needs no submitit.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from scaling.store import Store, atomic_write_json

LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "COMPLETING",
               "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "PREEMPTED"}
REGISTRY = Path("slurm") / "jobs.json"
REQUEUE_FILE = "requeue.json"


def load_registry(store: Store) -> dict[str, dict[str, Any]]:
    path = store.root / REGISTRY
    return json.loads(path.read_text()) if path.is_file() else {}


def save_registry(store: Store, registry: dict[str, dict[str, Any]]) -> None:
    atomic_write_json(store.root / REGISTRY, registry)


def squeue_states(job_ids: set[str]) -> dict[str, tuple[str, str]] | None:
    """{job id: (state, reason)} of the given jobs still known to squeue; None when squeue failed."""
    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    try:
        res = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(bases)],
                             capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0 and "Invalid job id" not in res.stderr:
        return None
    out = {}
    for line in res.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0] in job_ids:
            out[parts[0]] = (parts[1], parts[2])
    return out


def sacct_state(job_id: str) -> str:
    """Final state of a job from accounting, or UNKNOWN."""
    return _sacct_state(job_id) or "UNKNOWN"


def _sacct_state(job_id: str) -> str | None:
    """The job's state in accounting; "" when accounting does not list it (yet); None when there
    is no accounting to ask (no sacct, or it fails)."""
    try:
        res = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job_id],
                             capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    for line in res.stdout.splitlines():
        jid, _, state = line.partition("|")
        if jid == job_id:
            return state.split()[0] if state.split() else ""
    return ""


TERM_STATE_WAIT_S = 15.0


def state_behind_term(job_id: str, wait_s: float = TERM_STATE_WAIT_S, every: float = 0.5) -> str:
    """Why a running job got TERM, from accounting: CANCELLED, PREEMPTED, REQUEUED, TIMEOUT, ...

    The controller changes a job's state before it signals the job, but accounting (slurmdbd)
    learns it a little later: RUNNING, or for a job cancelled as it starts PENDING or no entry
    at all, may still be the old news (measured here: for about 0.6 s). So it is asked again for
    up to `wait_s` seconds (Slurm's KillWait, 30 s by default, bounds it). A job still RUNNING
    after that got a plain `scancel -s TERM` or `kill`. Reading old news as "not cancelled"
    requeued a cancelled job: `scontrol requeue` accepts a job that is completing after scancel,
    and the job ran again. Without accounting (no sacct) the answer is UNKNOWN at once."""
    deadline = time.monotonic() + wait_s
    while True:
        state = _sacct_state(job_id)
        if state is None:
            return "UNKNOWN"
        if state not in ("", "PENDING", "RUNNING") or time.monotonic() >= deadline:
            return state or "UNKNOWN"
        time.sleep(every)


def _requeued(store: Store, run_id: str, job_id: str) -> int:
    path = store.run_dir(run_id) / REQUEUE_FILE
    try:
        event = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    return int(event.get("requeues", 0)) if event.get("job_id") == job_id else 0


def job_states(store: Store) -> dict[str, dict[str, Any]]:
    """{run id: job_id, state (pending, running, requeued, ended), live, reason} for submitted runs."""
    registry = load_registry(store)
    if not registry:
        return {}
    states = squeue_states({e["job_id"] for e in registry.values()})
    out = {}
    for run_id, entry in registry.items():
        job = entry["job_id"]
        if states is None:
            out[run_id] = {"job_id": job, "state": "unknown", "live": True, "reason": "squeue failed"}
            continue
        state, reason = states.get(job, ("ENDED", ""))
        live = state in LIVE_STATES
        name = state.lower()
        if live and state != "RUNNING":
            name = "requeued" if (state.startswith("REQUEUE") or _requeued(store, run_id, job)) else "pending"
        elif state == "RUNNING":
            name = "running"
        out[run_id] = {"job_id": job, "state": name if live else "ended", "live": live, "reason": reason}
    return out


__all__ = ["LIVE_STATES", "REGISTRY", "REQUEUE_FILE", "TERM_STATE_WAIT_S", "job_states", "load_registry", "sacct_state",
           "save_registry", "squeue_states", "state_behind_term"]
