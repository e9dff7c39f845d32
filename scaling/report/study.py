"""What a study's report contains: the runs, their curves, and every law fitted with intervals.

Families add their own sections (encoder/decoder split, CPT mixture) through
`register_sections`; the decoder sections here apply to every study with a size axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from scaling.config import StudySpec
from scaling.errors import FitError, ScalingError
from scaling.laws import get_law
from scaling.laws.base import Law
from scaling.plots.curves import plot_curves
from scaling.report.render import Section, render_report, table_html
from scaling.schema import C_6ND, describe_compute
from scaling.store import Store


@dataclass
class ReportOptions:
    bootstrap: int = 200
    holdout: str = "largest:1"
    seed: int = 0
    bootstrap_method: str = "auto"
    """"pairs", "residual", or "auto": residual below 20 points, where pairs resamples degenerate."""

    def method_for(self, n_points: int) -> str:
        if self.bootstrap_method != "auto":
            return self.bootstrap_method
        return "residual" if n_points < 20 else "pairs"


@dataclass
class LawFit:
    """A fitted law as the report and the demo show it."""

    title: str
    law: Law
    data: pd.DataFrame
    holdout: str | None
    bayes: float | None = None
    notes: list[str] = field(default_factory=list)


SectionBuilder = Callable[[StudySpec, Store, pd.DataFrame, ReportOptions], list[Section]]
FAMILY_SECTIONS: dict[str, list[SectionBuilder]] = {}


def register_sections(family: str, builder: SectionBuilder) -> None:
    FAMILY_SECTIONS.setdefault(family, []).append(builder)


def fit_with_holdout(law_name: str, df: pd.DataFrame, x: list[str], y: str, opts: ReportOptions,
                     holdout: str | None = None, **law_options: Any) -> Law:
    """Fit on all points with bootstrap intervals; the held-out check is a separate fit on the rest."""
    holdout = opts.holdout if holdout is None else holdout
    law = get_law(law_name, seed=opts.seed, **law_options)
    try:
        law.fit_and_check(df, x, y, holdout)
    except FitError as e:  # the check cannot run (too few points left); the fit itself still can
        law.fit(df, x=x, y=y)
        law.holdout_ = {"split": holdout, "error": str(e)}
    if opts.bootstrap:
        law.bootstrap(opts.bootstrap, seed=opts.seed, method=opts.method_for(law.n_points_))
    return law


def params_table(law: Law) -> str:
    rows = []
    for name, value in law.params_.items():
        lo, hi = (getattr(law, "ci_", {}) or {}).get(name, (math.nan, math.nan))
        rows.append({"parameter": name, "value": value, "95% CI low": lo, "95% CI high": hi})
    for name, value in (law.const or {}).items():
        rows.append({"parameter": f"{name} (fixed)", "value": value, "95% CI low": math.nan, "95% CI high": math.nan})
    return table_html(pd.DataFrame(rows))


def fit_summary(law: Law) -> str:
    h = getattr(law, "holdout_", {}) or {}
    held = (f"held-out ({h.get('split')}, {h.get('n_test')} point(s)): mean |relative error| "
            f"{h.get('mean_abs_rel_error', math.nan):.2%}, max {h.get('max_abs_rel_error', math.nan):.2%}"
            if "mean_abs_rel_error" in h else f"held-out check: {h.get('error', 'not run')}")
    conv = "converged" if law.converged_ else "<b>did not converge</b>"
    boot = getattr(law, "boot_method_", None)
    intervals = (f"95% intervals from {len(law.boot_params_)} {boot} bootstrap replicates" if boot
                 else "no bootstrap intervals")
    return (f"{law.n_points_} points; objective {law.objective_:.4g} ({conv}, {law.n_starts_best_} of "
            f"{law.n_starts_} starts reached the best basin); R² {law.r2_:.4f}, AIC {law.aic_:.2f}, "
            f"BIC {law.bic_:.2f}; {intervals}; {held}")


def law_section(fit: LawFit) -> Section:
    from scaling.plots import plot_fit, plot_residuals

    law = fit.law
    text = fit_summary(law)
    if fit.bayes is not None and "L_inf" in law.params_:
        lo, hi = (getattr(law, "ci_", {}) or {}).get("L_inf", (math.nan, math.nan))
        rel = law.params_["L_inf"] / fit.bayes - 1
        text += (f"<br>Fitted L_inf = {law.params_['L_inf']:.4f} (95% CI {lo:.4f}–{hi:.4f}) against the exact "
                 f"Bayes loss {fit.bayes:.4f}: {rel:+.2%}.")
    for note in fit.notes:
        text += f"<br>{note}"
    fig = plot_fit(law, fit.data, holdout=fit.holdout)
    if fit.bayes is not None:
        ax = fig.axes[0]
        ax.axhline(fit.bayes, color="0.3", ls=":", lw=1, label="exact Bayes loss")
        ax.legend(fontsize=8)
    figures = [("Prediction: fitted points solid, extrapolation dashed, held-out points marked, 95% band", fig),
               ("Residuals of the fit", plot_residuals(law, fit.data))]
    return Section(fit.title, text=text, tables=[params_table(law)], figures=figures, fit=fit)


def runs_table(runs: pd.DataFrame) -> str:
    cols = [c for c in ("label", "run_id", "seed", "n_params", "n_params_nonemb", "n_params_enc", "n_params_dec",
                        "extra.domain_share", "tokens", "flops", "loss", "bayes_loss", "status", "wall_time",
                        "tokens_per_s") if c in runs.columns]
    return table_html(runs[cols])


def eval_set_columns(runs: pd.DataFrame) -> list[tuple[str, str | None]]:
    """(loss column, Bayes column or None) per eval set."""
    out = []
    for c in runs.columns:
        if c.startswith("loss_"):
            b = "bayes_" + c[len("loss_"):]
            has_bayes = b in runs.columns and runs[b].notna().any()
            out.append((c, b if has_bayes else None))
    return out


def size_fits(runs: pd.DataFrame, opts: ReportOptions, x: str = "n_params_nonemb") -> list[LawFit]:
    """L(N) = L_inf + (N0/N)^alpha per eval set, over the finished runs (seeds averaged per size)."""
    done = runs[runs.status == "done"]
    fits = []
    for loss_col, bayes_col in eval_set_columns(done):
        agg = done.groupby(x, as_index=False)[[loss_col] + ([bayes_col] if bayes_col else [])].mean()
        if len(agg) < 4:
            continue
        law = fit_with_holdout("power", agg, [x], loss_col, opts)
        bayes = float(agg[bayes_col].mean()) if bayes_col else None
        fits.append(LawFit(f"L(N) on {loss_col[len('loss_'):]}", law, agg, opts.holdout, bayes))
    return fits


def decoder_sections(spec: StudySpec, store: Store, runs: pd.DataFrame, opts: ReportOptions) -> list[Section]:
    sections = [law_section(f) for f in size_fits(runs, opts)]
    curves = store.curves()
    if not curves.empty:
        sections.append(Section("Learning curves", figures=[
            ("Eval loss against training tokens for every run (log-log); dotted: exact Bayes loss",
             plot_curves(curves, runs))]))
        sections.extend(frontier_sections(curves, runs))
    return sections


def frontier_sections(curves: pd.DataFrame, runs: pd.DataFrame) -> list[Section]:
    """Henighan et al.'s compute-efficient frontier on the first eval set, with N_opt(C) ∝ C^a."""
    from scaling.laws import ComputeFrontier
    from scaling.plots import plot_frontier

    done = runs[runs.status == "done"]
    first = curves[(curves.eval_set == curves.eval_set.iloc[0]) & (curves.flops > 0) & curves.run_id.isin(done.run_id)]
    if done.n_params_nonemb.nunique() < 4:
        return []
    sizes = done.set_index("run_id")["n_params_nonemb"]
    try:
        frontier = ComputeFrontier().fit(first, sizes=sizes)
    except ScalingError as e:
        return [Section("Compute-efficient frontier", text=f"not available: {e}")]
    lo, hi = getattr(frontier, "exponent_ci_", (math.nan, math.nan))
    text = (f"The envelope of loss against training compute across sizes; along it the compute-optimal "
            f"non-embedding size grows as N_opt ∝ C^{frontier.exponent_:.3f} (95% CI {lo:.3f}–{hi:.3f}). "
            f"With one token budget per size the frontier is read off the learning curves. "
            f"Compute: {describe_compute(frontier.compute_convention)}.")
    # the curves drawn on the frontier's compute axis
    first = first.assign(**{C_6ND: 6.0 * first.run_id.map(sizes).to_numpy(float) * first.tokens.to_numpy(float)})
    fig = plot_frontier(frontier, first, n_params="n_params", flops=C_6ND)
    return [Section("Compute-efficient frontier", text=text, figures=[("Loss envelope and N_opt(C)", fig)])]


register_sections("decoder", decoder_sections)


def build_report(spec: StudySpec, store: Store, out: Path, opts: ReportOptions | None = None) -> list[Section]:
    """Write the study's self-contained HTML report to `out`; returns its sections (with their fits)."""
    opts = opts or ReportOptions()
    runs = store.runs()
    if runs.empty:
        raise ScalingError(f"{store.root}: no finished runs yet; run `scaling grid run` first")
    counts = runs.status.value_counts().to_dict()
    overview = Section("Runs", text=(f"{len(runs)} runs ({', '.join(f'{n} {k}' for k, n in counts.items())}); "
                                     f"total training compute {np.nansum(runs.flops):.3g} FLOPs. "
                                     f"Store: <code>{store.root}</code>."),
                       tables=[runs_table(runs)])
    sections = [overview]
    for builder in FAMILY_SECTIONS.get(spec.family, []):
        try:
            sections.extend(builder(spec, store, runs, opts))
        except ScalingError as e:  # a law that cannot be fitted yet must not hide the rest
            sections.append(Section("Fit not available", text=str(e)))
    render_report(f"Study: {spec.name}", sections, out, subtitle=spec.study.description or spec.family)
    return sections
