"""The terminal console every command prints through: rich loads on first use, so a `--json`
fit never pays for it, and off a terminal (logs, CI, pipes) tables get room instead of rich's
80 columns."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table as RichTable


class LazyConsole:
    """Stands in for one rich Console, made on the first print."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def get(self) -> "Console":
        if self._console is None:
            from rich.console import Console

            self._console = Console(width=None if sys.stdout.isatty() else 200)
        return self._console

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.get().print(*args, **kwargs)


def Table(*args: Any, **kwargs: Any) -> "RichTable":  # noqa: N802 - stands in for rich.table.Table, imported on use
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


console = LazyConsole()
