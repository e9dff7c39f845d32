"""Report section: Chinchilla's approaches 1, 2 and 3 side by side, and whether they agree.

Entry point `approaches_sections(runs, n=..., d=..., y=..., budget=None, curves=None, ...)`
returns a list with one `Section` (empty when the runs table lacks the N, D and loss columns);
the numbers come from `scaling.laws.agreement.approach_agreement`.
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
