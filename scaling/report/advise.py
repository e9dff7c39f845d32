"""The "which runs next" section: the target's interval now, the advised runs, the expected narrowing
(decoder, encoder-decoder and select studies; see `scaling.advise.study.advise_study`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.config import StudySpec
from scaling.report.fits import ReportOptions
from scaling.report.render import Answer, Section, Table, markup
from scaling.report.study import register_sections
from scaling.store import Store

METHOD = ("Method: a c-optimal design over replicates of the current fit (residual bootstrap; parametric at a "
          "given noise): the linearised information of each candidate run, the target's variance by the delta "
          "method, the geometric mean of the 95% width over replicates as the criterion, runs added greedily "
          "within the budget and improved by swaps. Assumes the law's form is right and one run's loss has "
          "independent noise of constant scale. Failure modes: with few runs the replicates can miss the truth "
          "and the design is tailored to the wrong law (train a part of the budget, refit, and advise again: "
          "three rounds took the demo law's worst pilot from 1.38x to 0.95x the ladder's width); for a power law in N alone the log-spaced ladder is "
          "already near c-optimal (on the demo's law no design over the same sizes is more than 17% narrower), "
          "so advice gains little there.")


def advise_sections(spec: StudySpec, store: Store, runs: pd.DataFrame, opts: ReportOptions) -> list[Section]:
    if opts.advise_budget <= 0 or spec.path is None:
        return []
    from scaling.advise.study import advise_study
    from scaling.plots.advise import plot_advice
    from scaling.train.run_config import RunConfig

    advice = advise_study(spec.path, store.root, opts.advise_budget, seed=opts.seed, **opts.fit_options())
    law = advice.fitted
    core = set(advice.core["index"]) if advice.core else set()
    rows = []
    for i, (r, c) in enumerate(zip(advice.runs, advice.chosen), 1):
        rows.append({"#": i, "run": r["label"], "run_id": RunConfig.from_dict(c.config).run_id, **r["x"],
                     "flops": r["flops"], "expected 95% width after": r["expected_width_after"], "why": r["reason"],
                     **({"core": "yes" if i - 1 in core else ""} if core else {})})
    advised = pd.DataFrame(rows)
    if len(advised):
        X = pd.DataFrame([{**dict(zip(law.x_, c.x)), **(c.columns or {})} for c in advice.chosen])  # what the law reads
        band = law.predict_interval(X)
        advised["pred"], advised["lo"], advised["hi"] = band["pred"].to_numpy(), band["lo"].to_numpy(), band["hi"].to_numpy()
    done = runs[runs["status"] == "done"] if "status" in runs.columns else runs
    lo, hi = advice.ci95_before
    where = (f" of {advice.variant}" if advice.variant else "") + (f" at {advice.at:.3g}" if advice.at else "")
    # `grid run --advise` repeats this advice exactly (same store, budget and seed 0) and trains it.
    from scaling.train import study_root

    out = "" if Path(store.root).resolve() == study_root(spec).resolve() else f" --out {store.root}"
    command = f"scaling grid run {spec.path}{out} --advise --budget {advice.budget:.6g}"
    by_hand = "" if spec.family == "select" else (  # the CLI takes these laws' inputs as flags
        f" (or choose them with scaling advise {store.root} --law {advice.law} --x {' --x '.join(law.x_)} "
        f"--target {advice.target}" + (f" --at {advice.at:.6g}" if advice.at else "")
        + f" --budget {advice.budget:.6g} --candidates {spec.path} --append, then scaling grid run {spec.path}{out})")
    if advice.runs:
        text = markup("{}{} under the current {} fit; {} advised run(s) for {} of {} FLOPs narrow its expected 95% "
                      "width from {} to {} (x{}). Train them with one command: {}{}. {}",
                      advice.target, where, advice.law, len(advice.runs), f"{advice.spent:.3g}",
                      f"{advice.budget:.3g}", f"{advice.expected_width_before:.3g}",
                      f"{advice.expected_width_after:.3g}", f"{advice.expected_narrowing:.2f}", command, by_hand, METHOD)
    else:  # the warning below says why (e.g. no candidate fits in the budget)
        text = markup("{}{} under the current {} fit; no run advised for {} FLOPs, so its expected 95% width stays "
                      "{}. {}", advice.target, where, advice.law, f"{advice.budget:.3g}",
                      f"{advice.expected_width_before:.3g}", METHOD)
    if advice.core:
        text += markup(" Diminishing returns: {} (column core); the rest of the budget buys the last {}.",
                       advice.core_summary(), f"{1 - advice.core['share_of_narrowing']:.0%}")
    for w in advice.warnings:
        text += markup(" Warning: {}.", w)
    answers = [Answer(f"{advice.target}{where} (now)", advice.value, ci=(lo, hi),
                      note=f"advised runs narrow the expected width x{advice.expected_narrowing:.2f}")]
    table_cols = [c for c in advised.columns if c not in ("pred", "lo", "hi")]
    return [Section("Which runs next", text=text, answers=answers,
                    tables=[Table(advised[table_cols], caption="Advised runs, in the order chosen")] if len(advised) else [],
                    figures=[("Runs done and advised (predicted loss with the current fit's 95% band)",
                              plot_advice(done, advised if len(advised) else pd.DataFrame(columns=["flops", "pred", "lo", "hi"])))])]


__all__ = ["advise_sections"]

register_sections("decoder", advise_sections)
register_sections("encdec", advise_sections)
register_sections("select", advise_sections)
