"""`scaling report SPEC`: the study's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scaling.cli.console import console
from scaling.cli.options import STUDY_FOLDER, OptionalDelta, bootstrap_count, delta_option
from scaling.config import load_spec
from scaling.report import ReportOptions, build_report
from scaling.store import Store
from scaling.train import study_root


def report(
    spec: Annotated[Path, typer.Argument(help="Study spec (TOML).")],
    out: Annotated[Optional[Path], typer.Option(help="HTML file, or a folder to write index.html in (default "
                                                     "reports/<study>/index.html).")] = None,
    store_dir: Annotated[Optional[Path], typer.Option("--store", help=STUDY_FOLDER)] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for every interval.", callback=bootstrap_count)] = 200,
    holdout: Annotated[str, typer.Option(help="Held-out split for the extrapolation check.")] = "largest:1",
    advise_budget: Annotated[float, typer.Option(help="FLOPs for a 'which runs next' section (scaling advise); "
                                                      "0 = none.")] = 0.0,
    delta: OptionalDelta = None,
) -> None:
    """Render runs, learning curves and every law fitted with intervals and held-out error."""
    opts = ReportOptions(bootstrap=bootstrap, holdout=holdout, advise_budget=advise_budget, **delta_option(delta))
    s = load_spec(spec)
    path = out or Path("reports") / s.name / "index.html"
    if path.is_dir():
        path = path / "index.html"
    build_report(s, Store(study_root(s, store_dir)), path, opts)
    console.print(f"wrote {path}")
