"""Where runs execute: in this process, in a local process pool, or on Slurm via submitit.

An executor only maps `execute_run` over run configs; what a run does never depends on which
executor ran it. `run_study` decides which runs still need training (finished runs are never
retrained; unfinished ones resume from their checkpoint), runs parents before the runs that
continue from them, and rebuilds the study tables after each finished run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol

import torch

from scaling.lock import RunLock, RunLocked
from scaling.store import Store, atomic_write_bytes
from scaling.train.grid import get_family, training_flops
from scaling.train.loop import ProgressFn, build_row, train_run
from scaling.train.placement import place, threads_per_worker
from scaling.train.run_config import RunConfig
from scaling.train.signals import STOP_SIGNALS, Preempted

Payload = tuple[dict[str, Any], str, int] | tuple[dict[str, Any], str, int, dict[str, Any]]
"""(run config as dict, study folder, torch threads[, options]): all a worker needs, picklable.
Options: `keep_final` (other runs continue from this one), `nproc` (DDP processes, overrides
`[train] nproc`)."""

_slot = 0
"""This process's worker slot (0..W-1 in a local pool): which GPU(s) it trains on."""


def _options(payload: Payload) -> dict[str, Any]:
    return dict(payload[3]) if len(payload) > 3 else {}


def run_nproc(run: RunConfig, options: dict[str, Any]) -> int:
    return int(options.get("nproc") or run.train.get("nproc") or 1)


def train_rank(payload: Payload, rank: int = 0, nproc: int = 1, progress: ProgressFn | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Build the run's task on this process's device and train it (rank of nproc under DDP).

    With `should_stop` (a Slurm job's or a pool worker's stop) the caller owns the signals: the loop
    catches none itself and checkpoints, returning `unfinished`, when it says so."""
    config, root, threads = payload[:3]
    options = _options(payload)
    run = RunConfig.from_dict(config)
    if threads > 0:
        torch.set_num_threads(max(1, threads // nproc))
    device = place(run.train.get("device", "auto"), slot=_slot, rank=rank, nproc=nproc)
    dist = None
    if nproc > 1:
        from scaling.train import ddp

        ddp.check_batch(int(run.train["batch_size"]), nproc)
        dist = ddp.init_from_env(device)
    task = get_family(run.family).build_task(run, device)
    extra: dict[str, Any] = {"should_stop": should_stop, "signals": ()} if should_stop is not None else {}
    return train_run(run, task, Store(root), progress=progress, keep_final=bool(options.get("keep_final")),
                     dist=dist, **extra)


def _final_result(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's stored result if it is final (done or diverged: never trained again), else None."""
    row = store.result(run_id)
    return row if row is not None and row.get("status") in ("done", "diverged") else None


def execute_run(payload: Payload, progress: ProgressFn | None = None,
                should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train one run in the current process; never raises for a failing run, records it instead.

    The run's lock is held throughout: a run another live process holds is not trained (the row
    says `locked`), and a run found finished once the lock is ours is returned as stored, never
    retrained (a Slurm job requeued after its run finished starts again). `should_stop` is polled
    between steps: when it says so the run checkpoints and returns `unfinished`.
    """
    config, root, threads = payload[:3]
    run = RunConfig.from_dict(config)
    store = Store(root)
    lock = RunLock(store.run_dir(run.run_id), on_break=lambda m: print(f"scaling: {m}", file=sys.stderr, flush=True))
    try:
        lock.acquire()
    except RunLocked as e:
        return {"run_id": run.run_id, "label": run.label, "status": "locked", "error": str(e), "holder": e.holder}
    try:
        done = _final_result(store, run.run_id)
        if done is not None:
            return done
        return _train_or_record(payload, run, store, progress, should_stop)
    finally:
        lock.release()


def _train_or_record(payload: Payload, run: RunConfig, store: Store, progress: ProgressFn | None,
                     should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    """Train in this process (or on its DDP processes); a failure is recorded, never raised. A
    preemption (`signals.Preempted`) is not a failure and propagates."""
    error_path = store.run_dir(run.run_id) / "error.txt"
    t0 = time.perf_counter()
    steps = {"n": 0}

    def counting(run_id: str, step: int, total: int, loss: float) -> None:
        steps["n"] = step
        if progress is not None:
            progress(run_id, step, total, loss)

    try:
        nproc = run_nproc(run, _options(payload))
        if nproc > 1:
            from scaling.train import ddp

            ddp.check_batch(int(run.train["batch_size"]), nproc)
            ddp.launch(payload, nproc, stored=lambda: _final_result(store, run.run_id) is not None)
            row = store.result(run.run_id) or {"run_id": run.run_id, "status": store.status(run.run_id)}
        else:
            row = train_rank(payload, progress=counting, should_stop=should_stop)
        if row.get("status") != "unfinished":
            error_path.unlink(missing_ok=True)  # an old failure's traceback must not outlive a success
        return row
    except Exception as e:  # a failing run must not take the study down with it
        atomic_write_bytes(error_path, traceback.format_exc().encode())
        # the steps and time it really ran (this attempt), so a failure is not mistaken for an instant crash
        row = build_row(run, {"flops_per_token": float("nan")}, {}, {}, {}, "failed",
                        getattr(e, "steps_done", steps["n"]), 0,
                        time.perf_counter() - t0, float("nan"))
        row["error"] = f"{type(e).__name__}: {e}"
        store.write_result(run.run_id, row, [])
        return row


class Executor(Protocol):
    def map(self, payloads: Sequence[Payload], on_step: ProgressFn | None,
            on_done: Callable[[dict[str, Any]], None]) -> None: ...


class InProcessExecutor:
    """Runs one after another in this process (the default; best for debugging)."""

    def map(self, payloads, on_step, on_done):
        for p in payloads:
            on_done(execute_run(p, on_step))


def _exit_with_parent(parent: int) -> None:
    """A pool worker whose coordinator was killed stops too (its run resumes from its checkpoint)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


_step_queue: Any = None


_stopping: Any = None
"""The pool's stop: a shared int, 0 while it trains, else the number of the signal that stopped it
(set by the coordinator or by any worker that received one)."""


def _request_stop(signum: int, frame: Any) -> None:
    if _stopping is not None and not _stopping.value:
        _stopping.value = signum


def _init_worker(q: Any, slots: Any = None, stopping: Any = None) -> None:
    global _step_queue, _slot, _stopping
    _step_queue, _stopping = q, stopping
    # The worker owns its signals, as a Slurm job does: Ctrl-C (which reaches every process of the
    # terminal's group), SIGTERM and SIGUSR1 stop the whole pool; a training loop polls the stop after
    # every step, checkpoints and returns `unfinished`, and no further run starts.
    for s in STOP_SIGNALS:
        signal.signal(s, _request_stop)
    if slots is not None:  # first come, first served: worker k of W takes slot k
        with slots.get_lock():
            _slot = slots.value
            slots.value += 1
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _pool_worker(payload: Payload) -> dict[str, Any]:
    if _stopping is not None and _stopping.value:
        run = RunConfig.from_dict(payload[0])
        return {"run_id": run.run_id, "label": run.label, "status": "not started", "error": "the study was interrupted"}
    q = _step_queue
    should_stop = None if _stopping is None else (lambda: _stopping.value != 0)
    return execute_run(payload, None if q is None else (lambda *a: q.put(a)), should_stop=should_stop)


class LocalPoolExecutor:
    """A pool of `workers` processes on this machine; cores are shared out among them and, on a
    node with GPUs, worker k trains on GPU k mod G (`placement.place`)."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)

    def map(self, payloads, on_step, on_done):
        ctx = mp.get_context("spawn")
        q = ctx.Queue() if on_step is not None else None
        stop = threading.Event()

        def drain():
            while not stop.is_set():
                try:
                    on_step(*q.get(timeout=0.2))
                except queue.Empty:
                    continue

        drainer = threading.Thread(target=drain, daemon=True) if q is not None else None
        if drainer:
            drainer.start()
        try:
            # a plain shared int: set from signal handlers, read after every training step
            slots, stopping = ctx.Value("i", 0), ctx.RawValue("i", 0)
            with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(q, slots, stopping)) as pool, _stop_requests(stopping):
                futures = [pool.submit(_pool_worker, p) for p in payloads]
                interrupted = _collect(futures, on_done, stopping)
            if interrupted is not None:
                raise interrupted
        finally:
            stop.set()
            if drainer:
                drainer.join()


@contextmanager
def _stop_requests(stopping: Any) -> Iterator[None]:
    """While a pool trains, Ctrl-C, SIGTERM and SIGUSR1 to the coordinator set the pool's stop, as
    they do in a worker; `_collect` polls it. Raising instead could land inside the pool's own
    locking (a future's condition held, its result thread blocked for good); and without a handler
    SIGTERM would kill the coordinator, and its workers with it, before they checkpoint."""
    def note(signum: int, frame: Any) -> None:
        if not stopping.value:
            stopping.value = signum

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, note) for s in STOP_SIGNALS} if main else {}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _collect(futures: list[Any], on_done: Callable[[dict[str, Any]], None], stopping: Any) -> BaseException | None:
    """Hand each finished run to `on_done`. On a signal to the coordinator or a worker (`stopping`,
    which the workers poll) or a run stopped by one (`Preempted`, from DDP's launcher),
    stop the study: no further run starts, the runs in flight checkpoint and return `unfinished`,
    and what they return is still handed on; then the stop is returned to raise (KeyboardInterrupt
    for Ctrl-C). Without this, leaving the pool waited for every queued run to train."""
    stop: BaseException | None = None
    pending = set(futures)

    def stop_all(signum: int, why: BaseException | None = None) -> None:
        nonlocal stop
        if stop is None:
            stopping.value = stopping.value or signum
            stop = why or (KeyboardInterrupt() if signum == signal.SIGINT else Preempted(signum, -1))
            for f in pending:
                f.cancel()  # queued, not yet handed to a worker

    while pending:
        if stopping.value:
            stop_all(stopping.value)
        done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        for f in done:
            pending.discard(f)
            if f.cancelled():
                continue
            try:
                row = f.result()
            except Preempted as e:
                stop_all(e.signum, e)
                continue
            except Exception:
                if stop is None:
                    raise
                continue  # a worker the stop ended before it could answer: the run stays as stored
            if row.get("status") != "not started":  # a run the stop kept from starting has no news
                on_done(row)
    if stop is None and stopping.value:  # the stop came while the last runs were answering, in one wait
        stop_all(stopping.value)
    return stop


class SubmititExecutor:
    """Any configured `submitit.Executor` (its LocalExecutor or DebugExecutor, for tests).

    For a Slurm cluster use `scaling.train.slurm.SlurmExecutor`, which checkpoints and requeues
    on preemption and timeout, records job ids in the study folder and never submits a run twice.
    A job that raises outside the run's own error handling is recorded, not raised.
    """

    def __init__(self, executor: Any):
        self.executor = executor

    def map(self, payloads, on_step, on_done):
        payloads = list(payloads)
        jobs = self.executor.map_array(execute_run, payloads)
        for p, job in zip(payloads, jobs):
            try:
                row = job.result()
            except Exception as e:  # the coordinator outlives one bad job
                row = {"run_id": RunConfig.from_dict(p[0]).run_id, "status": "failed",
                       "error": f"job {job.job_id}: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}"}
            on_done(row)


def default_threads(workers: int) -> int:
    return threads_per_worker(workers)


def local_executor(workers: int) -> tuple[Executor, int]:
    """In-process for one worker, else a process pool; with the torch threads each run gets (0 = leave)."""
    if workers <= 1:
        return InProcessExecutor(), 0
    return LocalPoolExecutor(workers), default_threads(workers)


class StudyReporter(Protocol):
    def start(self, todo: list[RunConfig], skipped: int) -> None: ...
    def step(self, run_id: str, step: int, total: int, loss: float) -> None: ...
    def finished(self, row: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def pending(runs: list[RunConfig], store: Store) -> list[RunConfig]:
    """Runs that still need work: missing, unfinished (resumed) or failed (retried)."""
    return [r for r in runs if store.status(r.run_id) in ("pending", "unfinished", "failed")]


def run_study(runs: list[RunConfig], store: Store, executor: Executor, reporter: StudyReporter | None = None,
              threads: int = 0, nproc: int = 0) -> dict[str, int]:
    """Train what is pending, parents first; returns counts of run statuses afterwards.

    `nproc` > 0 trains every run on that many DDP processes (else `[train] nproc`). Only runs
    that others continue from keep their final weights."""
    todo = pending(runs, store)
    parents = {r.parent for r in runs if r.parent}
    if reporter:
        reporter.start(todo, len(runs) - len(todo))
    store.root.mkdir(parents=True, exist_ok=True)
    try:
        for wave in (lambda r: r.parent is None, lambda r: r.parent is not None):
            batch = [r for r in todo if wave(r)]
            ready = [r for r in batch if r.parent is None or store.status(r.parent) == "done"]
            for r in batch:
                if r in ready:
                    continue
                if store.status(r.parent) in ("failed", "diverged"):  # record why instead of silently skipping
                    row = build_row(r, {"flops_per_token": float("nan")}, {}, {}, {}, "failed", 0, 0, 0.0,
                                    float("nan"))
                    row["error"] = f"parent run {r.parent} did not finish"
                    store.write_result(r.run_id, row, [])
                elif reporter:  # the parent is still training elsewhere (a detached Slurm job, another process)
                    reporter.finished({"run_id": r.run_id, "label": r.label, "status": "waiting",
                                       "error": f"parent run {r.parent} is not finished yet; run again later"})
            # Longest first: with several workers the last runs to start are the short ones, so the
            # wave ends soon after its longest run (a 2-worker encdec grid: makespan -12%).
            ready.sort(key=training_flops, reverse=True)
            payloads = [(r.to_dict(), str(store.root), threads or 0,
                         {"keep_final": r.run_id in parents, "nproc": nproc}) for r in ready]

            def done(row: dict[str, Any]) -> None:
                store.rebuild()
                if reporter:
                    reporter.finished(row)

            if payloads:
                executor.map(payloads, reporter.step if reporter else None, done)
    finally:
        store.rebuild()
        if reporter:
            reporter.close()
    statuses = [store.status(r.run_id) for r in runs]
    return {s: statuses.count(s) for s in sorted(set(statuses))}
