"""Report pieces of the select family: decision accuracy by hand, and the multiplier section on
runs generated from the select law with a known multiplier."""

import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup

from scaling import schema
from scaling.report.select import decision_accuracy, multiplier_sections, selection_summary
from scaling.report.study import ReportOptions


def test_decision_accuracy_by_hand():
    rows = []
    # at the largest size the order is a < b < c; at N=1 it is b < a < c (2 of 3 pairs agree)
    for N, losses in ((1.0, {"a": 2.0, "b": 1.9, "c": 2.5}), (2.0, {"a": 1.5, "b": 1.6, "c": 1.7}),
                      (4.0, {"a": 1.0, "b": 1.1, "c": 1.2})):
        rows += [{"N": N, schema.SELECT_VARIANT: v, schema.LOSS: x} for v, x in losses.items()]
    acc = decision_accuracy(pd.DataFrame(rows)).set_index("N")["decision_accuracy"]
    assert acc[1.0] == pytest.approx(2 / 3) and acc[2.0] == 1.0


def synthetic_select(m: float, E: float = 1.5) -> pd.DataFrame:
    A, B, al, be = 40.0, 300.0, 0.4, 0.35
    rows = []
    for N in np.geomspace(1e3, 3e4, 5):
        for tpp in (10, 40):
            for seed in (0, 1):
                D = N * tpp
                for v, mult in (("none", 1.0), ("oracle@0.5", m)):
                    L = E + A / N ** al + B / (mult * D) ** be
                    noise = np.exp(np.random.default_rng([int(N), tpp, seed, int(mult)]).normal(0, 0.002))
                    rows.append({"N": N, "D": D, "C": 6 * N * D, schema.SEED: seed, schema.SELECT_VARIANT: v,
                                 schema.SELECT_METHOD: v.split("@")[0], schema.SELECT_KEEP: 1.0 if v == "none" else 0.5,
                                 schema.KEPT_TOKENS: 1e12, schema.SELECT_FLOPS: 0.0, schema.PRECISION_GOOD: 1.0,
                                 schema.LOSS: L * noise})
    return pd.DataFrame(rows)


def test_multiplier_section_recovers_a_known_multiplier():
    df = synthetic_select(2.0)
    (section,) = multiplier_sections(df, "none", ReportOptions(bootstrap=50))
    law = section.fit
    assert law.multiplier_["oracle@0.5"] == pytest.approx(2.0, rel=0.05)
    lo, hi = law.ci_["m_oracle@0.5"]
    assert lo < 2.0 < hi and lo > 1.5
    # the section's text is trusted markup (its tags render; arguments are escaped), not escaped twice
    assert isinstance(section.text, Markup) and "<i>cm_with_scoring</i>" in section.text
    # the report's summary answers with the multiplier at the largest run's compute: CM = m here
    # (equal floors), with its bootstrap interval
    answer, m = section.answers
    assert answer.label.startswith("compute multiplier of oracle@0.5 at C = ")
    assert answer.value == pytest.approx(2.0, rel=0.05) and answer.ci[0] < 2.0 < answer.ci[1]
    assert "P(CM < 1) = 0.00" in answer.note
    # and the data multiplier itself, with the same interval as the fit's
    assert m.label.startswith("data multiplier m of oracle@0.5") and m.value == law.multiplier_["oracle@0.5"]
    assert m.ci == pytest.approx((lo, hi))
    summary = selection_summary(df)
    assert list(summary[schema.SELECT_METHOD]) == ["oracle", "none"]


def test_cm_plot_scales_to_the_estimates_not_to_runaway_bands():
    from scaling.report.select import plot_cm

    rows = [{"compute": c, "cm": cm, "ci95": [cm / 2, hi]}
            for c, cm, hi in ((1e10, 1.5, 3.0), (1e12, 2.0, 1e9), (1e14, 3.0, float("inf")))]
    ax = plot_cm({"oracle@0.5": rows}, largest_run=1e12).axes[0]
    assert ax.get_ylim() == pytest.approx((1 / 3, 9.0))  # x3 around the estimates (and 1)
    assert any(line.get_xdata()[0] == 1e12 for line in ax.lines)  # the largest run is marked


def test_multipliers_of_a_fit_that_did_not_converge_are_flagged(monkeypatch):
    import scaling.laws.select as select_law

    real = select_law.study_law

    def starved(*args, **kwargs):  # too few iterations to converge
        law = real(*args, **kwargs)
        law.max_iter = 3
        return law

    monkeypatch.setattr(select_law, "study_law", starved)
    (section,) = multiplier_sections(synthetic_select(2.0), "none", ReportOptions(bootstrap=0))
    assert not section.fit.converged_
    assert any("did not converge" in w for w in section.warnings)
    assert all(a.note.startswith("NOT IDENTIFIED: the select-law fit did not converge; no interval") for a in section.answers)


def test_shared_floors_fit_one_floor_for_every_variant():
    """[select] floors = "shared": one E for all variants (the truth here), recovered with m."""
    (section,) = multiplier_sections(synthetic_select(2.0), "none", ReportOptions(bootstrap=0), floors="shared",
                                     delta="auto")
    law = section.fit
    assert law.floors == "shared" and law.delta == "auto"
    assert law.params_["E_none"] == law.params_["E_oracle@0.5"] == pytest.approx(1.5, abs=0.05)
    assert law.multiplier_["oracle@0.5"] == pytest.approx(2.0, rel=0.05)
    assert "one E shared by every variant" in section.text


def test_a_compute_multiplier_read_through_a_parameter_at_its_bound_is_flagged():
    """Runs from a law whose floor is below zero: the fitted floor sits at its lower bound. Without
    repetition and with one shared floor CM = m for any floor, so only the warning names the bound;
    with a selection repeated up to 6 epochs CM reads the frontier through the pinned floor (and
    the repetition scale R*, which these runs do not show), so its answer says NOT IDENTIFIED,
    while m, fitted where the runs are, is still recovered (truth 2) and not flagged."""
    df = synthetic_select(2.0, E=-0.5)
    (section,) = multiplier_sections(df, "none", ReportOptions(bootstrap=0), floors="shared", delta="auto")
    cm, m = section.answers
    assert "E_none" in section.fit.at_bounds_ and any("E_none" in w and "lower bound" in w for w in section.warnings)
    assert cm.value == pytest.approx(m.value, rel=1e-6) and "NOT IDENTIFIED" not in cm.note

    df.loc[df[schema.SELECT_VARIANT] != "none", schema.KEPT_TOKENS] = 2e5
    df[schema.EPOCHS] = df["D"] / df[schema.KEPT_TOKENS]
    (section,) = multiplier_sections(df, "none", ReportOptions(bootstrap=0), floors="shared", delta="auto")
    cm, m = section.answers
    assert cm.note.startswith("no interval (no bootstrap); NOT IDENTIFIED: E_none at its lower bound, "
                              "R_star at its upper bound")
    assert m.value == pytest.approx(2.0, rel=0.02) and "NOT IDENTIFIED" not in m.note
