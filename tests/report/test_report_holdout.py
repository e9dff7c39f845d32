"""Held-out means held out (issue 9, item 8): the check is drawn against the fit that excluded
the held-out runs, each figure says which fit it shows, and `fit` and `plot` agree."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from typer.testing import CliRunner

from scaling.cli import app
from scaling.laws import get_law
from scaling.plots import plot_fit
from scaling.report import LawFit, ReportOptions, fit_with_holdout, law_section


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = np.logspace(3, 6, 9)
    return pd.DataFrame({"N": x, "loss": (1.8 + (2e3 / x) ** 0.3) * np.exp(rng.normal(0, 0.01, len(x)))})


def _curve(fig):
    ax = fig.axes[0]
    solid = [l for l in ax.lines if l.get_linestyle() == "-" and len(l.get_xdata())][0]
    return np.asarray(solid.get_xdata()), np.asarray(solid.get_ydata())


def _hollow(fig):
    return [c for c in fig.axes[0].collections if isinstance(c, PathCollection)
            and len(c.get_offsets()) and not len(c.get_facecolors())]


def test_report_draws_the_check_against_the_fit_without_the_held_out_runs(data):
    law = fit_with_holdout("power", data, ["N"], "loss", ReportOptions(bootstrap=0), holdout="largest:2")
    held = law.holdout_fit_
    assert held.n_points_ == 7 and law.n_points_ == 9
    assert held.params_ != law.params_
    section = law_section(LawFit("L(N)", law, data, "largest:2"))
    (cap_check, check), (cap_full, full), (cap_res, _) = section.figures
    assert cap_check.startswith("Extrapolation check: the law fitted on 7 points, without the held-out")
    assert cap_full.startswith("Fit on all 9 points (the parameters in the table)")
    x, y = _curve(check)
    np.testing.assert_allclose(y, held.predict(x), rtol=1e-12)  # the fit that never saw them
    assert not np.allclose(y, law.predict(x), rtol=1e-6)
    (hollow,) = _hollow(check)
    np.testing.assert_allclose(np.asarray(hollow.get_offsets())[:, 0], data.N.iloc[-2:])
    assert "fitted without 2 run(s)" in check.axes[0].get_title()
    x, y = _curve(full)
    np.testing.assert_allclose(y, law.predict(x), rtol=1e-12)
    assert not _hollow(full) and "fit on all 9 points" in full.axes[0].get_title()
    # the summary's held-out error is the check's
    assert section.answers[0].heldout_error == pytest.approx(law.holdout_["mean_abs_rel_error"])


def test_a_full_fit_carrying_its_check_marks_nothing_as_held_out(data):
    law = get_law("power").fit_and_check(data, ["N"], "loss", "largest:2")
    assert not _hollow(plot_fit(law, data))  # it saw every point: drawing two as "held out" would fake a check
    assert len(_hollow(plot_fit(law.holdout_fit_, data))) == 1


def test_fit_and_plot_show_the_same_parameters(tmp_path, data, monkeypatch):
    path = tmp_path / "d.csv"
    data.to_csv(path, index=False)
    args = [str(path), "--x", "N", "--y", "loss", "--holdout", "largest:2"]
    runner = CliRunner()
    res = runner.invoke(app, ["fit", "power", *args, "--json"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output)["params"]

    import scaling.plots

    drawn = []
    real = scaling.plots.plot_fit
    monkeypatch.setattr(scaling.plots, "plot_fit", lambda law, df, **kw: drawn.append((law, kw)) or real(law, df, **kw))
    out = tmp_path / "fig.png"
    res = runner.invoke(app, ["plot", "power", *args, "--bootstrap", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (full, kw_full), (held, kw_held) = drawn
    assert full.n_points_ == 9 and kw_full["holdout"] == ""
    for k, v in printed.items():
        assert full.params_[k] == pytest.approx(v, rel=1e-9)
    assert held.n_points_ == 7 and kw_held["holdout"] == "largest:2"
    assert {p.name for p in tmp_path.iterdir()} >= {"fig.png", "fig-residuals.png", "fig-holdout.png"}
