"""Report sections of encoder/decoder studies: the bivariate law against L(N_total), the
recommended split with its interval, iso-loss contours, BLEU against cross-entropy, and the
composition bias between source-original and target-original eval sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scaling.config import StudySpec
from scaling.errors import ScalingError
from scaling.laws.validation import holdout_mask, paired_difference
from scaling.plots.curves import plot_curves
from scaling.plots.encdec import plot_bleu_vs_ce, plot_composition, plot_encdec_contours
from scaling.report.fits import (ReportOptions, answer, fit_summary, fit_warnings, fit_with_holdout, heldout_error,
                                 params_table, seed_noise_text)
from scaling.report.render import Answer, Section, Table, join
from scaling.report.study import eval_set_columns, register_sections
from scaling.store import Store

X = ["n_params_enc", "n_params_dec"]


def split_fraction(law) -> tuple[float, tuple[float, float] | None]:
    """Encoder share of non-embedding parameters at the optimum, pe/(pe+pd), and its 95% CI."""
    pe, pd_ = law.params_["pe"], law.params_["pd"]
    frac = pe / (pe + pd_)
    boot = getattr(law, "boot_params_", None)
    if boot is None or len(boot) == 0:
        return frac, None
    f = (boot["pe"] / (boot["pe"] + boot["pd"])).dropna()
    return frac, (float(np.quantile(f, 0.025)), float(np.quantile(f, 0.975)))


def comparison_table(encdec, power) -> Table:
    rows = []
    for name, law in (("encdec L(Ne, Nd)", encdec), ("power L(N_total)", power)):
        h = law.holdout_ or {}
        rows.append({"law": name, "parameters": len(law.params_), "R²": law.r2_, "AIC": law.aic_, "BIC": law.bic_,
                     "held-out mean |rel. err|": h.get("mean_abs_rel_error", math.nan),
                     "held-out max |rel. err|": h.get("max_abs_rel_error", math.nan)})
    return Table(pd.DataFrame(rows), caption="Bivariate law against a power law in total parameters")


def shape_out_comparison(done: pd.DataFrame, encdec, power) -> tuple[Table | None, str, list[str]]:
    """Leave-one-shape-out: each (Ne, Nd) shape's runs left out in turn and both laws refitted on
    the rest. One held-out point (the largest shape) is a weak referee: it sits at the end of an
    axis its neighbours already span, and one run's seed noise can be as large as the laws'
    difference. Returns the per-shape table, a verdict from the paired difference of the two
    laws' errors over shapes (95% bootstrap interval), and warnings for folds that failed."""
    shapes = done.assign(shape=done.n_params_enc.astype(int).astype(str) + " / "
                         + done.n_params_dec.astype(int).astype(str))
    if shapes["shape"].nunique() < 3:
        return None, "", []
    try:
        errors = {name: law.leave_one_out(shapes, group="shape").set_index("shape")
                  for name, law in (("encdec", encdec), ("power", power))}
    except ScalingError as e:
        return None, "", [f"leave-one-shape-out comparison not made: {e}"]
    order = shapes.groupby("shape").n_params_nonemb.first().sort_values().index  # smallest shape first
    errors = {name: e.loc[order] for name, e in errors.items()}
    table = pd.DataFrame({"Ne / Nd left out": order, "runs": errors["encdec"]["n_test"].to_numpy(),
                          "encdec mean |rel. err|": errors["encdec"]["mean_abs_rel_error"].to_numpy(),
                          "power mean |rel. err|": errors["power"]["mean_abs_rel_error"].to_numpy()})
    points = pd.concat([pd.DataFrame({"law": name, "row": e.index, "rel_error": e["mean_abs_rel_error"].to_numpy(),
                                      "split": "leave-one-shape-out"}) for name, e in errors.items()])
    d, lo, hi, n = paired_difference(points, "encdec", "power")
    mean_e, mean_p = table["encdec mean |rel. err|"].mean(), table["power mean |rel. err|"].mean()
    figures = (f"Leaving each of the {n} shapes out in turn, the bivariate law's mean held-out error is "
               f"{mean_e:.2%} and the total-parameter power law's {mean_p:.2%} (difference {d * 100:+.2f} points, "
               f"95% CI {lo * 100:+.2f} to {hi * 100:+.2f}, resampling shapes).")
    if hi < 0:
        verdict = " The bivariate law predicts left-out shapes better, beyond the noise: the split matters for the loss."
    elif lo > 0:
        verdict = (" The power law in total parameters predicts left-out shapes better, beyond the noise: at these "
                   "scales the split adds no predictive power, so read the recommended split with care.")
    else:
        verdict = (" The held-out errors do not tell the two laws apart: on these runs the split is not what decides "
                   "the loss predictions (run-to-run noise, or runs that lie on one curve in total parameters); the "
                   "bivariate law's use here is the split it recommends, with the exponents' intervals above.")
    return Table(table, caption="Leave-one-shape-out: mean |relative error| of each left-out shape's runs"), \
        figures + verdict, []


def encdec_sections(spec: StudySpec, store: Store, runs: pd.DataFrame, opts: ReportOptions) -> list[Section]:
    done = runs[runs.status == "done"]
    if len(done) < 5:
        raise ScalingError(f"encdec law needs at least 5 finished runs, have {len(done)}")
    holdout = "largest:1:n_params_nonemb"
    sections = []
    budget = float(done.n_params_nonemb.max()) * 4
    fitted = []
    for loss_col, bayes_col in eval_set_columns(done):
        name = loss_col[len("loss_"):]
        law = fit_with_holdout("encdec", done, X, loss_col, opts, holdout=holdout)
        power = fit_with_holdout("power", done, ["n_params_nonemb"], loss_col, opts, holdout=holdout)
        frac, ci = split_fraction(law)
        fitted.append((loss_col, bayes_col, law, power))
        ne, nd = law.optimal_split(budget)
        corner = ("" if 0 < frac < 1 else " The fit finds no effect of the "
                  + ("encoder" if frac == 0 else "decoder") + " size at these scales (its exponent is 0), so the"
                  " loss is minimised by spending the budget on the other side beyond the smallest size tried.")
        text = join([fit_summary(law), f"Recommended split: {frac:.1%} of non-embedding parameters in the "
                     f"encoder" + (f" (95% CI {ci[0]:.1%}–{ci[1]:.1%})" if ci else "") + "." + corner
                     + f" For a budget of {budget:.3g} non-embedding parameters: Ne = {float(ne):.3g}, "
                     f"Nd = {float(nd):.3g}. The second table compares the bivariate law with a power law in total "
                     f"parameters on the same runs."])
        figures = [("Iso-loss contours of the fitted L(Ne, Nd); red: optimal encoder/decoder split",
                    plot_encdec_contours(law, done, X, loss_col, split_ci=ci))]
        title = f"Encoder/decoder law on {name}"
        answers = [Answer(f"encoder share of non-embedding parameters at the optimum (eval set {name})", frac, ci,
                          heldout_error(law), f"held-out: {holdout}", 3),
                   answer(law, "L_inf", f"L_inf of L(Ne, Nd) (eval set {name})")]
        shape_table, shape_text, shape_warnings = shape_out_comparison(done, law, power)
        noise = seed_noise_text(done, X, loss_col, held=holdout_mask(done, holdout, X[0])[0]) or (
            "Each shape has one run, so the seed noise under the held-out errors is unknown: a second seed per shape "
            "measures it.")
        sections.append(Section(title, text=join([text, noise, shape_text]),
                                tables=[params_table(law), comparison_table(law, power)]
                                + ([shape_table] if shape_table is not None else []),
                                figures=figures, answers=answers,
                                warnings=fit_warnings(law) + fit_warnings(power, "power law in total parameters")
                                + shape_warnings))
    bleu_pairs = [(c, "bleu_" + c[len("loss_"):]) for c, _ in eval_set_columns(done) if "bleu_" + c[len("loss_"):] in done]
    if bleu_pairs:
        sections.append(bleu_section(done, bleu_pairs, opts))
    if len(fitted) >= 2:
        sections.append(composition_section(done, fitted))
    curves = store.curves()
    if not curves.empty:
        sections.append(Section("Learning curves", figures=[("Eval loss against target tokens (log-log)",
                                                              plot_curves(curves, runs))]))
    return sections


def bleu_section(done: pd.DataFrame, bleu_pairs: list[tuple[str, str]], opts: ReportOptions) -> Section:
    """BLEU = C·exp(k·CE) per eval set; a fit that cannot be made says why (never a silent skip)."""
    laws, rows, failed = {}, [], []
    for ce_col, bleu_col in bleu_pairs:
        name = bleu_col[len("bleu_"):]
        part = done[done[bleu_col] > 0]
        if len(part) < 3:
            failed.append(f"BLEU fit on {name} not made: {len(part)} run(s) with BLEU > 0, the fit needs 3")
            continue
        try:
            law = fit_with_holdout("bleu_ce", part, [ce_col], bleu_col, opts, holdout="")
        except ScalingError as e:
            failed.append(f"BLEU fit on {name} failed: {e}")
            continue
        laws[bleu_col] = law
        ci = getattr(law, "ci_", {}) or {}
        rows.append({"eval set": name, **{k: v for k, v in law.params_.items()},
                     **{f"{k} 95% CI": f"{lo:.3g}–{hi:.3g}" for k, (lo, hi) in ci.items()}, "R²": law.r2_})
        failed += fit_warnings(law, f"BLEU fit on {name}")
    return Section("BLEU against cross-entropy", text="BLEU = C·exp(k·CE) (Gordon et al. 2021) per eval set.",
                   tables=[Table(pd.DataFrame(rows), caption="BLEU fits")] if rows else [],
                   figures=[("Greedy-decoding BLEU against eval cross-entropy", plot_bleu_vs_ce(done, bleu_pairs, laws))],
                   fit=laws, warnings=failed)


def _ci_text(law, name: str) -> str:
    lo_hi = (getattr(law, "ci_", None) or {}).get(name)
    return f"{lo_hi[0]:.3g}–{lo_hi[1]:.3g}" if lo_hi else ""


def composition_table(done: pd.DataFrame, fitted: list[tuple[str, str | None, object, object]]) -> pd.DataFrame:
    """Per eval set: the floor, the smallest and the largest run's loss and BLEU, how far the
    largest run closed the gap to the floor, and the fitted exponents (L(N_total)'s alpha;
    L(Ne, Nd)'s pe and pd)."""
    d = done.sort_values("n_params_nonemb")
    small, large = d.iloc[0], d.iloc[-1]
    rows = []
    for loss_col, bayes_col, law, power in fitted:
        name = loss_col[len("loss_"):]
        bayes = float(d[bayes_col].mean()) if bayes_col else math.nan
        floor = 0.0 if math.isnan(bayes) else bayes
        row = {"eval set": name, "Bayes loss": bayes, "loss, smallest": small[loss_col], "loss, largest": large[loss_col],
               "gap to Bayes closed": 1 - (large[loss_col] - floor) / (small[loss_col] - floor),
               "alpha of L(N_total)": power.params_["alpha"], "alpha 95% CI": _ci_text(power, "alpha"),
               "pe": law.params_["pe"], "pe 95% CI": _ci_text(law, "pe"),
               "pd": law.params_["pd"], "pd 95% CI": _ci_text(law, "pd")}
        bleu_col = "bleu_" + name
        if bleu_col in d:
            row.update({"BLEU, smallest": small[bleu_col], "BLEU, largest": large[bleu_col],
                        "BLEU gained per nat": (large[bleu_col] - small[bleu_col]) / (small[loss_col] - large[loss_col])})
        rows.append(row)
    return pd.DataFrame(rows)


def composition_section(done: pd.DataFrame, fitted: list[tuple[str, str | None, object, object]]) -> Section:
    """Ghorbani et al.'s finding (iii): scaling helps source-original and target-original test
    data differently; here, how loss and BLEU scale on each eval set of the same runs."""
    table = composition_table(done, fitted)
    lines = []
    for r in table.to_dict("records"):
        line = (f"{r['eval set']}: loss {r['loss, smallest']:.3g} → {r['loss, largest']:.3g} from the smallest to the "
                f"largest model, {r['gap to Bayes closed']:.0%} of the gap to its Bayes loss closed")
        if "BLEU, smallest" in r:
            line += f"; BLEU {r['BLEU, smallest']:.3g} → {r['BLEU, largest']:.3g} ({r['BLEU gained per nat']:.3g} per nat)"
        lines.append(line + ".")
    text = join(["The same runs evaluated on each eval set (composition bias, Ghorbani et al. 2021: a model's gains "
                 "on data whose source side is original need not carry over to data whose target side is "
                 "original, translated back).", *lines])
    sets = [(c, b, ("bleu_" + c[len("loss_"):]) if ("bleu_" + c[len("loss_"):]) in done else None)
            for c, b, _, _ in fitted]
    figure = ("Excess loss over each eval set's Bayes loss and BLEU against model size, per eval set",
              plot_composition(done, sets))
    return Section("Composition bias: source-original against target-original", text=text,
                   tables=[Table(table, caption="Scaling per eval set (smallest and largest by non-embedding parameters)")],
                   figures=[figure])


register_sections("encdec", encdec_sections)
