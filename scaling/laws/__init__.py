"""Scaling laws: one shared fitting engine, one module per family of laws."""

from scaling.laws.base import FitWarning, Law, Param
from scaling.laws.broken import BrokenPowerLaw
from scaling.laws.data_constrained import MUENNIGHOFF_2023, DataConstrainedLaw
from scaling.laws.bleu import BleuCELaw, BleuLogLaw
from scaling.laws.chinchilla import ChinchillaLaw
from scaling.laws.dcpt import (DCPTAdditiveLaw, DCPTChinchillaLaw, DCPTLaw, compare_laws, loss_vs_share_curves,
                               optimal_domain_share)
from scaling.laws.encdec import EncDecLaw
from scaling.laws.engine import BatchResult, EngineOptions, MultiStartResult, minimize_batched, multistart
from scaling.laws.power import PowerLaw, PowerLawNoConst
from scaling.laws.frontier import ComputeFrontier
from scaling.laws.registry import LAWS, available_laws, get_law, law_class, register_law

__all__ = [
    "LAWS",
    "BatchResult",
    "BleuCELaw",
    "BrokenPowerLaw",
    "DataConstrainedLaw",
    "MUENNIGHOFF_2023",
    "BleuLogLaw",
    "ChinchillaLaw",
    "DCPTAdditiveLaw",
    "DCPTChinchillaLaw",
    "DCPTLaw",
    "EncDecLaw",
    "ComputeFrontier",
    "EngineOptions",
    "FitWarning",
    "MultiStartResult",
    "Law",
    "Param",
    "PowerLaw",
    "PowerLawNoConst",
    "available_laws",
    "compare_laws",
    "loss_vs_share_curves",
    "optimal_domain_share",
    "get_law",
    "law_class",
    "minimize_batched",
    "multistart",
    "register_law",
]
