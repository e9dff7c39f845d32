"""Cross-domain D-CPT law: recovery of shared and per-domain parameters from data generated with
known ones, and the leave-one-domain-out transfer (a new domain's law from 3 of its runs)."""

import itertools

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError, FitError
from scaling.laws import get_law
from scaling.laws.dcpt_cross import DCPTCrossLaw, known_runs, leave_one_domain_out

SHARED = dict(A=30.0, alpha=0.45, B=400.0, eta=0.6, beta=0.5, C=0.08, gamma=0.5, eps=0.05)
FLOORS = {"code": 1.2, "docs": 1.6, "tests": 0.9, "math": 1.35}  # E_d = E + F/K_d^mu
X = ["N", "D", "r"]


def dcpt(N, D, r, E, p=SHARED):
    return E + p["A"] / N ** p["alpha"] + p["B"] * r ** p["eta"] / D ** p["beta"] + p["C"] / (r + p["eps"]) ** p["gamma"]


def grid(domains=FLOORS, noise=0.003, seed=0, sizes=(1e5, 3e5, 1e6), tokens=(1e6, 3e6, 1e7),
         shares=(0.0, 0.1, 0.3, 0.6, 1.0)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [dict(domain=d, N=N, D=D, r=r, truth=dcpt(N, D, r, E))
            for (d, E), N, D, r in itertools.product(domains.items(), sizes, tokens, shares)]
    df = pd.DataFrame(rows)
    df["loss"] = df.truth * np.exp(rng.normal(0.0, noise, len(df)))
    return df


@pytest.fixture(scope="module")
def data():
    return grid()


@pytest.fixture(scope="module")
def fitted(data):
    """The cross-domain law fitted on all four domains (tests only read it)."""
    return get_law("dcpt_cross").fit(data, x=X, y="loss")


def test_recovers_shared_and_domain_parameters(data, fitted):
    law = fitted
    assert law.converged_ and law.r2_ > 0.99
    assert law.domains_ == sorted(FLOORS)
    p = law.params_
    for d, E in FLOORS.items():
        assert p[f"E_{d}"] == pytest.approx(E, rel=0.03), d
    for k, tol in (("alpha", 0.05), ("beta", 0.05), ("eta", 0.05), ("gamma", 0.15)):
        assert abs(p[k] - SHARED[k]) < tol, (k, p[k])
    # the fit is closer to the truth than the 0.3% noise it was fitted through
    assert np.mean(np.abs(law.predict(data) / data.truth - 1)) < 0.0015
    table = law.domain_params()
    assert list(table.domain) == sorted(FLOORS) and (table.alpha == p["alpha"]).all()


def test_leave_one_domain_out_predicts_the_new_domain_from_three_runs(data):
    three = data[data.domain != "math"]
    out = leave_one_domain_out(three, X, "loss", n_known=3)
    assert list(out.domain) == ["code", "docs", "tests"]
    assert (out.n_known == 3).all() and (out.n_test == 45 - 3).all()
    # stated error: 0.3% noise per point, so within 1.5% everywhere and 0.8% on average
    assert (out.max_abs_rel_error < 0.015).all(), out
    assert (out.mean_abs_rel_error < 0.008).all(), out


def test_one_domain_alone_cannot_do_it_from_three_runs(data):
    """The transfer is the shared law's doing: D-CPT fitted on the three known runs alone (9
    parameters, 3 points) is impossible, and a floor-only guess (another domain's law) misses."""
    own = data[data.domain == "docs"]
    with pytest.raises(FitError):
        get_law("dcpt").fit(own[known_runs(own, X, 3)], x=X, y="loss")
    others = get_law("dcpt_cross").fit(data[data.domain != "docs"], x=X, y="loss")
    borrowed = others.predict(own.assign(domain="code"))
    assert np.max(np.abs(borrowed / own.loss - 1)) > 0.1


def test_per_domain_C_recovered():
    Cs = {"code": 0.05, "docs": 0.2, "tests": 0.1}
    rng = np.random.default_rng(1)
    rows = []
    for d, C in Cs.items():
        g = grid({d: FLOORS[d]}, noise=0.0)
        g["loss"] = dcpt(g.N, g.D, g.r, FLOORS[d], {**SHARED, "C": C}) * np.exp(rng.normal(0.0, 0.001, len(g)))
        rows.append(g)
    df = pd.concat(rows, ignore_index=True)
    law = DCPTCrossLaw(per_domain=("E", "C"), max_iter=3000).fit(df, x=X, y="loss")
    p = law.params_
    # Near r = 1 the share term is flat and trades off against the floor; what is identified is
    # each domain's curve, and the order of its share coefficient.
    truth = np.concatenate([dcpt(g.N, g.D, g.r, FLOORS[d], {**SHARED, "C": Cs[d]}) for d, g in df.groupby("domain", sort=False)])
    np.testing.assert_allclose(law.predict(df), truth, rtol=0.004)
    assert p["C_code"] < p["C_tests"] < p["C_docs"]
    for d, C in Cs.items():
        fitted = p[f"C_{d}"] / (0.1 + p["eps"]) ** p["gamma"]  # the share term at r = 0.1
        assert fitted == pytest.approx(C / (0.1 + SHARED["eps"]) ** SHARED["gamma"], rel=0.05), d


def test_json_round_trip(data, fitted, tmp_path):
    law = fitted
    law.save(tmp_path / "law.json")
    back = DCPTCrossLaw.load(tmp_path / "law.json")
    np.testing.assert_allclose(back.predict(data), law.predict(data), rtol=1e-12)


def test_errors_name_the_fix(data, fitted):
    with pytest.raises(DataError, match="domain column 'dataset'"):
        DCPTCrossLaw(domain="dataset").fit(data, x=X, y="loss")
    with pytest.raises(DataError, match="physics"):  # a domain the law was not fitted on
        fitted.predict(data.assign(domain=np.where(data.domain == "math", "physics", data.domain)))
    with pytest.raises(FitError, match="per_domain"):
        DCPTCrossLaw(per_domain=("C",)).fit(data, x=X, y="loss")


def test_span_design_picks_two_shares_at_two_budgets_of_the_smallest_size(data):
    own = data[data.domain == "code"]
    mask = known_runs(own, X, 4, design="span")
    picked = own[mask]
    assert len(picked) == 4 and (picked.N == 1e5).all()
    assert sorted(set(picked.r)) == [0.1, 1.0] and sorted(set(picked.D)) == [1e6, 1e7]
    with pytest.raises(FitError, match="known-runs design"):
        known_runs(own, X, 4, design="dearest")
    with pytest.raises(DataError, match="two budgets"):
        known_runs(own[own.D == 1e6], X, 4, design="span")


@pytest.mark.slow
def test_a_domain_with_its_own_data_term_needs_runs_at_two_budgets():
    """A new domain whose budget coefficient B is 5x the others': from its cheapest runs (one
    budget) no per-domain coefficient can learn B, from 4 runs spanning two budgets it can."""
    rng = np.random.default_rng(1)
    B = {"code": 400.0, "docs": 400.0, "math": 2000.0}
    rows = [dict(domain=d, N=N, D=D, r=r, truth=dcpt(N, D, r, FLOORS[d], {**SHARED, "B": B[d]}))
            for d, N, D, r in itertools.product(B, (1e5, 3e5, 1e6), (1e6, 3e6, 1e7), (0.0, 0.1, 0.3, 0.6, 1.0))]
    df = pd.DataFrame(rows)
    df["loss"] = df.truth * np.exp(rng.normal(0.0, 0.003, len(df)))
    own, others = df[df.domain == "math"], df[df.domain != "math"]

    def held_out_error(per_domain, design, n_known):
        known = known_runs(own, X, n_known, design)
        law = DCPTCrossLaw(per_domain=per_domain, init="coarse").fit(pd.concat([others, own[known]]), x=X, y="loss")
        test = own[~known]
        return np.abs(law.predict(test) / test.loss.to_numpy() - 1)

    span = held_out_error(("E", "B", "C"), "span", 4)
    cheapest = held_out_error(("E", "C"), "cheapest", 5)
    print(f"span E,B,C: mean {span.mean():.4f} max {span.max():.4f}; cheapest E,C: mean {cheapest.mean():.4f} "
          f"max {cheapest.max():.4f}")
    # stated error: 0.3% noise on 4 known points at the smallest size, extrapolated to 10x N and the
    # middle budget: 0.8% on average, 2.5% at the farthest run (measured: 0.51%, 1.83%); from one
    # budget it misses by more than 10x that (measured: mean 18.8%)
    assert span.max() < 0.025 and span.mean() < 0.008
    assert cheapest.mean() > 10 * span.mean()


def test_numpy_jacobian_matches_autograd():
    """np_pred_jac (Gauss-Newton's Jacobian) against torch autograd of the law's formula, with
    per-domain E, B and C (a per-domain parameter's column is zero off its domain)."""
    import torch

    df = grid({"code": 1.2, "docs": 1.6, "tests": 0.9}, sizes=(1e5, 1e6), tokens=(1e6, 1e7))
    law = DCPTCrossLaw(per_domain=("E", "B", "C"), init="coarse", max_iter=5)
    with pytest.warns(UserWarning):  # five iterations: not converged, and not meant to be
        law.fit(df, x=X, y="loss")
    theta = law.theta_ + np.random.default_rng(0).normal(0.0, 0.1, len(law.theta_))
    pred, J = law.np_pred_jac(theta, law._Fn)
    F = torch.as_tensor(law._Fn)
    log_pred = lambda th: law.log_pred(th[None], F)[0]  # noqa: E731
    th = torch.as_tensor(theta)
    ref = torch.exp(log_pred(th)).numpy()
    ref_J = (torch.func.jacrev(log_pred)(th).numpy()) * ref[:, None]
    np.testing.assert_allclose(pred, ref, rtol=1e-13)
    np.testing.assert_allclose(J, ref_J, rtol=1e-10, atol=1e-14 * np.abs(ref_J).max())
    code = df.domain.to_numpy() == "code"
    assert (J[~code, law.param_names.index("C_code")] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("per_domain", [("E",), ("E", "B", "C")])
def test_variable_projection_reaches_the_grid_engines_optimum(per_domain):
    """Variable projection (D-CPT's exponent grid, the per-domain coefficients solved by the
    active-set NNLS: 6 and 10 of them here) against the grid engine's 2,916 screened starts
    finished by Gauss-Newton (init="fine" adds 2,048 Sobol starts), on 3 domains x 2 sizes x
    2 budgets x 5 shares. Measured on six designs (this one, 120 and 180 runs, 1% noise, per-domain
    C and B): the same objective to 1e-14, 7 to 10 times faster."""
    df = grid(domains=dict(list(FLOORS.items())[:3]), sizes=(1e5, 3e5), tokens=(1e6, 1e7),
              shares=(0.0, 0.2, 0.5, 0.8, 1.0))
    vp = DCPTCrossLaw(per_domain=per_domain).fit(df, x=X, y="loss")
    engine = DCPTCrossLaw(per_domain=per_domain, init="fine").fit(df, x=X, y="loss")
    assert vp.solver_ == "varpro+gauss_newton" and engine.solver_ == "grid+gauss_newton"
    assert vp.converged_ and engine.converged_
    assert vp.objective_ <= engine.objective_ * (1 + 1e-9)
    np.testing.assert_allclose(vp.predict(df), engine.predict(df), rtol=1e-4)


@pytest.mark.slow
def test_fit_and_bootstrap_replicates_are_at_their_optima():
    """The point fit (variable projection, polished by Gauss-Newton) and every bootstrap replicate
    (finished by Gauss-Newton) are at their optima. On this 120-run study the batched engine alone
    stopped 8.6e-7 (relative) above the optimum of the point fit, and 2 of 20 pairs replicates
    1.95% and 0.11% above theirs (its relative-decrease test in D-CPT's flat valleys). Now a tight
    refit lowers none of them by 1e-9, and the intervals cover the truth."""
    from optimum_checks import replicate_improvements

    from scaling.laws.varpro import GN_TOL, gauss_newton_runner

    df = grid(noise=0.003, tokens=(1e6, 1e7), shares=(0.0, 0.2, 0.5, 0.8, 1.0))
    law = DCPTCrossLaw().fit(df, x=X, y="loss")
    assert law.solver_ == "varpro+gauss_newton" and law.converged_
    lo, hi = law.bounds()
    refit = gauss_newton_runner(law, law._Fn, law._tn, law.delta_, lo, hi)(law.theta_, GN_TOL, 5000)
    assert refit.fun >= law.objective_ * (1 - 1e-9)
    law.bootstrap(20, seed=0)
    assert law.boot_info_["n_excluded"] == 0 and len(law.boot_theta_) == 20
    assert replicate_improvements(law, seed=0).max() < 1e-9
    # Two budgets cannot tell the floors from the share term (E trades against C): the point fit
    # puts E_code at 0.30 (truth 1.2), and finished replicates reach along the valley, so every
    # floor's interval covers its truth. The engine's stopped replicates gave E_code [0.302, 0.310]
    # and missed 9 of the 12 true parameters (50 replicates, measured).
    for d, E in FLOORS.items():
        lo_d, hi_d = law.ci_[f"E_{d}"]
        assert lo_d <= E <= hi_d, (d, lo_d, hi_d)
