"""Options shared by several commands: declared and validated in one place."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Delta = Annotated[str, typer.Option(help="Huber delta (a number), or 'auto': from the residuals of a first fit.")]
# The commands that fit as one step among others (report, demo, advise, grid run --advise): not
# given, their laws keep their own default.
OptionalDelta = Annotated[Optional[str], typer.Option(
    help="Huber delta of the fits: a number, or 'auto' (from the residuals); default the laws' 1e-3.")]


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


def bootstrap_count(value: int) -> int:
    """--bootstrap (a typer callback): 0 (no intervals) or at least 2 replicates, named before
    anything is read or fitted."""
    if value < 0 or value == 1:
        from scaling.errors import FitError

        raise FitError(f"--bootstrap {value}: give 0 (no intervals) or at least 2 replicates")
    return value


def replicate_count(value: int) -> int:
    """--bootstrap of a command that needs the replicates (advise): at least 2."""
    if value < 2:
        from scaling.errors import FitError

        raise FitError(f"--bootstrap {value}: give at least 2 replicates of the current fit")
    return value


def delta_option(delta: str | None) -> dict[str, float | str]:
    """An optional --delta as law options: {} when not given (the laws' default), else {"delta": ...}."""
    return {} if delta is None else {"delta": parse_delta(delta)}
