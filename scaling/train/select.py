"""The `select` family: size grids trained on data-selection variants of one document pool.

[data] names a document pool (e.g. `facts_pool`); the [select] table says how to select:

    target       = "valid"         # eval set that measures the target loss (default: the pool's first)
    baseline     = "none"          # method label of the unfiltered pool (keep = 1)
    on_exhausted = "repeat"        # a selection smaller than a run's budget: "repeat" it, or "error"
    score_seed   = 0               # seed of every scoring (default [data] seed)
    floors       = "auto"          # how report and advice fit the select law's floors E_v: "free",
                                   # "shared" (one E), "auto" (exact where the pool knows them, else free)
    delta        = "auto"          # the select law's Huber delta (default the laws' 1e-3)
    [select.methods]               # name = options; `kind` defaults to the name
    oracle = {}
    ppl_high = {kind = "perplexity", band = "high"}

and [grid] crosses `"select.method"` (default: every method) and `"select.keep"` (shares of the
pool's tokens, in (0, 1]) with the [model] shapes and `seed`. The unfiltered baseline is one run
per shape and seed (keep = 1 in the axis maps to it). Every variant of a shape trains on the same
token budget, so a small selection is repeated for `epochs` = budget / kept tokens.

A method's scores are computed once per pool (probes and reference models train then, before
the first run that needs them; the others wait on a lock and reuse the cached scores), so all
keep shares of a method share one scoring. `floors` and `delta` only say how the law is fitted:
changing them retrains nothing. `select_tables` writes the study's scores.parquet,
kept.parquet and select.parquet (see scaling.schema).
"""

from __future__ import annotations

import copy
import fcntl
import itertools
import math
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from scaling import schema
from scaling.config import StudySpec, plain
from scaling.data.pool import GOOD_TYPES, DocumentPool
from scaling.data.selection import Scores, check_method, score_pool
from scaling.errors import SpecError
from scaling.train.families import decoder_counts
from scaling.train.grid import (TRAIN_KEYS, Family, axis_combinations, family_table, model_shapes, register_family,
                                resolve_steps, shape_label, where)
from scaling.train.run_config import RunConfig
from scaling.train.task import LMTask, lm_source

KEYS = {"target", "baseline", "on_exhausted", "score_seed", "methods", "floors", "delta"}
EXHAUSTED = ("repeat", "error")
FLOORS = ("auto", "free", "shared")


def select_options(spec: StudySpec) -> dict[str, Any]:
    """The [select] table validated, with defaults; errors name `[select] key`."""
    src = where(spec)
    table = family_table(spec, "select", KEYS, "a [select] table with at least [select.methods]")
    methods = table.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise SpecError(f"{src}: [select] `methods` must be a non-empty table of method = {{options}}")
    baseline = table.get("baseline", "none")
    if not isinstance(baseline, str) or baseline in methods:
        raise SpecError(f"{src}: [select] `baseline` must be a string label not used by a method, got {baseline!r}")
    on_exhausted = table.get("on_exhausted", "repeat")
    if on_exhausted not in EXHAUSTED:
        raise SpecError(f"{src}: [select] `on_exhausted` must be one of {', '.join(map(repr, EXHAUSTED))}, "
                        f"got {on_exhausted!r}")
    checked = {}
    for name, options in methods.items():
        if not isinstance(options, dict):
            raise SpecError(f"{src}: [select.methods] `{name}` must be a table of options, got {options!r}")
        checked[name] = check_method(name, options, f"{src}: [select.methods]")
    seed = table.get("score_seed", spec.data.seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"{src}: [select] `score_seed` must be an integer, got {seed!r}")
    target = table.get("target")
    if target is not None and not isinstance(target, str):
        raise SpecError(f"{src}: [select] `target` must name an eval set, got {target!r}")
    floors = table.get("floors", "auto")
    if floors not in FLOORS:
        raise SpecError(f"{src}: [select] `floors` must be one of {', '.join(map(repr, FLOORS))}, got {floors!r}")
    delta = table.get("delta")
    if delta is not None and delta != "auto" and (isinstance(delta, bool) or not isinstance(delta, (int, float))
                                                  or not delta > 0):
        raise SpecError(f"{src}: [select] `delta` must be a number > 0 or \"auto\", got {delta!r}")
    return {"methods": checked, "baseline": baseline, "on_exhausted": on_exhausted, "score_seed": seed,
            "target": target, "floors": floors, "delta": delta}


def _axes(spec: StudySpec, opts: dict[str, Any]) -> tuple[list[str], list[float], list[int]]:
    src = where(spec)
    unknown = sorted(k for k in set(spec.grid) - {"seed", "select.method", "select.keep"}
                     if not (k.startswith("train.") and k.split(".", 1)[1] in TRAIN_KEYS))
    if unknown:
        raise SpecError(f"{src}: [grid] `{unknown[0]}` is not an axis of family 'select'; its axes are "
                        f"[model] shapes, \"select.method\", \"select.keep\", train.* and seed")
    methods = spec.grid.get("select.method", list(opts["methods"]))
    for m in methods:
        if m not in opts["methods"]:
            raise SpecError(f"{src}: [grid] \"select.method\": unknown method {m!r}; define it under "
                            f"[select.methods] (defined: {', '.join(opts['methods'])})")
    keeps = spec.grid.get("select.keep")
    if keeps is None:
        raise SpecError(f"{src}: [grid] needs \"select.keep\", a list of kept token shares in (0, 1]")
    for k in keeps:
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= 1:
            raise SpecError(f"{src}: [grid] \"select.keep\" values must be numbers in (0, 1], got {k!r}")
    seeds = spec.grid.get("seed", [0])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SpecError(f"{src}: [grid] `seed` must be a list of integers, got {seeds!r}")
    return list(methods), sorted({float(k) for k in keeps if k < 1}), seeds


def pool_of(data: dict[str, Any], src: str) -> DocumentPool:
    try:
        pool = lm_source(data)
    except SpecError as e:
        raise SpecError(f"{src}: [data]: {e}") from None
    if not isinstance(pool, DocumentPool):
        raise SpecError(f"{src}: [data] source `{data['source']}` is not a document pool; family 'select' needs "
                        f"one (e.g. `facts_pool`, `text_pool`)")
    return pool


def variant_label(method: str, keep: float) -> str:
    return f"{method}@{keep:g}"


def expand_select(spec: StudySpec) -> list[RunConfig]:
    """Per shape and seed: the unfiltered baseline, then every method × keep share < 1."""
    src = where(spec)
    opts = select_options(spec)
    methods, keeps, seeds = _axes(spec, opts)
    data = plain(spec.data)
    pool = pool_of(data, src)
    if "oracle" in {opts["methods"][m][0] for m in methods} and not pool.has_types:
        bad = next(m for m in methods if opts["methods"][m][0] == "oracle")
        raise SpecError(f"{src}: [select.methods] `{bad}`: method `oracle` needs a pool with known document types; "
                        f"data source `{data['source']}` has none")
    evals = list(pool.eval_sets(int(spec.train.seq_len), int(spec.train.seq_len)))
    target = opts["target"] or evals[0]
    if target not in evals:
        raise SpecError(f"{src}: [select] `target` = {target!r} is not an eval set of `{data['source']}` "
                        f"({', '.join(evals)})")
    pool_tokens = int(pool.doc_lengths.sum())
    runs: list[RunConfig] = []
    train_axes = [k for k in spec.grid if k.startswith("train.")]
    train_combos = axis_combinations(StudySpec(study=spec.study, grid={k: spec.grid[k] for k in train_axes}))
    for shape, combo in itertools.product(model_shapes(spec), train_combos):
        for seed in seeds:
            variants = [(opts["baseline"], "baseline", {}, 1.0)] + [
                (m, opts["methods"][m][0], opts["methods"][m][1], k) for m in methods for k in keeps]
            for method, kind, mopts, keep in variants:
                extra = {"role": "baseline" if kind == "baseline" else "select", schema.SELECT_METHOD: method,
                         "select_kind": kind, schema.SELECT_KEEP: keep, "select_options": copy.deepcopy(mopts),
                         "score_seed": opts["score_seed"], "on_exhausted": opts["on_exhausted"], "target": target,
                         schema.SELECT_VARIANT: opts["baseline"] if kind == "baseline" else variant_label(method, keep)}
                run = RunConfig(study=spec.name, family="select", model=copy.deepcopy(shape), data=copy.deepcopy(data),
                                train={**plain(spec.train), **{k.split(".", 1)[1]: v for k, v in combo.items()}},
                                seed=seed, extra=extra,
                                label="-".join([shape_label(shape), *(f"{k.split('.')[-1]}{v:g}" for k, v in combo.items()),
                                                extra[schema.SELECT_VARIANT]]))
                try:
                    n = decoder_counts(run)["n_params_nonemb"]
                except SpecError as e:
                    raise SpecError(f"{src}: [model] shape {shape}: {e}") from None
                run.train["steps"] = resolve_steps(run, decoder_counts, src)
                run.extra["N"] = n
                budget = run.train["steps"] * int(run.train["batch_size"]) * int(run.train["seq_len"])
                if opts["on_exhausted"] == "error" and budget > keep * pool_tokens + pool.doc_lengths.max():
                    raise SpecError(_exhausted(src, method, keep, keep * pool_tokens, budget, shape))
                runs.append(run)
    return runs


def _exhausted(src: str, method: str, keep: float, kept: float, budget: int, shape: Any) -> str:
    return (f"{src}: [select] `on_exhausted` = \"error\": method `{method}` at \"select.keep\" = {keep:g} keeps "
            f"{kept:.0f} tokens, fewer than the {budget} training tokens of shape {shape}; raise the keep share, "
            f"enlarge the pool, shrink [train] budget or set `on_exhausted` = \"repeat\"")


# ------------------------------------------------------------------ scoring once per pool and method


@contextmanager
def _scoring_lock(name: str):
    """Serialise scoring of one method across worker processes: the first scores, the rest reuse."""
    from scaling.data.tokenizers import cache_dir

    path = cache_dir() / "select" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_scores(pool: DocumentPool, run: RunConfig) -> Scores:
    kind = run.extra["select_kind"]
    with _scoring_lock(kind):
        return score_pool(pool, kind, run.extra["select_options"], int(run.extra["score_seed"]))


def kept_documents(pool: DocumentPool, run: RunConfig) -> tuple[np.ndarray, float]:
    """(kept document ids, scoring FLOPs) of a select run."""
    if run.extra["role"] == "baseline":
        return np.arange(pool.n_docs), 0.0
    scores = run_scores(pool, run)
    return scores.keep(pool, float(run.extra[schema.SELECT_KEEP])), scores.flops


def selection_metrics(pool: DocumentPool, kept: np.ndarray, eval_set: Any) -> dict[str, float]:
    """Kept and unique tokens and, where types are known, precision, per-type token shares and the exact floor."""
    lengths = pool.doc_lengths[kept]
    out = {schema.KEPT_TOKENS: float(lengths.sum()), schema.KEPT_DOCS: float(len(kept)),
           schema.UNIQUE_TOKENS: float(pool.unique_tokens(kept))}
    if pool.has_types:
        types = pool.doc_types[kept]
        labelled = types != ""
        total = float(lengths[labelled].sum())
        out[schema.PRECISION_GOOD] = float(lengths[np.isin(types, GOOD_TYPES)].sum()) / total if total else math.nan
        for t in pool.TYPE_NAMES:
            out[schema.SHARE_PREFIX + t] = float(lengths[types == t].sum()) / total if total else math.nan
    floor = pool.selection_floor(kept, eval_set) if eval_set is not None else None
    if floor is not None:
        out[schema.SELECT_FLOOR] = float(floor)
    return out


class SelectTask(LMTask):
    """A decoder trained on the kept documents of a pool, evaluated on the pool's eval sets."""

    def __init__(self, run: RunConfig, device: torch.device) -> None:
        pool = pool_of(run.data, f"run {run.run_id}")
        self.pool = pool
        self.kept, self.select_flops = kept_documents(pool, run)
        super().__init__(run, device, source=pool.subset(self.kept, name=f"{pool.name}/{run.extra['select_variant']}"))
        budget = int(run.train["steps"]) * self.tokens_per_step
        if run.extra["on_exhausted"] == "error" and budget > self.source.kept_tokens:
            raise SpecError(_exhausted(f"run {run.label}", run.extra[schema.SELECT_METHOD],
                                       float(run.extra[schema.SELECT_KEEP]), self.source.kept_tokens, budget,
                                       run.model))

    def final_metrics(self) -> dict[str, float]:
        ev = self.eval_sets.get(self.run.extra.get("target", ""))
        out = selection_metrics(self.pool, self.kept, ev)
        out[schema.SELECT_KEEP] = float(self.run.extra[schema.SELECT_KEEP])
        out[schema.EPOCHS] = int(self.run.train["steps"]) * self.tokens_per_step / out[schema.KEPT_TOKENS]
        out[schema.SELECT_FLOPS] = float(self.select_flops)
        return out


def build_select_task(run: RunConfig, device: torch.device) -> SelectTask:
    return SelectTask(run, device)


register_family(Family("select", expand_select, build_select_task, decoder_counts))
