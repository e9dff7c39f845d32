"""Telling fits apart: Chinchilla's three approaches side by side, and law forms ranked.

`approach_agreement` fits whichever approaches the columns allow (1: the compute frontier of
loss curves, needs run and FLOPs columns; 2: IsoFLOP parabolas, needs a budget column; 3: the
parametric L(N, D)) and reports for each the allocation exponent a (N_opt ∝ C^a) and tokens per
parameter at a target compute, with 95% intervals, and whether they agree: each pair's difference
with its 95% interval (`_differences`), not whether the intervals overlap (two estimates whose
95% intervals overlap can still differ clearly: overlap is a test at about the 0.5% level).
`compare_forms` ranks law forms by held-out error on the largest runs, AIC and BIC, all on the
same rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import FitError, ScalingError
from scaling.laws.validation import Z95
from scaling.schema import COMPUTE_CONVENTION

Q = (0.025, 0.975)


def _interval(v: np.ndarray | None) -> list[float] | None:
    if v is None:
        return None
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return [float(x) for x in np.quantile(v, Q)] if len(v) >= 2 else None


def _differences(rows: list[dict[str, Any]], key: str, log: bool) -> list[dict[str, Any]]:
    """Every pair of approaches with an interval of `key`: the difference of their estimates (on the
    log scale when `log`: then also as a ratio) and its 95% interval. Each interval gives its
    estimate's standard error on the side facing the other estimate (half-width / 1.96, so an
    asymmetric bootstrap interval counts its relevant side), and the errors add as if independent:
    the approaches share their data, so the true interval of the difference is narrower and the
    test is conservative (it can miss a disagreement, not invent one)."""
    def f(v):  # an interval reaching 0 (a degenerate replicate) is unbounded below on the log scale
        with np.errstate(divide="ignore"):
            return np.log(v) if log else v

    have = [r for r in rows if r.get(f"{key}_ci")]
    out = []
    for i, ra in enumerate(have):
        for rb in have[i + 1:]:
            (a, (la, ha)), (b, (lb, hb)) = ((f(r[key]), f(np.asarray(r[f"{key}_ci"]))) for r in (ra, rb))
            # the side of each interval that faces the other estimate
            sa, sb = ((ha - a), (b - lb)) if a <= b else ((a - la), (hb - b))
            se = float(np.hypot(sa, sb)) / Z95
            diff = float(b - a)
            row = {"approaches": [ra["approach"], rb["approach"]], "difference": diff,
                   "ci95": [diff - Z95 * se, diff + Z95 * se], "z": diff / se if se > 0 else float("inf"),
                   "agree": bool(abs(diff) <= Z95 * se)}
            if log:
                row["ratio"], row["ratio_ci95"] = float(np.exp(diff)), [float(np.exp(c)) for c in row["ci95"]]
            out.append(row)
    return out


def _agree(pairs: list[dict[str, Any]]) -> bool | None:
    """Every pair's difference is within its 95% interval of 0; None with fewer than two intervals."""
    return None if not pairs else all(p["agree"] for p in pairs)


def verdict(ag: dict[str, Any], key: str) -> str:
    """One line on whether the approaches agree on `key` ("a" or "tokens_per_param"), with each
    pair's difference and its 95% interval, for the CLI and the report alike."""
    pairs = ag["differences"][key]
    if not pairs:
        return "cannot be judged (fewer than two approaches with intervals)"
    parts = []
    for p in pairs:
        a, b = p["approaches"]
        if "ratio" in p:
            lo, hi = p["ratio_ci95"]
            parts.append(f"approach {b} / {a} = {p['ratio']:.3g}, 95% CI [{lo:.3g}, {hi:.3g}]")
        else:
            lo, hi = p["ci95"]
            parts.append(f"approach {b} - {a} = {p['difference']:+.3g}, 95% CI [{lo:+.3g}, {hi:+.3g}]")
    word = "agree" if ag["agree"][key] else "DISAGREE"
    return f"{word} ({'; '.join(parts)})"


def _overlap(cis: list[list[float] | None]) -> bool | None:
    """Do all intervals share a point? None when fewer than two approaches have one."""
    cis = [c for c in cis if c is not None]
    if len(cis) < 2:
        return None
    return bool(max(c[0] for c in cis) <= min(c[1] for c in cis))


def approach_agreement(df: pd.DataFrame, n: str, d: str, y: str, budget: str | None = None,
                       curves: pd.DataFrame | None = None, run: str = "run_id", flops: str = "flops",
                       target_compute: float = 1e24, n_bootstrap: int = 200, seed: int = 0,
                       law_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Approaches 1-3 where the data allow; one row each and the verdict.

    Returns {"target_compute", "approaches": [{"approach", "method", "a", "a_ci", "tokens_per_param",
    "tokens_per_param_ci", "n_budgets"/"n_points"}], "skipped": {approach: why}, "agree": {"a",
    "tokens_per_param"}, "differences": {"a": [pair], "tokens_per_param": [pair]}, "overlap": {...}}:
    `agree` is True when every pair's difference (`_differences`; tokens per parameter as a log ratio)
    has a 95% interval that holds 0, None with fewer than two intervals; `overlap` says whether the
    intervals share a point (a weaker test, kept for comparison). Tokens per parameter use
    C = 6 N D where the approach gives only N_opt."""
    C = float(target_compute)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}

    # Approach 1: lower envelope of loss curves against compute.
    if curves is not None:
        from scaling.laws.frontier import ComputeFrontier

        try:
            # in C = 6 N D, like Approach 3's allocation, from the curves' D column; exact FLOPs only without one
            fr = ComputeFrontier(fit_loss=False, compute=COMPUTE_CONVENTION if d in curves.columns else "flops").fit(
                curves, run=run, flops=flops, loss=y, n_params=n, tokens=d)
            lo, hi = fr.exponent_ci_
            n_opt = float(fr.predict_n_opt(C))
            tpp = C / (6.0 * n_opt**2)
            # The exponent's interval, pivoting at the centre of the fitted budgets, gives tpp's at C.
            tpp_ci = None
            if np.isfinite(lo) and np.isfinite(hi):
                c_mid = float(np.exp(np.log(fr.winners_.loc[fr.winners_.used, "c_mid"]).mean()))
                n_mid = float(fr.predict_n_opt(c_mid))
                ends = sorted(C / (6.0 * (n_mid * (C / c_mid) ** e) ** 2) for e in (lo, hi))
                tpp_ci = [float(ends[0]), float(ends[1])]
            rows.append({"approach": 1, "method": "compute frontier (lower envelope)", "a": fr.exponent_,
                         "a_ci": None if not np.isfinite(lo) else [float(lo), float(hi)], "tokens_per_param": tpp,
                         "tokens_per_param_ci": tpp_ci, "n_points": int(len(curves))})
        except ScalingError as e:
            skipped["1"] = str(e)
    else:
        skipped["1"] = "no loss curves (run and FLOPs columns) given"

    # Approach 2: IsoFLOP parabolas.
    if budget is not None:
        from scaling.laws.isoflop import IsoFlopLaw

        try:
            iso = IsoFlopLaw(n_bootstrap=n_bootstrap, seed=seed).fit(df, n=n, d=d, budget=budget, y=y)
            rows.append({"approach": 2, "method": "IsoFLOP profiles", "a": iso.params_["a"],
                         "a_ci": _interval(None if iso.boot_params_ is None else iso.boot_params_["a"].to_numpy()),
                         "tokens_per_param": float(iso.tokens_per_param(C)),
                         "tokens_per_param_ci": _interval(iso.boot_tokens_per_param(C)),
                         "n_budgets": int(iso.budgets_.interior.sum())})
        except ScalingError as e:
            skipped["2"] = str(e)
    else:
        skipped["2"] = "no compute-budget column given"

    # Approach 3: the parametric fit L(N, D) = E + A/N^alpha + B/D^beta.
    from scaling.laws.chinchilla import ChinchillaLaw

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = ChinchillaLaw(**(law_options or {})).fit(df, x=[n, d], y=y)
            if n_bootstrap:
                law.bootstrap(n_bootstrap, seed=seed)
        n_opt, d_opt = law.optimal_allocation(C)
        a_ci = tpp_ci = None
        bp = getattr(law, "boot_params_", None)
        if bp is not None:
            a_ci = _interval((bp.beta / (bp.alpha + bp.beta)).to_numpy())
            nb, db = law.boot_allocation(C)
            tpp_ci = _interval((db / nb).ravel())
        rows.append({"approach": 3, "method": "parametric L(N, D)", "a": law.allocation_exponents()["a"], "a_ci": a_ci,
                     "tokens_per_param": float(d_opt / n_opt), "tokens_per_param_ci": tpp_ci,
                     "n_points": int(law.n_points_)})
    except ScalingError as e:
        skipped["3"] = str(e)

    differences = {"a": _differences(rows, "a", log=False),
                   "tokens_per_param": _differences(rows, "tokens_per_param", log=True)}
    return {"target_compute": C, "approaches": rows, "skipped": skipped,
            "agree": {k: _agree(v) for k, v in differences.items()}, "differences": differences,
            "overlap": {k: _overlap([r[f"{k}_ci"] for r in rows]) for k in differences}}


DEFAULT_FORMS = {1: ["power", "power_noconst", "broken_power"], 2: ["chinchilla", "kaplan", "power"]}
"""The forms `compare_forms` ranks when none are named, by the number of x columns: the loss laws
of one input, and of (N, D) with the one-input power law of N beside them."""


def default_forms(x: list[str]) -> list[str]:
    """The forms to rank for these x columns when the user names none."""
    if len(x) not in DEFAULT_FORMS:
        raise FitError(f"compare: name the law forms to rank with --laws (no default for {len(x)} x columns; "
                       f"e.g. --laws dcpt,dcpt_additive for x = N, D, r)")
    return list(DEFAULT_FORMS[len(x)])


def compare_forms(df: pd.DataFrame, laws: list[str], x: list[str], y: str, holdout: str = "largest:1",
                  law_options: dict[str, Any] | None = None, skipped: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per law form: held-out mean |relative error| (fitted without the `holdout` rows),
    AIC, BIC, R² and parameters of the fit on all rows, ranked by held-out error. Every law sees
    the same rows; a law with k inputs takes the first k of `x`. With a `skipped` dict, a form
    that cannot be fitted (too few points for its parameters, ...) is recorded there with the
    reason instead of stopping the comparison."""
    from scaling.laws.registry import law_class

    if not laws:
        raise FitError("compare: name at least one law, e.g. --laws power,chinchilla")
    rows = []
    for name in laws:
        klass = law_class(name)
        if len(x) < klass.n_inputs:
            raise FitError(f"compare: law {name!r} takes {klass.n_inputs} x column(s) but --x gave {len(x)}: {x}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                law = klass(**(law_options or {})).fit_and_check(df, x[: klass.n_inputs], y, holdout)
        except ScalingError as e:
            if skipped is None:
                raise
            skipped[name] = str(e)
            continue
        h = law.holdout_ or {}
        rows.append({"law": name, "x": ",".join(x[: klass.n_inputs]), "holdout_error": h.get("mean_abs_rel_error", np.nan),
                     "holdout_max_error": h.get("max_abs_rel_error", np.nan), "aic": law.aic_, "bic": law.bic_,
                     "r2": law.r2_, "n_params": law._n_free(), "n_points": law.n_points_,
                     "converged": bool(law.converged_), "params": dict(law.params_)})
    if not rows:
        raise FitError("compare: no law form could be fitted: " + "; ".join(f"{k}: {v}" for k, v in (skipped or {}).items()))
    out = pd.DataFrame(rows).sort_values("holdout_error", kind="stable").reset_index(drop=True)
    for k in ("holdout_error", "aic", "bic"):
        out[f"rank_{k}"] = out[k].rank(method="min").astype(int)
    return out
