"""The `scaling` command: thin typer shells over the library, one sub-app per noun.

User errors (`ScalingError`) are printed as one line without a traceback, exit code 2.
"""

from __future__ import annotations

import sys

import importlib

import typer
from typer.core import TyperGroup

from scaling.errors import ScalingError

# Commands whose modules load torch, matplotlib or the training code are imported only when
# run (or listed by --help): `scaling fit` starts without them. name -> (module, attribute).
LAZY = {
    "grid": ("scaling.cli.grid", "grid_app"),
    "plot": ("scaling.cli.fit", "plot"),
    "report": ("scaling.cli.report", "report"),
    "demo": ("scaling.cli.demo", "demo"),
}


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx):  # noqa: ANN001 - click's signature
        return list(dict.fromkeys([*super().list_commands(ctx), *LAZY]))

    def get_command(self, ctx, name):  # noqa: ANN001
        if name not in self.commands and name in LAZY:
            module, attr = LAZY[name]
            obj = getattr(importlib.import_module(module), attr)
            if isinstance(obj, typer.Typer):
                cmd = typer.main.get_group(obj)
            else:
                one = typer.Typer()
                one.command(name)(obj)
                cmd = typer.main.get_command(one)
            cmd.name = name
            self.commands[name] = cmd
        return super().get_command(ctx, name)


app = typer.Typer(cls=_LazyGroup, help="Scaling-law studies end to end: train model families, fit laws, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _register() -> None:
    from scaling.cli.fit import fit_app

    app.add_typer(fit_app, name="fit")


_register()


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
