"""Registry of laws by name: `get_law("chinchilla", loss="huber")`.

A law module registers its classes with `@register_law`; modules of this package are
discovered on first lookup of an unknown name, so adding a law is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any, TypeVar

from scaling.errors import FitError, did_you_mean

if TYPE_CHECKING:
    from scaling.laws.base import Law

LAWS: dict[str, type["Law"]] = {}
T = TypeVar("T")
_discovered = False


def register_law(cls: T) -> T:
    """Class decorator: make a Law subclass available under its `name`."""
    LAWS[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import scaling.laws as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"scaling.laws.{mod.name}")
    _discovered = True


def available_laws() -> list[str]:
    """Names of every law in the package (imports all law modules)."""
    _discover()
    return sorted(LAWS)


def law_class(name: str) -> type["Law"]:
    """The Law subclass registered under `name` (its own module first: importing every law
    module would load torch for laws that do not need it)."""
    if name not in LAWS and name.isidentifier():
        try:
            importlib.import_module(f"scaling.laws.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"scaling.laws.{name}":
                raise
    if name not in LAWS:
        _discover()
    if name not in LAWS:
        raise FitError(f"unknown law {name!r}{did_you_mean(name, LAWS)}; the laws are: {', '.join(sorted(LAWS))}")
    return LAWS[name]


def get_law(name: str, **options: Any) -> "Law":
    """An unfitted law by registry name, with constructor options."""
    return law_class(name)(**options)
