"""The `scaling` command: thin typer shells over the library, one sub-app per noun.

Exit codes: 0 success; 1 the command ran but something it did failed (e.g. a failed run);
2 a usage error (unknown option, missing argument: click prints the usage) or a user error
(`ScalingError`: bad spec, bad data, a fit that cannot be made), printed as one line without
a traceback. Warnings print as one line each, without source lines.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer
from typer.core import TyperGroup

from scaling.errors import ScalingError

# Commands whose modules load torch, matplotlib or the training code are imported only when
# run (or listed by --help): `scaling fit` starts without them. name -> (module, attribute).
LAZY = {
    "grid": ("scaling.cli.grid", "grid_app"),
    "data": ("scaling.cli.data", "data_app"),
    "datasets": ("scaling.cli.datasets", "datasets_app"),
    "plot": ("scaling.cli.fit", "plot"),
    "report": ("scaling.cli.report", "report"),
    "demo": ("scaling.cli.demo", "demo"),
    "advise": ("scaling.cli.advise", "advise"),
}


def _reflow(text: str | None) -> str | None:
    """Join the source's line breaks within each paragraph of a help text: typer's rich help keeps
    them, and then wraps the kept lines again (ragged). A paragraph that starts with \\b keeps its
    lines, as click does."""
    if not text:
        return text
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                       for p in text.split("\n\n"))


def _reflow_all(cmd) -> None:  # noqa: ANN001 - a click command or group
    cmd.help = _reflow(cmd.help)
    for sub in getattr(cmd, "commands", {}).values():
        _reflow_all(sub)


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
                one = typer.Typer(add_completion=False)
                one.command(name)(obj)
                cmd = typer.main.get_command(one)
            cmd.name = name
            self.commands[name] = cmd
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            _reflow_all(cmd)
        return cmd


app = typer.Typer(cls=_LazyGroup, help="Scaling-law studies end to end: train model families, fit laws, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _register() -> None:
    from scaling.cli.fit import fit_app

    app.add_typer(fit_app, name="fit")


_register()


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
