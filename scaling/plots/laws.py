"""Figures of fitted laws: prediction with extrapolation and band, residuals, iso-loss, frontier.

Conventions: log-log axes; the fit drawn solid over the training range and dashed where it
extrapolates; held-out points as hollow red markers; bootstrap bands with fill_between.
Figures are built with matplotlib.figure.Figure (no pyplot state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.errors import FitError
from scaling.laws.allocation import ComputeOptimal
from scaling.laws.validation import holdout_mask
from scaling.plots.style import log_axis, log_loss_axis

if TYPE_CHECKING:
    from scaling.laws.base import Law
    from scaling.laws.frontier import ComputeFrontier


def _holdout(law: "Law", df: pd.DataFrame, holdout: str | float | None) -> np.ndarray:
    """Rows held out of the fit: from `holdout`, else from the law's own holdout_ record."""
    if holdout is None:
        h = getattr(law, "holdout_", None) or {}
        # a law that saw every row (fit_and_check's full fit) has nothing held out of it
        holdout = h.get("split") if h.get("n_train") == getattr(law, "n_points_", None) else None
    spec = holdout
    if spec is None or str(spec).lower() in ("", "none"):
        return np.zeros(len(df), bool)
    return holdout_mask(df, spec, law.x_[0])[0]


def _series(law: "Law", df: pd.DataFrame, ax_x: str, max_series: int) -> list[tuple[str, dict[str, float], np.ndarray]]:
    """(label, values of the other inputs, row mask) per curve: distinct values, or log bins; for a
    law that reads a label column (select's variant, dcpt_cross's domain), one curve per label,
    the other inputs at their medians within it."""
    others = [c for c in law.x_ if c != ax_x]
    labels = [c for c in law.extra_columns if c in df.columns and not pd.api.types.is_numeric_dtype(df[c])]
    if labels:
        counts = df[labels[0]].value_counts()
        out = []
        for val in counts.index[:max_series]:
            m = (df[labels[0]] == val).to_numpy()
            fixed = {c: float(np.median(df.loc[m, c])) for c in others + [c for c in law.extra_columns if c not in labels]}
            out.append((f"{labels[0]} = {val}", {labels[0]: val, **fixed}, m))
        return out
    if not others:
        return [("fit", {}, np.ones(len(df), bool))]
    other = others[0]
    v = df[other].to_numpy(float)
    distinct = np.unique(v)
    if len(distinct) > 4 * max_series and ax_x == law.x_[0] and len(law.x_) == 2:
        iso = _isoflop_series(law, df, max_series)
        if iso:
            return iso
    if len(distinct) <= max_series:
        groups = [(val, v == val) for val in distinct]
    elif len(distinct) <= 4 * max_series:
        # a few more levels than curves (a ladder of budgets): curves at levels spread by rank, each
        # through its own points; a curve at a bin's mean would pass between two levels' points
        pick = np.unique(np.round(np.linspace(0, len(distinct) - 1, max_series)).astype(int))
        groups = [(distinct[k], v == distinct[k]) for k in pick]
    else:
        edges = np.quantile(np.log(v), np.linspace(0, 1, max_series + 1))
        idx = np.clip(np.searchsorted(edges, np.log(v), side="right") - 1, 0, max_series - 1)
        groups = [(float(np.exp(np.log(v[idx == k]).mean())), idx == k) for k in range(max_series) if (idx == k).any()]
    out = []
    for val, m in groups:
        fixed = {other: val}
        for c in others[1:]:  # any further inputs: their median within the series
            fixed[c] = float(np.median(df.loc[m, c]))
        same = bool(np.all(v[m] == val))  # one level of the input, not a bin of several
        out.append((f"{other} {'=' if same else '≈'} {val:.3g}", fixed, m))
    return out


ISO_GAP = np.log(1.25)  # compute levels further apart than 25% are different budgets


def _isoflop_series(law: "Law", df: pd.DataFrame, max_series: int) -> list[tuple[str, dict, np.ndarray]]:
    """IsoFLOP profiles (a few compute budgets, N and D varying along each): one curve per budget,
    L(N, C / 6N) along N, each through its own points; binning D instead would draw curves at
    token counts the points only straddle. Empty when the rows are not such profiles."""
    if not isinstance(law, ComputeOptimal):
        return []
    n, d = (df[c].to_numpy(float) for c in law.x_)
    lc = np.log(6.0 * n * d)
    order = np.argsort(lc)
    level = np.empty(len(lc), int)
    level[order] = np.concatenate([[0], np.cumsum(np.diff(lc[order]) > ISO_GAP)])
    counts = np.bincount(level)
    if not 2 <= len(counts) <= 4 * max_series or counts.min() < 3:
        return []
    pick = np.unique(np.round(np.linspace(0, len(counts) - 1, min(max_series, len(counts)))).astype(int))
    out = []
    for k in pick:
        m = level == k
        c = float(np.exp(lc[m].mean()))
        out.append((f"C = 6ND ≈ {c:.2g}", {law.x_[1]: lambda grid, c=c: c / (6.0 * grid)}, m))
    return out


def plot_fit(
    law: "Law",
    df: pd.DataFrame,
    ax_x: str | None = None,
    holdout: str | float | None = None,
    extrapolate_to: float | None = None,
    level: float = 0.95,
    max_series: int = 6,
    title: str | None = None,
) -> Figure:
    """Data and fitted law against `ax_x` (default: first x), one curve per value of the other input.

    Solid over the training range, dashed beyond it (up to the largest point or `extrapolate_to`);
    a bootstrap confidence band when the law has one; held-out points hollow and red.

    `holdout` names the rows `law` was fitted without (default: those of its own `holdout_`, but
    only when the law itself was fitted without them; a full fit from `fit_and_check` carries its
    check's record and marks nothing). `title` says which fit this is; the figure's title adds
    the number of points and the parameters."""
    law._check_fitted()
    ax_x = ax_x or law.x_[0]
    if ax_x not in law.x_:
        raise FitError(f"plot_fit: ax_x {ax_x!r} is not one of the law's inputs {law.x_}")
    held = _holdout(law, df, holdout)
    x_all = df[ax_x].to_numpy(float)
    y_all = df[law.y_].to_numpy(float)
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    series = _series(law, df, ax_x, max_series)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, len(series)))
    train_hi = x_all[~held].max() if (~held).any() else x_all.max()
    top = max(x_all.max(), extrapolate_to or 0.0)
    has_band = getattr(law, "boot_theta_", None) is not None
    for (label, fixed, m), color in zip(series, colors):
        xs = x_all[m]
        grid = np.geomspace(xs.min(), max(top, xs.max()), 120)
        profile = any(callable(f) for f in fixed.values())
        if profile:  # an IsoFLOP profile: solid over its fitted sizes, dashed a little beyond them
            fitted = xs[~held[m]] if (~held[m]).any() else xs
            lo, hi = fitted.min(), fitted.max()
            grid = np.unique(np.concatenate([np.geomspace(lo / 1.5, lo, 15), np.geomspace(lo, hi, 90),
                                             np.geomspace(hi, max(hi, xs.max()) * 1.5, 15)]))
        # fixed values broadcast along the grid; a function of it (an IsoFLOP profile's D = C / 6N) is applied
        frame = pd.DataFrame({ax_x: grid, **{k: f(grid) if callable(f) else f for k, f in fixed.items()}})
        frame = frame[law.x_ + [c for c in law.extra_columns if c in frame.columns]]
        pred = law.predict(frame)
        inside = grid <= train_hi
        if profile:
            inside = (grid >= lo) & (grid <= hi)
        ax.plot(grid[inside], pred[inside], "-", color=color, lw=1.6, label=label if fixed else "fit")
        for part in (grid < grid[inside].min(), grid > grid[inside].max()) if inside.any() else (~inside,):
            if part.any():  # dashed where the law extrapolates, joined to the solid part
                k = np.flatnonzero(part)
                span = slice(max(k[0] - 1, 0), min(k[-1] + 2, len(grid)))
                ax.plot(grid[span], pred[span], "--", color=color, lw=1.6)
        if has_band:
            band = law.predict_interval(frame, level=level)
            ax.fill_between(grid, band["lo"], band["hi"], color=color, alpha=0.18, lw=0)
        ax.scatter(x_all[m & ~held], y_all[m & ~held], color=color, s=18, zorder=3)
    rest = ~np.logical_or.reduce([m for _, _, m in series]) & ~held
    if rest.any():
        ax.scatter(x_all[rest], y_all[rest], color="0.7", s=12, zorder=2, label="other levels (no curve)")
    if held.any():
        ax.scatter(x_all[held], y_all[held], facecolors="none", edgecolors="red", s=60, lw=1.5, zorder=4, label="held out")
    ax.plot([], [], "k--", lw=1.2, label="extrapolation")
    if has_band:
        ax.fill_between([], [], [], color="0.5", alpha=0.25, label=f"{int(level * 100)}% bootstrap band")
    ax.set_xscale("log")
    log_loss_axis(ax)
    ax.set_xlabel(ax_x)
    ax.set_ylabel(law.y_)
    what = title or (f"fitted without {int(held.sum())} held-out point(s)" if held.any()
                     else f"fit on all {getattr(law, 'n_points_', len(df))} points")
    ax.set_title(f"{law.name}, {what}\n" + ", ".join(f"{k}={v:.3g}" for k, v in law.params_.items()), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_residuals(law: "Law", df: pd.DataFrame, ax_x: str | None = None, holdout: str | float | None = None) -> Figure:
    """Residuals on the fit scale (log y - log pred, or y - pred) against `ax_x` and against the prediction."""
    law._check_fitted()
    ax_x = ax_x or law.x_[0]
    held = _holdout(law, df, holdout)
    y = df[law.y_].to_numpy(float)
    pred = law.predict(df)
    log_scale = law.fit_scale == "log"
    r = np.log(y) - np.log(pred) if log_scale else y - pred
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, xv, name in ((axes[0], df[ax_x].to_numpy(float), ax_x), (axes[1], pred, f"predicted {law.y_}")):
        ax.axhline(0.0, color="0.3", lw=1)
        ax.scatter(xv[~held], r[~held], s=16, color="C0", label="fitted")
        if held.any():
            ax.scatter(xv[held], r[held], s=50, facecolors="none", edgecolors="red", lw=1.5, label="held out")
        log_axis(ax, "x")
        ax.set_xlabel(name)
        ax.grid(True, alpha=0.25)
    axes[0].set_ylabel("log y - log pred" if log_scale else "y - pred")
    axes[0].legend(fontsize=7)
    what = (f"fitted without {int(held.sum())} held-out point(s)" if held.any()
            else f"fit on all {getattr(law, 'n_points_', len(df))} points")
    fig.suptitle(f"{law.name} residuals, {what} (R² {law.r2_:.4f})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_isoloss(law: "Law", df: pd.DataFrame | None = None, compute: tuple[float, float] | None = None, levels: int = 12) -> Figure:
    """Iso-loss contours of a (N, D) law over compute C = 6ND and N, with the efficient frontier."""
    law._check_fitted()
    if not isinstance(law, ComputeOptimal):
        raise FitError(f"plot_isoloss needs a law with optimal_allocation (e.g. chinchilla), not {law.name!r}")
    if compute is None:
        if df is None:
            raise FitError("plot_isoloss: pass df or compute=(C_min, C_max)")
        c = 6 * df[law.x_[0]].to_numpy(float) * df[law.x_[1]].to_numpy(float)
        compute = (c.min() / 3, c.max() * 30)
    C = np.geomspace(*compute, 120)
    n_opt, _ = law.optimal_allocation(C)
    N = np.geomspace(n_opt.min() / 30, n_opt.max() * 30, 120)
    CC, NN = np.meshgrid(C, N)
    Z = law.predict(np.column_stack([NN.ravel(), (CC / (6 * NN)).ravel()])).reshape(CC.shape)
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    cs = ax.contour(CC, NN, Z, levels=np.geomspace(Z.min(), np.quantile(Z, 0.9), levels), cmap="viridis", linewidths=0.9)
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    ax.plot(C, n_opt, "r-", lw=1.8, label="efficient frontier N_opt(C)")
    if getattr(law, "boot_params_", None) is not None:
        band = law.optimal_allocation_ci(C)
        ax.fill_between(C, band["N_lo"], band["N_hi"], color="r", alpha=0.15, lw=0, label="95% band")
    if df is not None:
        n = df[law.x_[0]].to_numpy(float)
        ax.scatter(6 * n * df[law.x_[1]].to_numpy(float), n, s=12, c="k", zorder=3, label="runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C = 6ND (FLOPs)")
    ax.set_ylabel(law.x_[0])
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_frontier(
    frontier: "ComputeFrontier",
    curves: pd.DataFrame | None = None,
    run: str = "run_id",
    flops: str = "flops",
    loss: str = "loss",
    n_params: str = "n_params",
) -> Figure:
    """Left: loss curves (if given) and their compute envelope. Right: N_opt(C) winners and fit."""
    if not hasattr(frontier, "envelope_"):
        raise FitError("plot_frontier: the frontier is not fitted yet")
    fig = Figure(figsize=(10, 4.2))
    a1, a2 = fig.subplots(1, 2)
    if curves is not None:
        sizes = curves.groupby(run)[n_params].first() if n_params in curves else None
        order = list(sizes.sort_values().index) if sizes is not None else list(pd.unique(curves[run]))
        colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(order)))
        for r, color in zip(order, colors):
            c = curves[curves[run] == r].sort_values(flops)
            a1.plot(c[flops], c[loss], color=color, lw=0.9, alpha=0.8)
    env = frontier.envelope_
    a1.plot(env["flops"], env["loss"], "k-", lw=2.2, label="compute-efficient envelope")
    if frontier.loss_law_ is not None:
        p = frontier.loss_law_.params_
        a1.plot(env["flops"], frontier.loss_law_.predict(env["flops"].to_numpy()), "r--", lw=1.2,
                label=f"L = {p['L_inf']:.3g} + ({p['x0']:.3g}/C)^{p['alpha']:.3g}")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("compute (FLOPs)")
    a1.set_ylabel(loss)
    a1.legend(fontsize=7)
    w = frontier.winners_
    used = w["used"].to_numpy() if "used" in w else np.ones(len(w), bool)
    a2.hlines(w["n_params"], w["c_lo"], w["c_hi"], color="0.6", lw=3)
    a2.scatter(w["c_mid"][used], w["n_params"][used], color="C0", zorder=3, label="winning size")
    a2.scatter(w["c_mid"][~used], w["n_params"][~used], facecolors="none", edgecolors="C0", zorder=3, label="edge (not fitted)")
    cg = np.geomspace(w["c_lo"].min(), w["c_hi"].max(), 50)
    a2.plot(cg, frontier.predict_n_opt(cg), "r-", label=f"N_opt ∝ C^{frontier.exponent_:.3f}")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("compute (FLOPs)")
    a2.set_ylabel("compute-optimal N")
    a2.legend(fontsize=7)
    fig.tight_layout()
    return fig
