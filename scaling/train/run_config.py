"""RunConfig: one concrete training run, with a stable id derived from what changes its result.

The id rule lives here and only here: `run_id` hashes the config minus the study name and
label, minus the operational `[train]` keys below, minus `[train]` keys left unset (None), so
that adding an optional key later never renames existing runs. Stores written under the first
scheme (a hash of the whole dict) are renamed once on load by `scaling.store`, not retrained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

OPERATIONAL_TRAIN_KEYS = frozenset({
    "device",            # where a run trains; the experiment is the same on CPU and GPU
    "threads",           # torch threads per run: speed only
    "checkpoint_every",  # resume is exact (batches are a function of step and seed), so cadence is bookkeeping
    "loss_impl",         # chunked / torch / triton compute the same loss, tested against each other
    "compile",           # torch.compile of the same graph
    "micro_batch_size",  # gradient accumulation over the same batch_size sequences per optimiser step
    "nproc",             # data-parallel processes sharing the same global batch
    "keep_final",        # whether final weights are kept on disk
})
"""[train] keys that change how a run executes, not what it trains or records: not in the run id.

Not operational, on purpose: `eval_points` (it changes which steps the stored curve holds; a
run re-asked for a denser curve must produce it rather than be skipped with the old one) and
every optimiser, schedule and budget key. The budget enters as resolved `steps`; `flops`, the
IsoFLOP budget label a run was sized from, stays in so each budget's runs are its own.
"""


def _hash(d: dict[str, Any]) -> str:
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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
        """Stable hash of what changes the result: see OPERATIONAL_TRAIN_KEYS and the module docstring."""
        d = self.to_dict()
        for k in ("study", "label"):
            d.pop(k)
        d["train"] = {k: v for k, v in d["train"].items() if k not in OPERATIONAL_TRAIN_KEYS and v is not None}
        return _hash(d)

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
