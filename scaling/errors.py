"""Errors a user can cause. The CLI prints these without a traceback."""

from __future__ import annotations

from collections.abc import Iterable


class ScalingError(Exception):
    """Base class: a problem the user can fix (bad spec, bad data, too few points)."""


class SpecError(ScalingError):
    """A study spec is malformed; the message names the file, the key and what was expected."""


class DataError(ScalingError):
    """Input data is unusable: missing column, NaN, non-positive value where a log is taken."""


class FitError(ScalingError):
    """A law cannot be fitted to the data given (for example, fewer points than parameters)."""


class DivergedError(ScalingError):
    """Training produced a NaN or inf loss."""


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """" (did you mean `x`?)" for the closest of `choices` to a misspelt `word`, else "": appended
    to every "unknown key / option / column / law" message, so a typo names its fix."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
