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
# Uncertainty, sensitivity, weights, fixed and tied parameters (scaling.laws.profile/sensitivity/manifest).
CI = Annotated[str, typer.Option("--ci", help="Intervals in ci95: bootstrap (with --bootstrap N) or profile.")]
Cluster = Annotated[Optional[str], typer.Option(help="Bootstrap whole clusters of rows (e.g. run_id).")]
Weight = Annotated[Optional[str], typer.Option(help="Column of per-point weights (>= 0).")]
Fix = Annotated[Optional[list[str]], typer.Option("--fix", help="Pin a parameter, e.g. E=1.69 (repeatable).")]
Tie = Annotated[Optional[list[str]], typer.Option("--tie", help="Fit parameters equal, e.g. alpha=beta (repeatable).")]
Asym = Annotated[float, typer.Option(help="--loss asymmetric: weight on over-predictions.")]
Sens = Annotated[bool, typer.Option("--sensitivity", help="Refit along the (Mis)Fitting checklist; one row per choice.")]
Target = Annotated[Optional[float], typer.Option(help="Compute C for tokens/parameter and loss (default 10x data's max 6ND).")]


def _pairs(items: list[str] | None, flag: str, number: bool) -> dict:
    from scaling.errors import FitError

    out = {}
    for it in items or []:
        k, eq, v = it.partition("=")
        if not eq or not k.strip() or not v.strip():
            raise FitError(f"{flag} {it!r} must look like NAME=VALUE")
        try:
            out[k.strip()] = float(v) if number else v.strip()
        except ValueError:
            raise FitError(f"{flag} {it!r}: {v!r} is not a number") from None
    return out


def _uncertainty(model, part, cluster, ci, target, res: dict) -> None:
    """--ci profile, the allocation's profile at --target-compute, warnings (keys added to res)."""
    from scaling.laws.identifiability import identifiability_warnings

    if ci == "profile":
        model.profile()
        res["ci95"] = {k: [float(a), float(b)] for k, (a, b) in model.ci_.items()}
        res["ci_method"] = "profile"
        if target and hasattr(model, "optimal_allocation"):
            from scaling.laws.profile import profile_allocation

            res["allocation_ci95"] = profile_allocation(model, target)
    if getattr(model, "boot_info_", None):
        res["bootstrap"] = dict(model.boot_info_)
    res["warnings"] = identifiability_warnings(model)


def _fit_one(law: str, df, x, y, loss, delta, init, holdout, bootstrap, seed, method="pairs", weight=None,
             cluster=None, **options):
    model = get_law(law, loss=loss, delta=delta, init=init, seed=seed, **options)
    model.fit_and_check(df, x, y, holdout, weight=weight)
    if bootstrap:
        if cluster is not None and cluster not in df.columns:
            from scaling.errors import DataError

            raise DataError(f"--cluster column `{cluster}` not in data; columns are: {', '.join(map(str, df.columns))}")
        model.bootstrap(bootstrap, seed=seed, method=method, cluster=None if cluster is None else df[cluster])
    return model


def fit(
    law: LawName, data: Data, x: X, y: Y, where: Where = None, derive: Derive = None, loss: Loss = "huber",
    delta: Delta = 1e-3, init: Init = "default", holdout: Holdout = None, bootstrap: Bootstrap = 0,
    bootstrap_method: BootMethod = "pairs", by: GroupBy = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the fitted law as JSON here (and its manifest beside).")] = None,
    ci: CI = "bootstrap", cluster: Cluster = None, weight: Weight = None, fix: Fix = None, tie: Tie = None,
    asymmetry: Asym = 10.0, sensitivity: Sens = False, target_compute: Target = None,
) -> None:
    """Fit LAW to DATA: parameters with 95% intervals, objective, convergence, held-out error.

    With --holdout the law is first fitted without the held-out rows to report its extrapolation
    error; the parameters shown are then those of the fit on all rows.
    """
    from scaling.laws.cli_support import fit_result_json, load_table

    df = load_table(data, where, derive)
    if ci not in ("bootstrap", "profile"):
        from scaling.errors import FitError

        raise FitError(f"--ci must be 'bootstrap' or 'profile', got {ci!r}")
    options = {"fixed": _pairs(fix, "--fix", True) or None, "tied": _pairs(tie, "--tie", False) or None,
               "asymmetry": asymmetry}
    if sensitivity:
        return _sensitivity(get_law(law, loss=loss, delta=delta, init=init, seed=seed, **options), df, x, y,
                            target_compute, weight, as_json)
    dropped = []
    if where:
        dropped.append({"rule": f"--where {where}", "n": int(len(load_table(data, None, derive)) - len(df))})
    groups = [(None, df)] if by is None else list(_groups(df, by))
    results = {}
    for key, part in groups:
        model = _fit_one(law, part, x, y, loss, delta, init, holdout, bootstrap, seed, bootstrap_method, weight,
                         cluster, **options)
        res = {**fit_result_json(model), **_fit_quality(model)}
        _uncertainty(model, part, cluster, ci, target_compute, res)
        results[key] = (model, res)
        if save is not None:
            from scaling.laws.manifest import manifest_path, write_manifest

            path = save if key is None else save.with_name(f"{save.stem}-{key}{save.suffix}")
            model.save(path)
            write_manifest(model, manifest_path(path), dropped=dropped, source=str(data),
                           counting={"x": list(x), "y": y, "C": "6ND (allocation)"})
    if as_json:
        out = results[None][1] if by is None else {"law": law, "by": by, "fits": {str(k): r for k, (_, r) in results.items()}}
        typer.echo(json.dumps(out, default=float))
        return
    for key, (model, res) in results.items():
        _print_fit(res, title=f"{law}" + ("" if key is None else f" [{by} = {key}]"))


def _sensitivity(model, df, x, y, target, weight, as_json: bool) -> None:
    from scaling.laws.sensitivity import sensitivity, sensitivity_json, spread

    table = sensitivity(model, df, x, y, target_compute=target, weight=weight)
    if as_json:
        typer.echo(json.dumps(sensitivity_json(table)))
        return
    C = table.attrs.get("target_compute")
    out = Table(title=f"{model.name}: sensitivity to fitting choices" + (f" (target C = {C:.3g})" if C else ""))
    for c in ("axis", "choice", "params", "a", "tokens/param", "loss at C"):
        out.add_column(c)
    fmt = lambda v: "–" if v is None or v != v else f"{v:.4g}"  # noqa: E731 - None/NaN as a dash
    for r in table.to_dict("records"):
        ps = r["error"] or ", ".join(f"{k}={v:.4g}" for k, v in (r["params"] or {}).items())
        ps += "" if r["converged"] in (True, None) else " (not converged)"
        out.add_row(r["axis"], r["choice"], ps, fmt(r["a"]), fmt(r["tokens_per_param"]), fmt(r["loss_at_target"]))
    console.print(out)
    for k, v in spread(table).items():
        console.print(f"  spread of {k}: {v['min']:.4g} .. {v['max']:.4g} (max/min {v['ratio']:.3g})")


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
    for w in res.get("warnings") or []:
        console.print(f"  [yellow]warning:[/yellow] {w}")
    b = res.get("bootstrap") or {}
    if b.get("n_excluded"):
        console.print(f"  bootstrap: {b['n_excluded']} of {b['n']} replicates did not converge and were excluded")
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
    """Write the prediction plot (data, fit, dashed extrapolation, band, held-out points) and residuals."""
    from scaling.laws.cli_support import load_table
    from scaling.plots import plot_fit, plot_residuals

    df = load_table(data, where, derive)
    model = get_law(law, loss=loss, delta=delta, init=init, seed=seed)
    model.fit(df, x=x, y=y, holdout=holdout)
    if bootstrap:
        model.bootstrap(bootstrap, seed=seed, method=bootstrap_method)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_fit(model, df, holdout=holdout).savefig(out, bbox_inches="tight")
    resid = out.with_name(f"{out.stem}-residuals{out.suffix}")
    plot_residuals(model, df).savefig(resid, bbox_inches="tight")
    console.print(f"wrote {out} and {resid}")
