"""Every command's help: a one-line summary that lists cleanly, then paragraphs that wrap cleanly."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from scaling.cli import app


def _commands(cmd, path, ctx):  # noqa: ANN001 - click objects
    yield path, cmd
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            yield from _commands(sub, [*path, name], sub.context_class(sub, parent=ctx))


def test_every_command_has_a_one_line_summary_and_its_help_runs():
    # typer's rich help keeps a docstring's line breaks and then wraps the kept lines again, which
    # reads as ragged lines; the CLI joins them within each paragraph (cli._reflow).
    root = typer.main.get_command(app)
    seen = []
    for path, cmd in _commands(root, [], root.context_class(root)):
        paragraphs = (cmd.help or "").strip().split("\n\n")
        assert paragraphs[0], f"scaling {' '.join(path)} has no help"
        for p in paragraphs:
            assert "\n" not in p, f"scaling {' '.join(path)}: a paragraph keeps its line breaks: {p!r}"
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        seen.append(" ".join(path))
    # the lazy commands are listed and walked too
    assert {"grid status", "plot", "advise", "fit compare", "fit select", "data prepare"} <= set(seen)
