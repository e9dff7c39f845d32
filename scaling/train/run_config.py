"""RunConfig: one concrete training run, with a stable id derived from its content."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class RunConfig:
    study: str
    family: str
    model: dict[str, Any]
    """Concrete model shape: keyword arguments of the family's model config (vocab size comes from data)."""
    data: dict[str, Any]
    train: dict[str, Any]
    """Training settings with the budget resolved to `steps`."""
    seed: int = 0
    parent: str | None = None
    """Run id whose final weights initialise this run (continual pre-training); it runs first."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Family-specific values (e.g. the CPT domain share) recorded as `extra.*` columns."""
    label: str = ""
    """Human-readable name, e.g. 'd64-L2'; not part of the id."""

    @property
    def run_id(self) -> str:
        """Stable hash of everything that changes what is trained (not the study name or label)."""
        d = self.to_dict()
        for k in ("study", "label"):
            d.pop(k)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return cls(**d)

    def flat(self) -> dict[str, Any]:
        """Config values as flat dotted columns for runs.parquet (lists/dicts become JSON strings)."""
        out: dict[str, Any] = {"run_id": self.run_id, "study": self.study, "family": self.family,
                               "label": self.label, "seed": self.seed, "parent": self.parent or ""}
        for section in ("model", "data", "train", "extra"):
            for k, v in _flatten(getattr(self, section)).items():
                out[f"{section}.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
        return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
