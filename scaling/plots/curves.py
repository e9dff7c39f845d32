"""Learning curves of a study: eval loss against tokens per run, with the Bayes loss."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.plots.style import log_loss_axis


def plot_curves(curves: pd.DataFrame, runs: pd.DataFrame, eval_set: str | None = None,
                x: str = "tokens") -> Figure:
    """One line per run (coloured by size) on log-log axes; dotted line at the exact Bayes loss."""
    eval_set = eval_set or str(curves.eval_set.iloc[0])
    part = curves[(curves.eval_set == eval_set) & (curves[x] > 0)]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    size_col = "n_params_nonemb" if "n_params_nonemb" in runs else "n_params"
    sizes = runs.set_index("run_id")[size_col] if size_col in runs else pd.Series(dtype=float)
    order = sorted(part.run_id.unique(), key=lambda r: sizes.get(r, 0))
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(1, len(order))))
    labels = runs.set_index("run_id")["label"] if "label" in runs else pd.Series(dtype=str)
    for color, run_id in zip(colors, order):
        c = part[part.run_id == run_id].sort_values(x)
        label = f"{labels.get(run_id, run_id)} ({sizes.get(run_id, float('nan')):.3g})"
        ax.plot(c[x], c["loss"], color=color, lw=1.3, label=label)
    col = "bayes_" + "".join(ch if ch.isalnum() else "_" for ch in eval_set)
    if col in runs and runs[col].notna().any():
        ax.axhline(float(runs[col].mean()), color="0.3", ls=":", lw=1, label="exact Bayes loss")
    ax.set_xscale("log")
    log_loss_axis(ax)
    ax.set_xlabel(x)
    ax.set_ylabel(f"loss on {eval_set}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2)
    return fig
