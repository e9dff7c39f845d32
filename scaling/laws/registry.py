"""Registry of laws by name: `get_law("chinchilla", loss="huber")`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from scaling.errors import FitError

if TYPE_CHECKING:
    from scaling.laws.base import Law

LAWS: dict[str, type["Law"]] = {}
T = TypeVar("T")


def register_law(cls: T) -> T:
    """Class decorator: make a Law subclass available under its `name`."""
    LAWS[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def get_law(name: str, **options: Any) -> "Law":
    """An unfitted law by registry name, with constructor options."""
    if name not in LAWS:
        raise FitError(f"unknown law {name!r}; available laws: {sorted(LAWS)}")
    return LAWS[name](**options)
