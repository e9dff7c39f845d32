"""Compute-optimal allocation with its uncertainty: N_opt and tokens per parameter against compute.

The band comes from the bootstrap replicates (every replicate's allocation at every budget,
percentiles across replicates) or from profile likelihood (the profile interval of N_opt at
each budget; D/N follows, being monotone in N_opt at fixed C).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.errors import FitError
from scaling.laws.allocation import ComputeOptimal

if TYPE_CHECKING:
    from scaling.laws.base import Law


def allocation_band(law: "Law", C: np.ndarray, source: Literal["bootstrap", "profile"] = "bootstrap",
                    level: float = 0.95) -> pd.DataFrame:
    """Columns C, N_opt, N_lo, N_hi, tpp, tpp_lo, tpp_hi (tpp = D_opt / N_opt, C = 6 N D)."""
    if not isinstance(law, ComputeOptimal):
        raise FitError(f"{law.name}: no compute-optimal allocation; use a law of N and D such as chinchilla")
    C = np.atleast_1d(np.asarray(C, float))
    if source == "bootstrap":
        t = law.optimal_allocation_ci(C, level)
        n, lo, hi = t["N_opt"].to_numpy(), t["N_lo"].to_numpy(), t["N_hi"].to_numpy()
    elif source == "profile":
        from scaling.laws.profile import profile_allocation

        rows = [profile_allocation(law, float(c), level)["N_opt"] for c in C]
        n, lo, hi = (np.array([r[k] for r in rows]) for k in ("value", "lo", "hi"))
    else:
        raise FitError(f"allocation band source must be 'bootstrap' or 'profile', got {source!r}")
    tpp = lambda m: C / (6.0 * m * m)  # noqa: E731 - D/N at budget C for N = m
    return pd.DataFrame({"C": C, "N_opt": n, "N_lo": lo, "N_hi": hi, "tpp": tpp(n), "tpp_lo": tpp(hi), "tpp_hi": tpp(lo)})


def plot_allocation(law: "Law", C_min: float, C_max: float, source: Literal["bootstrap", "profile"] = "bootstrap",
                    n: int = 12, level: float = 0.95, data_max_compute: float | None = None) -> Figure:
    """Two panels against compute: N_opt with its band, and D/N with its band. Budgets beyond
    `data_max_compute` (the largest run) are extrapolation and drawn dashed."""
    C = np.geomspace(C_min, C_max, n)
    band = allocation_band(law, C, source, level)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, (col, lo, hi, label) in zip(axes, [("N_opt", "N_lo", "N_hi", "N_opt (parameters)"),
                                              ("tpp", "tpp_lo", "tpp_hi", "D_opt / N_opt (tokens per parameter)")]):
        ax.fill_between(band.C, band[lo], band[hi], alpha=0.25, label=f"{int(level * 100)}% band ({source})")
        inside = band.C <= (data_max_compute or np.inf)
        ax.plot(band.C[inside], band[col][inside], "-", color="C0", label="fit")
        if not inside.all():
            k = max(int(inside.sum()) - 1, 0)
            ax.plot(band.C[k:], band[col][k:], "--", color="C0", label="extrapolation")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C = 6 N D (FLOPs)")
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"{law.name}: compute-optimal allocation")
    fig.tight_layout()
    return fig
