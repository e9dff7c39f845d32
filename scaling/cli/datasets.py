"""`scaling datasets list|path NAME`: the public reference data shipped with the package.

A dataset name is accepted wherever a DATA path is (`scaling fit chinchilla chinchilla_epoch ...`).
"""

from __future__ import annotations

from typing import Annotated

import typer

datasets_app = typer.Typer(help="Public reference data shipped with scaling (usable wherever DATA is).",
                           no_args_is_help=True)


@datasets_app.command("list")
def list_() -> None:
    """Name, size and source of every shipped dataset."""
    from rich.table import Table

    from scaling.cli.console import console
    from scaling.datasets import list_datasets, load_dataset

    table = Table(title="shipped datasets (pass the name as DATA)")
    for c in ("name", "rows", "columns", "description", "citation"):
        table.add_column(c)
    for d in list_datasets():
        df = load_dataset(d.name)
        table.add_row(d.name, str(len(df)), ", ".join(map(str, df.columns)), d.description, d.citation)
    console.print(table)


@datasets_app.command()
def path(name: Annotated[str, typer.Argument(help="Dataset name, see `scaling datasets list`.")]) -> None:
    """Print the file of a shipped dataset (to read it with other tools)."""
    from scaling.datasets import dataset_path

    typer.echo(str(dataset_path(name)))
