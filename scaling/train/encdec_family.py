"""The `encdec` family: encoder-decoder size grids on source/target pair data.

Shapes set encoder and decoder depths (and widths) independently; every run records
`n_params_enc` and `n_params_dec` (non-embedding) beside the totals, its loss per eval set,
and greedy-decoding BLEU on each eval set at the end. Its `tokens` are real target tokens and
its `flops` exact FLOPs of the real (unpadded) pairs: padding is neither data nor compute.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import numpy as np
import torch

from scaling import schema
from scaling.config import StudySpec
from scaling.data.pairs import PairEvalSet, PairSource, build_pair_source
from scaling.errors import SpecError, did_you_mean
from scaling.model.encdec import EncDecConfig, EncoderDecoder, count_params_encdec, real_lengths, train_flops_encdec
from scaling.quality import evaluate_bleu
from scaling.train.grid import Family, expand_axes, register_family, where
from scaling.train.run_config import RunConfig
from scaling.train.task import evaluate_sets

ENCDEC_KEYS = {"bleu_pairs"}


@functools.lru_cache(maxsize=8)
def _cached_pair_source(key: str) -> PairSource:
    d = json.loads(key)
    return build_pair_source(d["source"], d.get("options", {}), seed=d.get("seed", 0))


def pair_source(data: dict[str, Any]) -> PairSource:
    return _cached_pair_source(json.dumps(data, sort_keys=True))


def encdec_config(run: RunConfig, source: PairSource) -> EncDecConfig:
    return EncDecConfig(vocab_size=source.vocab_size, max_src_len=source.max_src_len,
                        max_tgt_len=source.max_tgt_len, pad_id=source.pad_id, **run.model)


LENGTH_SAMPLE = 4096
"""Training pairs (seed 0) whose real lengths give the planned tokens and FLOPs per step."""


@functools.lru_cache(maxsize=8)
def _sample_lengths(key: str) -> tuple[np.ndarray, np.ndarray]:
    """Real (unpadded) source and target lengths of a fixed sample of training pairs."""
    source = _cached_pair_source(key)
    src, _, tgt_out = source.pair_tensors(np.arange(LENGTH_SAMPLE, dtype=np.uint64), 0)
    s, t = real_lengths(src, tgt_out, source.pad_id)
    return s.numpy(), t.numpy()


def encdec_counts(run: RunConfig) -> dict[str, float]:
    """Parameter counts and the planned training FLOPs per real target token (padding excluded).

    A run's recorded `flops` is exact, summed over the pairs it trained on (`EncDecTask.consumed`);
    this per-token figure is the mean over a fixed sample of pairs, used to plan."""
    source = pair_source(run.data)
    cfg = encdec_config(run, source)
    c = count_params_encdec(cfg)
    s, t = _sample_lengths(json.dumps(run.data, sort_keys=True))
    return {schema.N_PARAMS: c.total, schema.N_PARAMS_NONEMB: c.nonemb, schema.N_PARAMS_ENC: c.enc_nonemb,
            schema.N_PARAMS_DEC: c.dec_nonemb, schema.FLOPS_PER_TOKEN: train_flops_encdec(cfg, s, t) / float(t.sum())}


def encdec_tokens_per_step(run: RunConfig) -> int:
    """Planned real target tokens per step (padding excluded): the unit the loss is averaged over."""
    _, t = _sample_lengths(json.dumps(run.data, sort_keys=True))
    return max(1, round(int(run.train["batch_size"]) * float(t.mean())))


class EncDecTask:
    """Conditional next-token prediction of targets given sources; BLEU at the end."""

    def __init__(self, run: RunConfig, device: torch.device):
        self.run = run
        self.device = device
        self.source = pair_source(run.data)
        self.config = encdec_config(run, self.source)
        torch.manual_seed(run.seed)
        self.model = EncoderDecoder(self.config).to(device)
        self.batch_size = int(run.train["batch_size"])
        self.tokens_per_step = encdec_tokens_per_step(run)  # planned; `consumed` counts exactly
        self._step_counts: dict[int, tuple[int, float]] = {}  # step -> (real target tokens, FLOPs)
        # [data] eval_tokens counts target positions; an eval set holds that many / max_tgt_len pairs
        n_pairs = max(1, int(run.data.get("eval_tokens", 65536)) // self.source.max_tgt_len)
        self.eval_sets: dict[str, PairEvalSet] = self.source.eval_sets(n_pairs)
        self.bayes = {name: ev.bayes_loss for name, ev in self.eval_sets.items()}
        self.loss_impl = run.train.get("loss_impl", "auto")
        self.bleu_pairs = int(run.extra.get("bleu_pairs", 256))

    def counts(self) -> dict[str, float]:
        return encdec_counts(self.run)

    def _count(self, step: int, src: torch.Tensor, tgt_out: torch.Tensor) -> None:
        s, t = real_lengths(src, tgt_out, self.config.pad_id)
        self._step_counts[step] = (int(t.sum()), train_flops_encdec(self.config, s, t))

    def consumed(self, steps: int) -> tuple[int, float]:
        """Real target tokens and exact training FLOPs of the first `steps` steps, padding excluded.

        Steps this process did not train (a resumed run's earlier steps) are recounted from their
        batches, which depend only on (step, seed)."""
        for step in range(steps):
            if step not in self._step_counts:
                src, _, tgt_out = self.source.train_batch(step, self.batch_size, self.run.seed)
                self._count(step, src, tgt_out)
        tokens = sum(self._step_counts[k][0] for k in range(steps))
        return tokens, float(sum(self._step_counts[k][1] for k in range(steps)))

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src, tgt_in, tgt_out = self.source.train_batch(step, self.batch_size, self.run.seed)
        self._count(step, src, tgt_out)
        return src, tgt_in, tgt_out

    def train_loss(self, step: int) -> torch.Tensor:
        src, tgt_in, tgt_out = self.train_batch(step)
        return self.model.loss(src.to(self.device), tgt_in.to(self.device), tgt_out.to(self.device), impl=self.loss_impl)

    def evaluate(self) -> dict[str, float]:
        sets = {name: (ev.src, ev.tgt_in, ev.tgt_out) for name, ev in self.eval_sets.items()}
        return evaluate_sets(self.model, sets, self.loss_impl, self.device)

    @torch.no_grad()
    def final_metrics(self) -> dict[str, float]:
        """BLEU of greedy decoding on (the first `bleu_pairs` pairs of) every eval set."""
        self.model.eval()
        out = {}
        for name, ev in self.eval_sets.items():
            k = self.bleu_pairs
            subset = dataclasses.replace(ev, src=ev.src[:k], tgt_in=ev.tgt_in[:k], tgt_out=ev.tgt_out[:k])
            out[schema.bleu_column(name)] = evaluate_bleu(self.model, subset, self.source)
        return out


def expand_encdec(spec: StudySpec) -> list[RunConfig]:
    table = spec.extra.get("encdec", {})
    unknown = set(table) - ENCDEC_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise SpecError(f"{where(spec)}: [encdec] unknown key `{first}`{did_you_mean(first, ENCDEC_KEYS)}; "
                        f"expected {', '.join(sorted(ENCDEC_KEYS))}")
    others = set(spec.extra) - {"encdec"}
    if others:
        raise SpecError(f"{where(spec)}: table [{sorted(others)[0]}] is not used by family 'encdec'")
    runs = expand_axes(spec, encdec_counts, extra=dict(table), tokens_per_step=encdec_tokens_per_step,
                       data_source=pair_source)
    for run in runs:
        try:
            encdec_counts(run)
        except SpecError as e:
            raise SpecError(f"{where(spec)}: [model] shape {run.model}: {e}") from None
    return runs


register_family(Family("encdec", expand_encdec, EncDecTask, encdec_counts, encdec_tokens_per_step))
