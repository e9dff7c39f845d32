"""The advised runs on the loss-vs-compute plot, beside the runs done so far."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.plots.style import log_axis, log_loss_axis


def plot_advice(done: pd.DataFrame, advised: pd.DataFrame, y: str = "loss", compute: str = "flops") -> Figure:
    """Done runs as dots; advised runs at their predicted loss with its 95% band (bootstrap of the
    current fit), numbered in the order they were chosen."""
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    ax.scatter(done[compute], done[y], color="C0", s=22, label="runs done", zorder=3)
    if len(advised):
        err = np.vstack([advised["pred"] - advised["lo"], advised["hi"] - advised["pred"]])
        ax.errorbar(advised[compute], advised["pred"], yerr=np.maximum(err, 0), fmt="^", color="C3", mfc="white",
                    ms=7, capsize=3, label="advised (predicted, 95% band)", zorder=4)
        for i, (c, p) in enumerate(zip(advised[compute], advised["pred"]), 1):
            ax.annotate(str(i), (c, p), textcoords="offset points", xytext=(5, 4), fontsize=7, color="C3")
    log_axis(ax, "x")
    log_loss_axis(ax)
    ax.set_xlabel(f"training compute ({compute}, FLOPs)")
    ax.set_ylabel(y)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title("Runs done and the runs advised next", fontsize=9)
    return fig
