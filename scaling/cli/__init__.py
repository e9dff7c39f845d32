"""The `scaling` command: thin typer shells over the library, one sub-app per noun.

User errors (`ScalingError`) are printed as one line without a traceback, exit code 2.
"""

from __future__ import annotations

import sys

import typer

from scaling.cli.data import data_app
from scaling.cli.demo import demo
from scaling.cli.fit import fit, plot
from scaling.cli.grid import grid_app
from scaling.cli.report import report
from scaling.errors import ScalingError

app = typer.Typer(help="Scaling-law studies end to end: train model families, fit laws, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(grid_app, name="grid")
app.add_typer(data_app, name="data")
app.command()(fit)
app.command()(plot)
app.command()(report)
app.command()(demo)


def main() -> None:
    try:
        app(standalone_mode=False)
    except ScalingError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


__all__ = ["app", "main"]
