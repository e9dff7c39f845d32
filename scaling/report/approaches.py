"""Report sections that tell fits apart: Chinchilla's approaches 1, 2 and 3 side by side, and
whether they agree; the law forms of L(N, D) ranked by held-out error.

Entry points `approaches_sections(runs, n=..., d=..., y=..., budget=None, curves=None, ...)`
(empty when the runs table lacks the N, D and loss columns) and `forms_section(table, x, y, ...)`;
the numbers come from `scaling.laws.agreement`.
"""

from __future__ import annotations


import pandas as pd

from scaling.errors import ScalingError
from scaling.report.render import Section, Table, join

def agreement_table(ag: dict) -> pd.DataFrame:
    """One row per approach: exponent a and tokens per parameter, each with its 95% interval."""
    def ci(v):
        return "–" if not v else f"{v[0]:.4g} – {v[1]:.4g}"

    return pd.DataFrame([{"approach": f"{r['approach']}: {r['method']}", "a (N_opt ∝ C^a)": r["a"], "a 95% CI": ci(r["a_ci"]),
                          f"tokens/param at C={ag['target_compute']:.2g}": r["tokens_per_param"],
                          "tokens/param 95% CI": ci(r["tokens_per_param_ci"])} for r in ag["approaches"]])


def approaches_sections(runs: pd.DataFrame, n: str, d: str, y: str, budget: str | None = None,
                        curves: pd.DataFrame | None = None, run: str = "run_id", flops: str = "flops",
                        target_compute: float = 1e24, n_bootstrap: int = 200, seed: int = 0,
                        law_options: dict | None = None) -> list[Section]:
    """The "Chinchilla approaches" section for a table with parameter, token and loss columns;
    `budget` (a compute-budget column of runs) adds Approach 2, `curves` (loss curves with `run`,
    `flops`, `y` and `n` columns) adds Approach 1; `law_options` go to Approach 3's law."""
    from scaling.laws.agreement import approach_agreement, verdict

    if any(c not in runs.columns for c in (n, d, y)):
        return []
    try:
        ag = approach_agreement(runs, n=n, d=d, y=y, budget=budget, curves=curves, run=run, flops=flops,
                                target_compute=target_compute, n_bootstrap=n_bootstrap, seed=seed,
                                law_options=law_options)
    except ScalingError as e:
        return [Section("Chinchilla approaches", text=f"not available: {e}")]
    if not ag["approaches"]:
        return [Section("Chinchilla approaches", text="not available: " + "; ".join(ag["skipped"].values()))]
    text = (f"Compute-optimal allocation by each approach the data allow. Exponent a: {verdict(ag, 'a')}; "
            f"tokens per parameter: {verdict(ag, 'tokens_per_param')}. Two approaches agree when their difference's "
            "95% interval holds 0 (standard errors from each interval, added as if independent: conservative, as "
            "the approaches share their data); overlapping intervals alone can hide a clear difference.")
    skipped = [f"approach {k} not shown: {v}" for k, v in ag["skipped"].items()]
    return [Section("Chinchilla approaches", text=join([text, *skipped]),
                    tables=[Table(agreement_table(ag), caption="Approaches 1-3 side by side")], fit=ag)]


def forms_section(table: pd.DataFrame, x: list[str], y: str, holdout: str, law_options: dict | None = None) -> Section:
    """Chinchilla's, Kaplan's and the plain power law's forms fitted to the same rows as L(N, D)
    and ranked by held-out error (`scaling fit compare`'s default forms for two inputs), so that the
    reader sees whether the form the report extrapolates with is the one the data favour."""
    from scaling.laws.agreement import compare_forms, default_forms

    title = "Law forms compared"
    skipped: dict[str, str] = {}
    try:
        ranked = compare_forms(table, default_forms(x), x, y, holdout, law_options, skipped=skipped)
    except ScalingError as e:
        return Section(title, text=f"Not available: {e}", warnings=[f"law forms not compared: {e}"])
    rows = pd.DataFrame({"form": ranked["law"], "inputs": ranked["x"], "parameters": ranked["n_params"],
                         "held-out mean |rel. error|": ranked["holdout_error"],
                         "held-out max |rel. error|": ranked["holdout_max_error"], "AIC": ranked["aic"],
                         "BIC": ranked["bic"], "R²": ranked["r2"]})
    best = ranked.iloc[0]
    text = [f"The same {int(best['n_points'])} points as L(N, D), each form fitted without the held-out runs "
            f"({holdout}) and scored on them; AIC and BIC from the fit on all points. Lowest held-out error: "
            f"{best['law']} ({best['holdout_error']:.2%})."]
    by_aic = ranked.sort_values("aic").iloc[0]
    if by_aic["law"] != best["law"]:
        text.append(f"AIC prefers {by_aic['law']}: the forms that fit the runs best and the one that extrapolates "
                    "best differ, so weigh the held-out error, which tests what the report is used for.")
    text += [f"{name} not ranked: {why}" for name, why in skipped.items()]
    return Section(title, text=join(text), tables=[Table(rows, caption="Law forms ranked by held-out error")],
                   fit={"forms": ranked, "skipped": skipped})
