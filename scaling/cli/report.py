"""`scaling report SPEC`: the study's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scaling.cli.console import console
from scaling.cli.options import STUDY_FOLDER, SpecDelta, bootstrap_count, optional_delta
from scaling.config import load_spec
from scaling.report import ReportOptions, build_report
from scaling.store import Store
from scaling.train import study_root


def report(
    spec: Annotated[Path, typer.Argument(help="Study spec (TOML).")],
    out: Annotated[Optional[Path], typer.Option(help="HTML file, or a folder to write index.html in (default "
                                                     "reports/<study>/index.html).")] = None,
    store_dir: Annotated[Optional[Path], typer.Option("--store", help=STUDY_FOLDER)] = None,
    bootstrap: Annotated[Optional[int], typer.Option(
        help="Bootstrap replicates for every interval; default the spec's [report] bootstrap, else 200.",
        callback=bootstrap_count)] = None,
    holdout: Annotated[Optional[str], typer.Option(
        help="Held-out split for the extrapolation check; default the spec's [report] holdout, else largest:1.")] = None,
    advise_budget: Annotated[Optional[float], typer.Option(
        min=0, help="FLOPs for a 'which runs next' section (scaling advise), 0 = none; default the spec's "
                    "[report] advise_budget, else 0.")] = None,
    delta: SpecDelta = None,
) -> None:
    """Render runs, learning curves and every law fitted with intervals and held-out error."""
    huber_delta = optional_delta(delta)  # a bad one is named before the spec is read
    s = load_spec(spec)
    opts = ReportOptions.for_study(s, bootstrap=bootstrap, holdout=holdout, advise_budget=advise_budget,
                                   delta=huber_delta)
    path = out or Path("reports") / s.name / "index.html"
    if path.is_dir():
        path = path / "index.html"
    build_report(s, Store(study_root(s, store_dir)), path, opts)
    console.print(f"wrote {path}")
