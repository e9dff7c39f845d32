"""`scaling demo`: train runs/demo.toml, fit L(N) with intervals, write reports/demo/index.html.

It is exactly `scaling grid run runs/demo.toml`, then the fit, then `scaling report`, so the
spec can be copied and edited.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaling.cli.options import SpecDelta, bootstrap_count, optional_delta
from scaling.cli.console import console
from scaling.cli.progress import train_study
from scaling.config import load_spec
from scaling.report import LawFit, ReportOptions, build_report
from scaling.store import Store
from scaling.train import expand, local_executor, study_root


DEFAULT_SPEC = Path("runs/demo.toml")


def demo(
    spec: Annotated[Path, typer.Option(help="Study spec to run.")] = DEFAULT_SPEC,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Local worker processes.")] = min(2, os.cpu_count() or 1),
    bootstrap: Annotated[Optional[int], typer.Option(
        help="Bootstrap replicates for the intervals; default the spec's [report] bootstrap, else 200.",
        callback=bootstrap_count)] = None,
    out: Annotated[Path, typer.Option(help="Report file.")] = Path("reports/demo/index.html"),
    delta: SpecDelta = None,
) -> None:
    """Train a small decoder-only size grid on a synthetic source, fit L(N), write the report."""
    huber_delta = optional_delta(delta)  # a bad one is named before the spec is read
    if not spec.is_file() and spec == DEFAULT_SPEC:
        from scaling.errors import SpecError

        raise SpecError(f"{spec}: no such file here; run `scaling demo` from the root of the scaling checkout "
                        "(the demo's spec is runs/demo.toml there), or pass --spec PATH")
    s = load_spec(spec)
    opts = ReportOptions.for_study(s, bootstrap=bootstrap, delta=huber_delta)
    store = Store(study_root(s))
    executor, threads = local_executor(workers)
    train_study(s.name, expand(s), store, executor, threads=threads,
                resume="scaling demo" if spec == DEFAULT_SPEC else f"scaling demo --spec {spec}")
    sections = build_report(s, store, out, opts)
    for section in sections:
        fit = section.fit
        if isinstance(fit, LawFit) and "L_inf" in fit.law.params_:
            console.print(_summary(fit))
    console.print(f"report: {out}")


def _summary(fit: LawFit) -> str:
    p, ci = fit.law.params_, getattr(fit.law, "ci_", {}) or {}
    lo, hi = ci.get("L_inf", (float("nan"), float("nan")))
    line = (f"{fit.title}: L_inf = {p['L_inf']:.4f} (95% CI {lo:.4f}–{hi:.4f}), alpha = {p['alpha']:.3f}, "
            f"R² = {fit.law.r2_:.4f}")
    if fit.bayes is not None:
        line += f"; exact Bayes loss {fit.bayes:.4f} ({p['L_inf'] / fit.bayes - 1:+.2%})"
    h = fit.law.holdout_ or {}
    if "mean_abs_rel_error" in h:
        line += f"; held-out largest run: {h['mean_abs_rel_error']:.2%} error"
    return line
