"""The built-in families: how each turns a spec into runs and a run into a task.

`decoder` lives here; `encdec` and `cpt` live in their own modules and register themselves
when imported below.
"""

from __future__ import annotations

import torch

from scaling.config import StudySpec
from scaling.errors import SpecError
from scaling.model import count_params, flops_per_token
from scaling.train.grid import Family, expand_axes, register_family, where
from scaling.train.run_config import RunConfig
from scaling.train.task import LMTask, decoder_config, lm_source


def decoder_counts(run: RunConfig) -> dict[str, float]:
    cfg = decoder_config(run, lm_source(run.data).vocab_size)
    c = count_params(cfg)
    return {"n_params": c.total, "n_params_nonemb": c.nonemb,
            "flops_per_token": flops_per_token(cfg, int(run.train["seq_len"]))}


def expand_decoder(spec: StudySpec) -> list[RunConfig]:
    if spec.extra:
        raise SpecError(f"{where(spec)}: table [{next(iter(spec.extra))}] is not used by family 'decoder'")
    runs = expand_axes(spec, decoder_counts)
    for run in runs:  # build every config once so impossible shapes fail at plan time
        try:
            decoder_counts(run)
        except SpecError as e:
            raise SpecError(f"{where(spec)}: [model] shape {run.model}: {e}") from None
    return runs


def build_decoder_task(run: RunConfig, device: torch.device) -> LMTask:
    return LMTask(run, device)


register_family(Family("decoder", expand_decoder, build_decoder_task, decoder_counts))

for _module in ("scaling.train.encdec_family", "scaling.train.cpt"):
    try:
        __import__(_module)
    except ModuleNotFoundError as e:
        if e.name != _module:
            raise
