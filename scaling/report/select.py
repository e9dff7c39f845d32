"""Report sections of the `select` family: what each method kept, loss against compute per method,
the select law's compute multiplier CM(C) with its paired-bootstrap band (and counting the scoring
compute), and DataDecide's decision accuracy (Magnusson et al. 2025): how often the ranking of
two variants at a small size matches their ranking at the largest size.

Also writes scores.parquet, kept.parquet and select.parquet (scaling.train.select_tables).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling import schema
from scaling.config import StudySpec
from scaling.errors import ScalingError
from scaling.report.fits import bound_sides, fit_warnings
from scaling.report.render import Answer, Section, markup, table_html
from scaling.report.study import ReportOptions, register_sections
from scaling.store import Store


def selection_summary(select: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: keep share, precision and kept type shares (mean over runs)."""
    cols = [c for c in [schema.KEPT_TOKENS, schema.UNIQUE_TOKENS, schema.PRECISION_GOOD, schema.SELECT_FLOOR, schema.SELECT_FLOPS]
            if c in select] + sorted(c for c in select if c.startswith(schema.SHARE_PREFIX))
    g = select.groupby([schema.SELECT_METHOD, schema.SELECT_KEEP])[cols].mean().reset_index()
    return g.sort_values([schema.SELECT_KEEP, schema.SELECT_METHOD]).reset_index(drop=True)


def decision_accuracy(select: pd.DataFrame, loss: str = schema.LOSS, size: str = "N",
                      variant: str = schema.SELECT_VARIANT, budget: str | None = None) -> pd.DataFrame:
    """Per smaller size: the share of variant pairs ordered by loss as at the largest size (seeds
    averaged; ties at the target count as half)."""
    keys = [size] + ([budget] if budget else [])
    mean = select.groupby(keys + [variant])[loss].mean().unstack(variant)
    rows = []
    for key, group in mean.groupby(level=budget) if budget else [(None, mean)]:
        group = group.droplevel(budget) if budget else group
        sizes = sorted(group.index)
        target = group.loc[sizes[-1]]
        for s in sizes[:-1]:
            here = group.loc[s]
            pairs = [(a, b) for a, b in itertools.combinations(group.columns, 2)
                     if np.isfinite([here[a], here[b], target[a], target[b]]).all()]
            agree = [1.0 if np.sign(here[a] - here[b]) == np.sign(target[a] - target[b]) else
                     0.5 if target[a] == target[b] else 0.0 for a, b in pairs]
            rows.append({**({budget: key} if budget else {}), size: s, "target_" + size: sizes[-1],
                         "pairs": len(pairs), "decision_accuracy": float(np.mean(agree)) if agree else np.nan})
    return pd.DataFrame(rows)


def plot_loss_vs_compute(select: pd.DataFrame, loss: str = schema.LOSS) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    methods = list(pd.unique(select[schema.SELECT_METHOD]))
    keeps = sorted(pd.unique(select[schema.SELECT_KEEP]))
    markers = dict(zip(keeps, "os^Dv<>"))
    for i, m in enumerate(methods):
        for k in keeps:
            d = select[(select[schema.SELECT_METHOD] == m) & (select[schema.SELECT_KEEP] == k)]
            if d.empty:
                continue
            d = d.groupby("C")[loss].mean().sort_index()
            ax.plot(d.index, d.values, marker=markers[k], color=f"C{i}", lw=1, label=f"{m} keep {k:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C = 6ND (FLOPs)")
    ax.set_ylabel(f"{loss} (target eval set)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_cm(cm: dict[str, list[dict]], largest_run: float | None = None) -> Figure:
    """CM(C) per variant with its band. The y range follows the point estimates (x3 either side of
    them and of 1), not the bands: a band that runs off to infinity where the baseline never
    reaches the variant's loss would otherwise flatten every curve; such bands are cut at the
    frame. A dotted line marks the largest trained run: to its right CM is extrapolated."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    est = np.array([r["cm"] for rows in cm.values() for r in rows], dtype=float)
    est = est[np.isfinite(est) & (est > 0)]
    y_lo = min(float(est.min()) if len(est) else 1.0, 1.0) / 3
    y_hi = max(float(est.max()) if len(est) else 1.0, 1.0) * 3
    for i, (v, rows) in enumerate(cm.items()):
        C = np.array([r["compute"] for r in rows])
        y = np.array([r["cm"] for r in rows])
        lo = np.array([r["ci95"][0] for r in rows], dtype=float)
        hi = np.array([r["ci95"][1] for r in rows], dtype=float)
        ax.plot(C, y, color=f"C{i}", label=v)
        ok = ~np.isnan(lo) & ~np.isnan(hi)
        if ok.any():
            ax.fill_between(C[ok], np.clip(lo[ok], y_lo, y_hi), np.clip(hi[ok], y_lo, y_hi), color=f"C{i}", alpha=0.15)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    if largest_run:
        ax.axvline(largest_run, color="0.4", lw=0.8, ls="--", label="largest run (extrapolated beyond)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("compute multiplier CM(C) vs baseline")
    ax.legend(fontsize=7)
    return fig


def multiplier_sections(select: pd.DataFrame, baseline: str, opts: ReportOptions, floors: str = "auto",
                        delta: float | str | None = None) -> list[Section]:
    from scaling.laws.select import R_STAR, cell_bootstrap, multiplier_summary, study_law

    delta = opts.fit_options().get("delta", delta)  # `scaling report --delta` over the spec's [select] delta
    law = study_law(select, baseline, seed=opts.seed, floors=floors, delta=delta)
    unique_col = law.unique_tokens
    law.fit(select, x=["N", "D"], y=schema.LOSS)
    note = ""
    if opts.bootstrap:
        try:
            cell_bootstrap(law, select, cells=["N", schema.SEED], n=opts.bootstrap, seed=opts.seed)
        except (ScalingError, IndexError) as e:  # IndexError: no replicate converged
            note = f" The paired bootstrap failed ({type(e).__name__}: no converged replicates?), so no intervals."
            for attr in ("boot_theta_", "ci_"):
                if hasattr(law, attr):
                    delattr(law, attr)
            law.ci_ = {}
    C = np.geomspace(select["C"].min(), select["C"].max() * 10, 9)
    unique = select.groupby(schema.SELECT_VARIANT)[unique_col].first().to_dict()
    summary = multiplier_summary(law, C, unique=unique)
    cost = select.groupby(schema.SELECT_VARIANT)[schema.SELECT_FLOPS].first().to_dict()
    rows = []
    for v, entries in summary["cm"].items():
        m = summary["multiplier"][v]
        for r in entries:
            incl = with_scoring(r["cm"], r["compute"], cost.get(v, 0.0))
            rows.append({"variant": v, "m": m["m"], "m_lo": m["ci95"][0], "m_hi": m["ci95"][1],
                         "compute": r["compute"], "cm": r["cm"], "cm_lo": r["ci95"][0], "cm_hi": r["ci95"][1],
                         "p_below_1": r["p_below_1"], "cm_with_scoring": incl})
    table = pd.DataFrame(rows)
    how = {"column": "each E_v held at the exact floor of its selection (select_floor)",
           "shared": "one E shared by every variant ([select] floors = \"shared\"): selection changes how fast the "
                     "target is learnt, not its limit, so CM = m_v without repetition",
           }.get(law.floors, "one free E_v per variant")
    rep = (f"R* fitted ({law.params_['R_star']:.3g}), since some selection repeats for 4 or more epochs"
           if law.fits_r_star else f"R* = {R_STAR} (Muennighoff et al.)")
    warnings = fit_warnings(law, "select law")
    if note:
        warnings.append("select law:" + note)
    return [Section("Compute multiplier", answers=multiplier_answers(law, select, unique, cost), warnings=warnings,
                    text=markup(
        "The select law L_v(N, D) = E_v + A/N^α + B/(m_v·D′_v)^β fitted jointly over variants ({}; D′: effective "
        "data under repetition of the kept tokens, {}). CM_v(C) is the compute the unfiltered baseline needs to reach "
        "v's compute-optimal loss at C, over C; intervals from a paired bootstrap over (size, seed) cells; "
        "<i>cm_with_scoring</i> charges v its scoring FLOPs. Beyond the largest run the curve is extrapolation.{}",
        how, rep, note),
        tables=[table_html(table)], figures=[("CM(C) per variant with its 95% band", plot_cm(summary["cm"], float(select["C"].max())))],
        fit=law)]


def with_scoring(cm: float, compute: float, scoring_flops: float) -> float:
    """Cost-inclusive CM: the variant pays its scoring compute on top of its training compute."""
    return cm * compute / (compute + scoring_flops)


def multiplier_answers(law, select: pd.DataFrame, unique: dict, cost: dict) -> list[Answer]:
    """The summary's answers: each variant's compute multiplier at the largest run's compute (the
    frontier the runs reach, not an extrapolation), best first, with its interval and P(CM < 1)."""
    from scaling.laws.select import multiplier_summary

    C = float(select["C"].max())
    summary = multiplier_summary(law, np.array([C]), unique=unique)
    cm = summary["cm"]
    # A fit that did not converge, or whose bootstrap failed, gives numbers nobody should act on.
    caveat = ("" if law.converged_ else "NOT IDENTIFIED: the select-law fit did not converge; ") + (
        "" if getattr(law, "boot_theta_", None) is not None else "no interval (no bootstrap); ")
    # Where floors are equal and nothing repeats, CM = m whatever the other parameters are. Elsewhere CM
    # reads the compute-optimal frontiers, so every floor, coefficient and exponent enters it, and one
    # at its bound makes CM (and its interval) the bound's; m, fitted where the runs are, is not.
    sides = bound_sides(law)
    frontier = [k for k in sides if not k.startswith("m_")] if law.converged_ else []
    bound_caveat = ("NOT IDENTIFIED: " + ", ".join(f"{k} at its {sides[k]} bound" for k in frontier)
                    + " (CM extrapolates the baseline's frontier through that; read the data multiplier m); ")
    out = []
    for v, (r,) in sorted(cm.items(), key=lambda kv: -kv[1][0]["cm"]):
        incl = with_scoring(r["cm"], C, cost.get(v, 0.0))
        p = r["p_below_1"]
        is_m = np.isclose(r["cm"], summary["multiplier"][v]["m"], rtol=1e-6)
        out.append(Answer(f"compute multiplier of {v} at C = {C:.3g} FLOPs (the largest run)", r["cm"],
                          ci=tuple(r["ci95"]), digits=3,
                          note=caveat + ("" if not frontier or is_m else bound_caveat)
                          + (f"P(CM < 1) = {p:.2f}; " if np.isfinite(p) else "")
                          + f"{incl:.3g} with scoring FLOPs counted"))
    # m needs no frontier: what one kept token is worth in the pool's tokens, where the runs are (and
    # so less tied to the floors and exponents than CM, which extrapolates the baseline to reach L*).
    for v, m in sorted(summary["multiplier"].items(), key=lambda kv: -kv[1]["m"]):
        if v == law.baseline:
            continue
        own = f"m_{v}"
        m_caveat = caveat + (f"NOT IDENTIFIED: {own} at its {sides[own]} bound; " if own in sides and law.converged_ else "")
        out.append(Answer(f"data multiplier m of {v} (one kept token is worth m of the unfiltered pool's)", m["m"],
                          ci=tuple(m["ci95"]), digits=3, note=m_caveat.rstrip("; ")))
    return out


def select_sections(spec: StudySpec, store: Store, runs: pd.DataFrame, opts: ReportOptions) -> list[Section]:
    from scaling.train.select import select_options
    from scaling.train.select_tables import select_tables

    tables = select_tables(spec, store)
    select = tables["select"]
    if select.empty:
        return [Section("Data selection", text="No finished select runs yet.")]
    options = select_options(spec)
    baseline = options["baseline"]
    summary = selection_summary(select)
    stats = tables.get("selections")
    if stats is not None and not stats.empty:
        summary = summary.merge(stats[[schema.SELECT_METHOD, schema.SELECT_KEEP, schema.SELECT_KL_REDUCTION]],
                                on=[schema.SELECT_METHOD, schema.SELECT_KEEP], how="left")
    sections = [
        Section("Data selection: what each method kept", text=markup(
            "{} runs over {} variants. precision_good: share of kept tokens from documents of a good type; share_*: "
            "kept token share per type; select_floor: exact loss floor of the kept mixture on the target set "
            "(synthetic pools); select_kl_reduction: DSIR's KL reduction of the kept hashed-bigram distribution "
            "towards the target's; unique_tokens: tokens of the distinct kept documents. Tables: <code>{}</code>, "
            "<code>{}</code>.", len(select), select[schema.SELECT_VARIANT].nunique(),
            store.root / schema.SCORES_TABLE, store.root / schema.KEPT_TABLE), tables=[table_html(summary)]),
        Section("Loss against compute", figures=[("Target loss per method and keep share (seeds averaged)",
                                                  plot_loss_vs_compute(select))]),
    ]
    # budgets compared like for like: the k-th smallest token budget of every size
    ranked = select.assign(budget=select.groupby("N")["D"].rank(method="dense").astype(int))
    acc = decision_accuracy(ranked, budget="budget")
    sections.append(Section("Decision accuracy", text=(
        "DataDecide's decision accuracy: the share of variant pairs whose order by loss at a smaller size matches "
        "the order at the largest size (budget k: each size's k-th smallest token budget)."), tables=[table_html(acc)]))
    try:
        sections += multiplier_sections(select, baseline, opts, options["floors"], options["delta"])
    except ScalingError as e:
        sections.append(Section("Compute multiplier", text=f"The select law could not be fitted: {e}"))  # plain text: escaped once, by the template
    return sections


register_sections("select", select_sections)

__all__ = ["decision_accuracy", "plot_cm", "plot_loss_vs_compute", "select_sections", "selection_summary"]
