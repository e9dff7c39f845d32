"""`scaling grid plan|run|status SPEC`: what a study would train, train it, and where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from scaling.cli.console import console
from scaling.cli.options import STUDY_FOLDER, delta_option, or_spec_delta
from scaling.cli.progress import train_study
from scaling.config import load_spec
from scaling.errors import ScalingError
from scaling.store import Store
from scaling.train import local_executor, plan_rows, study_root, study_runs

grid_app = typer.Typer(help="Plan, train and inspect a study's grid of runs.", no_args_is_help=True)

Spec = Annotated[Path, typer.Argument(help="Study spec (TOML), e.g. runs/demo.toml.")]
# --store as in `scaling report`, where --out is the HTML file
Out = Annotated[Optional[Path], typer.Option("--out", "--store", help=STUDY_FOLDER)]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@grid_app.command()
def plan(spec: Spec, out: Out = None) -> None:
    """List the runs a study would train, with parameters, tokens and FLOPs; trains nothing."""
    s = load_spec(spec)
    store = Store(study_root(s, out))
    runs = study_runs(s, store.root)
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
    slurm: Annotated[Optional[list[str]], typer.Option(
        "--slurm", help="Slurm option KEY=VALUE, repeatable, passed to sbatch (partition=gpu, time=120 in minutes, "
                        "account=..., qos=..., mem=64G, constraint=h100, cpus_per_task=8, ...).")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Slurm: submit, record the job ids in the study folder "
                                                          "and return; `grid status` follows them.")] = False,
    max_requeues: Annotated[int, typer.Option(help="Slurm: times a preempted or timed-out job requeues itself.")] = 3,
    slurm_folder: Annotated[Optional[Path], typer.Option(
        help="submitit log folder (default: <study>/slurm/logs).")] = None,
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition (same as --slurm partition=...).")] = None,
    timeout_min: Annotated[Optional[int], typer.Option(
        help="Slurm time limit per job in minutes (same as --slurm time=...).")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs per Slurm job (same as --slurm gpus_per_node=...).")] = 0,
    advise: Annotated[bool, typer.Option("--advise", help="First append the runs `scaling advise` picks for "
                                                          "--budget FLOPs (from the study's finished runs and "
                                                          "its spec's candidates), then train.")] = False,
    budget: Annotated[float, typer.Option(help="FLOPs for --advise.")] = 0.0,
    delta: Annotated[Optional[str], typer.Option(help="--advise: Huber delta of its fit, a number or 'auto' "
                                                      "(default the spec's [report] delta, else the law's 1e-3).")] = None,
    nproc_per_run: Annotated[int, typer.Option("--nproc-per-run", help="DDP processes per run (0: the spec's train.nproc).")] = 0,
) -> None:
    """Train every run that is not finished; finished runs are never retrained, unfinished ones resume."""
    fit_options = delta_option(delta)  # a bad --delta is named before the spec is read
    s = load_spec(spec)
    fit_options = or_spec_delta(fit_options, s.report.delta)  # the delta the report's advice section fits with
    store = Store(study_root(s, out))
    if advise:
        _append_advice(spec, store, budget, **fit_options)
    runs = study_runs(s, store.root)
    if executor == "slurm":
        from scaling.train.slurm import SlurmExecutor, parse_options

        options = {"time": "60"}
        if partition:
            options["partition"] = partition
        if timeout_min is not None:
            options["time"] = str(timeout_min)
        if gpus:
            options["gpus_per_node"] = str(gpus)
        options.update(parse_options(slurm or []))
        ex = SlurmExecutor(store, options, folder=slurm_folder, max_requeues=max_requeues, detach=detach,
                           notify=console.print)
        threads = 0  # each job uses the CPUs Slurm granted it
    elif executor == "local":
        if slurm or detach:
            raise ScalingError("--slurm and --detach need --executor slurm")
        ex, threads = local_executor(workers)
        _check_devices(runs, spec)
    else:
        raise ScalingError(f"--executor must be 'local' or 'slurm', got {executor!r}")
    if nproc_per_run < 0 or any(int(r.train["batch_size"]) % max(1, nproc_per_run) for r in runs):
        raise ScalingError(f"--nproc-per-run must be >= 0 and divide every run's [train] batch_size, got {nproc_per_run}")
    counts = train_study(s.name, runs, store, ex, threads=threads, nproc=nproc_per_run)
    console.print(f"{s.name}: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f"; store: {store.root}")
    if detach:
        console.print(f"detached: `scaling grid status {spec}` shows the jobs; `scaling grid run {spec} "
                      "--executor slurm` again collects what finished and submits only what has no live job")
        return
    if counts.get("failed"):
        raise typer.Exit(1)


def _append_advice(spec: Path, store: Store, budget: float, **fit_options) -> None:
    from scaling.advise.study import advise_study, append_advised

    if budget <= 0:
        raise ScalingError("--advise needs --budget FLOPS > 0 (the compute to spend on the advised runs)")
    advice = advise_study(spec, store.root, budget, **fit_options)
    added = append_advised(store.root, advice)
    console.print(f"advice: {advice.target} at {advice.at:.3g}, expected 95% width {advice.expected_width_before:.3g} "
                  f"-> {advice.expected_width_after:.3g}; {len(added)} new run(s) appended "
                  f"({advice.spent:.3g} of {budget:.3g} FLOPs)")
    for w in advice.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")


@grid_app.command()
def status(spec: Spec, out: Out = None) -> None:
    """Show each run's state: done, unfinished, failed, diverged or pending.

    The store's state is merged with the run's lock holder and, for runs submitted to Slurm,
    the scheduler's (pending, running, requeued)."""
    from scaling.lock import describe, holder_of

    s = load_spec(spec)
    store = Store(study_root(s, out))
    runs = study_runs(s, store.root)
    jobs = _slurm_view(store)
    table = Table(title=f"{s.name}: {store.root}")
    for c in ("run_id", "label", "seed", "status", "loss", "wall_time", "held by"):
        table.add_column(c)
    notes = []
    counts: dict[str, int] = {}
    for r in runs:
        st = store.status(r.run_id)
        job = jobs.get(r.run_id)
        if job is not None and st not in ("done", "diverged") and job["live"]:
            st = job["state"]  # pending / running / requeued on the scheduler
        lock = holder_of(store.run_dir(r.run_id))
        held = ""
        if lock is not None:
            holder, stale = lock
            held = describe(holder) + (f" (stale: {stale})" if stale else "")
            if stale is None and st in ("unfinished", "pending", "failed"):
                st = "locked"
        if job is not None:
            held = (held + " " if held else "") + f"job {job['job_id']}"
        counts[st] = counts.get(st, 0) + 1
        res = store.result(r.run_id) or {}
        loss = res.get("loss")
        table.add_row(r.run_id, r.label, str(r.seed), st, f"{loss:.4f}" if isinstance(loss, float) else "",
                      _fmt(res.get("wall_time", "")), held)
        note = _status_note(store, r.run_id, res)
        if note:
            notes.append(f"{r.run_id} {r.label}: {note}")
    console.print(table)
    for note in notes:  # below the table, where a long error is not wrapped into a narrow column
        console.print(note, soft_wrap=True)
    console.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def _check_devices(runs: list, spec: Path) -> None:
    """On this machine (a local executor), every run's `[train] device` must exist before any run
    starts: each would fail the same way (a Slurm job checks on its own node)."""
    from scaling.errors import SpecError
    from scaling.train.placement import requested_device

    for requested in sorted({str(r.train.get("device", "auto")) for r in runs} - {"auto"}):
        try:
            requested_device(requested)
        except SpecError as e:
            raise SpecError(f"{spec}: {e}") from None


def _status_note(store: Store, run_id: str, result: dict) -> str:
    """Why a run is not done, from its result: a failure's error (its traceback's file), a
    divergence's step; the table said only "failed"."""
    if result.get("status") == "failed":
        error = str(result.get("error") or "no error recorded")
        trace = store.run_dir(run_id) / "error.txt"
        return f"failed: {error}" + (f" (traceback: {trace})" if trace.is_file() else "")
    if result.get("status") == "diverged":
        return f"diverged: NaN or inf loss at step {result.get('steps', '?')}"
    return ""


def _slurm_view(store: Store) -> dict[str, dict]:
    """The scheduler's view of the runs this study submitted (empty when it submitted none)."""
    if not (store.root / "slurm" / "jobs.json").is_file():
        return {}
    from scaling.train.slurm_queue import job_states

    return job_states(store)
