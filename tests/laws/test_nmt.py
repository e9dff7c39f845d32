"""Gordon et al. 2021 NMT runs: a joint parameters/data law per language pair (regression reference)."""

import pytest

from scaling.laws import get_law

# Measured with this engine (default init, Huber delta 1e-3 on log residuals), data_bytes > 5 MiB.
REFERENCE = {
    "deen": dict(n=54, A=7.9072, B=78547.0, alpha=0.10667, beta=0.65335, objective=0.00152618, r2=0.99014),
    "ruen": dict(n=66, A=8.7555, B=71772.2, alpha=0.10040, beta=0.62725, objective=0.00222961, r2=0.98437),
    "zhen": dict(n=60, A=9.6439, B=170041.0, alpha=0.12500, beta=0.70274, objective=0.00173147, r2=0.98721),
}


@pytest.mark.parametrize("lang", sorted(REFERENCE))
def test_chinchilla_per_language_pair(nmt_df, lang):
    ref = REFERENCE[lang]
    df = nmt_df[nmt_df["Lang"] == lang]
    law = get_law("chinchilla").fit(df, x=["params", "data_bytes"], y="ent_dev")
    assert law.converged_
    assert law.n_points_ == ref["n"]
    assert law.r2_ > 0.98  # sane: the law explains the log-loss of every pair
    assert law.r2_ == pytest.approx(ref["r2"], abs=1e-4)
    assert law.objective_ == pytest.approx(ref["objective"], rel=1e-4)
    for k in ("alpha", "beta"):
        assert law.params_[k] == pytest.approx(ref[k], abs=2e-3)
    for k in ("A", "B"):
        assert law.params_[k] == pytest.approx(ref[k], rel=0.02)
    # The data term falls faster than the parameter term in all three pairs.
    assert law.params_["beta"] > 4 * law.params_["alpha"]
    if lang == "zhen":
        assert law.params_["E"] == pytest.approx(0.2283, abs=0.003)
    else:
        # de-en and ru-en put no floor under the loss: E runs to its lower bound (e^-5).
        assert law.at_bounds_ == ["E"]
