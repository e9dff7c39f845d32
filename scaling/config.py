"""Study specs: typed dataclasses loaded from TOML, with errors that name file, key and expectation.

A spec has the tables [study], [data], [model], [train], [grid], an optional [report] (how the
study's laws are fitted in its report) and, per family, its own table (for example [cpt]).
Every table maps onto a dataclass below; unknown keys and wrong types are rejected with the
dotted key path so the user knows exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scaling.errors import SpecError, did_you_mean

FAMILIES = ("decoder", "encdec", "cpt", "select")


@dataclass(kw_only=True)
class StudySection:
    name: str
    """Study name; outputs go to runs/<name>/."""
    family: Literal["decoder", "encdec", "cpt", "select"] = "decoder"
    """Model family: decoder-only LM, encoder-decoder, continual pre-training of a decoder, or
    decoders trained on data-selection variants of a document pool ([select] table)."""
    description: str = ""


@dataclass(kw_only=True)
class DataSection:
    source: str = "zipf_facts"
    """Source kind, see `scaling.data.build_source` (or `build_pair_source` for encdec)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Options of the source; unknown options are rejected by the source."""
    tokenizer: str = "byte"
    """`byte`, `bpe` (trained on the source's training split) or the path of a local tokenizer.json
    (GPT-2, Llama, ...; nothing is downloaded)."""
    eval_tokens: int = 65536
    """Tokens (LM) or pairs (encdec) in each eval set."""
    seed: int = 0
    """World seed of synthetic sources and of document splits."""


@dataclass(kw_only=True)
class ModelSection:
    shapes: list[dict[str, Any]] = field(default_factory=list)
    """Explicit model shapes, e.g. {d_model = 64, n_layers = 2, n_heads = 4}."""
    rule: dict[str, Any] = field(default_factory=dict)
    """Width/depth rule: n_layers = [...], aspect_ratio (d_model per layer), head_dim."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Values applied to every shape unless the shape sets them (e.g. d_ff, tie_embeddings)."""


@dataclass(kw_only=True)
class TrainSection:
    steps: int | None = None
    tokens: int | None = None
    tokens_per_param: float | None = None
    flops: float | list[float] | None = None
    """Budget per run: exactly one of steps, tokens, tokens_per_param (× non-embedding params) or
    flops (training FLOPs C; tokens = C / the shape's exact training FLOPs per token). A list of
    flops is an IsoFLOP axis, as the [grid] axis "train.flops" is; each run records its `flops`."""
    min_steps: int = 0
    """Lower bound on steps when the budget is given in tokens per parameter."""
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup: float = 0.05
    """Warm-up length: a fraction of the run if < 1, else a number of steps."""
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2
    """WSD only: fraction of the run spent in the final linear decay."""
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_points: int = 10
    """Evaluations at log-spaced token counts (plus the last step)."""
    checkpoint_every: int = 500
    device: str = "auto"
    loss_impl: Literal["auto", "chunked", "torch", "triton"] = "auto"
    threads: int = 0
    """torch threads per run; 0 = share the machine's cores among workers."""
    compile: bool = False
    """`torch.compile` the model for training (operational: not part of the run id)."""
    micro_batch_size: int | None = None
    """Rows per forward/backward; gradients accumulate to the full `batch_size` (operational)."""
    nproc: int = 1
    """DDP processes per run; `batch_size` is the global batch, split among them (operational)."""
    keep_final: bool = False
    """Keep final.pt for every run, not only for runs that others continue from (operational)."""


HOLDOUT_DEFAULT = "largest:1"


@dataclass(kw_only=True)
class ReportSection:
    """How `scaling report` and `scaling demo` fit the study's laws, so that every rendering of the
    study gives the same figures; a command-line flag overrides its key. Trains nothing: no run id
    depends on it."""

    delta: float | Literal["auto"] | None = None
    """Huber delta of every fit: a positive number, or "auto" (from the residuals of a first fit);
    unset, the laws' default (1e-3)."""
    bootstrap: int = 200
    """Bootstrap replicates for every interval (0 = none)."""
    holdout: str = HOLDOUT_DEFAULT
    """Held-out split of the extrapolation check (`scaling fit --holdout` grammar)."""
    advise_budget: float = 0.0
    """FLOPs for a "which runs next" section (`scaling advise`); 0 = none."""


@dataclass(kw_only=True)
class StudySpec:
    study: StudySection
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    report: ReportSection = field(default_factory=ReportSection)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Cartesian axes: dotted keys into a run's config, e.g. "train.lr" = [1e-3, 3e-3], "seed" = [0, 1]."""
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Family-specific tables (e.g. [cpt]); validated by the family."""
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def family(self) -> str:
        return self.study.family

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in ("extra", "path")}
        d.update(self.extra)
        return d


SECTIONS: dict[str, type] = {"study": StudySection, "data": DataSection, "model": ModelSection, "train": TrainSection,
                             "report": ReportSection}
FAMILY_TABLES = {"cpt": "cpt", "encdec": "encdec", "select": "select"}


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec; errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such study spec file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    spec = spec_from_dict(raw, source=str(path))
    spec.path = path
    return spec


def spec_from_dict(raw: dict[str, Any], source: str = "<spec>") -> StudySpec:
    if "study" not in raw:
        raise SpecError(f"{source}: missing table [study] (needs at least `name`)")
    kwargs: dict[str, Any] = {}
    extra: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            kwargs[key] = from_dict(SECTIONS[key], value, f"{source}: [{key}]")
        elif key == "grid":
            kwargs["grid"] = _grid_axes(value, source)
        elif key in FAMILY_TABLES:
            if not isinstance(value, dict):
                raise SpecError(f"{source}: [{key}] must be a table")
            extra[key] = value
        else:
            known = ", ".join(sorted([*SECTIONS, "grid", *FAMILY_TABLES]))
            raise SpecError(f"{source}: unknown table [{key}]{did_you_mean(key, known.split(', '))}; expected one of {known}")
    spec = StudySpec(**kwargs, extra=extra)
    _check_study_name(spec.study.name, source)
    _check_budget_kinds(spec.train, spec.grid, source)
    _check_train(spec.train, source)
    _check_report(spec.report, source)
    return spec


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_study_name(name: str, source: str) -> None:
    """The name is the study's folder (runs/<name>/ beside the spec): one plain path component,
    so that no spec writes outside its runs/ folder."""
    if not STUDY_NAME.fullmatch(name):
        raise SpecError(f"{source}: [study] `name` must be a plain folder name (letters, digits, '.', '_', '-', "
                        f"starting with a letter or digit), got {name!r}")


def _grid_axes(value: Any, source: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise SpecError(f"{source}: [grid] must be a table of axes")
    axes = {}
    for k, v in _flatten(value).items():
        if not isinstance(v, list) or not v:
            raise SpecError(f"{source}: [grid] `{k}` must be a non-empty list of values, got {v!r}")
        axes[k] = v
    return axes


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


BUDGETS = ("steps", "tokens", "tokens_per_param", "flops")


def _check_budget_kinds(t: TrainSection, grid: dict[str, list[Any]], source: str) -> None:
    """Exactly one kind of budget, counting [grid] axes such as "train.flops" = [...]."""
    if isinstance(t.flops, list) and "train.flops" in grid:
        raise SpecError(f"{source}: give the flops axis once: [train] `flops` is a list and [grid] has \"train.flops\"")
    budgets = [k for k in BUDGETS if getattr(t, k) is not None or f"train.{k}" in grid]
    if len(budgets) != 1:
        raise SpecError(
            f"{source}: [train] needs exactly one token budget: `steps`, `tokens`, `tokens_per_param` or `flops`"
            f" (in [train] or as a [grid] axis \"train.<budget>\"; got {', '.join(budgets) or 'none'})"
        )


def check_run_train(train: dict[str, Any], source: str) -> TrainSection:
    """Validate one expanded run's [train] values with the base table's checks and messages.

    `source` starts every message: the file, and for a grid run the axes and values it got.
    """
    t = from_dict(TrainSection, train, f"{source}: [train]")
    budgets = [k for k in BUDGETS if getattr(t, k) is not None]
    if len(budgets) != 1:
        raise SpecError(f"{source}: [train] needs exactly one token budget: `steps`, `tokens`, `tokens_per_param`"
                        f" or `flops` (got {', '.join(budgets) or 'none'})")
    _check_train(t, source)
    return t


def _check_train(t: TrainSection, source: str) -> None:
    for name in ("batch_size", "seq_len", "eval_points", "checkpoint_every"):
        if getattr(t, name) < 1:
            raise SpecError(f"{source}: [train] `{name}` must be >= 1, got {getattr(t, name)}")
    for name in BUDGETS:
        value = getattr(t, name)
        for v in value if isinstance(value, list) else [value]:
            if v is not None and v <= 0:
                raise SpecError(f"{source}: [train] `{name}` must be > 0, got {v}")
    if isinstance(t.flops, list) and (not t.flops or len(set(t.flops)) != len(t.flops)):
        raise SpecError(f"{source}: [train] `flops` must be a non-empty list of distinct budgets, got {t.flops!r}")
    if t.lr <= 0:
        raise SpecError(f"{source}: [train] `lr` must be > 0, got {t.lr}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise SpecError(f"{source}: [train] `min_lr_ratio` must be between 0 and 1, got {t.min_lr_ratio}")
    if not 0 < t.decay_fraction <= 1:
        raise SpecError(f"{source}: [train] `decay_fraction` must be in (0, 1], got {t.decay_fraction}")
    if t.warmup < 0:
        raise SpecError(f"{source}: [train] `warmup` must be >= 0, got {t.warmup}")
    if t.warmup >= 1 and t.warmup != int(t.warmup):
        raise SpecError(f"{source}: [train] `warmup` is a fraction of the run if < 1, else a whole number "
                        f"of steps; got {t.warmup}")
    if t.warmup >= 1 and isinstance(t.steps, int) and t.warmup >= t.steps:
        raise SpecError(f"{source}: [train] `warmup` ({int(t.warmup)} steps) must be shorter than the run "
                        f"(`steps` = {t.steps}); a fraction below 1 scales with each run")
    if t.nproc < 1 or t.batch_size % t.nproc:
        raise SpecError(f"{source}: [train] `nproc` must be >= 1 and divide `batch_size` ({t.batch_size}), got {t.nproc}")
    if t.micro_batch_size is not None and not 1 <= t.micro_batch_size <= t.batch_size // t.nproc:
        raise SpecError(f"{source}: [train] `micro_batch_size` must be between 1 and `batch_size` / `nproc` "
                        f"({t.batch_size // t.nproc}), got {t.micro_batch_size}")


def _check_report(r: ReportSection, source: str) -> None:
    """The values `scaling report --delta/--bootstrap/--advise-budget` would refuse; the holdout's
    grammar is checked where it is parsed (`scaling.laws.validation`), before any fit."""
    if isinstance(r.delta, float) and not r.delta > 0:
        raise SpecError(f"{source}: [report] `delta` must be a positive number or \"auto\", got {r.delta}")
    if r.bootstrap < 0 or r.bootstrap == 1:
        raise SpecError(f"{source}: [report] `bootstrap` must be 0 (no intervals) or at least 2, got {r.bootstrap}")
    if not r.advise_budget >= 0:
        raise SpecError(f"{source}: [report] `advise_budget` must be >= 0 FLOPs (0 = no advice), got {r.advise_budget}")


# ---------------------------------------------------------------- generic dataclass loading


def from_dict(cls: type, value: Any, where: str) -> Any:
    """Build dataclass `cls` from a dict, checking unknown keys, missing keys and types."""
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a table, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise SpecError(f"{where}: unknown key `{unknown[0]}`{did_you_mean(unknown[0], fields)}; "
                        f"expected one of {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = check_type(value[name], hints[name], f"{where} `{name}`")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{where}: missing required key `{name}`")
    return cls(**kwargs)


def check_type(value: Any, hint: Any, where: str) -> Any:
    """Return value (ints widened to float where a float is expected) or raise naming the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return check_type(value, arg, where)
            except SpecError:
                continue
        raise SpecError(f"{where}: expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise SpecError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is type(None):
        if value is not None:
            raise SpecError(f"{where}: expected nothing, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, got {value!r}")
        return [check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a table, got {value!r}")
        return {k: check_type(v, args[1], f"{where}.{k}") for k, v in value.items()} if args else value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise SpecError(f"{where}: expected {_describe(hint)}, got {value!r}")
    return value


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "nothing"
    if typing.get_origin(hint) is Literal:
        return " or ".join(map(repr, typing.get_args(hint)))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A dataclass (nested) as plain dicts/lists, for JSON and TOML."""
    return _plain(value)
