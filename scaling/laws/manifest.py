"""Fit manifest: everything needed to judge or redo a fit, written beside every saved fit.

Form and parameterisation, objective (loss, delta, sum or mean), optimiser status and bound
hits per start, the start grid, dropped points and why, counting conventions, the
uncertainty method, the package version and a hash of the data the law was fitted to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scaling.laws.engine import STATUS

if TYPE_CHECKING:
    from scaling.laws.base import Law


def data_hash(law: "Law") -> str:
    """sha256 of the fitted inputs, targets and weights (float64 bytes, row order kept)."""
    h = hashlib.sha256()
    for a in (law._F, law._t, getattr(law, "_w", None)):
        if a is not None:
            h.update(np.ascontiguousarray(a.numpy(), dtype=np.float64).tobytes())
    return h.hexdigest()


def _starts(law: "Law") -> dict[str, Any]:
    if getattr(law, "_screen", None) is None:  # variable projection: an exponent grid, no per-start screen
        return {"solver": getattr(law, "solver_", "varpro"), "n_starts": int(law.n_starts_),
                "n_starts_best": int(law.n_starts_best_), "converged": bool(law.converged_),
                "at_bounds": list(law.at_bounds_)}
    screen, (lo, hi) = law._screen, law._box
    names = _start_names(law)
    hit = (screen.theta <= lo) | (screen.theta >= hi)
    pinned = lo == hi
    hit[:, pinned] = False
    status = screen.status.tolist()
    return {
        "n_starts": len(status),
        "status_counts": {STATUS[s]: int(c) for s, c in zip(*np.unique(status, return_counts=True))},
        "bound_hit_counts": {names[j]: int(hit[:, j].sum()) for j in range(len(names)) if not pinned[j]},
        # Per start (screening pass): engine status code (keys of "status_codes") and a bitmask of
        # the free coordinates at a bound (bit j = coordinate j of "coordinates").
        "per_start": {"status": status, "bound_hits": (hit * (1 << np.arange(hit.shape[1]))).sum(1).tolist()},
        "coordinates": names,
        "status_codes": {str(k): v for k, v in STATUS.items()},
    }


def fit_manifest(law: "Law", dropped: list[dict[str, Any]] | None = None, counting: dict[str, Any] | None = None,
                 source: str | None = None) -> dict[str, Any]:
    """The manifest of a fitted law (fitted in this process: loaded laws keep no data).

    dropped: [{"rule": "--where N > 1e8", "n": 12}, ...]; counting: conventions of the inputs
    (e.g. {"N": "non-embedding parameters", "C": "6ND"})."""
    import scaling

    law._check_fitted()
    # The grid engine keeps every start's screening result; variable projection profiles an
    # exponent grid instead (n_starts_ points, coefficients solved exactly) and has none.
    grid = law._screen.theta if getattr(law, "_screen", None) is not None else None
    uncert: dict[str, Any] = {"method": getattr(law, "ci_method_", None) or ("bootstrap" if getattr(law, "boot_info_", None) else None)}
    if getattr(law, "boot_info_", None):
        uncert["bootstrap"] = dict(law.boot_info_)
    if getattr(law, "profile_", None):
        uncert["profile"] = {"test": "robust likelihood ratio (Schrader-Hettmansperger), chi2_1", "level": 0.95,
                             "open_sides": [k for k, v in law.profile_.items() if v["lo_open"] or v["hi_open"]]}
    out = {
        "law": law.name,
        "form": {
            "formula": (type(law).__doc__ or "").strip().splitlines()[0],
            "x": law.x_, "y": law.y_, "scale": law.fit_scale, "log_inputs": law.log_inputs,
            "params": [{"name": p.name, "lower": p.lower, "upper": p.upper, "log": p.log} for p in law.params],
            "fixed": law.fixed or {}, "tied": law.tied or {}, "constants": law.const,
        },
        "objective": {"loss": law.loss, "delta": law.delta, "delta_used": float(law.delta_), "reduction": law.reduction,
                      "asymmetry": law.asymmetry if law.loss == "asymmetric" else None,
                      "weight": getattr(law, "weight_", None), "value": law.objective_},
        "optimizer": {"solver": getattr(law, "solver_", None), "converged": law.converged_, "n_iter": law.n_iter_,
                      "at_bounds": law.at_bounds_,
                      "n_starts_best": law.n_starts_best_, **(_starts(law) if grid is not None else {})},
        "start_grid": {"init": law.init, "n_starts": law.n_starts_,
                       "min": None if grid is None else dict(zip(_start_names(law), law._theta0.min(0).tolist())),
                       "max": None if grid is None else dict(zip(_start_names(law), law._theta0.max(0).tolist())),
                       "space": ("optimiser (log of log-scaled parameters)" if grid is not None else
                                 "exponents only (variable projection: linear coefficients solved per grid point)")},
        "dropped": list(dropped or []),
        "counting": dict(counting or {}),
        "uncertainty": uncert,
        "version": scaling.__version__,
        "n_points": law.n_points_,
        "data_sha256": data_hash(law) if hasattr(law, "_F") else None,
        "source": source,
    }
    return out


def _start_names(law: "Law") -> list[str]:
    # [Q, P]: which parameters each free coordinate moves ("alpha=beta" when tied)
    free = law._from_free(np.eye(len(law._box[0])))
    return ["=".join(n for n, f in zip(law.param_names, col) if f) for col in free]


def manifest_path(save: str | Path) -> Path:
    """Where the manifest of a fit saved at `save` goes: fit.json -> fit.manifest.json."""
    p = Path(save)
    return p.with_name(p.stem + ".manifest.json")


def write_manifest(law: "Law", path: str | Path, **kwargs: Any) -> Path:
    """Write fit_manifest(law, **kwargs) atomically to `path`; returns the path."""
    from scaling.store import atomic_write_json

    atomic_write_json(Path(path), fit_manifest(law, **kwargs))
    return Path(path)
