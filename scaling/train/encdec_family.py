"""The `encdec` family: encoder-decoder size grids on source/target pair data.

Shapes set encoder and decoder depths (and widths) independently; every run records
`n_params_enc` and `n_params_dec` (non-embedding) beside the totals, its loss per eval set,
and greedy-decoding BLEU on each eval set at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import torch

from scaling.config import StudySpec
from scaling.data.pairs import PairEvalSet, PairSource, build_pair_source
from scaling.errors import SpecError
from scaling.model.encdec import EncDecConfig, EncoderDecoder, count_params_encdec, flops_per_token_encdec
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


def encdec_counts(run: RunConfig) -> dict[str, float]:
    source = pair_source(run.data)
    cfg = encdec_config(run, source)
    c = count_params_encdec(cfg)
    return {"n_params": c.total, "n_params_nonemb": c.nonemb, "n_params_enc": c.enc_nonemb,
            "n_params_dec": c.dec_nonemb,
            "flops_per_token": flops_per_token_encdec(cfg, source.max_src_len, source.max_tgt_len)}


def encdec_tokens_per_step(run: RunConfig) -> int:
    """Target positions per step (padding included): the unit the loss is averaged over."""
    return int(run.train["batch_size"]) * pair_source(run.data).max_tgt_len


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
        self.tokens_per_step = encdec_tokens_per_step(run)
        # [data] eval_tokens counts target positions; an eval set holds that many / max_tgt_len pairs
        n_pairs = max(1, int(run.data.get("eval_tokens", 65536)) // self.source.max_tgt_len)
        self.eval_sets: dict[str, PairEvalSet] = self.source.eval_sets(n_pairs)
        self.bayes = {name: ev.bayes_loss for name, ev in self.eval_sets.items()}
        self.loss_impl = run.train.get("loss_impl", "auto")
        self.bleu_pairs = int(run.extra.get("bleu_pairs", 256))

    def counts(self) -> dict[str, float]:
        return encdec_counts(self.run)

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.source.train_batch(step, self.batch_size, self.run.seed)

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
            col = "".join(ch if ch.isalnum() else "_" for ch in name)
            k = self.bleu_pairs
            subset = dataclasses.replace(ev, src=ev.src[:k], tgt_in=ev.tgt_in[:k], tgt_out=ev.tgt_out[:k])
            out[f"bleu_{col}"] = evaluate_bleu(self.model, subset, self.source)
        return out


def expand_encdec(spec: StudySpec) -> list[RunConfig]:
    table = spec.extra.get("encdec", {})
    unknown = set(table) - ENCDEC_KEYS
    if unknown:
        raise SpecError(f"{where(spec)}: [encdec] unknown key `{sorted(unknown)[0]}`; expected {', '.join(sorted(ENCDEC_KEYS))}")
    others = set(spec.extra) - {"encdec"}
    if others:
        raise SpecError(f"{where(spec)}: table [{sorted(others)[0]}] is not used by family 'encdec'")
    runs = expand_axes(spec, encdec_counts, extra=dict(table), tokens_per_step=encdec_tokens_per_step)
    for run in runs:
        try:
            encdec_counts(run)
        except SpecError as e:
            raise SpecError(f"{where(spec)}: [model] shape {run.model}: {e}") from None
    return runs


register_family(Family("encdec", expand_encdec, EncDecTask, encdec_counts, encdec_tokens_per_step))
