"""Approaches 1-3 agreement and the report section built on it."""

import numpy as np
import pandas as pd
import pytest

from scaling.laws.agreement import approach_agreement


def _isoflop_surface(seed=0):
    """Points of L = 1.69 + 400/N^0.34 + 410/D^0.28 on 5 IsoFLOP budgets (6 N D = C), 0.3% noise."""
    rng = np.random.default_rng(seed)
    rows = []
    G = (0.34 * 400 / (0.28 * 410)) ** (1 / 0.62)
    for C in np.geomspace(1e18, 1e21, 5):
        # Sampled within half a decade of the optimum, where the profile is close to a parabola.
        N = G * (C / 6) ** (0.28 / 0.62) * np.geomspace(0.3, 3.0, 15)
        D = C / (6 * N)
        L = (1.69 + 400 / N**0.34 + 410 / D**0.28) * np.exp(rng.normal(0, 0.003, len(N)))
        rows.append(pd.DataFrame({"N": N, "D": D, "C": C, "loss": L}))
    return pd.concat(rows, ignore_index=True)


def test_approaches_2_and_3_agree_on_a_known_surface():
    df = _isoflop_surface()
    ag = approach_agreement(df, n="N", d="D", y="loss", budget="C", n_bootstrap=50, target_compute=1e22)
    by = {r["approach"]: r for r in ag["approaches"]}
    assert set(by) == {2, 3} and "1" in ag["skipped"]
    a_true = 0.28 / (0.34 + 0.28)
    assert by[3]["a"] == pytest.approx(a_true, abs=0.02)
    assert by[2]["a"] == pytest.approx(a_true, abs=0.05)
    assert ag["agree"]["a"] is True
    for r in by.values():
        lo, hi = r["a_ci"]
        assert lo <= r["a"] <= hi


def test_report_section():
    from scaling.report.approaches import approaches_sections

    df = _isoflop_surface()
    (sec,) = approaches_sections(df, n="N", d="D", y="loss", budget="C", n_bootstrap=30)
    assert sec.title == "Chinchilla approaches" and "IsoFLOP profiles" in sec.tables[0].__html__()
    assert "agree" in sec.text
    assert approaches_sections(df, n="params", d="D", y="loss") == []


def test_overlapping_intervals_can_still_disagree():
    """Intervals that share a point were called "agree"; the difference's interval decides now.
    Hand computation: standard errors from the facing half-widths, 0.05 and 0.06 (B's far side,
    0.35, must not count), se = hypot(0.05, 0.06) / 1.96 = 0.03985, z = 0.10 / se = 2.51."""
    from scaling.laws.agreement import _differences, _overlap, verdict

    rows = [{"approach": 2, "a": 0.45, "a_ci": [0.40, 0.50], "tokens_per_param": 20.0, "tokens_per_param_ci": [10.0, 40.0]},
            {"approach": 3, "a": 0.55, "a_ci": [0.49, 0.90], "tokens_per_param": 80.0, "tokens_per_param_ci": [40.0, 160.0]}]
    assert _overlap([r["a_ci"] for r in rows]) and _overlap([r["tokens_per_param_ci"] for r in rows])
    (a,) = _differences(rows, "a", log=False)
    se = np.hypot(0.05, 0.06) / 1.959963984540054
    assert a["approaches"] == [2, 3] and a["difference"] == pytest.approx(0.10)
    assert a["z"] == pytest.approx(0.10 / se) and a["z"] == pytest.approx(2.5095, abs=1e-4)
    assert a["ci95"] == pytest.approx([0.10 - 1.959963984540054 * se, 0.10 + 1.959963984540054 * se])
    assert a["agree"] is False
    # tokens per parameter as a log ratio: 80 / 20 = 4, each facing side a factor 2
    (t,) = _differences(rows, "tokens_per_param", log=True)
    se = np.hypot(np.log(2), np.log(2)) / 1.959963984540054
    assert t["ratio"] == pytest.approx(4.0) and t["z"] == pytest.approx(np.log(4) / se)
    assert t["ratio_ci95"] == pytest.approx([4 * np.exp(-1.959963984540054 * se), 4 * np.exp(1.959963984540054 * se)])
    assert t["agree"] is False
    ag = {"differences": {"a": [a]}, "agree": {"a": False}}
    assert verdict(ag, "a") == "DISAGREE (approach 3 - 2 = +0.1, 95% CI [+0.0219, +0.178])"
    # the same estimates with wider intervals agree
    rows[1]["a_ci"] = [0.30, 0.90]
    assert _differences(rows, "a", log=False)[0]["agree"] is True


def test_an_interval_reaching_zero_is_unbounded_on_the_log_scale_without_a_warning():
    """A degenerate bootstrap replicate can put a tokens-per-parameter interval's lower end at 0
    (a mixed table through `fit compare`): its log is -inf, so the difference's interval is
    unbounded and the approaches are not called different; numpy's "divide by zero" stays quiet."""
    import warnings

    from scaling.laws.agreement import _differences, verdict

    rows = [{"approach": 2, "tokens_per_param": 12.6, "tokens_per_param_ci": [5.0, 30.0]},
            {"approach": 3, "tokens_per_param": 31.3, "tokens_per_param_ci": [0.0, 1.6e5]}]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        (t,) = _differences(rows, "tokens_per_param", log=True)
        text = verdict({"differences": {"tokens_per_param": [t]}, "agree": {"tokens_per_param": t["agree"]}},
                       "tokens_per_param")
    assert t["ratio"] == pytest.approx(31.3 / 12.6) and t["agree"] is True and t["z"] == 0.0
    assert t["ci95"] == [-np.inf, np.inf] and t["ratio_ci95"] == [0.0, np.inf]
    assert text.startswith("agree")


def test_agreement_reports_every_pair_and_the_old_overlap():
    df = _isoflop_surface()
    ag = approach_agreement(df, n="N", d="D", y="loss", budget="C", n_bootstrap=50, target_compute=1e22)
    (pair,) = ag["differences"]["a"]
    by = {r["approach"]: r["a"] for r in ag["approaches"]}
    assert pair["approaches"] == [2, 3] and pair["difference"] == pytest.approx(by[3] - by[2])
    assert pair["ci95"][0] <= 0 <= pair["ci95"][1] and ag["agree"]["a"] is True and ag["overlap"]["a"] is True
