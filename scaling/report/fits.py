"""How a fitted law appears in a report: its parameters (with intervals and bound flags), a
one-paragraph summary, the held-out check drawn against the fit that excluded the held-out
runs, and the answers it gives for the summary."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaling.config import HOLDOUT_DEFAULT
from scaling.errors import FitError, SpecError
from scaling.laws import get_law
from scaling.laws.base import Law
from scaling.laws.identifiability import flat_warning, unpinned
from scaling.laws.validation import parse_holdout, replicate_floor
from scaling.report.render import Answer, Section, Table, column_format, join, signed_pct

if TYPE_CHECKING:
    from scaling.config import StudySpec

COMPUTE_CONVENTION = "compute C = 6·N·D, N = non-embedding parameters, D = training tokens"
"""How the report names `scaling.schema.COMPUTE_CONVENTION` (the runs table's `c_6nd` column)."""


@dataclass
class ReportOptions:
    bootstrap: int = 200
    holdout: str = HOLDOUT_DEFAULT
    seed: int = 0
    bootstrap_method: str = "auto"
    """"pairs", "residual", or "auto": residual below 20 points, where pairs resamples degenerate."""
    advise_budget: float = 0.0
    """FLOPs for a "which runs next" section (`scaling advise` on the study's spec); 0 = none."""
    delta: float | str | None = None
    """Huber delta of every fit in the report: a number, "auto" (from the residuals), or None for
    the laws' default (1e-3; a select study's `[select] delta` where the spec sets one)."""

    @classmethod
    def for_study(cls, spec: StudySpec, **flags: Any) -> ReportOptions:
        """The spec's [report] choices with the flags a command was given over them (None = not
        given), so that `scaling report` renders what `scaling demo` did; the holdout's grammar is
        checked here, before anything is fitted."""
        chosen = {f.name: getattr(spec.report, f.name) for f in dataclasses.fields(spec.report)}
        given = {k: v for k, v in flags.items() if v is not None}
        try:
            parse_holdout(given.get("holdout", chosen["holdout"]))
        except FitError as e:
            if "holdout" in given:
                raise
            raise SpecError(f"{spec.path or spec.name}: [report] `holdout`: {e}") from None
        return cls(**{**chosen, **given})

    def fit_options(self) -> dict[str, Any]:
        """Options every law of the report is built with."""
        return {} if self.delta is None else {"delta": self.delta}

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
    budget: str = ""
    """The fixed budget the law is fitted at, e.g. "D = 4.0M tokens per run" (empty for a law in D)."""
    eval_set: str = ""


def fit_with_holdout(law_name: str, df: pd.DataFrame, x: list[str], y: str, opts: ReportOptions,
                     holdout: str | None = None, **law_options: Any) -> Law:
    """Fit on all points with bootstrap intervals (`Law.fit_and_check`); the held-out check is the
    copy fitted without the held-out rows, kept as `holdout_fit_`."""
    holdout = opts.holdout if holdout is None else holdout
    law = get_law(law_name, seed=opts.seed, **{**opts.fit_options(), **law_options})
    try:
        law.fit_and_check(df, x, y, holdout)
    except FitError as e:  # the check cannot run (too few points left); the fit itself still can
        law.fit(df, x=x, y=y)
        law.holdout_ = {"split": holdout, "error": str(e)}
        law.holdout_fit_ = None
    if opts.bootstrap:
        law.bootstrap(opts.bootstrap, seed=opts.seed, method=opts.method_for(law.n_points_))
    return law


def held_out_fit(law: Law) -> Law | None:
    """The copy of `law` fitted without its held-out rows, if the check ran."""
    held = getattr(law, "holdout_fit_", None)
    return held if held is not None and "n_test" in (getattr(held, "holdout_", None) or {}) else None


def bound_sides(law: Law) -> dict[str, str]:
    """Parameter -> "lower" or "upper" for every fitted parameter at a bound of its range."""
    names = list(getattr(law, "at_bounds_", []) or [])
    if not names:
        return {}
    lo, hi = law.bounds()
    out = {}
    for name in names:
        j = law.param_names.index(name)
        out[name] = "lower" if law.theta_[j] <= lo[j] else "upper"
    return out


def bound_warning(law: Law, what: str = "") -> str | None:
    sides = bound_sides(law)
    if not sides:
        return None
    items = ", ".join(f"{k} = {law.params_[k]:.4g} at its {v} bound" for k, v in sides.items())
    return (f"{what or law.name}: {items}; the data do not pin it down (an unidentified term, or a range to widen), "
            f"so its value and interval are the bound's, not the data's")


def fit_warnings(law: Law, what: str = "") -> list[str]:
    """What a reader must not miss about a fit: non-convergence, parameters at their bounds and
    parameters the runs do not pin (a flat direction)."""
    out = []
    if not law.converged_:
        out.append(f"{what or law.name}: the fit did not converge ({law.n_starts_best_} of {law.n_starts_} starts "
                   f"reached the best basin); its numbers are the best found, not an optimum")
    b = bound_warning(law, what)
    if b:
        out.append(b)
    flat = flat_warning(law, what)
    if flat:
        out.append(flat)
    return out


def params_table(law: Law) -> Table:
    """Value, 95% interval, bound flag and flat-direction flag per parameter; one format per row
    (rows are different quantities)."""
    ci = getattr(law, "ci_", {}) or {}
    sides = bound_sides(law)
    flat = set(unpinned(law)[0])
    rows = []
    for name, value in law.params_.items():
        lo, hi = ci.get(name, (math.nan, math.nan))
        f = column_format([value, lo, hi])
        rows.append({"parameter": name, "value": f(value), "95% CI low": f(lo), "95% CI high": f(hi),
                     "at bound": f"⚠ {sides[name]} bound" if name in sides else "",
                     "pinned by the runs": "⚠ no: flat direction" if name in flat else ""})
    for name, value in (law.const or {}).items():
        rows.append({"parameter": f"{name} (fixed)", "value": column_format([value])(value), "95% CI low": "–",
                     "95% CI high": "–", "at bound": "", "pinned by the runs": ""})
    return Table(pd.DataFrame(rows), caption=f"{law.name} parameters")


def heldout_error(law: Law) -> float | None:
    h = getattr(law, "holdout_", {}) or {}
    return float(h["mean_abs_rel_error"]) if "mean_abs_rel_error" in h else None


def fit_summary(law: Law) -> str:
    h = getattr(law, "holdout_", {}) or {}
    held = (f"held-out check ({h.get('split')}): the law fitted without {h.get('n_test')} run(s) predicts them with "
            f"mean |relative error| {h.get('mean_abs_rel_error', math.nan):.2%}, max "
            f"{h.get('max_abs_rel_error', math.nan):.2%}"
            if "mean_abs_rel_error" in h else f"held-out check: {h.get('error', 'not run')}")
    conv = "converged" if law.converged_ else "did NOT converge"
    boot = getattr(law, "boot_method_", None)
    intervals = (f"95% intervals from {len(law.boot_params_)} {boot} bootstrap replicates" if boot
                 else "no bootstrap intervals")
    sides = bound_sides(law)
    bounds = ("; at a bound: " + ", ".join(f"{k} ({v})" for k, v in sides.items())) if sides else "; no parameter at a bound"
    return (f"Fitted on {law.n_points_} points by {objective_text(law)}; objective {law.objective_:.4g} ({conv}, "
            f"{law.n_starts_best_} of "
            f"{law.n_starts_} starts reached the best basin); R² {law.r2_:.4f}, AIC {law.aic_:.2f}, "
            f"BIC {law.bic_:.2f}{bounds}; {intervals}; {held}.")


def objective_text(law: Law) -> str:
    """What the fit minimised, e.g. "Huber loss (δ = 0.0123, auto: from the residuals) of log residuals",
    so that a reader can tell two renderings of a study apart (`[report] delta`)."""
    loss = str(getattr(law, "loss", "huber"))
    scale = "log" if law.fit_scale == "log" else "linear"
    if loss not in ("huber", "asymmetric") or not hasattr(law, "delta_"):
        return f"{ {'mse': 'squared', 'mae': 'absolute'}.get(loss, loss)} error of {scale} residuals"
    how = ", auto: from the residuals" if law.delta == "auto" else ""
    return f"{'Huber' if loss == 'huber' else 'asymmetric Huber'} loss (δ = {law.delta_:.3g}{how}) of {scale} residuals"


def seed_noise_text(data: pd.DataFrame, by: list[str], y: str, held: Any = None) -> str:
    """The seed noise under a law's held-out errors (`replicate_floor` over runs equal in every `by`
    column), over all runs and over the `held` rows (the held-out ones); "" without replicates.
    For laws fitted on single runs (encdec); the decoder sections fit seed means instead."""
    floor, n = replicate_floor(data, by, y)
    if n == 0:
        return ""
    at_held = ""
    if held is not None:
        f, m = replicate_floor(data[np.asarray(held, dtype=bool)], by, y)
        at_held = f", {f:.2%} among the held-out runs" if m else ""
    return (f"Seed noise: a run's loss lies on average {floor:.2%} from the mean of the runs that differ from it only "
            f"in seed ({n} such groups){at_held}: a law that predicted every group's mean exactly would still show that "
            "held-out error, so held-out errors, and differences between laws, of that size are within the seed noise.")


def answer(law: Law, param: str, label: str, note: str = "", digits: int = 4) -> Answer:
    lo, hi = (getattr(law, "ci_", {}) or {}).get(param, (math.nan, math.nan))
    sides = bound_sides(law)
    if param in sides:
        note = (note + "; " if note else "") + f"⚠ at its {sides[param]} bound"
    return Answer(label, law.params_[param], (lo, hi), heldout_error(law), note, digits)


def figures(fit: LawFit, ax_x: str | None = None) -> list[tuple[str, Any]]:
    """The held-out check (drawn against the fit that excluded those runs), the fit on all
    points (the parameters in the table), and its residuals."""
    from scaling.plots import plot_fit, plot_residuals

    law, held = fit.law, held_out_fit(fit.law)
    out = []
    if held is not None:
        h = held.holdout_
        fig = plot_fit(held, fit.data, ax_x=ax_x, holdout=h["split"],
                       title=f"held-out check: fitted without {h['n_test']} run(s)")
        out.append((f"Extrapolation check: the law fitted on {held.n_points_} points, without the held-out "
                    f"run(s) (hollow red, split {h['split']}), dashed beyond its fitted range; mean |relative "
                    f"error| on them {h['mean_abs_rel_error']:.2%}", _bayes_line(fig, fit.bayes)))
    fig = plot_fit(law, fit.data, ax_x=ax_x, holdout="", title=f"fit on all {law.n_points_} points")
    out.append((f"Fit on all {law.n_points_} points (the parameters in the table), 95% bootstrap band", _bayes_line(fig, fit.bayes)))
    out.append((f"Residuals of the fit on all {law.n_points_} points", plot_residuals(law, fit.data, holdout="")))
    return out


def _bayes_line(fig, bayes: float | None):
    if bayes is not None and np.isfinite(bayes):
        ax = fig.axes[0]
        ax.axhline(bayes, color="0.3", ls=":", lw=1, label="exact Bayes loss")
        ax.legend(fontsize=7)
    return fig


def law_section(fit: LawFit) -> Section:
    """A law in N at one budget: parameters, check, figures; answers L_inf and alpha."""
    law = fit.law
    where = ", ".join(p for p in (fit.eval_set and f"eval set {fit.eval_set}", fit.budget) if p)
    text = [fit_summary(law)]
    note = ""
    if fit.bayes is not None and "L_inf" in law.params_:
        rel = law.params_["L_inf"] / fit.bayes - 1
        note = f"exact Bayes loss {fit.bayes:.4f}: {signed_pct(rel)}"
        text.append(f"Compared: L_inf at {fit.budget or 'the budget of these runs'}, the limit N → ∞ at this budget "
                    f"(E + B/D^β in a law of N and D), against the exact Bayes loss {fit.bayes:.4f}: {signed_pct(rel)}. "
                    f"It estimates the Bayes loss only as D → ∞ too.")
    text += [f"Points: {n}." for n in fit.notes]
    answers = []
    if "L_inf" in law.params_:
        answers = [answer(law, "L_inf", f"L_inf at {where}" if where else "L_inf", note),
                   answer(law, "alpha", f"size exponent alpha ({where})" if where else "size exponent alpha", digits=3)]
    return Section(fit.title, text=join(text), tables=[params_table(law)], figures=figures(fit), fit=fit,
                   answers=answers, warnings=fit_warnings(law))
