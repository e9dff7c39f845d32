"""Expand a study spec into concrete runs: model shapes × grid axes, budgets resolved to steps.

Each family (decoder, encdec, cpt) registers a `Family`: how to list its shapes, how to
build a task for a run, and how to expand the spec (most use `expand_axes`).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from scaling import schema
from scaling.config import StudySpec, TrainSection, check_run_train, plain
from scaling.errors import ScalingError, SpecError, did_you_mean
from scaling.train.run_config import OPERATIONAL_TRAIN_KEYS, RunConfig


@dataclass(frozen=True)
class Family:
    name: str
    expand: Callable[[StudySpec], list[RunConfig]]
    build_task: Callable[[RunConfig, torch.device], Any]
    counts: Callable[[RunConfig], dict[str, float]]
    """Analytic counts (n_params, n_params_nonemb, flops_per_token, ...) without building the model."""
    tokens_per_step: Callable[[RunConfig], int] = lambda run: int(run.train["batch_size"]) * int(run.train["seq_len"])
    """Tokens one optimiser step trains on (the unit of token budgets)."""


FAMILY_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> None:
    FAMILY_REGISTRY[family.name] = family


def get_family(name: str) -> Family:
    _load_builtin_families()
    if name not in FAMILY_REGISTRY:
        raise SpecError(f"[study] `family`: unknown family {name!r}; known: {', '.join(sorted(FAMILY_REGISTRY))}")
    return FAMILY_REGISTRY[name]


def _load_builtin_families() -> None:
    import scaling.train.families  # noqa: F401  (registers decoder, encdec, cpt)


def expand(spec: StudySpec) -> list[RunConfig]:
    """All runs of a study, parents (runs others continue from) first."""
    runs = get_family(spec.family).expand(spec)
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        operational = ", ".join(sorted(OPERATIONAL_TRAIN_KEYS))
        raise SpecError(f"{where(spec)}: two runs of the grid have identical configs; remove the duplicate axis values"
                        f" (operational [train] keys do not tell runs apart: {operational})")
    return sorted(runs, key=lambda r: r.parent is not None)


def study_runs(spec: StudySpec, root: str | Path) -> list[RunConfig]:
    """The spec's runs plus those `scaling advise --append` (or `grid run --advise`) added to the
    study folder, parents first; an advised run the spec already has is listed once."""
    from scaling.advise.study import advised_runs

    runs = expand(spec)
    ids = {r.run_id for r in runs}
    extra = [RunConfig.from_dict(c) for c in advised_runs(root)]
    return runs + [r for r in extra if r.run_id not in ids]


def where(spec: StudySpec) -> str:
    return str(spec.path) if spec.path else "<spec>"


def family_table(spec: StudySpec, name: str, keys: set[str], missing: str) -> dict[str, Any]:
    """The family's own spec table `[name]`: present (else `missing` says what it needs), the only
    extra table, and holding only `keys`; errors name the file and `[name] key`."""
    src = where(spec)
    table = spec.extra.get(name)
    if table is None:
        raise SpecError(f"{src}: family '{name}' needs {missing}")
    other = set(spec.extra) - {name}
    if other:
        raise SpecError(f"{src}: table [{sorted(other)[0]}] is not used by family '{name}'")
    unknown = sorted(set(table) - keys)
    if unknown:
        raise SpecError(f"{src}: [{name}] unknown key `{unknown[0]}`{did_you_mean(unknown[0], keys)}; "
                        f"expected one of {', '.join(sorted(keys))}")
    return table


# ------------------------------------------------------------------ shapes and axes


def model_shapes(spec: StudySpec) -> list[dict[str, Any]]:
    """Shapes from [model] `shapes` or [model] `rule`, with [model] `defaults` filled in."""
    m = spec.model
    if bool(m.shapes) == bool(m.rule):
        raise SpecError(f"{where(spec)}: [model] needs exactly one of `shapes` (a list of shapes) or `rule`")
    if m.shapes:
        return [{**m.defaults, **s} for s in m.shapes]
    return [{**m.defaults, **s} for s in shapes_from_rule(m.rule, where(spec))]


def shapes_from_rule(rule: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Depths -> widths: d_model = aspect_ratio · n_layers rounded to a multiple of head_dim."""
    allowed = {"n_layers", "aspect_ratio", "head_dim"}
    unknown = set(rule) - allowed
    if unknown:
        first = sorted(unknown)[0]
        raise SpecError(f"{source}: [model.rule] unknown key `{first}`{did_you_mean(first, allowed)}; "
                        f"expected {', '.join(sorted(allowed))}")
    try:
        depths, aspect, head_dim = rule["n_layers"], rule["aspect_ratio"], rule["head_dim"]
    except KeyError as e:
        raise SpecError(f"{source}: [model.rule] missing key `{e.args[0]}`") from None
    if not isinstance(depths, list) or not all(isinstance(d, int) and d > 0 for d in depths):
        raise SpecError(f"{source}: [model.rule] `n_layers` must be a list of positive integers, got {depths!r}")
    shapes = []
    for depth in depths:
        d_model = max(head_dim, int(round(aspect * depth / head_dim)) * head_dim)
        shapes.append({"d_model": d_model, "n_layers": depth, "n_heads": d_model // head_dim})
    return shapes


def set_dotted(d: dict[str, Any], key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        if p not in node or not isinstance(node[p], dict):
            node[p] = {} if p in ("options", "model", "extra") else _missing(key, source)
        node = node[p]
    node[parts[-1]] = value


def _missing(key: str, source: str) -> Any:
    raise SpecError(f"{source}: [grid] axis `{key}` does not name a config value (use e.g. train.lr, seed, model.d_ff)")


def grid_axes(spec: StudySpec) -> dict[str, list[Any]]:
    """[grid] axes plus the IsoFLOP axis that a list in [train] `flops` declares."""
    axes = dict(spec.grid)
    if isinstance(spec.train.flops, list):
        axes["train.flops"] = list(spec.train.flops)
    return axes


def axis_combinations(spec: StudySpec) -> list[dict[str, Any]]:
    axes = grid_axes(spec)
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainSection)}


def expand_axes(spec: StudySpec, counts: Callable[[RunConfig], dict[str, float]],
                extra: dict[str, Any] | None = None,
                tokens_per_step: Callable[[RunConfig], int] | None = None,
                data_source: Callable[[dict[str, Any]], Any] | None = None) -> list[RunConfig]:
    """Shapes × axis combinations, each with its token budget resolved to steps.

    `data_source` builds a run's source from its [data] values (cached by the family): built
    first, so that a bad [data] value is reported as such, not as the fault of a model shape."""
    source = where(spec)
    runs = []
    for shape, combo in itertools.product(model_shapes(spec), axis_combinations(spec)):
        base = {"model": copy.deepcopy(shape), "data": plain(spec.data), "train": plain(spec.train),
                "seed": 0, "extra": copy.deepcopy(extra or {})}
        for key, value in combo.items():
            head = key.split(".")[0]
            if head == "seed":
                base["seed"] = value
                continue
            if head not in ("model", "data", "train", "extra"):
                _missing(key, source)
            if head == "train" and key.split(".")[1] not in TRAIN_KEYS:
                _missing(key, source)
            set_dotted(base, key, value, source)
        train_axes = _axes_text(combo, "train.")
        # checked as the base table is; the values stay as written, since ids of existing runs hash them so
        check_run_train(base["train"], f"{source}: [grid] axis {train_axes}" if train_axes else source)
        run = RunConfig(study=spec.name, family=spec.family, label=shape_label(base["model"]), **base)
        if data_source is not None:
            try:
                data_source(run.data)
            except SpecError as e:
                data_axes = _axes_text(combo, "data.")
                raise SpecError(f"{source}: [data]{f' ([grid] axis {data_axes})' if data_axes else ''}: {e}") from None
        run.train["steps"] = resolve_steps(run, counts, source, tokens_per_step(run) if tokens_per_step else None)
        runs.append(run)
    return runs


def _axes_text(combo: dict[str, Any], prefix: str) -> str:
    """"`train.lr` = 0.01, ..." for the grid axes of one section in a run's combination ("" if none)."""
    return ", ".join(f"`{k}` = {v!r}" for k, v in combo.items() if k.startswith(prefix))


def shape_label(shape: dict[str, Any]) -> str:
    short = {"d_model": "d", "n_layers": "L", "enc_layers": "E", "dec_layers": "D", "n_heads": "h"}
    return "-".join(f"{short.get(k, k)}{v}" for k, v in shape.items() if k in short)


def training_flops(run: RunConfig) -> float:
    """Estimated training FLOPs of an expanded run (flops per token x steps x tokens per step),
    from the family's analytic counts; 0 when a count is missing."""
    family = get_family(run.family)
    fpt = family.counts(run).get("flops_per_token")
    steps = run.train.get("steps")
    if fpt is None or steps is None or not math.isfinite(float(fpt)):
        return 0.0
    return float(fpt) * float(steps) * family.tokens_per_step(run)


def resolve_steps(run: RunConfig, counts: Callable[[RunConfig], dict[str, float]], source: str,
                  per_step: int | None = None) -> int:
    """Steps of a run from its budget; `tokens` and `tokens_per_param` are cleared (steps says it all)."""
    t = run.train
    per_step = per_step or int(t["batch_size"]) * int(t["seq_len"])
    if isinstance(t.get("flops"), list):
        raise SpecError(f"{source}: [train] `flops` is a list (an IsoFLOP axis), which family {run.family!r}"
                        " does not expand; give one budget")
    if t.get("steps") is not None:
        steps = int(t["steps"])
    elif t.get("tokens") is not None:
        steps = math.ceil(float(t["tokens"]) / per_step)
    elif t.get("flops") is not None:  # IsoFLOP: C / (exact training FLOPs per token); `flops` stays as the label
        try:
            per_token = float(counts(run)["flops_per_token"])
        except ScalingError as e:
            raise SpecError(f"{source}: model shape {run.model}: {e}") from None
        steps = math.ceil(float(t["flops"]) / (per_token * per_step))
    else:
        try:
            n = counts(run)["n_params_nonemb"]
        except ScalingError as e:
            raise SpecError(f"{source}: model shape {run.model}: {e}") from None
        steps = max(int(t.get("min_steps", 0)), math.ceil(float(t["tokens_per_param"]) * n / per_step))
    t["tokens"] = None
    t["tokens_per_param"] = None
    return max(1, steps)


def plan_rows(runs: list[RunConfig]) -> list[dict[str, Any]]:
    """What `scaling grid plan` shows: one row per run with parameters, tokens and FLOPs."""
    rows = []
    isoflop = any(run.train.get("flops") is not None for run in runs)  # show each run's compute budget
    for run in runs:
        family = get_family(run.family)
        c = family.counts(run)
        tokens = int(run.train["steps"]) * family.tokens_per_step(run)
        rows.append({"run_id": run.run_id, "label": run.label, "seed": run.seed,
                     **{k: v for k, v in c.items() if k != "flops_per_token"},
                     "steps": int(run.train["steps"]), "tokens": tokens,
                     "flops": tokens * c["flops_per_token"],
                     **({schema.BUDGET_FLOPS: run.train.get("flops")} if isoflop else {}),
                     **{f"extra.{k}": v for k, v in run.extra.items()},
                     "parent": run.parent or ""})
    return rows


def study_root(spec: StudySpec, out: str | Path | None = None) -> Path:
    """Where a study's store lives: `out`, else runs/<study>/ beside the spec file."""
    if out is not None:
        return Path(out)
    base = spec.path.parent if spec.path is not None else Path("runs")
    return base / spec.name
