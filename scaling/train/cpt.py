"""The `cpt` family: continual pre-training grids over model size N, CPT tokens D and domain share r.

Per model shape, one base run trains on the general source (budget from [train]); every
CPT run of that shape continues from the base run's final weights (`parent`) on a mixture
with domain share r for D tokens. Every CPT run evaluates on general and domain validation
data and records the base model's losses at its step 0.

One domain (`domain`) or several (`domains`, one CPT study over all of them). Base runs do
not depend on the domain: with `domains` they train on the general source alone and are
shared by every domain's runs (with the single `domain` the base run trains on the mixture
at share 0, the general stream exactly, as it always has: those run ids are unchanged).
Each CPT run of a `domains` study records its domain's name (`extra.domain`,
`schema.CPT_DOMAIN`); every CPT run records its schedule (`extra.rewarm`, `schema.CPT_SCHEDULE`).

The [cpt] table:

    domain         = {kind = "stdlib_code", options = {...}}   # one domain, or:
    domains        = {code = {kind = "stdlib_code"}, tests = {kind = "stdlib_tests"}}
                     # or [[cpt.domains]] tables with a `name`: several domains, names unique
    general        = {kind = ..., options = ...}   # default: [data] source and options
    domain_shares  = [0.0, 0.25, 0.5, 0.75, 1.0]   # r axis, each in [0, 1]
    tokens         = [2e5, 8e5]                    # D axis: CPT tokens per run
    lr             = 3e-3                          # max LR of the continuation (default [train] lr)
    schedule       = "rewarm"                      # "rewarm" (warm-up to `lr`, cosine decay), "constant"
                                                   # (`lr` held), "continue" (the base run's final LR and
                                                   # optimiser state, no warm-up: no re-warm), or a list of
                                                   # them: the schedule as an axis
    warmup         = 0.05                          # fraction of the run if < 1, else steps
    min_lr_ratio   = 0.1                           # cosine floor (default [train] min_lr_ratio)
    threshold      = 0.03                          # report: general loss may rise this much over the base
    target_N, target_D                             # report: the (N, D) to recommend a share for

CPT runs draw their data with seed base seed + CPT_SEED_OFFSET, so the general tokens they
see are fresh rather than a replay of the base run's first batches.
"""

from __future__ import annotations

import copy
import math
import re
from fractions import Fraction
from typing import Any

import torch

from scaling import schema
from scaling.config import StudySpec, plain
from scaling.errors import SpecError
from scaling.train.families import decoder_counts
from scaling.train.grid import Family, family_table, model_shapes, register_family, resolve_steps, shape_label, where
from scaling.train.optim import final_lr
from scaling.train.run_config import RunConfig
from scaling.train.task import LMTask, lm_source

CPT_SEED_OFFSET = 1000
SCHEDULES = {"rewarm": "cosine", "constant": "constant", "continue": "constant"}
"""Continuation schedule -> [train] schedule. `continue` holds the base run's final learning rate
(`optim.final_lr`) with no warm-up and resumes the base's optimiser state ([train]
`parent_optimizer`), so at r = 0 a continuation is more of the base's own training, with no
re-warm bump, no fresh-Adam bump and no second decay: the case the D-CPT law (no D term at r = 0)
describes."""
KEYS = {"domain", "domains", "general", "domain_shares", "tokens", "lr", "schedule", "warmup", "min_lr_ratio",
        "threshold", "target_N", "target_D"}


def _number(table: dict[str, Any], key: str, src: str, default: float | None = None, low: float | None = None,
            high: float | None = None, strict_low: bool = False) -> float | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{src}: [cpt] `{key}` must be a number, got {value!r}")
    if low is not None and (value < low or (strict_low and value == low)):
        raise SpecError(f"{src}: [cpt] `{key}` must be {'>' if strict_low else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise SpecError(f"{src}: [cpt] `{key}` must be <= {high}, got {value!r}")
    return float(value)


def _source(table: dict[str, Any], key: str, src: str) -> dict[str, Any]:
    spec = table[key]
    if not isinstance(spec, dict) or "kind" not in spec or set(spec) - {"kind", "options"}:
        raise SpecError(f"{src}: [cpt] `{key}` must be a table {{kind = \"...\", options = {{...}}}}, got {spec!r}")
    if not isinstance(spec["kind"], str) or spec["kind"] == "mixture":
        raise SpecError(f"{src}: [cpt] `{key}` kind must name a (non-mixture) data source, got {spec['kind']!r}")
    from scaling.data.registry import source_kinds

    if spec["kind"] not in source_kinds():
        raise SpecError(f"{src}: [cpt] `{key}` kind: unknown data source {spec['kind']!r}; expected one of "
                        f"{', '.join(k for k in source_kinds() if k != 'mixture')}")
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"{src}: [cpt] `{key}` options must be a table, got {options!r}")
    return {"kind": spec["kind"], "options": dict(options)}


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _domains(table: dict[str, Any], src: str) -> dict[str, dict[str, Any]]:
    """`domains` as {name: source}, in the spec's order: a table of tables or a list of tables
    with a `name` (`[[cpt.domains]]`); names are unique and no two domains are the same source."""
    raw = table["domains"]
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(d, dict) for d in raw):
        items = []
        for i, d in enumerate(raw):
            if "name" not in d:
                raise SpecError(f"{src}: [cpt] `domains[{i}]` has no `name`; each [[cpt.domains]] needs one")
            items.append((d["name"], {k: v for k, v in d.items() if k != "name"}))
    else:
        raise SpecError(f"{src}: [cpt] `domains` must be a table of domains {{name = {{kind = ...}}, ...}} or a "
                        f"list of tables with a `name`, got {raw!r}")
    if not items:
        raise SpecError(f"{src}: [cpt] `domains` is empty; name at least one domain")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in items:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SpecError(f"{src}: [cpt] `domains` name {name!r} must be letters, digits, '_', '.' or '-'")
        if name in out:
            raise SpecError(f"{src}: [cpt] `domains` names domain {name!r} twice; domain names must be unique")
        out[name] = _source({f"domains.{name}": spec}, f"domains.{name}", src)
        for other, seen in out.items():
            if other != name and seen == out[name]:
                raise SpecError(f"{src}: [cpt] `domains.{other}` and `domains.{name}` are the same source; "
                                f"their runs would be identical")
    return out


def _schedules(table: dict[str, Any], src: str) -> list[str]:
    raw = table.get("schedule", "rewarm")
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise SpecError(f"{src}: [cpt] `schedule` must name at least one schedule")
    for v in values:
        if v not in SCHEDULES:
            raise SpecError(f"{src}: [cpt] `schedule` must be one of {', '.join(map(repr, SCHEDULES))} (or a "
                            f"list of them), got {v!r}")
    if len(set(values)) != len(values):
        raise SpecError(f"{src}: [cpt] `schedule` has repeated values: {raw!r}")
    return list(values)


def cpt_options(spec: StudySpec) -> dict[str, Any]:
    """The [cpt] table validated, with defaults filled in; errors name `[cpt] key`."""
    src = where(spec)
    table = family_table(spec, "cpt", KEYS, "a [cpt] table (at least `domain`, `domain_shares`, `tokens`)")
    if "domain" in table and "domains" in table:
        raise SpecError(f"{src}: [cpt] has both `domain` and `domains`; use `domains` for several domains")
    for key in ("domain", "domain_shares", "tokens"):
        if key not in table and not (key == "domain" and "domains" in table):
            raise SpecError(f"{src}: [cpt] missing required key `{key}`" + (" (or `domains`)" if key == "domain" else ""))
    opts: dict[str, Any] = {}
    if "domains" in table:
        opts["domains"], opts["multi"] = _domains(table, src), True
    else:
        opts["domains"], opts["multi"] = {None: _source(table, "domain", src)}, False
    opts["domain"] = next(iter(opts["domains"].values()))  # the first (or only) domain
    if "general" in table:
        opts["general"] = _source(table, "general", src)
    else:
        if spec.data.source == "mixture":
            raise SpecError(f"{src}: [cpt] `general` is missing and [data] source is a mixture; name the general source")
        opts["general"] = {"kind": spec.data.source, "options": dict(spec.data.options)}
    for key, low, high in (("domain_shares", 0.0, 1.0), ("tokens", 0.0, None)):
        values = table[key]
        if not isinstance(values, list) or not values:
            raise SpecError(f"{src}: [cpt] `{key}` must be a non-empty list of numbers, got {values!r}")
        checked = [_number({key: v}, key, src, low=low, high=high, strict_low=key == "tokens") for v in values]
        if len(set(checked)) != len(checked):
            raise SpecError(f"{src}: [cpt] `{key}` has repeated values: {values!r}")
        opts[key] = sorted(checked)
    opts["schedules"] = _schedules(table, src)
    opts["schedule"] = opts["schedules"][0]  # the primary schedule: the report fits its laws on it
    opts["lr"] = _number(table, "lr", src, spec.train.lr, 0.0, strict_low=True)
    opts["warmup"] = _number(table, "warmup", src, spec.train.warmup, 0.0)
    opts["min_lr_ratio"] = _number(table, "min_lr_ratio", src, spec.train.min_lr_ratio, 0.0, 1.0)
    opts["threshold"] = _number(table, "threshold", src, 0.03, 0.0)
    opts["target_N"] = _number(table, "target_N", src, None, 0.0, strict_low=True)
    opts["target_D"] = _number(table, "target_D", src, None, 0.0, strict_low=True)
    return opts


def _seeds(spec: StudySpec) -> list[int]:
    unknown = sorted(set(spec.grid) - {"seed"})
    if unknown:
        raise SpecError(f"{where(spec)}: [grid] `{unknown[0]}` is not an axis of family 'cpt'; its axes are "
                        f"[model] shapes, [cpt] `tokens` and [cpt] `domain_shares` (and [grid] `seed`)")
    seeds = spec.grid.get("seed", [0])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SpecError(f"{where(spec)}: [grid] `seed` must be a list of integers, got {seeds!r}")
    return seeds


def mixture_data(spec: StudySpec, opts: dict[str, Any], domain_share: float,
                 domain: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's data section: the general and domain sources (default the first) mixed at `domain_share`."""
    data = plain(spec.data)
    data["source"] = "mixture"
    data["options"] = {"general": copy.deepcopy(opts["general"]),
                       "domain": copy.deepcopy(domain if domain is not None else opts["domain"]),
                       "domain_share": float(domain_share)}
    return data


def base_data(spec: StudySpec, opts: dict[str, Any]) -> dict[str, Any]:
    """The base runs' data: the mixture at share 0 for one `domain` (as before, so those ids stay),
    the general source alone for `domains` (the same stream, and no domain in the base run's id)."""
    if not opts["multi"]:
        return mixture_data(spec, opts, 0.0)
    data = plain(spec.data)
    data["source"], data["options"] = opts["general"]["kind"], copy.deepcopy(opts["general"]["options"])
    return data


def domain_tokens(steps: int, batch_size: int, seq_len: int, domain_share: float) -> int:
    """Exact domain tokens in a mixture run: floor(sequences · r) sequences, as MixtureSource draws them."""
    share = Fraction(domain_share).limit_denominator(10**6)
    return (steps * batch_size * share.numerator // share.denominator) * seq_len


def expand_cpt(spec: StudySpec) -> list[RunConfig]:
    """Base runs (one per shape and seed, shared by every domain) followed by their CPT runs
    (shape × domain × schedule × D × r)."""
    opts = cpt_options(spec)
    src = where(spec)
    for name, domain in opts["domains"].items():
        try:  # build the sources once here so a bad option fails at plan time, naming the table
            lm_source(mixture_data(spec, opts, 0.5, domain))
        except SpecError as e:
            key = "`general`/`domain`" if name is None else f"`general`/`domains.{name}`"
            raise SpecError(f"{src}: [cpt] {key} sources (with [data] tokenizer, seed): {e}") from None
    runs: list[RunConfig] = []
    for shape in model_shapes(spec):
        for seed in _seeds(spec):
            base = RunConfig(study=spec.name, family="cpt", model=copy.deepcopy(shape),
                             data=base_data(spec, opts), train=plain(spec.train), seed=seed,
                             label=shape_label(shape) + "-base")
            try:
                n = decoder_counts(base)["n_params_nonemb"]
            except SpecError as e:
                raise SpecError(f"{src}: [model] shape {shape}: {e}") from None
            base.train["steps"] = resolve_steps(base, decoder_counts, src)
            base.extra = {"role": "base", "N": n, "domain_share": 0.0, "general_share": 1.0, "cpt_tokens": 0,
                          "domain_tokens": 0, "base_seed": seed}
            runs.append(base)
            for name in opts["domains"]:
                for schedule in opts["schedules"]:
                    for d_tokens in opts["tokens"]:
                        for r in opts["domain_shares"]:
                            runs.append(cpt_run(spec, opts, base, shape, d_tokens, r, n, name, schedule))
    return runs


def cpt_run(spec: StudySpec, opts: dict[str, Any], base: RunConfig, shape: dict[str, Any], d_tokens: float,
            r: float, n: float, domain: str | None = None, schedule: str | None = None) -> RunConfig:
    """One CPT run; `domain` is a `domains` name (None: the single `domain`), `schedule` one of
    [cpt] `schedule` (None: the first)."""
    schedule = schedule or opts["schedule"]
    train = plain(spec.train)
    per_step = int(train["batch_size"]) * int(train["seq_len"])
    steps = max(1, math.ceil(d_tokens / per_step))
    train.update(steps=steps, tokens=None, tokens_per_param=None, flops=None, lr=opts["lr"], warmup=opts["warmup"],
                 schedule=SCHEDULES[schedule], min_lr_ratio=opts["min_lr_ratio"])
    if schedule == "continue":  # the base's training goes on: its last LR, its Adam moments, no warm-up
        train.update(lr=final_lr(base.train), warmup=0.0, parent_optimizer=True)
    tokens = steps * per_step
    extra = {"role": "cpt", "N": n, "domain_share": float(r), "general_share": 1.0 - float(r),
             "cpt_tokens": tokens, "domain_tokens": domain_tokens(steps, int(train["batch_size"]),
                                                                  int(train["seq_len"]), r),
             "rewarm": schedule, "base_seed": base.seed}
    if domain is not None:  # only `domains` studies: single-domain run ids stay as they were
        extra[schema.CPT_DOMAIN.removeprefix(schema.EXTRA_PREFIX)] = domain
    label = "-".join([shape_label(shape)] + ([domain] if domain is not None else []) + [f"D{tokens:.3g}", f"r{r:g}"]
                     + ([schedule] if len(opts["schedules"]) > 1 else []))
    return RunConfig(study=spec.name, family="cpt", model=copy.deepcopy(shape),
                     data=mixture_data(spec, opts, r, opts["domains"][domain]), train=train,
                     seed=base.seed + CPT_SEED_OFFSET, parent=base.run_id, extra=extra, label=label)


def build_cpt_task(run: RunConfig, device: torch.device) -> LMTask:
    return LMTask(run, device)


register_family(Family("cpt", expand_cpt, build_cpt_task, decoder_counts))
