"""Options shared by several commands: declared and validated in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# The data and columns of every fit command.
STUDY_FOLDER = "Study folder (default: <study>/ beside the spec, e.g. runs/demo/ for runs/demo.toml)."
Data = Annotated[Path, typer.Argument(help="Parquet or CSV/TSV file, or a study folder (its runs.parquet).")]
X = Annotated[list[str], typer.Option("--x", help="Input column(s), in the law's order.")]
Y = Annotated[str, typer.Option("--y", help="Target column.")]
Where = Annotated[Optional[str], typer.Option(help="Row filter, an expression over columns, e.g. 'data_bytes > 5e6' (see README).")]
Derive = Annotated[Optional[list[str]], typer.Option(
    "--derive", help="New column before filtering, e.g. 'params = 2*Layers*(4*ModelSize**2 + 2*ModelSize*FeedForward)'.")]
Loss = Annotated[str, typer.Option(help="Objective: huber, mse, mae, or asymmetric (Huber that weighs over-predictions more).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")]
Seed = Annotated[int, typer.Option(help="Bootstrap seed.")]

Delta = Annotated[str, typer.Option(help="Huber delta (a number), or 'auto': from the residuals of a first fit.")]
# The commands that render a study (report, demo): not given, the spec's [report] key decides
# (advise and grid run --advise say the same in their own words: their spec is an option).
SpecDelta = Annotated[Optional[str], typer.Option(
    help="Huber delta of the fits: a number, or 'auto' (from the residuals); default the spec's [report] "
         "delta, else the laws' 1e-3.")]


def _positive_or(value: str, word: str, flag: str, number: str) -> float | str:
    """A flag that takes a positive number or one word (`auto`, `seeds`)."""
    if value.strip().lower() == word:
        return word
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if not v > 0:
        from scaling.errors import FitError

        raise FitError(f"{flag} {value!r}: give {number} or '{word}'")
    return v


def parse_delta(delta: str) -> float | str:
    """--delta: a positive number or 'auto'."""
    return _positive_or(delta, "auto", "--delta", "a positive number")


Noise = Annotated[Optional[str], typer.Option(
    help="Noise of one run's loss on the fit scale (sd of log loss): a number, or 'seeds' to pool it from "
         "runs with equal inputs (repeated seeds). Default: the robust scale of the fit's residuals.")]


def parse_noise(noise: str | None) -> float | str | None:
    """--noise: None, a positive number, or 'seeds'; named before anything runs."""
    if noise is None:
        return None
    return _positive_or(noise, "seeds", "--noise", "a positive number (sd of one run's loss on the fit scale)")


def resolve_noise(noise: float | str | None, law, df, x: list[str], y: str) -> tuple[float | None, str | None]:
    """(noise, where it came from) for a parsed --noise: 'seeds' pools the replicates of `df` (rows
    equal in every x column) on `law`'s fit scale (`scaling.laws.validation.replicate_noise`)."""
    if noise != "seeds":
        return noise, None if noise is None else "given"
    from scaling.laws.validation import replicate_noise

    sigma, dof = replicate_noise(df, x, y, scale=law.fit_scale)
    return sigma, f"seeds: pooled over replicates, {dof} degrees of freedom"


def bootstrap_count(value: int | None) -> int | None:
    """--bootstrap (a typer callback): 0 (no intervals) or at least 2 replicates, named before
    anything is read or fitted; None where an optional flag was not given."""
    if value is not None and (value < 0 or value == 1):
        from scaling.errors import FitError

        raise FitError(f"--bootstrap {value}: give 0 (no intervals) or at least 2 replicates")
    return value


Bootstrap = Annotated[int, typer.Option(help="Bootstrap replicates for 95% intervals (0 = none).", callback=bootstrap_count)]


def replicate_count(value: int) -> int:
    """--bootstrap of a command that needs the replicates (advise): at least 2."""
    if value < 2:
        from scaling.errors import FitError

        raise FitError(f"--bootstrap {value}: give at least 2 replicates of the current fit")
    return value


def optional_delta(delta: str | None) -> float | str | None:
    """An optional --delta parsed: None when not given."""
    return None if delta is None else parse_delta(delta)


def delta_option(delta: str | None) -> dict[str, float | str]:
    """An optional --delta as law options: {} when not given (the laws' default), else {"delta": ...}."""
    return {} if delta is None else {"delta": parse_delta(delta)}


def or_spec_delta(fit_options: dict[str, float | str], spec_delta: float | str | None) -> dict[str, float | str]:
    """`delta_option`'s law options, else a spec's `[report] delta` (checked when the spec loaded),
    else {}: a flag overrides the spec, as in `ReportOptions.for_study`."""
    return fit_options if fit_options or spec_delta is None else {"delta": spec_delta}


LawOption = Annotated[Optional[list[str]], typer.Option(
    "--option", help="A law option without its own flag, KEY=VALUE (repeatable), e.g. domain=field, "
                     "per_domain=E,C or max_iter=5000; a wrong KEY lists the law's options.")]
# Options that have their own flag on every fit command: --option would be a second way to set them.
_OWN_FLAGS = {"loss": "--loss", "delta": "--delta", "init": "--init", "seed": "--seed", "fixed": "--fix",
              "tied": "--tie", "asymmetry": "--asymmetry", "n_bootstrap": "--bootstrap"}


def law_options(law: str, items: list[str] | None) -> dict:
    """--option KEY=VALUE pairs as constructor options of `law`, checked against its options
    before anything is read. A VALUE is JSON where it parses (1e-3, true, [1, 2], {"N0": 1}),
    else a comma-separated list where the option's default is a list, else the string itself."""
    import json

    from scaling.errors import FitError
    from scaling.laws.registry import law_class

    if not items:
        return {}
    defaults = law_class(law)().get_params()
    out = {}
    for item in items:
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key or not value:
            raise FitError(f"--option {item!r} must look like KEY=VALUE")
        if key in _OWN_FLAGS:
            raise FitError(f"--option {key}: use {_OWN_FLAGS[key]} instead")
        if key not in defaults:
            allowed = sorted(k for k in defaults if k not in _OWN_FLAGS)
            raise FitError(f"--option {key}: law {law!r} has no such option; its options are: {', '.join(allowed)}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            is_list = isinstance(defaults[key], (list, tuple))
            out[key] = [v.strip() for v in value.split(",") if v.strip()] if is_list else value
    return out
