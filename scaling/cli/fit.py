"""`scaling fit LAW DATA`, `scaling fit isoflop|frontier|compare DATA` and `scaling plot LAW DATA`.

`fit` is a group whose first argument is either one of its subcommands (the Chinchilla
approaches 1 and 2, the comparison of forms) or a law name for the generic fit. Only numpy,
scipy, pandas and the law's own module load for a fit: no torch unless the law needs it, no
matplotlib, report or training modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from typer.core import TyperGroup

from scaling.cli.options import (Delta, LawOption, Noise, bootstrap_count, law_options, parse_delta, parse_noise,
                                  resolve_noise)
from scaling.laws import get_law


class _LazyConsole:
    """rich loads on first print: a `--json` fit never pays for it."""

    def print(self, *args, **kwargs) -> None:
        from rich.console import Console

        globals()["console"] = Console()
        console.print(*args, **kwargs)


def Table(*args, **kwargs):  # noqa: N802 - stands in for rich.table.Table, imported on use
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


console = _LazyConsole()


LawName = Annotated[str, typer.Argument(help="Law: power, chinchilla, encdec, dcpt, bleu_ce, bleu_log, ...")]
Data = Annotated[Path, typer.Argument(help="Parquet or CSV/TSV file, or a study folder (its runs.parquet).")]
X = Annotated[list[str], typer.Option("--x", help="Input column(s), in the law's order.")]
Y = Annotated[str, typer.Option("--y", help="Target column.")]
Where = Annotated[Optional[str], typer.Option(help="Row filter, a pandas query, e.g. 'data_bytes > 5e6'.")]
Derive = Annotated[Optional[list[str]], typer.Option(
    "--derive", help="New column before filtering, e.g. 'params = 2*Layers*(4*ModelSize**2 + 2*ModelSize*FeedForward)'.")]
Loss = Annotated[str, typer.Option(help="huber or mse.")]
Init = Annotated[str, typer.Option(help="Start grid: default, or hoffmann (chinchilla).")]
Holdout = Annotated[Optional[str], typer.Option(help="Held-out split, e.g. 'largest:1' or 0.2 (see docs).")]
Bootstrap = Annotated[int, typer.Option(help="Bootstrap replicates for 95% intervals (0 = none).", callback=bootstrap_count)]
BootMethod = Annotated[Optional[str], typer.Option(
    help="Bootstrap: pairs (resample points; the default), residual (few points) or parametric (Gaussian noise of --noise; the default when --noise is given).")]
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


def _fit_options(law: str, fix, tie, asymmetry: float, option) -> dict:
    """Law options from --fix, --tie, --asymmetry and --option (shared by fit and plot)."""
    return {"fixed": _pairs(fix, "--fix", True) or None, "tied": _pairs(tie, "--tie", False) or None,
            "asymmetry": asymmetry, **law_options(law, option)}


def _uncertainty(model, ci, target, res: dict) -> None:
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


def _bootstrap_method(method: str | None, noise: float | str | None, bootstrap: int) -> str:
    """--bootstrap-method, defaulting to parametric when --noise is given; checked before any fit."""
    from scaling.errors import FitError

    method = method or ("parametric" if noise is not None else "pairs")
    if method not in ("pairs", "residual", "parametric"):
        raise FitError(f"--bootstrap-method must be pairs, residual or parametric, got {method!r}")
    if method == "parametric" and noise is None:
        raise FitError("--bootstrap-method parametric needs --noise (a number, or 'seeds' to pool it from replicates)")
    if noise is not None and not (bootstrap and method == "parametric"):
        raise FitError("--noise is the noise of the parametric bootstrap: add --bootstrap N (and no other "
                       "--bootstrap-method)")
    return method


def _fit_one(law: str, df, x, y, loss, delta, init, holdout, bootstrap, seed, method="pairs", weight=None,
             cluster=None, noise=None, **options):
    """The fitted law and, with --noise, (noise, where it came from) of its parametric bootstrap."""
    model = get_law(law, loss=loss, delta=parse_delta(str(delta)), init=init, seed=seed, **options)
    noise = resolve_noise(noise, model, df, x, y)  # no replicates for --noise seeds: said before the fit
    model.fit_and_check(df, x, y, holdout, weight=weight)
    if bootstrap:
        if cluster is not None and cluster not in df.columns:
            from scaling.errors import DataError

            raise DataError(f"--cluster column `{cluster}` not in data; columns are: {', '.join(map(str, df.columns))}")
        model.bootstrap(bootstrap, seed=seed, method=method, cluster=None if cluster is None else df[cluster],
                        noise=noise[0])
    return model, noise


def fit(
    law: LawName, data: Data, x: X, y: Y, where: Where = None, derive: Derive = None, loss: Loss = "huber",
    delta: Delta = "1e-3", init: Init = "default", holdout: Holdout = None, bootstrap: Bootstrap = 0,
    bootstrap_method: BootMethod = None, noise: Noise = None, by: GroupBy = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the fitted law as JSON here (and its manifest beside).")] = None,
    ci: CI = "bootstrap", cluster: Cluster = None, weight: Weight = None, fix: Fix = None, tie: Tie = None,
    asymmetry: Asym = 10.0, sensitivity: Sens = False, target_compute: Target = None, option: LawOption = None,
) -> None:
    """Fit LAW to DATA: parameters with 95% intervals, objective, convergence, held-out error.

    With --holdout the law is first fitted without the held-out rows to report its extrapolation
    error; the parameters shown are then those of the fit on all rows.
    """
    from scaling.laws.cli_support import fit_result_json, load_table

    noise = parse_noise(noise)
    bootstrap_method = _bootstrap_method(bootstrap_method, noise, bootstrap)
    options = _fit_options(law, fix, tie, asymmetry, option)
    # a plain CSV fit loads no pandas
    df = load_table(data, where, derive, frame=bool(sensitivity or by or noise == "seeds"))
    if ci not in ("bootstrap", "profile"):
        from scaling.errors import FitError

        raise FitError(f"--ci must be 'bootstrap' or 'profile', got {ci!r}")
    if sensitivity:
        return _sensitivity(get_law(law, loss=loss, delta=parse_delta(str(delta)), init=init, seed=seed, **options), df, x, y,
                            target_compute, weight, as_json)
    dropped = []
    if where:
        dropped.append({"rule": f"--where {where}", "n": int(len(load_table(data, None, derive)) - len(df))})
    groups = [(None, df)] if by is None else list(_groups(df, by))
    results = {}
    for key, part in groups:
        model, (sigma, source) = _fit_one(law, part, x, y, loss, delta, init, holdout, bootstrap, seed,
                                          bootstrap_method, weight, cluster, noise, **options)
        res = {**fit_result_json(model), **_fit_quality(model)}
        if source:
            res["noise"], res["noise_source"] = sigma, source
        _uncertainty(model, ci, target_compute, res)
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
    for key, (_, res) in results.items():
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
        out.add_column(c, no_wrap=c in ("axis", "choice"))  # the choice is what a reader looks for
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
           "n_starts": int(model.n_starts_), "n_starts_best": int(model.n_starts_best_),
           "delta": float(model.delta_), "solver": model.solver_}
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
    if res.get("noise_source"):
        console.print(f"  intervals: parametric bootstrap at noise {res['noise']:.4g} per run ({res['noise_source']})")
    if res.get("constants"):
        console.print("  fixed constants: " + ", ".join(f"{k} = {v:.6g}" for k, v in res["constants"].items()))
    h = res.get("holdout") or {}
    if h:
        console.print(f"  held-out ({h.get('split', '')}): {h.get('n_test')} points, mean |rel. error| "
                      f"{h.get('mean_abs_rel_error', float('nan')):.3%}, max {h.get('max_abs_rel_error', float('nan')):.3%}")


def plot(
    law: LawName, data: Data, x: X, y: Y, where: Where = None, derive: Derive = None, loss: Loss = "huber",
    delta: Delta = "1e-3", init: Init = "default", holdout: Holdout = None, bootstrap: Bootstrap = 200,
    bootstrap_method: BootMethod = None, noise: Noise = None,
    out: Annotated[Path, typer.Option(help="Prediction plot (PNG, SVG or PDF); the residual plot goes beside it.")] = Path("fit.png"),
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    weight: Weight = None, fix: Fix = None, tie: Tie = None, asymmetry: Asym = 10.0, option: LawOption = None,
) -> None:
    """Write the prediction plot of the fit `scaling fit` reports for the same flags (fitted on all
    rows), its residuals, and with --holdout the check: the law fitted without the held-out rows,
    drawn against them (OUT-holdout.png)."""
    from scaling.laws.cli_support import load_table
    from scaling.plots import plot_fit, plot_residuals

    noise = parse_noise(noise)
    bootstrap_method = _bootstrap_method(bootstrap_method, noise, bootstrap)
    options = _fit_options(law, fix, tie, asymmetry, option)
    df = load_table(data, where, derive)
    from scaling.store import atomic_open

    model, _ = _fit_one(law, df, x, y, loss, delta, init, holdout, bootstrap, seed, bootstrap_method, weight,
                        noise=noise, **options)
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


# ---- `scaling fit` as a group: subcommands, else a law name for the generic fit ----
class _FitGroup(TyperGroup):
    """`scaling fit NAME ...`: NAME is a subcommand (isoflop, frontier, compare) or a law."""

    def parse_args(self, ctx, args):  # noqa: ANN001 - click's signature
        if not args:
            ctx.fail("Missing argument 'LAW' (a law name, or isoflop, frontier, compare).")
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):  # noqa: ANN001
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "law", self.commands["law"], args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx, formatter) -> None:  # noqa: ANN001
        formatter.write_usage("scaling fit", "[LAW | isoflop | frontier | compare | select] DATA [OPTIONS]")


fit_app = typer.Typer(cls=_FitGroup, help=(
    "Fit a law to a table (`scaling fit LAW DATA --x COL --y COL`, laws: power, chinchilla, encdec, dcpt, "
    "bleu_ce, ...; `scaling fit LAW --help` lists its options), or run one of the commands below."))
fit_app.command("law", hidden=True)(fit)

N = Annotated[str, typer.Option("--n", help="Parameter-count column.")]
D = Annotated[str, typer.Option("--d", help="Training-token column.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")]
Seed = Annotated[int, typer.Option(help="Bootstrap seed.")]


@fit_app.command("isoflop")
def isoflop(
    data: Data, n: N, d: D, budget: Annotated[str, typer.Option("--budget", help="Compute-budget column (FLOPs).")],
    y: Y, bootstrap: Bootstrap = 0, seed: Seed = 0, where: Where = None, derive: Derive = None, as_json: AsJson = False,
) -> None:
    """Chinchilla Approach 2: per budget a parabola of loss in log N and in log D; N_opt = k_n C^a, D_opt = k_d C^b."""
    from scaling.laws.cli_support import fit_result_json, load_table
    from scaling.laws.isoflop import IsoFlopLaw

    df = load_table(data, where, derive)
    law = IsoFlopLaw(n_bootstrap=bootstrap, seed=seed).fit(df, n=n, d=d, budget=budget, y=y)
    res = {**fit_result_json(law), "budgets": law.budgets_json(), "n_boot_excluded": int(law.n_boot_excluded_)}
    if as_json:
        typer.echo(json.dumps(res))
        return
    _print_fit(res, title="isoflop (Approach 2)")
    table = Table()
    for c in ("budget", "N_opt", "D_opt", "loss_opt", "interior"):
        table.add_column(c, justify="right")
    for b in res["budgets"]:
        num = [f"{b[k]:.4g}" if b[k] is not None else "–" for k in ("n_opt", "d_opt", "loss_opt")]
        table.add_row(f"{b['budget']:.3g}", *num, "yes" if b["interior"] else f"[red]no[/red]: {b.get('reason', '')}")
    console.print(table)


@fit_app.command("frontier")
def frontier(
    data: Data, flops: Annotated[str, typer.Option("--flops", help="Cumulative training-FLOPs column.")] = "flops",
    y: Annotated[str, typer.Option("--y", help="Loss column.")] = "loss",
    n: Annotated[str, typer.Option("--n", help="Parameter-count column (one value per run).")] = "n_params",
    run: Annotated[str, typer.Option("--run", help="Run-id column: one loss curve per value.")] = "run_id",
    where: Where = None, derive: Derive = None, as_json: AsJson = False,
    eval_set: Annotated[Optional[str], typer.Option(help="A study folder's eval set (default its first).")] = None,
) -> None:
    """Chinchilla Approach 1: lower envelope of loss curves against compute; N_opt = k C^a from its winners.

    DATA is a table of curves (one row per run and evaluation) or a study folder: its finished
    runs' curves on one eval set, with the runs' columns (--where selects runs, e.g.
    'n_params_nonemb > 5000'; --n n_params_nonemb as in the report)."""
    from scaling.laws.cli_support import load_study_curves, load_table
    from scaling.laws.frontier import ComputeFrontier

    df = load_study_curves(data, where, derive, eval_set)
    if df is None:
        df = load_table(data, where, derive)
    fr = ComputeFrontier(fit_loss=False).fit(df, run=run, flops=flops, loss=y, n_params=n)
    lo, hi = fr.exponent_ci_
    ci = [float(lo), float(hi)] if np.isfinite(lo) else None
    res = {"law": "frontier", "params": {"a": fr.exponent_, "k": fr.coef_}, "ci95": {"a": ci} if ci else {},
           "n_points": int(len(df)), "converged": True,
           "winners": [{"run": str(r.run), "n_params": float(r.n_params), "c_lo": float(r.c_lo), "c_hi": float(r.c_hi),
                        "used": bool(r.used)} for r in fr.winners_.itertuples()]}
    if as_json:
        typer.echo(json.dumps(res))
        return
    console.print(f"[bold]frontier (Approach 1)[/bold]: {len(fr.winners_)} winning runs; N_opt = {fr.coef_:.4g} · C^"
                  f"{fr.exponent_:.4f}" + (f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else ""))


@fit_app.command("select")
def select(
    data: Data,
    variant: Annotated[str, typer.Option("--variant", help="Column naming each run's selection (method and keep share).")],
    baseline: Annotated[str, typer.Option("--baseline", help="Its value for the unfiltered data (m = 1).")],
    x: X, y: Y,
    unique_tokens: Annotated[Optional[str], typer.Option(help="Column of unique tokens per run (repetition: "
                                                              "effective data as Muennighoff et al.).")] = None,
    cell: Annotated[Optional[list[str]], typer.Option("--cell", help="Columns of a (size, seed) cell for the paired "
                                                                     "bootstrap (default: the first x, and seed if present).")] = None,
    compute: Annotated[Optional[str], typer.Option(help="Budgets (FLOPs, comma-separated) for CM(C); default 1x to "
                                                        "1000x the largest run's 6ND.")] = None,
    floors: Annotated[str, typer.Option(help="'free' (one floor E per variant), 'shared' (every variant's floor "
                                             "tied to the baseline's: where the floors are known equal) or 'column' "
                                             "(known floors held fixed: see --floor-column).")] = "free",
    floor_column: Annotated[Optional[str], typer.Option(help="Column of each variant's known floor (e.g. select_floor, "
                                                             "exact on synthetic pools); implies --floors column.")] = None,
    r_star: Annotated[Optional[str], typer.Option("--r-star", help="Muennighoff's R* (epochs over which repeated tokens lose "
                                                         "their value): a number (default Muennighoff et al.'s 15.4), or 'fit' "
                                                         "(needs --unique-tokens).")] = None,
    delta: Delta = "1e-3",
    bootstrap: Bootstrap = 0, seed: Seed = 0, where: Where = None, derive: Derive = None, as_json: AsJson = False,
) -> None:
    """Data selection: L_v(N, D) = E_v + A/N^alpha + B/(m_v D')^beta jointly over variants; each
    variant's data multiplier m and compute multiplier CM(C) against the baseline, with paired
    (size, seed) cell-bootstrap intervals and P(CM < 1)."""
    from scaling.errors import DataError
    from scaling.laws.cli_support import fit_result_json, load_table
    from scaling.laws.select import R_STAR, SelectLaw, cell_bootstrap, multiplier_summary

    df = load_table(data, where, derive)
    if r_star is None:
        r_star = R_STAR
    elif r_star != "fit":
        try:
            r_star = float(r_star)
        except ValueError:
            raise DataError(f"--r-star must be a number or 'fit', got {r_star!r}") from None
    law = SelectLaw(variant=variant, baseline=baseline, unique_tokens=unique_tokens, seed=seed, delta=parse_delta(delta),
                    floors="column" if floor_column else floors, floor_column=floor_column, r_star=r_star).fit(df, x=x, y=y)
    cells = list(cell or [x[0]] + (["seed"] if "seed" in df.columns else []))
    if bootstrap:
        cell_bootstrap(law, df, cells, n=bootstrap, seed=seed)
    if compute:
        try:
            budgets = [float(v) for v in compute.split(",") if v.strip()]
        except ValueError:
            raise DataError(f"--compute must be comma-separated FLOPs, got {compute!r}") from None
    else:
        top = float((6.0 * df[x[0]].astype(float) * df[x[1]].astype(float)).max())
        budgets = list(np.geomspace(top, 1000 * top, 4))
    unique = None
    if unique_tokens:
        unique = {str(v): float(g[unique_tokens].max()) for v, g in df.groupby(df[variant].astype(str))}
    res = {**fit_result_json(law), **multiplier_summary(law, budgets, unique=unique), "variants": law.variants_,
           "baseline": str(baseline), "cells": cells, "n_boot_excluded": int(getattr(law, "boot_excluded_", 0))}
    if as_json:
        typer.echo(json.dumps(res, default=float))
        return
    _print_fit(res, title="select (joint over variants)")
    t = Table(title="compute multiplier CM(C) against the baseline")
    for c in ("variant", "m", "m 95%", "C", "CM", "CM 95%", "P(CM<1)"):
        t.add_column(c, justify="right")
    for v, rows in res["cm"].items():
        m = res["multiplier"][v]
        for r in rows:
            t.add_row(v, f"{m['m']:.3g}", f"[{m['ci95'][0]:.3g}, {m['ci95'][1]:.3g}]", f"{r['compute']:.3g}",
                      f"{r['cm']:.3g}", f"[{r['ci95'][0]:.3g}, {r['ci95'][1]:.3g}]", f"{r['p_below_1']:.2f}")
    console.print(t)


@fit_app.command("compare")
def compare(
    data: Data,
    laws: Annotated[str, typer.Option("--laws", help="Comma-separated law forms, e.g. power,chinchilla.")],
    x: X, y: Y, holdout: Annotated[str, typer.Option(help="Held-out split for the extrapolation error.")] = "largest:1",
    budget: Annotated[Optional[str], typer.Option("--budget", help="Compute-budget column: adds Approach 2.")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Run-id column of loss curves: adds Approach 1.")] = None,
    flops: Annotated[str, typer.Option("--flops", help="Cumulative-FLOPs column (with --run).")] = "flops",
    target_compute: Annotated[float, typer.Option(help="Compute for tokens per parameter (approaches).")] = 1e24,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for the approaches' intervals.",
                                           callback=bootstrap_count)] = 200,
    seed: Seed = 0, loss: Loss = "huber", delta: Delta = "1e-3", where: Where = None, derive: Derive = None,
    as_json: AsJson = False,
) -> None:
    """Rank law forms by held-out error on the largest runs, AIC and BIC (same rows); with two x
    columns (N, D) also compare Chinchilla's approaches 1-3 where the columns allow."""
    from scaling.laws.agreement import approach_agreement, compare_forms
    from scaling.laws.cli_support import load_table

    df = load_table(data, where, derive)
    opts = {"loss": loss, "delta": parse_delta(delta)}
    table = compare_forms(df, [s.strip() for s in laws.split(",") if s.strip()], x, y, holdout, opts)
    res: dict = {"forms": json.loads(table.to_json(orient="records")), "holdout": holdout}
    if len(x) >= 2:
        res["approaches"] = approach_agreement(df, n=x[0], d=x[1], y=y, budget=budget, curves=df if run else None,
                                               run=run or "run_id", flops=flops, target_compute=target_compute,
                                               n_bootstrap=bootstrap, seed=seed, law_options=opts)
    if as_json:
        typer.echo(json.dumps(res, default=float))
        return
    t = Table(title=f"forms ranked by held-out error ({holdout})")
    for c in ("law", "x", "held-out |rel. err|", "AIC", "BIC", "R²", "k"):
        t.add_column(c, justify="right")
    for r in res["forms"]:
        t.add_row(r["law"], r["x"], f"{r['holdout_error']:.3%}", f"{r['aic']:.2f}", f"{r['bic']:.2f}", f"{r['r2']:.4f}",
                  str(r["n_params"]))
    console.print(t)
    ag = res.get("approaches")
    if ag:
        t = Table(title=f"Chinchilla approaches at C = {ag['target_compute']:.3g}")
        for c in ("approach", "a (N_opt ∝ C^a)", "95% CI", "tokens/param", "95% CI"):
            t.add_column(c, justify="right")
        for r in ag["approaches"]:
            ci = lambda v: f"[{v[0]:.4g}, {v[1]:.4g}]" if v else "–"  # noqa: E731
            t.add_row(f"{r['approach']} {r['method']}", f"{r['a']:.4f}", ci(r["a_ci"]), f"{r['tokens_per_param']:.4g}",
                      ci(r["tokens_per_param_ci"]))
        console.print(t)
        for k, why in ag["skipped"].items():
            console.print(f"  approach {k} skipped: {why}")
        verdict = {True: "agree", False: "DISAGREE", None: "cannot tell (intervals missing)"}
        console.print(f"  exponent a: {verdict[ag['agree']['a']]}; tokens per parameter: "
                      f"{verdict[ag['agree']['tokens_per_param']]}")
