"""Scaling laws: one shared fitting engine, one module per family of laws.

Names are imported on first use (PEP 562), so `from scaling.laws import get_law` does not load
torch or every law module: a fit that needs neither stays fast to start."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FitWarning": "fitting", "Law": "base", "Param": "base",
    "BleuCELaw": "bleu", "BleuLogLaw": "bleu",
    "ChinchillaLaw": "chinchilla", "ComputeOptimal": "allocation",
    "KaplanLaw": "kaplan", "KAPLAN_2020": "kaplan",
    "DCPTAdditiveLaw": "dcpt", "DCPTChinchillaLaw": "dcpt", "DCPTLaw": "dcpt", "compare_laws": "dcpt_compare",
    "loss_vs_share_curves": "dcpt_share", "optimal_domain_share": "dcpt_share",
    "EncDecLaw": "encdec",
    "BatchResult": "engine", "EngineOptions": "engine", "MultiStartResult": "engine", "minimize_batched": "engine",
    "multistart": "engine",
    "PowerLaw": "power", "PowerLawNoConst": "power",
    "BrokenPowerLaw": "broken",
    "DataConstrainedLaw": "data_constrained", "MUENNIGHOFF_2023": "data_constrained",
    "ComputeFrontier": "frontier",
    "IsoFlopLaw": "isoflop",
    "approach_agreement": "agreement", "compare_forms": "agreement",
    "LAWS": "registry", "available_laws": "registry", "get_law": "registry", "law_class": "registry",
    "register_law": "registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'scaling.laws' has no attribute {name!r}")
    module = importlib.import_module(f"scaling.laws.{_WHERE[name]}")
    if name == "LAWS":
        module._discover()  # the full table of laws: every law module registered
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
