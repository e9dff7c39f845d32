"""Report sections of the `cpt` family: the mixture grid, D-CPT fits, held-out errors, and the
recommended domain share with its bootstrap interval, per domain; for several domains or both
continuation schedules, the cross-domain and re-warming sections of `scaling.report.cpt_domains`.

Also writes `cpt.parquet` beside the study's runs.parquet: one row per finished CPT run with
the columns the laws take (N, D, r = domain share, r_general = general share, domain, schedule,
loss_domain, loss_general, base_loss_*), so `scaling fit dcpt runs/<study>/cpt.parquet --x N
--x D --x r --y loss_domain` works directly (add `--where "domain == 'code'"` for one domain).
The base model's losses are each CPT run's step-0 eval (its parent's weights on its own eval
sets), which also covers the base runs of a `domains` study, trained on the general source alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from scaling import schema
from scaling.config import StudySpec
from scaling.errors import DataError, FitError
from scaling.laws.dcpt_compare import compare_laws, holdout_folds
from scaling.laws.dcpt_share import loss_vs_share_curves, optimal_domain_share
from scaling.laws.registry import get_law
from scaling.plots.cpt import plot_loss_vs_share, plot_share_choice
from scaling.report.fits import ReportOptions, answer, fit_summary, fit_warnings, heldout_error, params_table
from scaling.report.render import Answer, Section, Table, markup, sci
from scaling.report.study import register_sections
from scaling.store import Store, atomic_write_parquet

CPT_TABLE = schema.CPT_TABLE
X_DOMAIN = ["N", "D", "r"]
X_GENERAL = ["N", "D", "r_general"]
INIT = "default"
"""Start grid of every law fitted here (`init` of the D-CPT laws; tests use "coarse")."""
DOMAIN_KIND = "data.options.domain.kind"  # the mixture's domain source: names the domain of single-domain runs


def _loss_column(runs: pd.DataFrame, role: str) -> str:
    """The first eval set of a role (`loss_<role>_valid` when there is one)."""
    cols = sorted(c for c in runs.columns if c.startswith(f"{schema.LOSS_PREFIX}{role}_"))
    if not cols:
        raise DataError(f"runs have no `loss_{role}_*` column; CPT runs must evaluate on the {role} eval set")
    return f"loss_{role}_valid" if f"loss_{role}_valid" in cols else cols[0]


def _step0(curves: pd.DataFrame | None) -> pd.DataFrame:
    """Step-0 losses per run (index run_id), one `loss_<eval set>` column per eval set."""
    if curves is None or curves.empty:
        return pd.DataFrame()
    at0 = curves[curves[schema.STEP] == 0]
    wide = at0.pivot_table(index=schema.RUN_ID, columns=schema.EVAL_SET, values=schema.LOSS, aggfunc="first")
    return wide.rename(columns=schema.loss_column)


def _domain_names(cpt: pd.DataFrame) -> np.ndarray:
    """Each CPT run's domain: its `domains` name, else its domain source's kind."""
    fallback = cpt[DOMAIN_KIND].astype(str) if DOMAIN_KIND in cpt.columns else pd.Series("domain", index=cpt.index)
    if schema.CPT_DOMAIN in cpt.columns:
        named = cpt[schema.CPT_DOMAIN]
        return np.where(named.notna(), named.astype(str), fallback).astype(str)
    return fallback.to_numpy(str)


def cpt_table(runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Finished CPT runs with fit-ready columns, joined to their base model's losses: each run's
    step-0 eval where `curves` has it, else the base run's own final losses."""
    if schema.CPT_ROLE not in runs.columns:
        raise DataError("runs.parquet has no `extra.role` column: not a study of family 'cpt'")
    done = runs[runs[schema.STATUS] == "done"]
    dom, gen = _loss_column(done, "domain"), _loss_column(done, "general")
    base = done[done[schema.CPT_ROLE] == "base"].set_index(schema.RUN_ID)
    cpt = done[(done[schema.CPT_ROLE] == "cpt") & done[schema.PARENT].isin(base.index)]
    parent = base.reindex(cpt[schema.PARENT])
    base_dom = pd.Series(parent[dom].to_numpy(float) if dom in parent else np.nan, index=cpt[schema.RUN_ID])
    base_gen = pd.Series(parent[gen].to_numpy(float) if gen in parent else np.nan, index=cpt[schema.RUN_ID])
    start = _step0(curves)
    if not start.empty:
        start = start.reindex(cpt[schema.RUN_ID])
        if dom in start:
            base_dom = start[dom].astype(float).fillna(base_dom)
        if gen in start:
            base_gen = start[gen].astype(float).fillna(base_gen)
    schedule = (cpt[schema.CPT_SCHEDULE].fillna("rewarm").astype(str).to_numpy() if schema.CPT_SCHEDULE in cpt
                else np.full(len(cpt), "rewarm"))
    return pd.DataFrame({
        "run_id": cpt[schema.RUN_ID].to_numpy(), "label": cpt[schema.LABEL].to_numpy(),
        "seed": cpt[schema.CPT_BASE_SEED].to_numpy(), "domain": _domain_names(cpt), "schedule": schedule,
        "N": cpt[schema.CPT_N].to_numpy(float), "D": cpt[schema.CPT_TOKENS].to_numpy(float),
        "r": cpt[schema.CPT_SHARE].to_numpy(float), "r_general": cpt["extra.general_share"].to_numpy(float),
        "domain_tokens": cpt["extra.domain_tokens"].to_numpy(float),
        "loss_domain": cpt[dom].to_numpy(float), "loss_general": cpt[gen].to_numpy(float),
        "base_loss_domain": base_dom.to_numpy(float), "base_loss_general": base_gen.to_numpy(float),
    })


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # Law fits are many tiny tensor ops: extra threads only contend (tens of times slower on a busy machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def base_general_loss(table: pd.DataFrame, N: float) -> tuple[float, str]:
    """The base model's general loss at size N: measured if N is a grid size, else a log-log
    line through the base runs (the best available guess for an untrained size)."""
    base = table.groupby("N").base_loss_general.mean()
    if np.isclose(base.index.to_numpy(float), N, rtol=1e-9).any():
        return float(base[np.isclose(base.index, N)].iloc[0]), "measured"
    if len(base) < 2:
        raise FitError("extrapolating the base model's general loss to target_N needs at least 2 sizes")
    slope, icpt = np.polyfit(np.log(base.index.to_numpy(float)), np.log(base.to_numpy(float)), 1)
    return float(np.exp(icpt + slope * math.log(N))), "extrapolated (log-log line through the base runs)"


def _held_out_ratio(table: pd.DataFrame) -> np.ndarray:
    """The rows of the middle interior share: what the figure's curves are fitted without."""
    folds = holdout_folds(table, X_DOMAIN)["leave-out-ratio"]
    return folds[len(folds) // 2] if folds else np.zeros(len(table), bool)


def cpt_sections(spec: StudySpec, store: Store, runs: pd.DataFrame, opts: ReportOptions) -> list[Section]:
    from scaling.report.cpt_domains import cross_domain_section, r0_section, rewarm_section, variant_section
    from scaling.train.cpt import cpt_options  # here: scaling.train.cpt imports this module

    table = cpt_table(runs, store.curves())
    if table.empty:
        return [Section("Continual pre-training", text="No finished CPT runs yet.")]
    atomic_write_parquet(store.root / CPT_TABLE, table)
    cpt = cpt_options(spec)
    # The laws are fitted on the primary schedule's runs (the spec's first); others are compared with it.
    primary = cpt["schedule"] if (table.schedule == cpt["schedule"]).any() else str(table.schedule.mode().iloc[0])
    main = table[table.schedule == primary].reset_index(drop=True)
    domains = list(dict.fromkeys(main.domain))
    grid = Section("Continual pre-training grid", text=markup(
        "{} CPT runs over {} domain(s) ({}) × {} sizes × {} token budgets × {} domain shares × {} schedule(s) "
        "({}), each continued from its size's base model (max LR {}, warm-up {}); the laws are fitted on the "
        "{} runs. Fit-ready table: <code>{}</code>.",
        len(table), table.domain.nunique(), ", ".join(dict.fromkeys(table.domain)), table.N.nunique(),
        table.D.nunique(), table.r.nunique(), table.schedule.nunique(), ", ".join(dict.fromkeys(table.schedule)),
        f"{cpt['lr']:g}", f"{cpt['warmup']:g}", primary, str(store.root / CPT_TABLE)),
        tables=[Table(table.drop(columns=["run_id"]), caption="CPT runs")])
    recommendations, details, comparisons, points = [], [], {}, {}
    for d in domains:
        part = main[main.domain == d].reset_index(drop=True)
        rec, secs, comparison, errors = domain_sections(part, cpt, opts, d if len(domains) > 1 else None)
        recommendations += rec
        details += secs
        if comparison is not None:
            comparisons[d], points[d] = comparison, errors
    summary = []
    with _one_thread():
        if len(domains) >= 2:
            summary.append(cross_domain_section(main, opts, INIT))
        if comparisons:
            summary.append(variant_section(comparisons, points))
    summary.append(r0_section(table, primary))
    if table.schedule.nunique() >= 2:
        summary.append(rewarm_section(table, primary))
    return recommendations + summary + details + [grid]


def domain_sections(table: pd.DataFrame, cpt: dict, opts: ReportOptions, name: str | None = None
                    ) -> tuple[list[Section], list[Section], pd.DataFrame | None, pd.DataFrame | None]:
    """One domain's D-CPT fits: (recommendation, fit sections, held-out comparison or None, each
    held-out prediction's error or None: `compare_laws(points=True)` with a `loss` column).
    `name` (several domains) goes into every title."""
    of = f" — domain {name}" if name else ""
    if len(table) < 10:
        msg = f"{len(table)} CPT runs{of}: too few to fit the 9-parameter law (needs 10)."
        return [], [Section("D-CPT law" + of, text=msg, warnings=[msg])], None, None
    sections = []
    with _one_thread():
        parts = {role: compare_laws(table, x, f"loss_{role}", init=INIT, points=True, **opts.fit_options())
                 for role, x in (("domain", X_DOMAIN), ("general", X_GENERAL))}
        comparison = pd.concat([table_.assign(loss=role) for role, (table_, _) in parts.items()])
        points = pd.concat([pts.assign(loss=role) for role, (_, pts) in parts.items()], ignore_index=True)
        comparison = comparison[["loss", "law", "split", "n_train", "n_test", "huber", "r2", "mean_abs_rel_error",
                                 "max_abs_rel_error"]]
        laws, held_laws = {}, {}
        held = _held_out_ratio(table)
        if (~held).sum() < 2 * len(get_law("dcpt").params):
            held = np.zeros(len(table), bool)  # too few runs to leave a share out of the figure's fit
        for role, x in (("domain", X_DOMAIN), ("general", X_GENERAL)):
            y = f"loss_{role}"
            law = get_law("dcpt", seed=opts.seed, init=INIT, **opts.fit_options()).fit(table, x=x, y=y)
            ratio = comparison[(comparison.loss == role) & (comparison.law == "dcpt")
                               & (comparison.split == "leave-out-ratio")]
            if not ratio.empty:
                law.holdout_ = {"split": "leave-out-ratio", **ratio.iloc[0][["n_test", "mean_abs_rel_error",
                                                                              "max_abs_rel_error"]].to_dict()}
            if opts.bootstrap:
                law.bootstrap(opts.bootstrap, seed=opts.seed)
            laws[role] = law
            if held.any():
                held_laws[role] = get_law("dcpt", seed=opts.seed, init=INIT, **opts.fit_options()).fit(
                    table[~held], x=x, y=y)
            share = "r = domain share" if role == "domain" else "r = general share (1 − domain share)"
            title = f"D-CPT law on the {role} loss ({share}){of}"
            sections.append(Section(title, text=fit_summary(law), tables=[params_table(law)], fit=law,
                                    answers=[answer(law, "E", f"E of the D-CPT {role}-loss law{of}")],
                                    warnings=fit_warnings(law)))
        sections.append(Section("Held-out error: D-CPT against its variants" + of, text=markup(
            f"Huber: mean Huber loss (δ = {_delta_text(opts)}) of log residuals on the held-out runs; R² of the held-out "
            "losses. leave-out-ratio: each interior domain share held out in turn (pooled); leave-out-size: the "
            "largest N; leave-out-tokens: the largest D" + (" (with two CPT budgets that fit sees a single D, so "
            "its D exponent is unconstrained)" if table.D.nunique() < 3 else "") + ". <code>dcpt_chinchilla</code> "
            "ignores r; <code>dcpt_additive</code> is D-CPT with η = 0 (its D term also acts at r = 0, where "
            "D-CPT's B·r^η/D^β vanishes)."), tables=[Table(comparison, caption="Held-out errors" + of)],
            fit=comparison))
        fig = plot_loss_vs_share(table, held_laws or laws, held if held_laws else None)
        sections.append(Section("Loss against domain share" + of, figures=[(
            "Per size (colour) and CPT budget (line style): measured final losses, and the D-CPT law fitted "
            "without the hollow points (the middle domain share)", fig)]))
        rec = _recommendation(table, laws, cpt, of)
    return [rec], sections, comparison, points


def _delta_text(opts: ReportOptions) -> str:
    d = get_law("dcpt").delta if opts.delta is None else opts.delta  # the fits' delta
    return "each law's, from its residuals" if d == "auto" else f"{d:g}"


def _recommendation(table: pd.DataFrame, laws: dict, cpt: dict, of: str = "") -> Section:
    threshold = cpt["threshold"]
    target_n = cpt["target_N"] or float(table.N.max())
    target_d = cpt["target_D"] or 4.0 * float(table.D.max())
    rows = []
    targets = [(n, target_d) for n in sorted(table.N.unique()) if n != target_n] + [(target_n, target_d)]
    for n, d in targets:
        base, how = base_general_loss(table, n)
        c = optimal_domain_share(laws["domain"], laws["general"], n, d, base, threshold)
        rows.append({"N": n, "D": d, "base general loss": base, "base loss is": how,
                     "general limit": c.general_limit, "recommended r": c.domain_share, "95% CI low": c.lo,
                     "95% CI high": c.hi, "domain loss": c.domain_loss, "general loss": c.general_loss,
                     "limit binds": c.binding, "bootstrap feasible": c.boot_feasible})
    best = rows[-1]
    curves = loss_vs_share_curves(laws["domain"], laws["general"], target_n, target_d)
    fig = plot_share_choice(curves, best["general limit"], best["recommended r"], best["95% CI low"],
                            best["95% CI high"], title=f"target N = {sci(target_n)}, D = {sci(target_d)}")
    text = markup("Recommended domain share for N = {}, D = {}: <b>r = {}</b> (95% bootstrap interval {}–{}), "
                  "minimising the predicted domain loss with the general loss at most {} above the base model's "
                  "({}). Other rows: the grid's sizes at the same D. Held-out error: the domain-loss law's "
                  "leave-out-ratio check (each interior share held out in turn).",
                  sci(target_n), sci(target_d), f"{best['recommended r']:.3f}", f"{best['95% CI low']:.3f}",
                  f"{best['95% CI high']:.3f}", f"{threshold:.1%}", best["base loss is"])
    ans = Answer(f"recommended domain share r at N = {sci(target_n)}, D = {sci(target_d)} tokens{of}",
                 float(best["recommended r"]), (float(best["95% CI low"]), float(best["95% CI high"])),
                 heldout_error(laws["domain"]),
                 f"general loss ≤ {threshold:.1%} above the base model's; limit " +
                 ("binds" if best["limit binds"] else "does not bind"), 3)
    return Section("Recommended domain share" + of, text=text, tables=[Table(pd.DataFrame(rows), caption="Recommendation per size")],
                   figures=[("Predicted losses against the domain share at the target, 95% bootstrap bands", fig)],
                   fit=pd.DataFrame(rows), answers=[ans])


register_sections("cpt", cpt_sections)
