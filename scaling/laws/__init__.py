"""Scaling laws: one shared fitting engine, one module per family of laws."""

from scaling.laws.base import FitWarning, Law, Param
from scaling.laws.chinchilla import ChinchillaLaw
from scaling.laws.engine import BatchResult, EngineOptions, minimize_batched
from scaling.laws.power import PowerLaw
from scaling.laws.registry import LAWS, get_law, register_law

__all__ = [
    "LAWS",
    "BatchResult",
    "ChinchillaLaw",
    "EngineOptions",
    "FitWarning",
    "Law",
    "Param",
    "PowerLaw",
    "get_law",
    "minimize_batched",
    "register_law",
]
