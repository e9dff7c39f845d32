"""Study progress for the terminal: rich bars on a TTY, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from scaling.cli.console import console
from scaling.train import RunConfig


class RichReporter:
    """One bar for the study and one per run in flight."""

    def __init__(self, console: Console):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console)
        self.bars: dict[str, Any] = {}
        self.labels: dict[str, str] = {}

    def start(self, todo: list[RunConfig], skipped: int) -> None:
        self.labels = {r.run_id: r.label or r.run_id for r in todo}
        self.progress.start()
        self.study = self.progress.add_task("study", total=len(todo), info=f"{skipped} already done")

    def step(self, run_id: str, step: int, total: int, loss: float) -> None:
        if run_id not in self.bars:
            self.bars[run_id] = self.progress.add_task(self.labels.get(run_id, run_id), total=total, info="")
        self.progress.update(self.bars[run_id], completed=step, info=f"loss {loss:.4f}")

    def finished(self, row: dict[str, Any]) -> None:
        bar = self.bars.pop(row["run_id"], None)
        if bar is not None:
            self.progress.remove_task(bar)
        self.progress.advance(self.study)
        self.progress.console.print(summary_line(row))

    def close(self) -> None:
        self.progress.stop()


class PlainReporter:
    """Lines at most every `every` seconds per run, for logs and CI."""

    def __init__(self, every: float = 10.0, stream=None):
        self.every = every
        self.stream = stream or sys.stdout
        self.last: dict[str, float] = {}
        self.labels: dict[str, str] = {}
        self.done = 0
        self.total = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, todo: list[RunConfig], skipped: int) -> None:
        self.labels = {r.run_id: r.label or r.run_id for r in todo}
        self.total = len(todo)
        self._print(f"training {len(todo)} runs ({skipped} already done)")

    def step(self, run_id: str, step: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if now - self.last.get(run_id, 0.0) >= self.every or step == total:
            self.last[run_id] = now
            self._print(f"  {self.labels.get(run_id, run_id)} [{run_id}] step {step}/{total} loss {loss:.4f}")

    def finished(self, row: dict[str, Any]) -> None:
        self.done += 1
        self._print(f"[{self.done}/{self.total}] " + summary_line(row))

    def close(self) -> None:
        pass


def summary_line(row: dict[str, Any]) -> str:
    status = row.get("status")
    label = row.get("label") or row["run_id"]
    if status != "done":
        return f"{label} [{row['run_id']}] {status}" + (f": {row['error']}" if row.get("error") else "")
    loss = row.get("loss", float("nan"))
    bayes = row.get("bayes_loss", float("nan"))
    extra = f" (Bayes {bayes:.4f})" if bayes == bayes else ""
    return (f"{label} [{row['run_id']}] done: loss {loss:.4f}{extra}, {row.get('n_params_nonemb', 0):.0f} non-emb"
            f" params, {row.get('wall_time', 0):.1f} s, {row.get('tokens_per_s', 0):.0f} tok/s")


def make_reporter():
    out = console.get()
    return RichReporter(out) if out.is_terminal else PlainReporter()


def train_study(name: str, runs: list[RunConfig], store: Any, executor: Any, threads: int = 0,
                nproc: int = 0, resume: str = "scaling grid run") -> dict[str, int]:
    """`run_study` with progress; a stop by signal or Ctrl-C ends the command with a line that says
    how to resume (`resume`: the command that was running; exit 75 for a scheduler's signal, 130
    for Ctrl-C), not a traceback."""
    from scaling.train import run_study
    from scaling.train.signals import INTERRUPTED_EXIT_CODE, Preempted, exit_code

    try:
        return run_study(runs, store, executor, make_reporter(), threads=threads, nproc=nproc)
    except Preempted as p:  # checkpointed on SIGTERM/SIGUSR1/Ctrl-C: the next run of the command resumes it
        console.print(f"{name}: stopped, {p}; run `{resume}` again to resume")
        raise typer.Exit(exit_code(p.signum))
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (a pool's runs in flight checkpointed)
        console.print(f"{name}: interrupted; run `{resume}` again to resume (finished runs are kept)")
        raise typer.Exit(INTERRUPTED_EXIT_CODE)
