"""CPT figures: measured and fitted loss against the domain share, per model size and CPT budget."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.laws.base import Law

_ROLES = (("domain", "r", "domain validation loss"), ("general", "r_general", "general validation loss"))


def plot_loss_vs_share(table: pd.DataFrame, laws: dict[str, Law] | None = None,
                       held_out: np.ndarray | None = None) -> Figure:
    """Two panels (domain loss, general loss) against the domain share.

    `table` has columns N, D, r, r_general, loss_domain, loss_general and base_loss_*; one
    colour per size, one line style per D. `laws` maps "domain"/"general" to fitted CPT laws
    (x = [N, D, share of that loss]) drawn as lines; `held_out` marks rows left out of those
    fits (hollow markers). Dotted: each size's base model loss (the CPT starting point).
    """
    held_out = np.zeros(len(table), bool) if held_out is None else np.asarray(held_out, bool)
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2)
    sizes = sorted(table.N.unique())
    budgets = sorted(table.D.unique())
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, max(1, len(sizes))))
    styles = ["-", "--", "-.", ":"]
    grid = np.linspace(0.0, 1.0, 101)
    for ax, (role, share_col, ylabel) in zip(axes, _ROLES):
        for color, n in zip(colors, sizes):
            at_n = table.N == n
            base = table.loc[at_n, f"base_loss_{role}"].mean()
            if np.isfinite(base):
                ax.axhline(base, color=color, ls=":", lw=0.9)
            for k, d in enumerate(budgets):
                rows = (at_n & (table.D == d)).to_numpy()
                part = table[rows]
                if part.empty:
                    continue
                fit_rows, held_rows = rows & ~held_out, rows & held_out
                ax.plot(table.r[fit_rows], table[f"loss_{role}"][fit_rows], "o", color=color, ms=4.5)
                ax.plot(table.r[held_rows], table[f"loss_{role}"][held_rows], "o", mfc="none", color=color, ms=7)
                if laws and role in laws:
                    x = grid if share_col == "r" else 1.0 - grid
                    pred = laws[role].predict(np.stack([np.full_like(grid, n), np.full_like(grid, d), x], axis=1))
                    ax.plot(grid, pred, styles[k % len(styles)], color=color, lw=1.2,
                            label=f"N={n:.3g}, D={d:.3g}")
        ax.set_xlabel("domain share r")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.25)
    axes[0].legend(fontsize=7, ncol=1)
    fig.suptitle("filled: fitted runs; hollow: held out; lines: law; dotted: base model", fontsize=9)
    return fig


def plot_share_choice(curves: pd.DataFrame, general_limit: float, share: float, lo: float, hi: float,
                      title: str = "") -> Figure:
    """Predicted domain and general loss against r at one (N, D), the general-loss limit and
    the recommended share with its bootstrap interval (from `loss_vs_share_curves`)."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    s = curves.domain_share
    for ax, role, color in ((axes[0], "domain", "C0"), (axes[1], "general", "C1")):
        ax.plot(s, curves[f"{role}_loss"], color=color, lw=1.5, label=f"predicted {role} loss")
        if curves[f"{role}_lo"].notna().all():
            ax.fill_between(s, curves[f"{role}_lo"], curves[f"{role}_hi"], color=color, alpha=0.2, label="95% band")
        if np.isfinite(share):
            ax.axvline(share, color="k", lw=1, label=f"recommended r = {share:.3f}")
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="0.5", alpha=0.15, label="95% interval of r")
        ax.set_xlabel("domain share r")
        ax.set_ylabel(f"{role} loss")
        ax.grid(True, alpha=0.25)
    axes[1].axhline(general_limit, color="C3", ls="--", lw=1, label="general-loss limit")
    for ax in axes:
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_rewarm_tradeoff(cells: pd.DataFrame) -> Figure:
    """Re-warming against a constant continuation LR: domain loss gained against general loss
    forgotten, one point per (schedule, domain, D, r) cell (mean over sizes and seeds) with its
    95% interval bars; one colour per schedule, one marker per domain, a line per (schedule,
    domain, D) through its shares. `cells` has schedule, domain, D, r, gain, gain_lo, gain_hi,
    forgetting, forgetting_lo, forgetting_hi (NaN bounds: no bar)."""
    fig = Figure(figsize=(7.5, 5.0))
    ax = fig.subplots()
    schedules = sorted(cells.schedule.unique())
    domains = sorted(cells.domain.unique())
    colors = dict(zip(schedules, matplotlib.colormaps["tab10"](np.arange(len(schedules)))))
    markers = dict(zip(domains, "osD^vP*X"))
    budgets = sorted(cells.D.unique())
    styles = dict(zip(budgets, ["-", "--", "-.", ":"] * 4))
    for (s, d, dd), part in cells.groupby(["schedule", "domain", "D"]):
        part = part.sort_values("r")
        ax.plot(part.forgetting, part.gain, color=colors[s], ls=styles[dd], lw=0.8, alpha=0.6)
        xerr = np.abs(np.vstack([part.forgetting - part.forgetting_lo, part.forgetting_hi - part.forgetting]))
        yerr = np.abs(np.vstack([part.gain - part.gain_lo, part.gain_hi - part.gain]))
        ax.errorbar(part.forgetting, part.gain, xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr), fmt=markers[d],
                    color=colors[s], ms=5, lw=0.6, capsize=2)
    for s in schedules:
        ax.plot([], [], "s", color=colors[s], label=f"schedule {s}")
    for d in domains:
        ax.plot([], [], markers[d], color="0.3", label=f"domain {d}")
    for dd in budgets:
        ax.plot([], [], color="0.3", ls=styles[dd], label=f"D = {dd:.3g}")
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("general loss forgotten (final − base model's), nats")
    ax.set_ylabel("domain loss gained (base model's − final), nats")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig
