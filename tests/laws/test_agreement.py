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
