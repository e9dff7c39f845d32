"""CPT report sections across domains and schedules: the cross-domain D-CPT law's transfer to a
left-out domain, which D-CPT variant the held-out errors support, whether the domain loss at
r = 0 is flat in the CPT budget, and how continuation schedules compare (a re-warm against the
base's own learning rate continued, or held constant): what each gains and forgets.

Intervals are 95% Student-t intervals across the sizes and seeds of a cell (the runs that
differ only in N or seed), so with 3 sizes and one seed they rest on 3 values: wide, and said so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from scaling.errors import DataError, FitError
from scaling.laws.dcpt_compare import SPLITS
from scaling.laws.dcpt_cross import DCPTCrossLaw, leave_one_domain_out
from scaling.laws.identifiability import unpinned
from scaling.laws.validation import paired_difference
from scaling.plots.cpt import plot_rewarm_tradeoff
from scaling.report.fits import ReportOptions, fit_warnings
from scaling.report.render import Answer, Section, Table, markup, sci

X = ["N", "D", "r"]
CROSS_VARIANTS = ((("E",), "cheapest"), (("E", "C"), "cheapest"), (("E", "B", "C"), "span"))
"""(coefficients freed per domain, which few runs the left-out domain gets: `KNOWN_DESIGNS`):
the floor only (the paper's domain coefficient) and the floor with the share term's coefficient C,
both from the domain's cheapest runs (one budget); and the floor, C and the budget term's B, from
4 runs spanning two budgets at the smallest size (B needs two budgets to be identified)."""
KNOWN_TEXT = {"cheapest": "{n} cheapest runs (smallest N·D: its share sweep at the smallest size and budget)",
              "span": "{n} runs at the smallest size spanning the budgets (lowest and highest share r > 0 at the "
                      "lowest and highest D)"}


def t_interval(values: np.ndarray | pd.Series) -> tuple[float, float, float, int]:
    """(mean, 95% low, 95% high, n) of the values; the bounds are NaN below 2 values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan, len(v)
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half, len(v)


def known_count(table: pd.DataFrame) -> int:
    """How many runs a left-out domain gets: its share sweep at the cheapest (N, D), at least 3."""
    return max(3, int(table.r.nunique()))


# ---------------------------------------------------------------------------- cross-domain law


def cross_domain_table(main: pd.DataFrame, seed: int = 0, init: str = "default", **law_options: Any
                       ) -> tuple[pd.DataFrame, DCPTCrossLaw]:
    """(held-out rows, the law fitted on every domain: its coefficient table and warnings).

    Held-out rows: for each cross-domain variant and the pooled baseline (one `dcpt` law, no
    domain coefficient), each domain left out in turn and fitted from its `known_count` cheapest
    runs: law, free (per-domain coefficients), domain, n_known, n_test, mean/max abs rel error."""
    n_known = known_count(main)
    rows = []
    for free, known in CROSS_VARIANTS:  # read at call time, so a caller (or test) may narrow it
        try:
            out = leave_one_domain_out(main, X, "loss_domain", n_known=n_known, known=known, per_domain=free,
                                       seed=seed, init=init, **law_options)
        except DataError:
            if known == "cheapest":
                raise
            continue  # e.g. `span` on a grid with one budget at its smallest size: that variant is not run
        rows.append(out.assign(law="dcpt_cross", free=", ".join(free)))
    pooled = leave_one_domain_out(main, X, "loss_domain", n_known=n_known, pooled=True, seed=seed, init=init,
                                  **law_options)
    rows.append(pooled.assign(law="dcpt (pooled, no domain coefficient)", free="none"))
    held = pd.concat(rows, ignore_index=True)[["law", "free", "known", "domain", "n_known", "n_test",
                                               "mean_abs_rel_error", "max_abs_rel_error"]]
    return held, DCPTCrossLaw(seed=seed, init=init, **law_options).fit(main, x=X, y="loss_domain")


CROSS_TITLE = "Cross-domain D-CPT: a new domain's law from a few runs"


def cross_domain_section(main: pd.DataFrame, opts: ReportOptions, init: str = "default") -> Section:
    n_known, sizes = known_count(main), main.groupby("domain").size()
    # each left-out domain needs runs to test on, and the other domains enough to pin the 8 shared parameters
    short = [f"{d} ({n})" for d, n in sizes.items() if n <= n_known or len(main) - n < 2 * (8 + len(sizes))]
    if short:
        msg = (f"cross-domain D-CPT not fitted: leaving out domain(s) {', '.join(short)} leaves too few runs "
               f"(each needs more than {n_known}, and the other domains at least {2 * (8 + len(sizes))})")
        return Section(CROSS_TITLE, text=msg, warnings=[msg])
    try:
        held, law = cross_domain_table(main, opts.seed, init, **opts.fit_options())
    except FitError as e:
        return Section(CROSS_TITLE, text=f"cross-domain D-CPT not fitted: {e}", warnings=[f"cross-domain D-CPT: {e}"])
    by = held.groupby(["law", "free", "known"], sort=False).agg(
        n_known=("n_known", "first"), mean_abs_rel_error=("mean_abs_rel_error", "mean"),
        worst_mean=("mean_abs_rel_error", "max"), max_abs_rel_error=("max_abs_rel_error", "max")).reset_index()
    cross = by[by.law == "dcpt_cross"]
    best = cross.loc[cross.mean_abs_rel_error.idxmin()]
    pooled = by[by.law != "dcpt_cross"].iloc[0]
    mine = held[(held.law == "dcpt_cross") & (held.free == best.free) & (held.known == best.known)]
    worst = mine.sort_values("mean_abs_rel_error").iloc[-1]
    others = "; ".join(f"{r.free} free from the {r.known} design: {r.mean_abs_rel_error:.2%}"
                       for r in cross.itertuples() if r.Index != best.name)
    few = KNOWN_TEXT[best.known].format(n=int(best.n_known))
    text = markup(
        "The cross-domain D-CPT law (<code>dcpt_cross</code>: one D-CPT law shared by {} domains, each with its "
        "own coefficients) fitted on every domain but one plus that domain's {} predicts the left-out domain's "
        "other runs with mean |relative error| <b>{}</b> averaged over the left-out domains (worst domain {}: "
        "mean {}, max {}), with {} free per domain (other variants: {}). The pooled D-CPT law without a domain "
        "coefficient, from the cheapest runs, misses them by {} (max {}). Coefficient table: the law fitted on "
        "every domain's runs (E per domain: E_d = E + F/K_d^μ, the identifiable part of the paper's domain "
        "coefficient).",
        main.domain.nunique(), few, f"{best.mean_abs_rel_error:.2%}", worst.domain,
        f"{worst.mean_abs_rel_error:.2%}", f"{worst.max_abs_rel_error:.2%}", best.free, others or "none",
        f"{pooled.mean_abs_rel_error:.2%}", f"{pooled.max_abs_rel_error:.2%}")
    ans = Answer(f"held-out error of a left-out domain's D-CPT law from {int(best.n_known)} of its runs "
                 f"({best.known} design; dcpt_cross, {best.free} per domain; mean over domains)",
                 float(best.mean_abs_rel_error), None, float(best.mean_abs_rel_error),
                 f"worst domain {worst.domain}: max {worst.max_abs_rel_error:.2%}; "
                 f"pooled law without a domain coefficient: {pooled.mean_abs_rel_error:.2%}", 4)
    # Held-out errors are predictions inside the runs' range; the table's values are only worth
    # reading where the runs pin them (two budgets leave E, B and beta a valley, for instance).
    flat = unpinned(law)[0]
    caption = "dcpt_cross (E per domain) fitted on every domain" + (
        f"; not pinned by these runs (a flat direction: other values fit them exactly as well): {', '.join(flat)}"
        if flat else "")
    return Section(CROSS_TITLE, text=text, tables=[
        Table(held, caption="Each domain left out in turn: fitted from a few of its runs (known: which ones, "
                            "see the text), tested on the rest"),
        Table(by, caption="Per variant: mean over left-out domains, worst domain's mean, largest error"),
        Table(law.domain_params().assign(r2=law.r2_), caption=caption)], fit=held, answers=[ans],
        warnings=fit_warnings(law, "dcpt_cross fitted on every domain (coefficient table)"))


# ---------------------------------------------------------------------------- which variant


def variant_verdict(comparisons: dict[str, pd.DataFrame], role: str = "domain") -> pd.DataFrame:
    """Per law: its held-out mean |relative error| per split, averaged over domains, and overall
    (the mean over splits and domains of the splits every law has); sorted best first."""
    rows = []
    for domain, comp in comparisons.items():
        part = comp[(comp.loss == role) & comp.split.isin(SPLITS)]
        rows.append(part.assign(domain=domain))
    long = pd.concat(rows, ignore_index=True)
    common = set.intersection(*(set(g.split) for _, g in long.groupby("law")))
    wide = long.pivot_table(index="law", columns="split", values="mean_abs_rel_error", aggfunc="mean")
    wide = wide[[s for s in SPLITS if s in wide.columns]]
    wide["overall"] = long[long.split.isin(common)].groupby("law").mean_abs_rel_error.mean()
    return wide.sort_values("overall").reset_index()


def runner_up_gap(points: dict[str, pd.DataFrame], role: str, win: str, second: str
                  ) -> tuple[float, float, float, int]:
    """The winner's held-out error minus the runner-up's, paired over the held-out predictions both
    made, across domains and splits (`paired_difference`), with its 95% interval."""
    frames = [p[(p.loss == role) & p.split.isin(SPLITS)].drop(columns="loss").assign(domain=d)
              for d, p in points.items() if p is not None]
    if not frames:
        return math.nan, math.nan, math.nan, 0
    return paired_difference(pd.concat(frames, ignore_index=True), win, second)


def variant_section(comparisons: dict[str, pd.DataFrame], points: dict[str, pd.DataFrame] | None = None
                    ) -> Section:
    """Which variant the held-out errors support, per loss; with each held-out prediction's error
    (`points`, per domain), whether the winner's lead over the runner-up is more than noise."""
    tables, answers, lines = [], [], []
    for role in ("domain", "general"):
        verdict = variant_verdict(comparisons, role)
        win, rest = verdict.iloc[0], verdict.iloc[1:]
        others = "; ".join(f"{r.law} {r.overall:.2%}" for r in rest.itertuples())
        splits = ", ".join(f"{s} {win[s]:.2%}" for s in SPLITS if s in verdict.columns and np.isfinite(win[s]))
        own = "; ".join(f"{d}: {v.iloc[0].law} ({v.iloc[0].overall:.2%} against " + ", ".join(
            f"{r.law} {r.overall:.2%}" for r in v.iloc[1:].itertuples()) + ")"
            for d, v in ((d, variant_verdict({d: c}, role)) for d, c in comparisons.items()))
        gap = ""
        if points and len(rest):
            second = str(rest.iloc[0].law)
            d, lo, hi, n = runner_up_gap(points, role, str(win.law), second)
            if n:
                told = hi < 0
                gap = (f"; paired over the {n} held-out predictions both made, {win.law} minus {second} is "
                       f"{d * 100:+.2f} points (95% interval {lo * 100:+.2f} to {hi * 100:+.2f}): "
                       + (f"{win.law} is better beyond the noise" if told else
                          f"the held-out errors do not tell {win.law} and {second} apart"))
        lines.append(f"{role} loss: {win.law} (mean held-out error {win.overall:.2%}: {splits}; against {others}"
                     f"{gap}); per domain, {own}")
        tables.append(Table(verdict, caption=f"{role} loss: held-out mean |relative error| per split, averaged over "
                                             f"{len(comparisons)} domain(s)"))
        answers.append(Answer(f"D-CPT variant the held-out errors support on the {role} loss", str(win.law), None,
                              float(win.overall), f"others: {others}{gap}"))
    text = ("The variant with the lowest held-out error, averaged over every held-out split (each interior share "
            "left out in turn, the largest size, the largest budget) and domain, is the one the data support. "
            + " ".join(line + "." for line in lines))
    return Section("Which D-CPT variant the data support", text=text, tables=tables, answers=answers)


# ---------------------------------------------------------------------------- r = 0 flatness


def r0_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (schedule, domain, N, seed): the domain loss at r = 0 at the smallest and largest CPT
    budget and its relative change, beside the same change at r = 1 (what the budget does when
    it is domain data), the general loss's change at r = 0 (what more general training does to
    the data it is on), the base model's domain loss and the relative distance from it at the
    largest budget."""
    rows = []
    d_lo, d_hi = table.D.min(), table.D.max()
    if d_lo == d_hi:
        return pd.DataFrame(rows)
    for (s, dom, n, seed), g in table.groupby(["schedule", "domain", "N", "seed"]):
        at = {(r, d): float(v) for r, d, v in zip(g.r, g.D, g.loss_domain)}
        general = {(r, d): float(v) for r, d, v in zip(g.r, g.D, g.loss_general)}
        r_max = float(g.r.max())
        if (0.0, d_lo) not in at or (0.0, d_hi) not in at:
            continue
        rows.append({"schedule": s, "domain": dom, "N": n, "seed": seed,
                     "base loss_domain": float(g.base_loss_domain.iloc[0]), "loss at r=0, D min": at[0.0, d_lo],
                     "loss at r=0, D max": at[0.0, d_hi], "change at r=0": at[0.0, d_hi] / at[0.0, d_lo] - 1,
                     "general change at r=0": general[0.0, d_hi] / general[0.0, d_lo] - 1,
                     "from base at D max": at[0.0, d_hi] / float(g.base_loss_domain.iloc[0]) - 1,
                     f"change at r={r_max:g}": (at[r_max, d_hi] / at[r_max, d_lo] - 1
                                                if (r_max, d_lo) in at and (r_max, d_hi) in at else math.nan)})
    return pd.DataFrame(rows)


def _per_model_interval(t: pd.DataFrame, column: str) -> tuple[float, float, float, int]:
    """`t_interval` over models (N, seed), each the mean of its domains' values: at r = 0 the runs of
    every domain train on the same general data, so their domains are not independent samples."""
    return t_interval(t.groupby(["N", "seed"])[column].mean())


def r0_section(table: pd.DataFrame, primary: str) -> Section:
    title = "Domain loss at r = 0 against the CPT budget"
    if table.D.nunique() < 2 or not (table.r == 0).any():
        return Section(title, text="Needs runs at r = 0 for at least two CPT budgets.")
    t = r0_table(table)
    if t.empty:
        return Section(title, text="No size has r = 0 runs at both the smallest and the largest budget.")
    own = t[t.schedule == primary]
    m, lo, hi, n = _per_model_interval(own, "change at r=0")
    r_col = [c for c in t.columns if c.startswith("change at r=") and c != "change at r=0"][0]
    m1 = float(np.nanmean(own[r_col]))
    g, g_lo, g_hi, _ = _per_model_interval(own, "general change at r=0")
    b, b_lo, b_hi, _ = _per_model_interval(own, "from base at D max")
    d_lo, d_hi = table.D.min(), table.D.max()
    at_r1 = r_col.removeprefix("change at ")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        verdict = "With one model there is no interval: train more sizes or seeds to tell a D term at r = 0."
    elif lo <= 0.0 <= hi:
        verdict = "The interval covers 0: the data show no D term at r = 0, as D-CPT assumes."
    else:
        moves = (g_lo > 0 or g_hi < 0) and np.sign(g) == np.sign(m)
        how = ("The domain loss moves with the general loss: at r = 0 a continuation is more training on the "
               "general data." if moves else
               "The general loss does not move measurably, so this is transfer: more general training keeps "
               "changing the domain loss after the general loss has levelled off.")
        verdict = markup("That is {} of the change at {}. {} A D term that also acts at r = 0 "
                         "(<code>dcpt_additive</code>) can follow that; D-CPT's B·r^η/D^β cannot.",
                         f"{abs(m / m1):.0%}" if m1 else "n/a", at_r1, how)
    why = {"continue": "These runs go on with the base's own training (its last learning rate and optimiser "
                       "state, no warm-up), so what is left is what more general tokens do.",
           "rewarm": "A re-warm first raises the loss and its decay then lowers it below the base's, so part of "
                     "this is the schedule, not the data."}.get(primary, "")
    others = []
    for s, part in t[t.schedule != primary].groupby("schedule"):
        om, olo, ohi, _ = _per_model_interval(part, "change at r=0")
        others.append(f"{s} schedule: {om:+.2%} ({olo:+.2%} to {ohi:+.2%})")
    text = markup(
        "D-CPT has no D term at r = 0 (B·r^η/D^β vanishes): with base models trained long enough, continuing "
        "on general data alone for more tokens leaves the domain loss where it is. From D = {} to {} ({} "
        "schedule), the domain loss at r = 0 changes by <b>{}</b> on average (95% interval {} to {} over {} "
        "models, sizes × seeds: at r = 0 every domain's run is the same training, so its domains are averaged "
        "first), against {} at {} over the same budgets; the same runs' general loss changes by {} "
        "({} to {}). {} {} At the largest budget the domain loss at r = 0 is {} ({} to {}) from the base model's "
        "own.{}",
        sci(d_lo), sci(d_hi), primary, f"{m:+.2%}", f"{lo:+.2%}", f"{hi:+.2%}", n, f"{m1:+.2%}", at_r1,
        f"{g:+.2%}", f"{g_lo:+.2%}", f"{g_hi:+.2%}", why, verdict, f"{b:+.2%}", f"{b_lo:+.2%}", f"{b_hi:+.2%}",
        (" The same change with the " + "; ".join(others) + ".") if others else "")
    ans = Answer(f"relative change of the domain loss at r = 0 from D = {sci(d_lo)} to {sci(d_hi)} "
                 f"({primary} schedule)", m, (lo, hi), None, f"at {at_r1}: {m1:+.2%}; "
                 f"general loss at r = 0: {g:+.2%}; at D = {sci(d_hi)} against the base model: {b:+.2%}")
    return Section(title, text=text, tables=[Table(t, caption="Per size and domain")], fit=t, answers=[ans])


# ---------------------------------------------------------------------------- re-warming


def rewarm_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Per (schedule, domain, D, r): domain loss gained (base − final) and general loss forgotten
    (final − base), mean and 95% interval across sizes and seeds, with n."""
    t = table.assign(gain=table.base_loss_domain - table.loss_domain,
                     forgetting=table.loss_general - table.base_loss_general)
    rows = []
    for (s, dom, d, r), g in t.groupby(["schedule", "domain", "D", "r"]):
        gm, glo, ghi, n = t_interval(g.gain)
        fm, flo, fhi, _ = t_interval(g.forgetting)
        rows.append({"schedule": s, "domain": dom, "D": d, "r": r, "n": n, "gain": gm, "gain_lo": glo,
                     "gain_hi": ghi, "forgetting": fm, "forgetting_lo": flo, "forgetting_hi": fhi})
    return pd.DataFrame(rows)


def rewarm_paired(table: pd.DataFrame, a: str, b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schedule a minus schedule b on the same (domain, N, seed, D, r): (per (domain, D, r) the
    gain and forgetting differences, mean and 95% interval across sizes and seeds; the paired runs)."""
    key = ["domain", "N", "seed", "D", "r"]
    t = table.assign(gain=table.base_loss_domain - table.loss_domain,
                     forgetting=table.loss_general - table.base_loss_general)
    both = t[t.schedule == a].merge(t[t.schedule == b], on=key, suffixes=("_a", "_b"))
    both = both.assign(d_gain=both.gain_a - both.gain_b, d_forgetting=both.forgetting_a - both.forgetting_b)
    rows = []
    for (dom, d, r), g in both.groupby(["domain", "D", "r"]):
        gm, glo, ghi, n = t_interval(g.d_gain)
        fm, flo, fhi, _ = t_interval(g.d_forgetting)
        rows.append({"domain": dom, "D": d, "r": r, "n": n, f"gain {a} − {b}": gm, "low": glo, "high": ghi,
                     f"forgetting {a} − {b}": fm, "low ": flo, "high ": fhi})
    return pd.DataFrame(rows), both


def rewarm_section(table: pd.DataFrame, primary: str) -> Section:
    schedules = list(dict.fromkeys([primary] + sorted(table.schedule.unique())))
    a, b = schedules[0], schedules[1]
    cells = rewarm_cells(table)
    paired, both = rewarm_paired(table, a, b)
    answers, parts = [], []
    mixed = table[table.r > 0]
    for dom in dict.fromkeys(table.domain):  # per domain: their losses differ in scale, so no mean across them
        for s in schedules:
            # one value per size and seed (the mean over the budgets and shares r > 0): the interval is across sizes
            t = mixed[(mixed.schedule == s) & (mixed.domain == dom)]
            per = t.assign(gain=t.base_loss_domain - t.loss_domain, forgetting=t.loss_general - t.base_loss_general
                           ).groupby(["N", "seed"])[["gain", "forgetting"]].mean()
            g, f = t_interval(per.gain), t_interval(per.forgetting)
            parts.append(f"{dom}, {s}: gains {g[0]:.4f} nats of domain loss (95% interval {g[1]:.4f} to {g[2]:.4f}) "
                         f"and forgets {f[0]:+.4f} nats of general loss ({f[1]:+.4f} to {f[2]:+.4f})")
            answers.append(Answer(f"domain {dom}: domain loss gained, {s} schedule (nats; mean over D, r > 0)", g[0],
                                  (g[1], g[2]), None, f"general loss forgotten {f[0]:+.4f} ({f[1]:+.4f} to "
                                                      f"{f[2]:+.4f}); across {g[3]} sizes × seeds"))
        pos = both[(both.r > 0) & (both.domain == dom)].groupby(["N", "seed"])[["d_gain", "d_forgetting"]].mean()
        dg, df_ = t_interval(pos.d_gain), t_interval(pos.d_forgetting)
        answers.append(Answer(f"domain {dom}: {a} minus {b}, domain gain (nats, paired per run, mean over r > 0)",
                              dg[0], (dg[1], dg[2]), None,
                              f"forgetting difference {df_[0]:+.4f} ({df_[1]:+.4f} to {df_[2]:+.4f})"))
    pos = both[both.r > 0].groupby(["N", "seed"])[["d_gain", "d_forgetting"]].mean()
    dg, df_ = t_interval(pos.d_gain), t_interval(pos.d_forgetting)
    text = markup(
        "Gupta et al. (2023): re-warming the learning rate for the continuation adapts faster to the new data "
        "but forgets more of the old. Gain: the base model's domain loss (each run's step-0 eval) minus the "
        "final one; forgetting: the final general loss minus the base model's. Per domain and schedule, averaged "
        "over budgets and shares r > 0, with 95% intervals across sizes (and seeds): {}. Paired per run ({} − {}) "
        "over every domain: the domain gain differs by {} nats ({} to {}) and the forgetting by {} nats ({} to {}).",
        "; ".join(parts), a, b, f"{dg[0]:+.4f}", f"{dg[1]:+.4f}", f"{dg[2]:+.4f}", f"{df_[0]:+.4f}",
        f"{df_[1]:+.4f}", f"{df_[2]:+.4f}")
    fig = plot_rewarm_tradeoff(cells)
    return Section("Re-warming: domain gained against general forgotten", text=text, tables=[
        Table(cells, caption="Per schedule, domain, D and r: mean over sizes and seeds with 95% intervals"),
        Table(paired, caption=f"Paired differences {a} − {b} per domain, D and r (intervals across sizes, seeds)")],
        figures=[("Trade-off per schedule: each point a (domain, D, r) cell, mean over sizes with 95% bars", fig)],
        fit=cells, answers=answers)


__all__ = ["CROSS_TITLE", "CROSS_VARIANTS", "cross_domain_section", "cross_domain_table", "known_count", "r0_section", "r0_table",
           "rewarm_cells", "rewarm_paired", "rewarm_section", "t_interval", "variant_section", "variant_verdict"]
