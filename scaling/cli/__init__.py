"""The `scaling` command: thin typer shells over the library, one sub-app per noun.

Exit codes: 0 success; 1 the command ran but something it did failed (e.g. a failed run);
2 a usage error (unknown option, missing argument: click prints the usage) or a user error
(`ScalingError`: bad spec, bad data, a fit that cannot be made), printed as one line without
a traceback. Warnings print as one line each, without source lines.
"""

from __future__ import annotations

import sys
import warnings

import typer

from scaling.cli.advise import advise
from scaling.cli.data import data_app
from scaling.cli.datasets import datasets_app
from scaling.cli.demo import demo
from scaling.cli.fit import fit, plot
from scaling.cli.grid import grid_app
from scaling.cli.report import report
from scaling.errors import ScalingError

app = typer.Typer(help="Scaling-law studies end to end: train model families, fit laws, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(grid_app, name="grid")
app.add_typer(data_app, name="data")
app.add_typer(datasets_app, name="datasets")
app.command()(fit)
app.command()(plot)
app.command()(report)
app.command()(demo)
app.command()(advise)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    warnings.formatwarning = _one_line_warning
    try:
        # Standalone mode: click prints usage errors with the usage line and exits 2, and every
        # `typer.Exit(code)` becomes the process's exit code, whatever click typer vendors.
        app(prog_name="scaling")
    except ScalingError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


__all__ = ["app", "main"]
