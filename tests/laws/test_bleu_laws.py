"""BLEU laws: parameter recovery from data generated with known parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaling.laws.bleu import BleuCELaw, BleuLogLaw


@pytest.mark.parametrize("C, k, seed", [(120.0, -0.9, 0), (60.0, -2.5, 1)])
def test_bleu_ce_recovers_parameters(C, k, seed):
    rng = np.random.default_rng(seed)
    ce = np.linspace(0.8, 3.0, 12)
    bleu = C * np.exp(k * ce) * np.exp(rng.normal(0, 0.01, len(ce)))
    law = BleuCELaw(loss="mse").fit(pd.DataFrame({"ce": ce, "bleu": bleu}), x="ce", y="bleu")
    assert law.converged_
    # 1% log-noise over 12 points: slope to about ±0.02, intercept to a few percent.
    assert law.params_["k"] == pytest.approx(k, abs=0.03)
    assert law.params_["C"] == pytest.approx(C, rel=0.05)


@pytest.mark.parametrize("A, alpha, beta", [(0.5, 0.3, 2.0), (2e-3, 0.8, 1.2)])
def test_bleu_log_recovers_parameters(A, alpha, beta):
    D = np.logspace(5, 9, 15)
    bleu = np.log(A * D**alpha) ** beta
    law = BleuLogLaw(loss="mse").fit(pd.DataFrame({"D": D, "bleu": bleu}), x="D", y="bleu")
    assert law.converged_
    assert law.params_["alpha"] == pytest.approx(alpha, rel=0.02)
    assert law.params_["beta"] == pytest.approx(beta, rel=0.02)
    assert np.log(law.params_["A"]) == pytest.approx(np.log(A), abs=0.1)
    assert law.predict(np.array([[1e10]]))[0] == pytest.approx(np.log(A * 1e10**alpha) ** beta, rel=0.01)


def test_bleu_log_with_noise():
    rng = np.random.default_rng(3)
    D = np.logspace(5, 9, 20)
    bleu = np.log(0.5 * D**0.3) ** 2.0 * np.exp(rng.normal(0, 0.005, len(D)))
    law = BleuLogLaw().fit(pd.DataFrame({"D": D, "bleu": bleu}), x="D", y="bleu")
    # Extrapolation one decade out stays within 3%.
    assert law.predict(np.array([[1e10]]))[0] == pytest.approx(np.log(0.5 * 1e10**0.3) ** 2.0, rel=0.03)
