"""The optimiser of a run (AdamW, per-group learning-rate scales) and its learning-rate schedule:
warm-up, then cosine, WSD (warm-up, stable, linear decay) or constant."""

from __future__ import annotations

import math
import typing
from typing import Any

import torch

from scaling.config import TrainSection
from scaling.errors import DataError, SpecError
from scaling.store import Store
from scaling.train.run_config import RunConfig

SCHEDULES = typing.get_args(typing.get_type_hints(TrainSection)["schedule"])


def lr_at(step: int, total: int, train: dict[str, Any]) -> float:
    """Learning rate before optimiser step `step` (0-based) of `total`."""
    peak = float(train["lr"])
    warmup_cfg = float(train.get("warmup", 0.0))
    warmup = int(round(warmup_cfg * total)) if warmup_cfg < 1 else int(warmup_cfg)
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    floor = _floor_lr(train)
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


def _floor_lr(train: dict[str, Any]) -> float:
    """Where a decaying schedule ends: lr x min_lr_ratio."""
    return float(train["lr"]) * float(train.get("min_lr_ratio", 0.1))


def final_lr(train: dict[str, Any]) -> float:
    """The learning rate a run's schedule ends at: the floor of a decaying schedule, the peak of a
    constant one. A continuation that holds it does not re-warm."""
    return float(train["lr"]) if train.get("schedule", "cosine") == "constant" else _floor_lr(train)


def load_parent_optimizer(optimizer: torch.optim.Optimizer, store: Store, run: RunConfig) -> None:
    """Resume the parent run's final optimiser state (Adam's moments), so the child goes on with the
    parent's training rather than restarting the optimiser; the child's own hyperparameters stay."""
    path = store.final_optimizer_path(run.parent)
    if not path.is_file():
        raise DataError(f"run {run.run_id} ({run.label}) continues its parent's optimiser state ([train] "
                        f"`parent_optimizer`), but parent run {run.parent} has no {path.name}: it finished "
                        f"before optimiser states were kept. Delete {store.run_dir(run.parent)} to retrain it, "
                        f"or use a continuation schedule that restarts the optimiser")
    own = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    device = next(iter(optimizer.param_groups[0]["params"])).device
    optimizer.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    for group, settings in zip(optimizer.param_groups, own):
        group.update(settings)


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
