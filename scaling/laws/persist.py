"""Saving and loading a fitted law: the JSON form of everything needed to predict again
(options, inputs, parameters, intervals, bootstrap draws, fit figures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scaling.laws.base import Law


class PersistMixin:
    """to_json / from_json / save / load for `Law`."""

    def to_json(self) -> dict[str, Any]:
        """Everything needed to predict again, JSON-ready."""
        self._check_fitted()
        boot = getattr(self, "boot_theta_", None)
        return {
            "law": self.name,
            "options": self.get_params(),
            "x": self.x_,
            "y": self.y_,
            "params": self.params_,
            "theta": [float(v) for v in self.theta_],
            "ci95": {k: [float(a), float(b)] for k, (a, b) in getattr(self, "ci_", {}).items()},
            "objective": self.objective_,
            "converged": self.converged_,
            "n_points": self.n_points_,
            "n_starts": self.n_starts_,
            "n_starts_best": self.n_starts_best_,
            "r2": self.r2_,
            "aic": self.aic_,
            "bic": self.bic_,
            "sigma": self.sigma_,
            "holdout": self.holdout_,
            "boot_theta": None if boot is None else boot.tolist(),
            "bootstrap": getattr(self, "boot_info_", None),
            "weight": getattr(self, "weight_", None),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Law":
        """Rebuild a fitted law from `to_json()` output (dispatches on d["law"] from the base class)."""
        from scaling.laws.base import Law
        from scaling.laws.registry import law_class

        if cls is Law:  # the law's own loader: select and dcpt_cross restore their variants or domains
            return law_class(d["law"]).from_json(d)
        law = cls(**d["options"])
        law.x_, law.y_ = d["x"], d["y"]
        law.theta_ = np.array(d["theta"], float)
        law.params_ = dict(d["params"])
        law.ci_ = {k: tuple(v) for k, v in d.get("ci95", {}).items()}
        for k in ["objective", "converged", "n_points", "n_starts", "n_starts_best", "r2", "aic", "bic", "sigma", "holdout"]:
            setattr(law, k + "_", d[k])
        if d.get("bootstrap") is not None:
            law.boot_info_ = dict(d["bootstrap"])
        if d.get("boot_theta") is not None:
            import pandas as pd

            law.boot_theta_ = np.array(d["boot_theta"], float)
            law.boot_params_ = pd.DataFrame(law.to_natural(law.boot_theta_), columns=law.param_names)
        return law

    def save(self, path: str | Path) -> None:
        from scaling.store import atomic_write_bytes

        atomic_write_bytes(path, json.dumps(self.to_json(), indent=1).encode())

    @classmethod
    def load(cls, path: str | Path) -> "Law":
        return cls.from_json(json.loads(Path(path).read_text()))


__all__ = ["PersistMixin"]
