"""The built-in families: how each turns a spec into runs and a run into a task.

`decoder` lives here; `encdec` and `cpt` live in their own modules and register themselves
when imported below.
"""

from __future__ import annotations

import importlib

import torch

from scaling import schema
from scaling.config import StudySpec
from scaling.errors import SpecError
from scaling.model import count_params, flops_per_token
from scaling.train.grid import Family, expand_axes, register_family, where
from scaling.train.run_config import RunConfig
from scaling.train.task import LMTask, decoder_config, lm_source


def decoder_counts(run: RunConfig) -> dict[str, float]:
    cfg = decoder_config(run, lm_source(run.data).vocab_size)
    c = count_params(cfg)
    return {schema.N_PARAMS: c.total, schema.N_PARAMS_NONEMB: c.nonemb,
            schema.FLOPS_PER_TOKEN: flops_per_token(cfg, int(run.train["seq_len"]))}


def expand_decoder(spec: StudySpec) -> list[RunConfig]:
    if spec.extra:
        raise SpecError(f"{where(spec)}: table [{next(iter(spec.extra))}] is not used by family 'decoder'")
    runs = expand_axes(spec, decoder_counts, data_source=lm_source)
    for run in runs:  # build every config once so impossible shapes fail at plan time
        try:
            decoder_counts(run)
        except SpecError as e:
            raise SpecError(f"{where(spec)}: [model] shape {run.model}: {e}") from None
    return runs


def build_decoder_task(run: RunConfig, device: torch.device) -> LMTask:
    return LMTask(run, device)


register_family(Family("decoder", expand_decoder, build_decoder_task, decoder_counts))

FAMILY_MODULES = ("scaling.train.encdec_family", "scaling.train.cpt", "scaling.train.select")


def load_family_modules(modules: tuple[str, ...] = FAMILY_MODULES) -> None:
    """Import the modules that register the other families. A module that fails to import is an
    error naming it, never a family silently missing from the registry."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"family module {module} failed to import ({type(e).__name__}: {e}); "
                              f"its families are unavailable until that is fixed") from e


load_family_modules()
