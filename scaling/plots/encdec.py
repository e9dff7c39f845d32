"""Encoder/decoder allocation figures: iso-loss contours with the optimal-split line, BLEU vs CE."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_encdec_contours(law, df: pd.DataFrame, x: list[str], y: str, split_ci: tuple[float, float] | None = None,
                         levels: int = 12) -> Figure:
    """Iso-loss contours of L(Ne, Nd) over log-spaced sizes, runs coloured by loss, and the
    compute-efficient frontier Ne/Nd = pe/pd (with its bootstrap band when given)."""
    ne, nd = df[x[0]].to_numpy(float), df[x[1]].to_numpy(float)
    e = np.geomspace(ne.min() / 2, ne.max() * 4, 80)
    d = np.geomspace(nd.min() / 2, nd.max() * 4, 80)
    E, D = np.meshgrid(e, d)
    Z = law.predict(np.column_stack([E.ravel(), D.ravel()])).reshape(E.shape)
    fig = Figure(figsize=(6, 4.8))
    ax = fig.add_subplot()
    cs = ax.contour(E, D, Z, levels=levels, cmap="viridis", linewidths=0.9)
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    sc = ax.scatter(ne, nd, c=df[y], cmap="viridis", edgecolor="k", s=40, zorder=3, label="runs")
    fig.colorbar(sc, ax=ax, label=y)
    pe, pd_ = law.params_["pe"], law.params_["pd"]
    if pe > 0 and pd_ > 0:  # otherwise the optimum is a corner: all parameters on one side
        ratio = pe / pd_
        ax.plot(e, e / ratio, "r-", lw=1.5, label=f"optimal split Ne/Nd = pe/pd = {ratio:.2f}")
    if split_ci is not None and split_ci[1] > 0 and split_ci[0] < 1:  # split_ci is the encoder fraction f = pe/(pe+pd); Nd = Ne(1-f)/f
        lo, hi = max(split_ci[0], 1e-9), min(split_ci[1], 1 - 1e-9)  # a share of exactly 0 or 1 is an axis
        ax.fill_between(e, e * (1 - hi) / hi, e * (1 - lo) / lo, color="r", alpha=0.12, label="95% band")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(e[0], e[-1])
    ax.set_ylim(d[0], d[-1])
    ax.set_xlabel(f"encoder non-embedding parameters ({x[0]})")
    ax.set_ylabel(f"decoder non-embedding parameters ({x[1]})")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def plot_bleu_vs_ce(df: pd.DataFrame, pairs: list[tuple[str, str]], laws: dict[str, object] | None = None) -> Figure:
    """BLEU against cross-entropy per eval set, with the fitted BLEU = C·exp(k·CE) where given."""
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for ce_col, bleu_col in pairs:
        pts = ax.scatter(df[ce_col], df[bleu_col], s=25, label=bleu_col[len("bleu_"):])
        law = (laws or {}).get(bleu_col)
        if law is not None:
            grid = np.linspace(df[ce_col].min() * 0.95, df[ce_col].max() * 1.05, 100)
            ax.plot(grid, law.predict(grid[:, None]), color=pts.get_facecolor()[0], lw=1.2)
    ax.set_xlabel("cross-entropy (nats/token)")
    ax.set_ylabel("BLEU")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    return fig


def plot_composition(df: pd.DataFrame, sets: list[tuple[str, str | None, str | None]], x: str = "n_params_nonemb") -> Figure:
    """Composition bias: excess loss over each eval set's Bayes loss (left) and BLEU (right)
    against model size, one series per eval set. `sets`: (loss column, Bayes column or None,
    BLEU column or None)."""
    from scaling.plots.style import log_axis

    fig = Figure(figsize=(9, 3.8))
    ax_l, ax_b = fig.subplots(1, 2)
    d = df.sort_values(x)
    for loss_col, bayes_col, bleu_col in sets:
        name = loss_col[len("loss_"):]
        excess = d[loss_col] - (d[bayes_col] if bayes_col else 0.0)
        ax_l.plot(d[x], excess, "o-", ms=4, lw=1, label=name)
        if bleu_col:
            ax_b.plot(d[x], d[bleu_col], "o-", ms=4, lw=1, label=name)
    ax_l.set_xscale("log")
    ax_l.set_xlabel(f"non-embedding parameters ({x})")
    ax_l.set_ylabel("eval loss minus Bayes loss (nats/token)")
    log_axis(ax_l, "y")
    ax_b.set_xscale("log")
    ax_b.set_xlabel(f"non-embedding parameters ({x})")
    ax_b.set_ylabel("BLEU (greedy)")
    for ax in (ax_l, ax_b):
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
