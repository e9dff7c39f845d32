"""Law figures: what is drawn matches the law and data (lines, held-out marks, bands, residuals)."""

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

from scaling.errors import FitError
from scaling.laws import ChinchillaLaw, ComputeFrontier, get_law
from scaling.plots import plot_fit, plot_frontier, plot_isoloss, plot_residuals


@pytest.fixture(scope="module")
def power_fit():
    rng = np.random.default_rng(0)
    x = np.logspace(6, 10, 12)
    df = pd.DataFrame({"x": x, "y": (2.0 + (1e7 / x) ** 0.4) * np.exp(rng.normal(0, 0.003, 12))})
    law = get_law("power").fit(df, x="x", y="y", holdout="largest:2")
    law.bootstrap(50, seed=0)
    return law, df


def chinchilla() -> ChinchillaLaw:
    p = {"E": 1.8172, "A": 477.8, "B": 2143.9, "alpha": 0.3473, "beta": 0.3672}
    law = ChinchillaLaw()
    law.theta_ = law.to_theta(p)
    law.params_, law.x_, law.y_ = p, ["N", "D"], "loss"
    return law


def render(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_plot_fit_lines_band_and_holdout(power_fit):
    law, df = power_fit
    fig = plot_fit(law, df)
    ax = fig.axes[0]
    solid = [l for l in ax.lines if l.get_linestyle() == "-" and len(l.get_xdata())]
    dashed = [l for l in ax.lines if l.get_linestyle() == "--" and len(l.get_xdata())]
    assert len(solid) == 1 and len(dashed) == 1
    xs, ys = solid[0].get_data()
    np.testing.assert_allclose(ys, law.predict(np.asarray(xs)), rtol=1e-12)
    train_max = df["x"].iloc[:-2].max()
    assert xs.max() <= train_max < dashed[0].get_xdata().min() * 1.1
    assert dashed[0].get_xdata().max() == pytest.approx(df["x"].max())
    held = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets()) == 2]
    np.testing.assert_allclose(np.asarray(held[0].get_offsets())[:, 0], df["x"].iloc[-2:])
    assert any(isinstance(c, PolyCollection) and len(c.get_paths()) for c in ax.collections)  # bootstrap band
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    render(fig)


def test_plot_residuals_values(power_fit):
    law, df = power_fit
    fig = plot_residuals(law, df)
    pts = np.concatenate([np.asarray(c.get_offsets()) for c in fig.axes[0].collections])
    expected = np.log(df["y"]) - np.log(law.predict(df))
    np.testing.assert_allclose(np.sort(pts[:, 1]), np.sort(expected), rtol=1e-10)
    render(fig)


def test_plot_fit_two_inputs_and_isoloss(power_fit):
    law = chinchilla()
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"N": np.repeat([1e8, 1e9, 1e10], 4), "D": np.tile([1e9, 1e10, 1e11, 1e12], 3)})
    df["loss"] = law.predict(df) * np.exp(rng.normal(0, 0.01, len(df)))
    fig = plot_fit(law, df, ax_x="D")  # one curve per distinct N
    lines = [l for l in fig.axes[0].lines if len(l.get_xdata())]
    assert len(lines) == 3
    render(fig)
    fig = plot_isoloss(law, df)
    frontier = [l for l in fig.axes[0].lines if l.get_color() == "r"][0]
    C, N = frontier.get_data()
    np.testing.assert_allclose(N, law.optimal_allocation(C)[0], rtol=1e-12)
    render(fig)
    with pytest.raises(FitError, match="optimal_allocation"):
        plot_isoloss(power_fit[0], power_fit[1])


def test_a_ladder_of_more_levels_than_curves_gets_curves_through_its_own_points():
    # 9 token budgets, 6 curves: each curve is drawn at one budget and goes through that budget's
    # points (exact, no noise); the other budgets' points are grey, none is hidden
    law = chinchilla()
    D = np.geomspace(1e9, 2.56e11, 9)
    df = pd.DataFrame({"N": np.tile(np.geomspace(1e7, 1e9, 5), 9), "D": np.repeat(D, 5)})
    df["loss"] = law.predict(df)
    ax = plot_fit(law, df, ax_x="N").axes[0]
    curves = [l for l in ax.lines if len(l.get_xdata()) and l.get_linestyle() == "-"]
    assert len(curves) == 6
    labels = [l.get_label() for l in curves]
    assert labels[0] == f"D = {D[0]:.3g}" and labels[-1] == f"D = {D[-1]:.3g}"  # both ends of the ladder
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    coloured, grey = points[:6], points[6]
    assert grey.get_label() == "other levels (no curve)" and len(grey.get_offsets()) == 3 * 5
    for line, dots in zip(curves, coloured):
        xy = np.asarray(dots.get_offsets())
        np.testing.assert_allclose(np.interp(np.log(xy[:, 0]), np.log(line.get_xdata()), line.get_ydata()),
                                   xy[:, 1], rtol=1e-3)


def test_isoflop_profiles_get_one_curve_per_budget_along_n():
    # IsoFLOP data: 4 budgets, N and D both varying along each (D = C / 6N): binning D drew curves at
    # token counts the points only straddle; now each budget's curve is L(N, C / 6N) through its points
    law = chinchilla()
    budgets = [1e18, 1e19, 1e20, 1e21]
    rows = [(n, c / (6 * n)) for c in budgets for n in np.geomspace(np.sqrt(c) / 3e3, np.sqrt(c) / 3e2, 8)]
    df = pd.DataFrame(rows, columns=["N", "D"])
    df["loss"] = law.predict(df)
    ax = plot_fit(law, df, ax_x="N").axes[0]
    curves = [l for l in ax.lines if len(l.get_xdata()) and l.get_linestyle() == "-"]
    assert [l.get_label() for l in curves] == [f"C = 6ND ≈ {c:.2g}" for c in budgets]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 4 and all(len(p.get_offsets()) == 8 for p in points)  # no grey: every budget has its curve
    for line, dots, c in zip(curves, points, budgets):
        xy = np.asarray(dots.get_offsets())
        n = line.get_xdata()
        assert n.min() == pytest.approx(xy[:, 0].min()) and n.max() == pytest.approx(xy[:, 0].max())
        np.testing.assert_allclose(line.get_ydata(), law.predict(pd.DataFrame({"N": n, "D": c / (6 * n)})), rtol=1e-12)
        np.testing.assert_allclose(np.interp(np.log(xy[:, 0]), np.log(n), line.get_ydata()), xy[:, 1], rtol=1e-3)
    # a token ladder (one D per level, N varying) is not read as IsoFLOP profiles
    ladder = pd.DataFrame({"N": np.tile(np.geomspace(1e7, 1e9, 5), 30), "D": np.repeat(np.geomspace(1e9, 1e12, 30), 5)})
    ladder["loss"] = law.predict(ladder)
    labels = [l.get_label() for l in plot_fit(law, ladder, ax_x="N").axes[0].lines if l.get_linestyle() == "-"]
    assert labels and all(lab.startswith("D ≈ ") for lab in labels)


def test_plot_frontier():
    rows = []
    for i, n in enumerate(np.logspace(7, 9, 7)):
        d = np.logspace(7, 11, 30)
        rows.append(pd.DataFrame({"run_id": i, "flops": 6 * n * d, "loss": 1.8 + 480 / n**0.35 + 2100 / d**0.37, "n_params": n}))
    curves = pd.concat(rows)
    fr = ComputeFrontier(fit_loss=False, compute="flops").fit(curves)  # these curves have no tokens column
    fig = plot_frontier(fr, curves)
    env = [l for l in fig.axes[0].lines if l.get_linewidth() == 2.2][0]
    np.testing.assert_allclose(env.get_ydata(), fr.envelope_["loss"])
    fit_line = fig.axes[1].lines[-1]
    np.testing.assert_allclose(fit_line.get_ydata(), fr.predict_n_opt(fit_line.get_xdata()))
    render(fig)


def test_residual_axes_have_readable_tick_labels(power_fit):
    """A predicted-loss axis spans less than a decade: plain ticks, no crowded mantissa labels."""
    law, df = power_fit
    fig = plot_residuals(law, df)
    fig.canvas.draw()
    pred_axis = fig.axes[1].xaxis
    labels = [t.get_text() for t in pred_axis.get_ticklabels() if t.get_text()]
    assert 2 <= len(labels) <= 7 and not any("times" in s or "^" in s for s in labels)
    assert not [t for t in pred_axis.get_minorticklabels() if t.get_text()]
    wide = fig.axes[0].xaxis  # four decades of N: labelled decades only
    assert not [t for t in wide.get_minorticklabels() if t.get_text()]
    assert "held out" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
