"""Train one run: AdamW, warm-up then cosine/WSD/constant, clipping, log-spaced evals, checkpoints.

A run resumes from its checkpoint (model, optimiser, step and the curve so far); batches are
a function of (step, seed), so a resumed run sees exactly the data it would have seen.
A NaN or inf loss stops the run with status `diverged`.
"""

from __future__ import annotations

import math
import os
import time
import typing
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling import schema
from scaling.config import TrainSection
from scaling.errors import SpecError
from scaling.store import Store, atomic_open
from scaling.train.run_config import RunConfig
from scaling.train.task import Task, consumed

SCHEDULES = typing.get_args(typing.get_type_hints(TrainSection)["schedule"])

ProgressFn = Callable[[str, int, int, float], None]
"""Called as (run_id, step, total_steps, last train loss)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_at(step: int, total: int, train: dict[str, Any]) -> float:
    """Learning rate before optimiser step `step` (0-based) of `total`."""
    peak = float(train["lr"])
    warmup_cfg = float(train.get("warmup", 0.0))
    warmup = int(round(warmup_cfg * total)) if warmup_cfg < 1 else int(warmup_cfg)
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    floor = peak * float(train.get("min_lr_ratio", 0.1))
    schedule = train.get("schedule", "cosine")
    if schedule not in SCHEDULES:
        raise SpecError(f"[train] `schedule`: unknown schedule {schedule!r};"
                        f" expected one of {', '.join(map(repr, SCHEDULES))}")
    if schedule == "constant":
        return peak
    if schedule == "wsd":
        decay = max(1, int(round(float(train.get("decay_fraction", 0.2)) * total)))
        start = total - decay
        if step < start:
            return peak
        return peak + (floor - peak) * (step - start + 1) / decay
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def eval_steps(total: int, n_points: int) -> list[int]:
    """Steps (1-based counts of optimiser steps done) at which to evaluate: log-spaced, plus the last."""
    points = np.unique(np.round(np.logspace(0, math.log10(total), max(2, n_points))).astype(int))
    return sorted({int(p) for p in points if 1 <= p <= total} | {total})


def make_optimizer(model: torch.nn.Module, train: dict[str, Any]) -> torch.optim.AdamW:
    # A model may scale the learning rate of some parameters (`lr_scales()`, e.g. a wide encoder);
    # the schedule's lr is multiplied by each group's `lr_scale` at every step.
    scaled = model.lr_scales() if hasattr(model, "lr_scales") else [(list(model.parameters()), 1.0)]
    groups = []
    for params, scale in scaled:
        decay = [p for p in params if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in params if p.requires_grad and p.dim() < 2]
        groups += [{"params": decay, "weight_decay": float(train.get("weight_decay", 0.1)), "lr_scale": scale},
                   {"params": no_decay, "weight_decay": 0.0, "lr_scale": scale}]
    return torch.optim.AdamW(groups, lr=float(train["lr"]), betas=(float(train.get("beta1", 0.9)),
                             float(train.get("beta2", 0.95))), foreach=True)


def train_run(run: RunConfig, task: Task, store: Store, progress: ProgressFn | None = None,
              stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) `run`, write its result row and curve to the store, return the row.

    `stop_after` ends the process's work after that many steps without writing a result, as a
    kill would (used by tests of resume).
    """
    run_id = run.run_id
    train = run.train
    total = int(train["steps"])
    device = next(task.model.parameters()).device
    model = task.model
    optimizer = make_optimizer(model, train)
    counts = task.counts()
    flops_per_token = float(counts["flops_per_token"])
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext())
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

    def record(at_step: int) -> dict[str, float]:
        with autocast:
            losses = task.evaluate()
        tokens, flops = consumed(task, at_step, flops_per_token)
        for name, loss in losses.items():
            curves.append({"run_id": run_id, "step": at_step, "tokens": tokens,
                           "flops": flops, "eval_set": name, "loss": loss})
        return losses

    def checkpoint() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                 "curves": curves, "wall_time": wall_before + time.perf_counter() - t0}
        with atomic_open(ckpt_path) as f:
            torch.save(state, f)

    if step == 0 and run.parent:
        record(0)  # the continued model's starting point
    evals = set(eval_steps(total, int(train.get("eval_points", 10))))
    every = int(train.get("checkpoint_every", 500))
    clip = float(train.get("grad_clip", 1.0))
    t0 = time.perf_counter()
    status, last_loss, steps_this_call = "done", math.nan, 0
    model.train()
    while step < total:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, train) * group.get("lr_scale", 1.0)
        with autocast:
            loss = task.train_loss(step)
        last_loss = float(loss.detach())
        if not math.isfinite(last_loss):
            status = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
        optimizer.step()
        step += 1
        steps_this_call += 1
        if step in evals:
            losses = record(step)
            if not all(math.isfinite(v) for v in losses.values()):
                status = "diverged"
                break
        if progress is not None:
            progress(run_id, step, total, last_loss)
        if step % every == 0 and step < total:
            checkpoint()
        if stop_after is not None and steps_this_call >= stop_after and step < total:
            checkpoint()
            return {"run_id": run_id, "status": "unfinished", "step": step}

    wall = wall_before + time.perf_counter() - t0
    final = _last_losses(curves)
    metrics = task.final_metrics() if status == "done" else {}
    if status == "done":
        with atomic_open(store.final_weights_path(run_id)) as f:
            torch.save(model.state_dict(), f)
    row = build_row(run, counts, task.bayes, final, metrics, status, step, task.tokens_per_step, wall, last_loss,
                    counted=consumed(task, step, flops_per_token))
    store.write_result(run_id, row, curves)
    ckpt_path.unlink(missing_ok=True)
    return row


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
