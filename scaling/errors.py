"""Errors a user can cause. The CLI prints these without a traceback."""

from __future__ import annotations


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
