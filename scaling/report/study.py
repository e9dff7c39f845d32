"""What a study's report contains: the runs, their curves, and every law fitted with intervals.

Families add their own sections (encoder/decoder split, CPT mixture) through
`register_sections`; the decoder sections here apply to every study with a size axis. Laws in
N are fitted per token budget and per value of every other axis (see `scaling.report.grouping`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from scaling.config import StudySpec
from scaling.errors import ScalingError
from scaling.plots.curves import plot_curves
from scaling.report.fits import (COMPUTE_CONVENTION, LawFit, ReportOptions, answer, fit_summary, fit_warnings,
                                 fit_with_holdout, figures, law_section, params_table)
from scaling.report.grouping import C_6ND, SIZE, TOKENS, budget_table, size_groups, tokens_label
from scaling.report.render import Answer, Section, Table, join, markup, render_report, sci, signed_pct
from scaling.schema import describe_compute
from scaling.store import Store

__all__ = ["FAMILY_SECTIONS", "LawFit", "ReportOptions", "build_report", "decoder_sections", "eval_set_columns",
           "fit_summary", "fit_with_holdout", "law_section", "params_table", "register_sections", "size_fits"]

SectionBuilder = Callable[[StudySpec, Store, pd.DataFrame, ReportOptions], list[Section]]
FAMILY_SECTIONS: dict[str, list[SectionBuilder]] = {}


def register_sections(family: str, builder: SectionBuilder) -> None:
    FAMILY_SECTIONS.setdefault(family, []).append(builder)


RUN_COLUMNS = ("label", "run_id", "seed", "n_params", "n_params_nonemb", "n_params_enc", "n_params_dec",
               "extra.domain_share", "tokens", "flops", C_6ND, "loss", "bayes_loss", "status", "wall_time",
               "tokens_per_s")


def runs_table(runs: pd.DataFrame) -> Table:
    """Every run, with the training and data settings that differ between runs (a [grid] axis such
    as "train.lr"): without them two runs of one shape read as the same run."""
    cols = [c for c in RUN_COLUMNS if c in runs.columns]
    varying = [c for c in runs.columns if c.startswith(("train.", "data.")) and runs[c].astype(str).nunique() > 1]
    at = cols.index("seed") + 1 if "seed" in cols else len(cols)
    return Table(runs[cols[:at] + varying + cols[at:]], caption="Every run")


def eval_set_columns(runs: pd.DataFrame) -> list[tuple[str, str | None]]:
    """(loss column, Bayes column or None) per eval set."""
    out = []
    for c in runs.columns:
        if c.startswith("loss_"):
            b = "bayes_" + c[len("loss_"):]
            has_bayes = b in runs.columns and runs[b].notna().any()
            out.append((c, b if has_bayes else None))
    return out


MIN_SIZES = 4  # L_inf + (N0/N)^alpha has 3 parameters: one more size to have a residual


def size_fits(runs: pd.DataFrame, opts: ReportOptions, x: str = SIZE,
              unfitted: list[str] | None = None) -> list[LawFit]:
    """L(N) = L_inf + (N0/N)^alpha per eval set and per token budget (and value of every other
    axis), over the finished runs: seeds averaged, tuning axes at their per-size best. Groups of
    fewer than MIN_SIZES sizes are left out; `unfitted`, where given, gets a line saying which."""
    fits = []
    for loss_col, bayes_col in eval_set_columns(runs):
        name = loss_col[len("loss_"):]
        for g in size_groups(runs, loss_col, x, keep=(bayes_col,) if bayes_col else ()):
            title = f"L(N) on {name}" + (f" at {g.label}" if g.label else "")
            if len(g.data) < MIN_SIZES:
                if unfitted is not None:  # so the report does not go silent
                    unfitted.append(f"{title}: {len(g.data)} finished size(s); L_inf + (N0/N)^alpha has 3 "
                                    f"parameters and needs at least {MIN_SIZES} sizes (add shapes to [model] "
                                    "shapes, or wait for the unfinished runs)")
                continue
            law = fit_with_holdout("power", g.data, [x], loss_col, opts)
            bayes = float(g.data[bayes_col].mean()) if bayes_col else None
            fits.append(LawFit(title, law, g.data, opts.holdout, bayes, g.notes, g.budget, name))
    return fits


def budget_fits(runs: pd.DataFrame, opts: ReportOptions, x: str = SIZE) -> list[LawFit]:
    """L(N, D) = E + A/N^alpha + B/D^beta per eval set where the study varies the token budget."""
    fits = []
    for loss_col, bayes_col in eval_set_columns(runs):
        table = budget_table(runs, loss_col, x)
        if table is None or len(table) < 7 or table[x].nunique() < 3:
            continue
        if bayes_col:
            done = runs[runs.status == "done"] if "status" in runs else runs
            bayes = float(done[bayes_col].mean())
        else:
            bayes = None
        law = fit_with_holdout("chinchilla", table, [x, TOKENS], loss_col, opts)
        name = loss_col[len("loss_"):]
        fits.append(LawFit(f"L(N, D) on {name}", law, table, opts.holdout, bayes,
                           ["seeds averaged, tuning axes at their best per (size, budget)"], "", name))
    return fits


def chinchilla_section(fit: LawFit, runs: pd.DataFrame) -> Section:
    """E of L(N, D) against the Bayes loss, and the compute-optimal tokens per parameter."""
    from scaling.plots import plot_isoloss

    law, where = fit.law, f"eval set {fit.eval_set}"
    text = [fit_summary(law), f"Convention: {COMPUTE_CONVENTION}."]
    note = ""
    if fit.bayes is not None:
        rel = law.params_["E"] / fit.bayes - 1
        note = f"exact Bayes loss {fit.bayes:.4f}: {signed_pct(rel)}"
        text.append(f"Compared: E of L(N, D), the loss as both N and D → ∞, against the exact Bayes loss "
                    f"{fit.bayes:.4f}: {signed_pct(rel)}.")
    answers = [answer(law, "E", f"E of L(N, D) ({where})", note),
               answer(law, "alpha", f"size exponent alpha of L(N, D) ({where})", digits=3),
               answer(law, "beta", f"data exponent beta of L(N, D) ({where})", digits=3)]
    c = runs[C_6ND] if C_6ND in runs else 6.0 * runs[SIZE].astype(float) * runs[TOKENS].astype(float)
    c_max = float(np.nanmax(c))
    n_opt, d_opt = law.optimal_allocation(c_max)
    ci = None
    if getattr(law, "boot_params_", None) is not None:
        band = law.optimal_allocation_ci(c_max).iloc[0]
        ci = (c_max / (6 * band.N_hi ** 2), c_max / (6 * band.N_lo ** 2))  # D/N = C / (6 N²) falls with N
    answers.append(Answer(f"compute-optimal tokens per parameter D/N at C = {sci(c_max)} FLOPs (6·N·D), {where}",
                          float(d_opt / n_opt), ci, None, f"N_opt = {sci(float(n_opt))}, D_opt = {sci(float(d_opt))}", 3))
    figs = figures(fit, ax_x=SIZE)
    figs.append((f"Iso-loss contours of L(N, D) over {COMPUTE_CONVENTION}; red: compute-optimal N", plot_isoloss(law, fit.data)))
    tables = [params_table(law)]
    if getattr(law, "boot_params_", None) is not None:
        from scaling.plots.allocation import plot_allocation

        figs.append(("N_opt and D/N against compute with the bootstrap's 95% band (dashed: beyond the largest run)",
                     plot_allocation(law, float(np.nanmin(c)), 100 * c_max, data_max_compute=c_max)))
    tables.append(sensitivity_table(law, fit, 100 * c_max))
    return Section(fit.title, text=join(text), tables=tables, figures=figs, fit=fit, answers=answers,
                   warnings=fit_warnings(law))


def sensitivity_table(law, fit: LawFit, target: float) -> Table:
    """The (Mis)Fitting checklist beside the main fit: the same data refitted under each fitting choice."""
    from scaling.laws.sensitivity import sensitivity, spread

    table = sensitivity(law, fit.data, list(law.x_), law.y_, target_compute=target)
    rows = pd.DataFrame({"axis": table["axis"], "choice": table["choice"],
                         "a = beta/(alpha+beta)": table["a"], "tokens/param at C": table["tokens_per_param"],
                         "loss at C": table["loss_at_target"],
                         "params / error": [e or ", ".join(f"{k}={v:.4g}" for k, v in (p or {}).items())
                                            for p, e in zip(table["params"], table["error"])]})
    spreads = "; ".join(f"{k} {v['min']:.3g}–{v['max']:.3g}" for k, v in spread(table).items())
    return Table(rows, caption=f"Sensitivity to fitting choices at C = {sci(target)} FLOPs (spread: {spreads})")


def decoder_sections(spec: StudySpec, store: Store, runs: pd.DataFrame, opts: ReportOptions) -> list[Section]:
    unfitted: list[str] = []
    sections = [law_section(f) for f in size_fits(runs, opts, unfitted=unfitted)]
    if unfitted:
        sections.append(Section("Laws not fitted", warnings=unfitted))
    chinchilla = budget_fits(runs, opts)
    sections += [chinchilla_section(f, runs) for f in chinchilla]
    if chinchilla:  # Approaches 1-3 side by side where the study varies the token budget
        from scaling.report.approaches import approaches_sections, forms_section

        f = chinchilla[0]
        sections.append(forms_section(f.data, list(f.law.x_), f.law.y_, opts.holdout, opts.fit_options()))
        budget = "train.flops" if "train.flops" in runs.columns and runs["train.flops"].notna().any() else None
        c_max = float(np.nanmax(6.0 * f.data[SIZE].astype(float) * f.data[TOKENS].astype(float)))
        sections += approaches_sections(runs[runs.status == "done"] if "status" in runs else runs, SIZE, TOKENS,
                                        f"loss_{f.eval_set}", budget=budget, target_compute=100 * c_max,
                                        n_bootstrap=opts.bootstrap, seed=opts.seed, law_options=opts.fit_options())
    curves = store.curves()
    if not curves.empty:
        bayes = any(b for _, b in eval_set_columns(runs))
        sections.append(Section("Learning curves", figures=[
            ("Eval loss against training tokens for every run (log-log)" + "; dotted: exact Bayes loss" * bayes,
             plot_curves(curves, runs))]))
        sections.extend(frontier_sections(curves, runs, opts))
    return sections


def frontier_sections(curves: pd.DataFrame, runs: pd.DataFrame, opts: ReportOptions | None = None) -> list[Section]:
    """Henighan et al.'s compute-efficient frontier on the first eval set, with N_opt(C) ∝ C^a,
    in the compute convention C = 6·N·D (N non-embedding)."""
    from scaling.laws import ComputeFrontier
    from scaling.plots import plot_frontier

    done = runs[runs.status == "done"]
    if done[SIZE].nunique() < MIN_SIZES:
        why = f"not fitted: {done[SIZE].nunique()} finished size(s); N_opt ∝ C^a needs at least {MIN_SIZES}"
        return [Section("Compute-efficient frontier", warnings=[why])] if len(done) else []
    first = curves[(curves.eval_set == curves.eval_set.iloc[0]) & (curves.tokens > 0)
                   & curves.run_id.isin(done.run_id)].copy()
    sizes = done.set_index("run_id")[SIZE]
    first[C_6ND] = 6.0 * first.run_id.map(sizes).astype(float) * first.tokens.astype(float)
    title = "Compute-efficient frontier"
    try:
        frontier = ComputeFrontier(loss_law_options=opts.fit_options() if opts else None).fit(first, sizes=sizes)
    except ScalingError as e:
        return [Section(title, text=f"Not available: {e}", warnings=[f"frontier not fitted: {e}"])]
    lo, hi = getattr(frontier, "exponent_ci_", (math.nan, math.nan))
    text = (f"The envelope of loss against training compute across sizes; along it the "
            f"compute-optimal non-embedding size grows as N_opt ∝ C^{frontier.exponent_:.3f} (95% CI "
            f"{lo:.3f}–{hi:.3f}). With one token budget per size the frontier is read off the learning curves. "
            f"Compute: {describe_compute(frontier.compute_convention)}.")
    warnings = []
    if frontier.loss_law_ is not None:
        warnings = fit_warnings(frontier.loss_law_, "frontier loss law L(C)")
    fig = plot_frontier(frontier, first.assign(**{SIZE: first.run_id.map(sizes)}), flops=C_6ND, n_params=SIZE)
    return [Section(title, text=text, figures=[("Loss envelope and N_opt(C), C = 6·N·D", fig)],
                    answers=[Answer("frontier exponent a in N_opt ∝ C^a (first eval set)", frontier.exponent_,
                                    (lo, hi), None, COMPUTE_CONVENTION, 3)], warnings=warnings)]


register_sections("decoder", decoder_sections)


def overview(store: Store, runs: pd.DataFrame) -> Section:
    counts = runs.status.value_counts().to_dict()
    flops = np.nansum(runs.flops) if "flops" in runs else math.nan
    c6 = f"; {sci(np.nansum(runs[C_6ND]))} in the laws' convention 6·N·D" if C_6ND in runs else ""
    d = ""
    if TOKENS in runs and runs[TOKENS].notna().any():
        t = runs[TOKENS].astype(float)
        d = (f" Training tokens per run: {tokens_label(t.min())}" +
             (f"–{tokens_label(t.max())}" if t.max() > t.min() else "") + ".")
    text = markup("{} runs ({}); total training compute {} FLOPs (exact count{}).{} Laws use {}. Store: <code>{}</code>.",
                  len(runs), ", ".join(f"{n} {k}" for k, n in counts.items()), sci(flops), c6, d,
                  COMPUTE_CONVENTION, str(store.root))
    return Section("Runs", text=text, tables=[runs_table(runs)])


def build_report(spec: StudySpec, store: Store, out: Path, opts: ReportOptions | None = None) -> list[Section]:
    """Write the study's self-contained HTML report to `out`; returns its sections (with their fits)."""
    opts = opts or ReportOptions()
    runs = store.runs()
    if runs.empty:
        raise ScalingError(f"{store.root}: no finished runs yet; run `scaling grid run` first")
    sections = []
    for builder in FAMILY_SECTIONS.get(spec.family, []):
        try:
            sections.extend(builder(spec, store, runs, opts))
        except ScalingError as e:  # a law that cannot be fitted yet must not hide the rest
            sections.append(Section("Fit not available", text=str(e), warnings=[f"fit not available: {e}"]))
    sections.append(overview(store, runs))  # the long runs table after the answers and figures
    render_report(f"Study: {spec.name}", sections, out, subtitle=spec.study.description or spec.family)
    return sections
