"""`scaling grid plan|run|status SPEC`: what a study would train, train it, and where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from scaling.config import load_spec
from scaling.errors import ScalingError
from scaling.store import Store
from scaling.cli.progress import console, make_reporter
from scaling.train import SubmititExecutor, expand, local_executor, plan_rows, run_study, study_root

grid_app = typer.Typer(help="Plan, train and inspect a study's grid of runs.", no_args_is_help=True)

Spec = Annotated[Path, typer.Argument(help="Study spec (TOML), e.g. runs/demo.toml.")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Study folder (default: runs/<study>/ beside the spec).")]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@grid_app.command()
def plan(spec: Spec, out: Out = None) -> None:
    """List the runs a study would train, with parameters, tokens and FLOPs; trains nothing."""
    s = load_spec(spec)
    runs = expand(s)
    store = Store(study_root(s, out))
    rows = plan_rows(runs)
    table = Table(title=f"{s.name}: {len(rows)} runs ({s.family})")
    columns = [c for c in rows[0] if c != "parent" or any(r["parent"] for r in rows)] + ["status"]
    for c in columns:
        table.add_column(c, justify="right" if c not in ("run_id", "label", "status") else "left")
    for row in rows:
        table.add_row(*[_fmt(row[c]) for c in columns[:-1]], store.status(row["run_id"]))
    console.print(table)
    total = sum(r["flops"] for r in rows)
    console.print(f"total training compute: {total:.3g} FLOPs, {sum(r['tokens'] for r in rows):.3g} tokens")


@grid_app.command()
def run(
    spec: Spec,
    out: Out = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Local worker processes (1 = in-process).")] = 1,
    executor: Annotated[str, typer.Option(help="local or slurm.")] = "local",
    slurm_folder: Annotated[Path, typer.Option(help="submitit log folder (slurm).")] = Path("slurm-logs"),
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition.")] = None,
    timeout_min: Annotated[int, typer.Option(help="Slurm time limit per run, minutes.")] = 60,
    gpus: Annotated[int, typer.Option(help="GPUs per Slurm job.")] = 0,
    nproc_per_run: Annotated[int, typer.Option("--nproc-per-run", help="DDP processes per run (0: the spec's train.nproc).")] = 0,
) -> None:
    """Train every run that is not finished; finished runs are never retrained, unfinished ones resume."""
    s = load_spec(spec)
    runs = expand(s)
    store = Store(study_root(s, out))
    if executor == "slurm":
        ex = SubmititExecutor.slurm(slurm_folder, partition=partition, timeout_min=timeout_min, gpus_per_node=gpus)
        threads = 0
    elif executor == "local":
        ex, threads = local_executor(workers)
    else:
        raise ScalingError(f"--executor must be 'local' or 'slurm', got {executor!r}")
    if nproc_per_run < 0 or any(int(r.train["batch_size"]) % max(1, nproc_per_run) for r in runs):
        raise ScalingError(f"--nproc-per-run must be >= 0 and divide every run's [train] batch_size, got {nproc_per_run}")
    from scaling.train.signals import PREEMPTED_EXIT_CODE, Preempted

    try:
        counts = run_study(runs, store, ex, make_reporter(console), threads=threads, nproc=nproc_per_run)
    except Preempted as p:  # checkpointed on SIGTERM/SIGUSR1: the next `grid run` resumes it
        console.print(f"{s.name}: stopped, {p}; run `scaling grid run` again to resume")
        raise typer.Exit(PREEMPTED_EXIT_CODE)
    console.print(f"{s.name}: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f"; store: {store.root}")
    if counts.get("failed"):
        raise typer.Exit(1)


@grid_app.command()
def status(spec: Spec, out: Out = None) -> None:
    """Show which runs are done, unfinished, failed, diverged or not started."""
    s = load_spec(spec)
    runs = expand(s)
    store = Store(study_root(s, out))
    table = Table(title=f"{s.name}: {store.root}")
    for c in ("run_id", "label", "seed", "status", "loss", "wall_time"):
        table.add_column(c)
    counts: dict[str, int] = {}
    for r in runs:
        st = store.status(r.run_id)
        counts[st] = counts.get(st, 0) + 1
        res = store.result(r.run_id) or {}
        table.add_row(r.run_id, r.label, str(r.seed), st, _fmt(res.get("loss", "")), _fmt(res.get("wall_time", "")))
    console.print(table)
    console.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
