"""Train one run: AdamW, warm-up then cosine/WSD/constant, clipping, log-spaced evals, checkpoints.

A run resumes from its checkpoint (model, optimiser, step and the curve so far); batches are
a function of (step, seed), so a resumed run sees exactly the data it would have seen.
A NaN or inf loss stops the run with status `diverged` at the step that produced it.

Each step: the batch (prepared ahead in pinned memory on CUDA), split into micro-batches of
`[train] micro_batch_size` rows whose gradients accumulate, under bf16 autocast on CUDA
(the head and `linear_cross_entropy` get bf16 inputs), through `torch.compile` with
`[train] compile = true`, on `[train] nproc` DDP processes (see ddp.py). The loss is read
on the host only every LOG_EVERY steps and at evals and checkpoints.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from scaling import schema
from scaling.errors import DataError
from scaling.kernels import linear_cross_entropy
from scaling.store import Store, atomic_open
from scaling.train.optim import load_parent_optimizer, lr_at, make_optimizer
from scaling.train.placement import enable_fast_matmul
from scaling.train.run_config import RunConfig
from scaling.train.signals import STOP_SIGNALS, PreemptFlag, Preempted
from scaling.train.task import Task, consumed

if TYPE_CHECKING:
    from scaling.train.ddp import DistContext

IGNORE_INDEX = -100
LOG_EVERY = 10
"""Steps between reads of the training loss on the host (also at evals, checkpoints, the end):
the only device syncs of the loop, so the GPU never waits for Python in between."""

ProgressFn = Callable[[str, int, int, float], None]
"""Called as (run_id, step, total_steps, last train loss)."""


def eval_steps(total: int, n_points: int) -> list[int]:
    """Steps (1-based counts of optimiser steps done) at which to evaluate: log-spaced, plus the last."""
    points = np.unique(np.round(np.logspace(0, math.log10(total), max(2, n_points))).astype(int))
    return sorted({int(p) for p in points if 1 <= p <= total} | {total})


def train_run(run: RunConfig, task: Task, store: Store, progress: ProgressFn | None = None,
              stop_after: int | None = None, keep_final: bool = False, dist: DistContext | None = None,
              signals: tuple[int, ...] = STOP_SIGNALS, should_stop: Callable[[], bool] | None = None
              ) -> dict[str, Any]:
    """Train (or resume) `run`, write its result row and curve to the store, return the row.

    `stop_after` ends the process's work after that many steps without writing a result, as a
    kill would (used by tests of resume). `final.pt` is written only with `keep_final` (the
    executor sets it for runs that others continue from) or `[train] keep_final = true`.
    `dist` trains this process's share of each batch under DDP (rank 0 writes the store).
    On one of `signals` the loop checkpoints after the step in flight and raises `Preempted`;
    `should_stop` (polled after each step, e.g. a Slurm job's own signal flag, with `signals`
    empty) makes it checkpoint at once and return `unfinished` instead.
    """
    run_id = run.run_id
    train = run.train
    total = int(train["steps"])
    model = task.model
    device = next(model.parameters()).device
    enable_fast_matmul(device)
    main = dist is None or dist.is_main
    world = 1 if dist is None else dist.world_size
    optimizer = make_optimizer(model, train)
    counts = task.counts()
    flops_per_token = float(counts["flops_per_token"])
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext())
    if main:
        store.write_config(run_id, run.to_dict())

    step, curves, wall_before = 0, [], 0.0
    ckpt_path = store.checkpoint_path(run_id)
    state = load_checkpoint(ckpt_path, device) if ckpt_path.is_file() else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, wall_before = int(state["step"]), float(state["wall_time"])
        curves = [{**c, schema.RUN_ID: run_id} for c in state["curves"]]  # the id may have been upgraded since
    elif run.parent:
        parent = torch.load(store.final_weights_path(run.parent), map_location=device, weights_only=True)
        model.load_state_dict(parent)
        if train.get("parent_optimizer"):
            load_parent_optimizer(optimizer, store, run)
    forward, ddp_model = wrap_model(model, device, dist, bool(train.get("compile", False)))
    batches = Batches(task, device, step, total, dist)
    micro = int(train.get("micro_batch_size") or 0)

    def record(at_step: int) -> dict[str, float]:
        with autocast:
            losses = task.evaluate()
        tokens, flops = consumed(task, at_step, flops_per_token)
        for name, loss in losses.items():
            curves.append({"run_id": run_id, "step": at_step, "tokens": tokens,
                           "flops": flops, "eval_set": name, "loss": loss})
        return losses

    def checkpoint() -> None:
        if not main:
            return
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                 "curves": curves, "wall_time": wall_before + time.perf_counter() - t0}
        with atomic_open(ckpt_path) as f:
            torch.save(state, f)

    def train_step(at: int) -> torch.Tensor:
        """One optimiser step on the batch of step `at`; returns this rank's share of its mean loss."""
        inputs, n_valid = batches.get(at)
        parts = split_rows(inputs, micro)
        scale = world / max(n_valid, 1)  # sum over every part and rank, / all targets = the batch mean
        total_loss = torch.zeros((), device=device)
        for i, part in enumerate(parts):
            no_sync = ddp_model.no_sync() if ddp_model is not None and i < len(parts) - 1 else nullcontext()
            with no_sync, autocast:
                hidden = forward(*part[:-1])
                loss = linear_cross_entropy(hidden.flatten(0, -2), model.head.weight, part[-1].flatten(),
                                            reduction="sum", impl=task.loss_impl, check_targets=False) * scale
            loss.backward()
            total_loss += loss.detach()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=device.type != "meta")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total_loss / world

    if step == 0 and run.parent:
        record(0)  # the continued model's starting point
    evals = set(eval_steps(total, int(train.get("eval_points", 10))))
    every = int(train.get("checkpoint_every", 500))
    clip = float(train.get("grad_clip", 1.0))
    t0 = time.perf_counter()
    status, last_loss, steps_this_call = "done", math.nan, 0
    pending: list[tuple[int, torch.Tensor]] = []  # (step index, loss) not yet read on the host

    def flush() -> int | None:
        """Read the pending losses (the one host sync); the index of the first non-finite one."""
        nonlocal last_loss
        if not pending:
            return None
        values = torch.stack([v for _, v in pending])
        if dist is not None:
            dist.sum_(values)
        bad = None
        for (at, _), v in zip(pending, values.tolist()):
            last_loss = v
            if not math.isfinite(v):
                bad = at
                break
        pending.clear()
        return bad

    model.train()
    try:
        with PreemptFlag(signals) as flag:
            while step < total:
                for group in optimizer.param_groups:  # lr_scale: per-width encoder lr (encdec enc_lr_width)
                    group["lr"] = lr_at(step, total, train) * group.get("lr_scale", 1.0)
                pending.append((step, train_step(step)))
                step += 1
                steps_this_call += 1
                stopping = step < total and ((stop_after is not None and steps_this_call >= stop_after)
                                             or (should_stop is not None and bool(should_stop())))
                preempt = flag.requested if dist is None else dist.agree(flag.requested or 0) or None
                if step in evals or step % every == 0 or step % LOG_EVERY == 0 or step == total or stopping or preempt:
                    bad = flush()
                    if bad is not None:
                        status, step = "diverged", bad
                        break
                    if progress is not None:
                        progress(run_id, step, total, last_loss)
                if step in evals:
                    losses = record(step)
                    if not all(math.isfinite(v) for v in losses.values()):
                        status = "diverged"
                        break
                if preempt:
                    checkpoint()
                    if dist is not None:
                        dist.barrier()  # no rank leaves before rank 0's checkpoint is on disk
                    raise Preempted(preempt, step, run_id)
                if step % every == 0 and step < total:
                    checkpoint()
                if stopping:
                    checkpoint()
                    return {"run_id": run_id, "status": "unfinished", "step": step}
    except Exception as e:  # the executor records a failure with the steps really run
        e.steps_done = step  # type: ignore[attr-defined]
        raise

    wall = wall_before + time.perf_counter() - t0
    final = _last_losses(curves)
    if not main:
        return {"run_id": run_id, "status": status, "step": step}
    with autocast:
        metrics = task.final_metrics() if status == "done" else {}
    if status == "done" and (keep_final or train.get("keep_final", False)):
        with atomic_open(store.final_weights_path(run_id)) as f:
            torch.save(model.state_dict(), f)
        with atomic_open(store.final_optimizer_path(run_id)) as f:
            torch.save(optimizer.state_dict(), f)
    row = build_row(run, counts, task.bayes, final, metrics, status, step, task.tokens_per_step, wall, last_loss,
                    counted=consumed(task, step, flops_per_token))
    store.write_result(run_id, row, curves)
    ckpt_path.unlink(missing_ok=True)
    return row


def wrap_model(model: torch.nn.Module, device: torch.device, dist: DistContext | None,
               compile: bool) -> tuple[Callable[..., torch.Tensor], Any]:
    """What the training step calls for hidden states: the model, DDP around it, compiled on request.

    Returns (forward, the DDP module or None). The head and the loss kernel stay outside both:
    the kernel is its own autograd function, and DDP still reduces the head's gradient."""
    forward: Any = model
    ddp_model = None
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        forward = ddp_model = DistributedDataParallel(model, device_ids=ids)
    if compile:
        forward = torch.compile(forward)
    return forward, ddp_model


def split_rows(tensors: tuple[torch.Tensor, ...], micro: int) -> list[tuple[torch.Tensor, ...]]:
    """Row-aligned tensors in micro-batches of `micro` rows (all of them when micro is 0)."""
    rows = tensors[0].shape[0]
    if micro <= 0 or micro >= rows:
        return [tensors]
    return [tuple(t[i:i + micro] for t in tensors) for i in range(0, rows, micro)]


class Batches:
    """Training batches for steps start..total-1: this rank's rows, on the model's device.

    The global batch of a step comes from `task.train_batch(step)` (CPU tensors, targets
    last); its target count and range are checked on the host, so the device never syncs for
    them. On CUDA the next step's batch is prepared by a background thread in pinned memory
    while the current step runs, and copied without blocking.
    """

    def __init__(self, task: Task, device: torch.device, start: int, total: int, dist: DistContext | None):
        self.task, self.device, self.total = task, device, total
        self.rank, self.world = (0, 1) if dist is None else (dist.rank, dist.world_size)
        self.vocab = int(task.model.head.weight.shape[0])
        self.pin = device.type == "cuda"
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="batches") if self.pin else None
        self.ahead: dict[int, Future] = {}
        if self.pool is not None and start < total:
            self.ahead[start] = self.pool.submit(self._prepare, start)

    def _prepare(self, step: int) -> tuple[tuple[torch.Tensor, ...], int]:
        tensors = tuple(self.task.train_batch(step))
        targets = tensors[-1]
        kept = targets != IGNORE_INDEX
        if bool(((targets < 0) | (targets >= self.vocab))[kept].any()):
            raise DataError(f"training batch of step {step} has targets outside [0, {self.vocab})")
        rows = tensors[0].shape[0]
        share = rows // self.world
        if self.world > 1:
            tensors = tuple(t[self.rank * share:(self.rank + 1) * share] for t in tensors)
        if self.pin:
            tensors = tuple(t.pin_memory() for t in tensors)
        return tensors, int(kept.sum())

    def get(self, step: int) -> tuple[tuple[torch.Tensor, ...], int]:
        if self.pool is None:
            tensors, n = self._prepare(step)
        else:
            future = self.ahead.pop(step, None) or self.pool.submit(self._prepare, step)
            if step + 1 < self.total:
                self.ahead[step + 1] = self.pool.submit(self._prepare, step + 1)
            tensors, n = future.result()
        return tuple(t.to(self.device, non_blocking=True) for t in tensors), n

    def __del__(self):
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
CHECKPOINT_KEYS = ("model", "optimizer", "step", "curves", "wall_time")


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """A run's checkpoint, or None (with a warning) if it cannot be read: it is moved aside, not deleted.

    The run then restarts from step 0 (or its parent's weights); the bad file stays beside it
    as checkpoint.pt.corrupt-<UTC time> for inspection.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        missing = [k for k in CHECKPOINT_KEYS if k not in state]
        if missing:
            raise KeyError(f"missing {', '.join(missing)}")
    except Exception as e:  # truncated, corrupt or foreign file: any failure to read means the same
        stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.corrupt-{stamp}.{n}"), n + 1
        os.replace(path, aside)
        warnings.warn(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); moved aside to {aside.name};"
                      " the run restarts from step 0", RuntimeWarning, stacklevel=2)
        return None
    return state


def _last_losses(curves: list[dict[str, Any]]) -> dict[str, float]:
    last: dict[str, tuple[int, float]] = {}
    for c in curves:
        if c["eval_set"] not in last or c["step"] >= last[c["eval_set"]][0]:
            last[c["eval_set"]] = (c["step"], c["loss"])
    return {k: v[1] for k, v in last.items()}


def column_name(eval_set: str) -> str:
    """Eval set name as a column suffix: 'domain/valid' -> 'domain_valid'."""
    return schema.eval_column(eval_set)


def build_row(run: RunConfig, counts: dict[str, float], bayes: dict[str, float | None],
              final: dict[str, float], metrics: dict[str, float], status: str, steps: int,
              tokens_per_step: int, wall: float, last_train_loss: float,
              counted: tuple[int, float] | None = None) -> dict[str, Any]:
    """One runs.parquet row. `loss` and `bayes_loss` refer to the first eval set.

    `flops` is the exact count of the model as built (`counted` = (tokens, flops) where the task
    counts them itself, else steps x tokens_per_step); `c_6nd` is 6 N D with the N the laws use
    (non-embedding), so both conventions sit side by side (scaling.schema).
    """
    tokens, flops = counted if counted is not None else (steps * tokens_per_step, None)
    if flops is None:
        flops = tokens * counts[schema.FLOPS_PER_TOKEN]
    row: dict[str, Any] = run.flat()
    row.update({k: int(v) if float(v).is_integer() and k.startswith(schema.N_PARAMS) else float(v)
                for k, v in counts.items()})
    row.update({schema.STEPS: steps, schema.TOKENS: tokens, schema.FLOPS: flops,
                schema.C_6ND: schema.c_6nd(counts.get(schema.N_PARAMS_NONEMB, math.nan), tokens),
                schema.STATUS: status, schema.WALL_TIME: wall,
                schema.TOKENS_PER_S: tokens / wall if wall > 0 else math.nan, schema.TRAIN_LOSS: last_train_loss})
    names = list(bayes)
    for name in names:
        row[schema.loss_column(name)] = final.get(name, math.nan)
        b = bayes[name]
        row[schema.bayes_column(name)] = math.nan if b is None else float(b)
    if names:
        row[schema.LOSS] = final.get(names[0], math.nan)
        row[schema.BAYES_LOSS] = row[schema.bayes_column(names[0])]
    row.update({k: float(v) for k, v in metrics.items()})
    return row
