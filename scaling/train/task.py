"""What the training loop trains: a model, its per-step loss and its evaluations.

The loop knows nothing about families; a family builds a `Task` from a `RunConfig`.
`LMTask` is the decoder-only language model on an `LMSource` (also used by continual
pre-training, whose source is a mixture).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Protocol

import torch
from torch import nn

from scaling import schema
from scaling.data import EvalSet, LMSource, build_source
from scaling.model import DecoderConfig, DecoderLM, count_params, flops_per_token
from scaling.train.run_config import RunConfig

EVAL_BATCH = 64


class Task(Protocol):
    model: nn.Module
    """Maps a batch's inputs (all its tensors but the last) to final hidden states (..., D) and
    has `head` (V, D): the loop applies the head through `linear_cross_entropy`."""
    loss_impl: str
    """`impl` of `linear_cross_entropy` ("auto" picks Triton on CUDA)."""
    tokens_per_step: int
    bayes: dict[str, float | None]
    """Exact Bayes loss per eval set, where the source knows it."""

    def counts(self) -> dict[str, float]:
        """n_params, n_params_nonemb, flops_per_token and any family-specific counts."""
        ...

    def train_batch(self, step: int) -> tuple[torch.Tensor, ...]:
        """The global training batch of `step` as CPU tensors with rows aligned, targets last
        (-100 ignored); it depends only on (step, seed)."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Mean per-token loss on every eval set."""
        ...

    def final_metrics(self) -> dict[str, float]:
        """Extra metrics measured once at the end (e.g. BLEU); may be empty."""
        ...

    # Optional: `consumed(steps) -> (tokens, flops)`, the exact training tokens and FLOPs of the
    # first `steps` steps, for tasks whose batches vary in real size (padding); see `consumed`.


def consumed(task: Task, steps: int, flops_per_token: float) -> tuple[int, float]:
    """Training tokens and FLOPs of a task's first `steps` steps: the task's own exact count where
    it has one (e.g. encoder-decoder pairs without their padding), else steps x tokens_per_step."""
    count = getattr(task, "consumed", None)
    if count is not None:
        return count(steps)
    tokens = steps * task.tokens_per_step
    return tokens, tokens * flops_per_token


@functools.lru_cache(maxsize=8)
def _cached_source(key: str) -> LMSource:
    d = json.loads(key)
    return build_source(d["source"], d.get("options", {}), tokenizer=d.get("tokenizer", "byte"), seed=d.get("seed", 0))


def lm_source(data: dict[str, Any]) -> LMSource:
    """Build (once per process) the source a run's data section describes."""
    return _cached_source(json.dumps(data, sort_keys=True))


def decoder_config(run: RunConfig, vocab_size: int) -> DecoderConfig:
    return DecoderConfig(vocab_size=vocab_size, max_seq_len=run.train["seq_len"], **run.model)


@torch.no_grad()
def evaluate_sets(model: nn.Module, sets: dict[str, tuple[torch.Tensor, ...]], loss_impl: str,
                  device: torch.device) -> dict[str, float]:
    """Token-weighted mean of `model.loss(*inputs, targets)` over each set, in batches.

    Each set is a tuple of row-aligned tensors whose last one holds the targets (-100 ignored).
    """
    was_training = model.training
    model.eval()
    out = {}
    for name, tensors in sets.items():
        total, count = 0.0, 0
        for i in range(0, tensors[0].shape[0], EVAL_BATCH):
            batch = [t[i:i + EVAL_BATCH].to(device) for t in tensors]
            n = int((batch[-1] != -100).sum())
            if n:
                total += float(model.loss(*batch, impl=loss_impl)) * n
                count += n
        out[name] = total / count if count else math.nan
    model.train(was_training)
    return out


class LMTask:
    """Next-token prediction with a decoder-only transformer."""

    def __init__(self, run: RunConfig, device: torch.device, source: LMSource | None = None):
        self.run = run
        self.device = device
        self.source = source if source is not None else lm_source(run.data)
        self.batch_size = int(run.train["batch_size"])
        self.seq_len = int(run.train["seq_len"])
        self.config = decoder_config(run, self.source.vocab_size)
        torch.manual_seed(run.seed)
        self.model = DecoderLM(self.config).to(device)
        self.tokens_per_step = self.batch_size * self.seq_len
        self.eval_sets: dict[str, EvalSet] = self.source.eval_sets(self.seq_len, int(run.data.get("eval_tokens", 65536)))
        self.bayes = {name: ev.bayes_loss for name, ev in self.eval_sets.items()}
        self.loss_impl = run.train.get("loss_impl", "auto")

    def counts(self) -> dict[str, float]:
        c = count_params(self.config)
        return {schema.N_PARAMS: c.total, schema.N_PARAMS_NONEMB: c.nonemb,
                schema.FLOPS_PER_TOKEN: flops_per_token(self.config, self.seq_len)}

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.source.train_batch(step, self.batch_size, self.seq_len, self.run.seed)

    def train_loss(self, step: int) -> torch.Tensor:
        """Mean loss on the batch of `step` (the loop itself goes through `train_batch`)."""
        x, y = self.train_batch(step)
        return self.model.loss(x.to(self.device), y.to(self.device), impl=self.loss_impl)

    def evaluate(self) -> dict[str, float]:
        sets = {name: (ev.x, ev.y) for name, ev in self.eval_sets.items()}
        return evaluate_sets(self.model, sets, self.loss_impl, self.device)

    def final_metrics(self) -> dict[str, float]:
        return {}
