"""One run on K processes with `torch.distributed` (DDP), launched as `torchrun` would.

`launch` starts K processes with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT, and a rendezvous store the launcher hosts, as torchrun's agent
does); each joins the process group from it (NCCL on GPUs, gloo on the CPU), builds the
task on its own device (see `placement.place`) and trains rows rank·B/K .. (rank+1)·B/K
of every global batch of B rows, so the global batch and the curve are the single-process
ones. DDP averages the gradients; each rank's loss is its summed token losses divided by the
global token count times K, so the average is exactly the full-batch mean even where ranks
hold different numbers of targets (padding).
Rank 0 alone writes the store. SIGTERM / SIGUSR1 sent to the launcher are passed on to the
ranks, which agree on the step to stop at (`DistContext.agree`) and checkpoint there.

A rank leaves only after rank 0 has stored the run (a last barrier), and ends with `os._exit`,
not the interpreter's own exit: a spawned process's normal exit finalises the interpreter and
runs C++ static destructors while gloo's threads may still run, and that aborted rank 1
("terminate called without an active exception", SIGABRT) in 4 of 10 CI runs after the run
had finished. Should a rank still die once the run is stored, the launcher keeps the result.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from scaling.errors import SpecError
from scaling.train.signals import DEFAULT_SIGNALS, PREEMPTED_EXIT_CODE, Preempted


@dataclass
class DistContext:
    """This process's place in the run's process group."""

    rank: int
    world_size: int
    control: Any
    """A gloo group for host-side agreement (flags, barriers) that never syncs the GPU."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, flag: int) -> int:
        """The largest `flag` over all ranks (a CPU all-reduce)."""
        t = torch.tensor([flag], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return int(t)

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) `t` in place over the training group."""
        dist.all_reduce(t)
        return t

    def barrier(self) -> None:
        dist.barrier(group=self.control)


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group torchrun's variables describe (NCCL for CUDA devices, else gloo)."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://")
    control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), control=control)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, nproc: int) -> None:
    if batch_size % nproc:
        raise SpecError(f"[train] `batch_size` ({batch_size}) must be divisible by `nproc` ({nproc}): "
                        f"each of the {nproc} processes trains an equal share of every batch")


def _rendezvous_store() -> dist.TCPStore:
    """The ranks' rendezvous store, hosted by the launcher as torchrun's agent hosts it: bound to
    a port the kernel picks, in one step. (Picking a free port and letting rank 0 bind it later
    leaves the port to anyone for the seconds the ranks take to import torch.)"""
    return dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def _rank_main(rank: int, payload: Any, nproc: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
                      LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      TORCHELASTIC_USE_AGENT_STORE="True")  # every rank a client of the launcher's store
    from scaling.train.executors import train_rank

    faulthandler.enable(all_threads=True)  # a rank killed by a signal (SIGABRT, SIGSEGV) prints where it was
    try:
        train_rank(payload, rank, nproc)
        if dist.is_initialized():
            dist.barrier()  # rank 0 returns once the run is stored: nobody leaves before that
        code = 0
    except Preempted:
        code = PREEMPTED_EXIT_CODE
    finally:
        shutdown()  # runs before a failure's traceback propagates (torch's spawn wrapper reports it)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter finalisation (see the module docstring); everything is written


def launch(payload: Any, nproc: int, stored: Callable[[], bool] | None = None) -> None:
    """Train the payload's run on `nproc` local processes; raise if any of them failed.

    Raises `Preempted` when the ranks stopped on a signal (their checkpoint is written). A rank
    that dies after `stored()` says the run's result is on disk is reported on stderr, not raised:
    the run is complete (rank 0 wrote it after the last step's collectives)."""
    import torch.multiprocessing as tmp

    store = _rendezvous_store()  # lives until the ranks are joined
    ctx = tmp.start_processes(_rank_main, args=(payload, nproc, store.port), nprocs=nproc,
                              join=False, start_method="spawn")
    received: list[int] = []

    def forward(signum, frame):  # pass preemption on; the ranks checkpoint and exit
        received.append(signum)
        for p in ctx.processes:
            if p.is_alive():
                os.kill(p.pid, signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in DEFAULT_SIGNALS}
    try:
        while not ctx.join(timeout=1.0):
            pass
    except tmp.ProcessExitedException as e:
        if e.exit_code == PREEMPTED_EXIT_CODE:
            raise Preempted(received[0] if received else signal.SIGTERM, -1) from None
        if stored is not None and stored():
            print(f"scaling: {e} after the run was stored; the stored result stands", file=sys.stderr, flush=True)
            return
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["DistContext", "check_batch", "init_from_env", "launch", "shutdown"]
