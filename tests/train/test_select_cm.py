"""Ground truth for the compute multiplier, trained end to end on a clean/junk pool (junk share 0.5).

Half junk. Keeping the clean half with the oracle makes every token count twice if junk only
wastes tokens, so CM would be 1/(1 - 0.5) = 2 (no repetition: the pool holds twice the largest
budget). The junk is drawn over an alphabet of its own (`junk_alphabet = "disjoint"`): a window's
first token, which is never predicted, tells junk apart, so the exact floors of the unfiltered
pool and of the clean half are equal (asserted), and the law is fitted with those known floors
(`floors="column"`). That leaves it nothing to explain by a floor, and CM = m at every compute.

Measured CM at the grid's middle compute (4 one-layer widths, 2 seeds, 200 paired bootstrap
replicates, exact floors unless noted):
  shared junk alphabet, batch 8, 100/300 steps   3.72 [3.17, 4.41]  (free floors: 17.0 [6.8, 49])
  disjoint, batch 8, 100/300 steps               1.65 [1.33, 1.75]
  disjoint, batch 8, 400/1200 steps (4x tokens)  1.68 [1.47, 1.90]
  disjoint, batch 4, 200/600 steps (this test)   1.86 [1.68, 1.97]  (free floors: 2.15 [1.84, 2.45])
  disjoint, batch 2, 400/1200 steps              2.21 [2.03, 2.39]
  disjoint, 200 steps, batch 4/12 (D by batch)   3.44 [2.66, 4.19]  (free floors: 6.5 [3.2, 12.4])
This test's interval was [1.64, 1.97] until every bootstrap replicate was finished by L-BFGS-B
(5 of 200 had stalled up to 0.76% above their optima); the other rows, and the learning-rate
table below, were measured before that, so their ends may be off by as much.
Junk over the world's own symbols costs tiny models capacity as well as tokens (they infer the
type from the window's statistics badly; ~3.6x). With its own alphabet that is gone, and what
is left depends on the optimiser's regime, not the data: at fixed tokens the oracle itself
still gains from more, smaller steps (d=16, 38k tokens: 1.702 at batch 8, 1.634 at 4, 1.599 at
2), and the baseline, with twice the tokens, has twice the steps, so CM < 2 at batch >= 4 (a
zero-entropy filler junk, which adds no gradient noise, gives the same 1.86-1.89 at batch 4 in
direct comparisons); at batch 2 the junk's own gradient noise (a uniform target keeps its
per-token gradients large) outweighs that and CM > 2. The learning rate moves it the same way
(`python bench/select_cm_lr.py`, this grid at batch 4, 160 runs):
  lr 3e-3   1.59 [1.32, 1.69]        lr 3e-2   2.07 [1.95, 2.30]        lr 1e-1   3.40 [0, 3.86]
  lr 1e-2   1.86 [1.64, 1.97]        lr 6e-2   2.25 [1.91, 3.05]
  each (variant, size, budget) cell at its own best of these five: 2.22 [2.08, 2.53]
Below the best rate the baseline's extra steps help it (an under-stepped Adam gains per step);
at and above it the junk's gradient noise lowers the rate the baseline can take (at 6e-2 its
widest model at the small budget ends at 2.31, the oracle's at 1.81), so tuning the rate per
cell does not recover 2 either. That one rate's interval covers 2 (3e-2) says only that a
curve rising from 1.6 to 3.4 passes through it; choosing that rate would fit the test to its
target. Nor does varying the budget by batch size at fixed steps (the same token budgets; the
row "D by batch" above), so that both variants take the same steps with, in expectation, the
same clean sequences in each: the junk half of the baseline's batch then costs the clean half
far more than tokens (CM 3.4; presumably through Adam's second moments, which the junk's
gradients raise on the shared weights). So "junk only wastes tokens" does not hold at this scale
for a reason other than the data; the 2.0 target stays a strict xfail (the test keeps 1e-2), and the
interval excluding 1 is asserted.

Repetition (Muennighoff et al.). The oracle at keep 0.05 repeats its 11.5k clean tokens 3.3 to
10 epochs. Fitted with the exact floors and R* free, R* = 5.2 [2.6, 9.0] (Muennighoff's 15.4
overvalues repeated tokens here), m = 2.08 [1.75, 2.59] (oracle@0.5 in the same fit: 1.86), and
its CM falls with compute, 1.80, 1.49, 1.08, 0.68 over the grid's compute (every bootstrap
replicate falls). With free floors the fit instead explains the gap by floors and oracle@0.5's
CM grows with compute (1.76 to 7.8 over the grid): that, not the effective-data formula (which
gets the selection's unique tokens, kept_tokens), is why select-facts showed CM growing.
"""

import numpy as np
import pytest

from scaling.config import spec_from_dict
from scaling.laws.select import SelectLaw, cell_bootstrap, multiplier_summary
from scaling.store import Store
from scaling.train import expand, run_study
from scaling.train.executors import InProcessExecutor
from scaling.train.select_tables import select_runs

SPEC = {
    "study": {"name": "cm", "family": "select"},
    "data": {"source": "facts_pool", "eval_tokens": 4800,
             "options": {"n_symbols": 32, "n_keys": 400, "n_docs": 2400, "doc_triples": 32,
                         "shares": {"clean": 0.5, "junk": 0.5}, "junk_alphabet": "disjoint"}},
    "model": {"shapes": [{"d_model": d, "n_layers": 1, "n_heads": 2} for d in (8, 12, 16, 24)]},
    "train": {"steps": 200, "batch_size": 4, "seq_len": 48, "lr": 1e-2, "eval_points": 2, "weight_decay": 0.0},
    "select": {"methods": {"oracle": {}}, "on_exhausted": "repeat"},
    "grid": {"select": {"keep": [0.5, 0.05]}, "train": {"steps": [200, 600]}, "seed": [0, 1]},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("cm") / "cm")
    assert run_study(expand(spec_from_dict(SPEC)), store, InProcessExecutor()) == {"done": 48}
    return select_runs(store.runs())


@pytest.fixture(scope="module")
def half_junk(runs):
    df = runs[runs.select_variant.isin(["none", "oracle@0.5"])].reset_index(drop=True)
    assert (df["epochs"] <= 1.0).all()  # no repetition anywhere
    assert (df.loc[df.select_variant == "oracle@0.5", "precision_good"] == 1.0).all()
    floors = df.groupby("select_variant")["select_floor"].agg(["min", "max"])
    assert floors.to_numpy().max() - floors.to_numpy().min() < 1e-12  # junk leaves the floor where it was
    law = SelectLaw(variant="select_variant", baseline="none", floors="column", floor_column="select_floor")
    law.fit(df, x=["N", "D"], y="loss")
    cell_bootstrap(law, df, cells=["N", "seed"], n=200, seed=0)
    C = float(np.exp(np.log(df["C"]).mean()))  # the middle of the grid's compute (log scale)
    row = multiplier_summary(law, [C])["cm"]["oracle@0.5"][0]
    lo, hi = row["ci95"]
    print(f"m = {law.multiplier_['oracle@0.5']:.3f}, CM(C={C:.3g}) = {row['cm']:.3f} [{lo:.3f}, {hi:.3f}]")
    return row["cm"], lo, hi


@pytest.mark.slow
def test_oracle_on_half_junk_has_a_compute_multiplier_above_one(half_junk):
    _, lo, _ = half_junk
    assert lo > 1.0


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured CM 1.86 [1.68, 1.97] at batch 4 (2.21 [2.03, 2.39] at batch 2; "
                                       "1.59 to 2.25 over learning rates 3e-3 to 6e-2, 2.22 [2.08, 2.53] at the "
                                       "per-cell best rate): at this scale the multiplier depends on the "
                                       "optimiser's regime, see the docstring")
def test_oracle_on_half_junk_has_compute_multiplier_two(half_junk):
    _, lo, hi = half_junk
    assert lo <= 2.0 <= hi


@pytest.mark.slow
def test_every_cell_replicate_is_at_the_optimum_of_its_resample(runs):
    """The batched engine stalled on 5 of these 200 cell replicates (3e-5 to 0.76% above their
    optima, the compute multiplier's interval [1.637, 1.970] instead of [1.682, 1.970]); each is
    now finished by L-BFGS-B, so a fresh tight refit from it lowers none by 1e-9."""
    import pandas as pd
    import torch
    from scipy.optimize import minimize

    from scaling.laws.bootstrap import cluster_counts

    df = runs[runs.select_variant.isin(["none", "oracle@0.5"])].reset_index(drop=True)
    law = SelectLaw(variant="select_variant", baseline="none", floors="column", floor_column="select_floor")
    cell_bootstrap(law.fit(df, x=["N", "D"], y="loss"), df, cells=["N", "seed"], n=200, seed=0)
    assert law.boot_excluded_ == 0
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(df[["N", "seed"]].astype(str)).to_flat_index())
    counts = cluster_counts(codes, 200, np.random.default_rng(0))  # as the bootstrap drew them
    one = torch.zeros(1, dtype=torch.long)
    lo, hi = law._free_bounds()
    for theta, c in zip(law.boot_theta_, counts):
        fg = law._objective(weights=torch.as_tensor(c[None]), group=one)

        def f(x, fg=fg):
            v, g = fg(torch.as_tensor(x[None]), one)
            return float(v[0]), g[0].numpy()

        x0 = law._to_free(theta)
        refit = minimize(f, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                         options={"maxiter": 20000, "ftol": 1e-16, "gtol": 1e-12, "maxls": 50})
        assert refit.fun >= f(x0)[0] * (1 - 1e-9)


@pytest.mark.slow
def test_a_selection_repeated_for_many_epochs_has_a_multiplier_that_shrinks_with_compute(runs):
    small = runs[runs.select_variant == "oracle@0.05"]
    assert small["epochs"].max() >= 4 and (runs.loc[runs.select_variant != "oracle@0.05", "epochs"] <= 1).all()
    law = SelectLaw(variant="select_variant", baseline="none", floors="column", floor_column="select_floor",
                    unique_tokens="kept_tokens", r_star="fit").fit(runs, x=["N", "D"], y="loss")
    cell_bootstrap(law, runs, cells=["N", "seed"], n=200, seed=0)
    unique = runs.groupby("select_variant")["kept_tokens"].first().to_dict()
    C = np.geomspace(runs["C"].min(), runs["C"].max(), 4)
    cm = law.compute_multiplier("oracle@0.05", C, unique=unique)[0]
    draws = law.compute_multiplier("oracle@0.05", C[[0, -1]], theta=law.boot_theta_, unique=unique)
    shrinks = float(np.mean(draws[:, 1] < draws[:, 0]))
    print(f"R* = {law.params_['R_star']:.3g} {np.round(law.ci_['R_star'], 3)}, CM(C) = {np.round(cm, 3)}, "
          f"P(CM at the top < CM at the bottom) = {shrinks:.3f}")
    assert np.all(np.diff(cm) < 0)
    assert shrinks >= 0.95
