"""`scaling fit LAW DATA` and `scaling plot LAW DATA`: fit a law to a table and show it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaling.cli.progress import console
from rich.table import Table

from scaling.laws import get_law


LawName = Annotated[str, typer.Argument(help="Law: power, chinchilla, encdec, dcpt, bleu_ce, bleu_log, ...")]
Data = Annotated[Path, typer.Argument(help="Parquet or CSV/TSV file, or a study folder (its runs.parquet).")]
X = Annotated[list[str], typer.Option("--x", help="Input column(s), in the law's order.")]
Y = Annotated[str, typer.Option("--y", help="Target column.")]
Where = Annotated[Optional[str], typer.Option(help="Row filter, a pandas query, e.g. 'data_bytes > 5e6'.")]
Derive = Annotated[Optional[list[str]], typer.Option(
    "--derive", help="New column before filtering, e.g. 'params = 2*Layers*(4*ModelSize**2 + 2*ModelSize*FeedForward)'.")]
Loss = Annotated[str, typer.Option(help="huber or mse.")]
Delta = Annotated[float, typer.Option(help="Huber delta.")]
Init = Annotated[str, typer.Option(help="Start grid: default, or hoffmann (chinchilla).")]
Holdout = Annotated[Optional[str], typer.Option(help="Held-out split, e.g. 'largest:1' or 0.2 (see docs).")]
Bootstrap = Annotated[int, typer.Option(help="Bootstrap replicates for 95% intervals (0 = none).")]
BootMethod = Annotated[str, typer.Option(help="Bootstrap: pairs (resample points) or residual (few points).")]
GroupBy = Annotated[Optional[str], typer.Option("--by", help="Fit one law per value of this column.")]


def _fit_one(law: str, df, x, y, loss, delta, init, holdout, bootstrap, seed, method="pairs"):
    model = get_law(law, loss=loss, delta=delta, init=init, seed=seed).fit_and_check(df, x, y, holdout)
    if bootstrap:
        model.bootstrap(bootstrap, seed=seed, method=method)
    return model


def fit(
    law: LawName, data: Data, x: X, y: Y, where: Where = None, derive: Derive = None, loss: Loss = "huber",
    delta: Delta = 1e-3, init: Init = "default", holdout: Holdout = None, bootstrap: Bootstrap = 0,
    bootstrap_method: BootMethod = "pairs", by: GroupBy = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the fitted law as JSON here.")] = None,
) -> None:
    """Fit LAW to DATA: parameters with 95% intervals, objective, convergence, held-out error.

    With --holdout the law is first fitted without the held-out rows to report its extrapolation
    error; the parameters shown are then those of the fit on all rows.
    """
    from scaling.laws.cli_support import fit_result_json, load_table

    df = load_table(data, where, derive)
    groups = [(None, df)] if by is None else list(_groups(df, by))
    results = {}
    for key, part in groups:
        model = _fit_one(law, part, x, y, loss, delta, init, holdout, bootstrap, seed, bootstrap_method)
        results[key] = (model, {**fit_result_json(model), **_fit_quality(model)})
        if save is not None:
            model.save(save if key is None else save.with_name(f"{save.stem}-{key}{save.suffix}"))
    if as_json:
        out = results[None][1] if by is None else {"law": law, "by": by, "fits": {str(k): r for k, (_, r) in results.items()}}
        typer.echo(json.dumps(out, default=float))
        return
    for key, (model, res) in results.items():
        _print_fit(res, title=f"{law}" + ("" if key is None else f" [{by} = {key}]"))


def _fit_quality(model) -> dict:
    """Keys added to the contract's JSON object: goodness of fit and the fixed constants."""
    out = {"r2": float(model.r2_), "aic": float(model.aic_), "bic": float(model.bic_),
           "n_starts": int(model.n_starts_), "n_starts_best": int(model.n_starts_best_)}
    if model.const:
        out["constants"] = {k: float(v) for k, v in model.const.items()}
    return out


def _groups(df, by):
    if by not in df.columns:
        from scaling.errors import DataError

        raise DataError(f"--by column `{by}` not in data; columns are: {', '.join(map(str, df.columns))}")
    for key, part in df.groupby(by, sort=True):
        yield key, part


def _print_fit(res: dict, title: str) -> None:
    console.print(f"[bold]{title}[/bold]: {res['n_points']} points, objective {res['objective']:.6g}"
                  f"{'' if res['converged'] else ' [red](NOT CONVERGED)[/red]'}")
    table = Table()
    for c in ("parameter", "value", "95% interval"):
        table.add_column(c, justify="right")
    for name, value in res["params"].items():
        ci = res.get("ci95", {}).get(name)
        table.add_row(name, f"{value:.6g}", f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "–")
    console.print(table)
    extra = {k: res[k] for k in ("r2", "aic", "bic", "n_starts_best", "n_starts") if k in res}
    if extra:
        console.print("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()))
    if res.get("constants"):
        console.print("  fixed constants: " + ", ".join(f"{k} = {v:.6g}" for k, v in res["constants"].items()))
    h = res.get("holdout") or {}
    if h:
        console.print(f"  held-out ({h.get('split', '')}): {h.get('n_test')} points, mean |rel. error| "
                      f"{h.get('mean_abs_rel_error', float('nan')):.3%}, max {h.get('max_abs_rel_error', float('nan')):.3%}")


def plot(
    law: LawName, data: Data, x: X, y: Y, where: Where = None, derive: Derive = None, loss: Loss = "huber",
    delta: Delta = 1e-3, init: Init = "default", holdout: Holdout = None, bootstrap: Bootstrap = 200,
    bootstrap_method: BootMethod = "pairs",
    out: Annotated[Path, typer.Option(help="Prediction plot (PNG, SVG or PDF); the residual plot goes beside it.")] = Path("fit.png"),
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Write the prediction plot of the fit `scaling fit` reports for the same flags (fitted on all
    rows), its residuals, and with --holdout the check: the law fitted without the held-out rows,
    drawn against them (OUT-holdout.png)."""
    from scaling.laws.cli_support import load_table
    from scaling.plots import plot_fit, plot_residuals

    df = load_table(data, where, derive)
    from scaling.store import atomic_open

    model = _fit_one(law, df, x, y, loss, delta, init, holdout, bootstrap, seed, bootstrap_method)
    resid = out.with_name(f"{out.stem}-residuals{out.suffix}")
    figures = [(plot_fit(model, df, holdout=""), out), (plot_residuals(model, df, holdout=""), resid)]
    held = getattr(model, "holdout_fit_", None)
    if held is not None and "n_test" in (held.holdout_ or {}):
        figures.append((plot_fit(held, df, holdout=held.holdout_["split"]), out.with_name(f"{out.stem}-holdout{out.suffix}")))
    for fig, path in figures:
        with atomic_open(path) as f:  # atomic, and readable as the umask says
            fig.savefig(f, format=path.suffix.lstrip(".") or None, bbox_inches="tight")
    console.print("  ".join(f"{k} = {v:.6g}" for k, v in model.params_.items()) + f"  ({model.n_points_} points)")
    console.print("wrote " + ", ".join(str(p) for _, p in figures))
