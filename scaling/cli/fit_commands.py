"""`scaling fit isoflop | frontier | select | compare DATA`: the fits that are not one law's
(Chinchilla's approaches 1 and 2, the data-selection multipliers, the comparison of forms).
`scaling.cli.fit` registers them on the `scaling fit` group."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import numpy as np
import typer

from scaling.cli.console import Table, console
from scaling.cli.options import (AsJson, Bootstrap, Data, Delta, Derive, Loss, Seed, Where, X, Y, bootstrap_count,
                                 parse_delta)

N = Annotated[str, typer.Option("--n", help="Parameter-count column.")]
D = Annotated[str, typer.Option("--d", help="Training-token column.")]


def isoflop(
    data: Data, n: N, d: D, budget: Annotated[str, typer.Option("--budget", help="Compute-budget column (FLOPs).")],
    y: Y, bootstrap: Bootstrap = 0, seed: Seed = 0, where: Where = None, derive: Derive = None, as_json: AsJson = False,
) -> None:
    """Chinchilla Approach 2: per budget a parabola of loss in log N and in log D; N_opt = k_n C^a, D_opt = k_d C^b."""
    from scaling.laws.cli_support import fit_result_json, load_table
    from scaling.laws.isoflop import IsoFlopLaw
    from scaling.laws.validation import mixed_series

    df = load_table(data, where, derive)
    law = IsoFlopLaw(n_bootstrap=bootstrap, seed=seed).fit(df, n=n, d=d, budget=budget, y=y)
    res = {**fit_result_json(law), "budgets": law.budgets_json(), "n_boot_excluded": int(law.n_boot_excluded_)}
    res["warnings"] = mixed_series(df, [n, d, budget], y)
    if as_json:
        typer.echo(json.dumps(res))
        return
    print_fit(res, title="isoflop (Approach 2)")
    table = Table()
    for c in ("budget", "N_opt", "D_opt", "loss_opt", "interior"):
        table.add_column(c, justify="right")
    for b in res["budgets"]:
        num = [f"{b[k]:.4g}" if b[k] is not None else "–" for k in ("n_opt", "d_opt", "loss_opt")]
        table.add_row(f"{b['budget']:.3g}", *num, "yes" if b["interior"] else f"[red]no[/red]: {b.get('reason', '')}")
    console.print(table)


def frontier(
    data: Data,
    flops: Annotated[Optional[str], typer.Option("--flops", help=(
        "Cumulative training-FLOPs column: compute is then these exact FLOPs. Default: C = 6·N·D from --tokens "
        "(the laws' convention, as the report), or the column 'flops' where there is no tokens column."))] = None,
    tokens: Annotated[str, typer.Option("--tokens", help="Cumulative training-tokens column (for C = 6·N·D).")] = "tokens",
    y: Annotated[str, typer.Option("--y", help="Loss column.")] = "loss",
    n: Annotated[Optional[str], typer.Option("--n", help=(
        "Parameter-count column (one value per run). Default: n_params_nonemb where the data have it (a study "
        "folder: the laws' N, as the report), else n_params."))] = None,
    run: Annotated[str, typer.Option("--run", help="Run-id column: one loss curve per value.")] = "run_id",
    where: Where = None, derive: Derive = None, as_json: AsJson = False,
    eval_set: Annotated[Optional[str], typer.Option(help="A study folder's eval set (default its first).")] = None,
) -> None:
    """Chinchilla Approach 1: lower envelope of loss curves against compute; N_opt = k C^a from its winners.

    DATA is a table of curves (one row per run and evaluation) or a study folder: its finished
    runs' curves on one eval set, with the runs' columns (--where selects runs, e.g.
    'n_params_nonemb > 5000'), sized by n_params_nonemb as in the report."""
    from scaling.laws.cli_support import load_study_curves, load_table
    from scaling.laws.frontier import ComputeFrontier

    df = load_study_curves(data, where, derive, eval_set)
    if df is None:
        df = load_table(data, where, derive)
    from scaling.schema import COMPUTE_CONVENTION, FLOPS, N_PARAMS, N_PARAMS_NONEMB

    if n is None:
        n = N_PARAMS_NONEMB if N_PARAMS_NONEMB in df.columns else N_PARAMS
    # exact FLOPs when named, or when they are the only compute the table has; else 6 N D
    exact = flops is not None or (tokens not in df.columns and FLOPS in df.columns)
    compute, flops = ("flops" if exact else COMPUTE_CONVENTION), flops or FLOPS
    fr = ComputeFrontier(fit_loss=False, compute=compute).fit(df, run=run, flops=flops, loss=y, n_params=n, tokens=tokens)
    lo, hi = fr.exponent_ci_
    ci = [float(lo), float(hi)] if np.isfinite(lo) else None
    res = {"law": "frontier", "size": n,
           "compute": f"exact FLOPs ({flops})" if exact else f"6ND (6 x {n} x {tokens})",
           "params": {"a": fr.exponent_, "k": fr.coef_}, "ci95": {"a": ci} if ci else {},
           "n_points": int(len(df)), "converged": True,
           "winners": [{"run": str(r.run), "n_params": float(r.n_params), "c_lo": float(r.c_lo), "c_hi": float(r.c_hi),
                        "used": bool(r.used)} for r in fr.winners_.itertuples()]}
    if as_json:
        typer.echo(json.dumps(res))
        return
    console.print(f"[bold]frontier (Approach 1)[/bold]: {len(fr.winners_)} winning runs; N_opt = {fr.coef_:.4g} · C^"
                  f"{fr.exponent_:.4f}" + (f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else "") + f"; C = {res['compute']}")


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
    """Data selection: each variant's data multiplier m and compute multiplier CM(C), with intervals.

    Fits L_v(N, D) = E_v + A/N^alpha + B/(m_v D')^beta jointly over variants; m and CM(C) are
    against the baseline, with paired (size, seed) cell-bootstrap intervals and P(CM < 1)."""
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
    print_fit(res, title="select (joint over variants)")
    t = Table(title="compute multiplier CM(C) against the baseline")
    for c in ("variant", "m", "m 95%", "C", "CM", "CM 95%", "P(CM<1)"):
        t.add_column(c, justify="right")
    for v, rows in res["cm"].items():
        m = res["multiplier"][v]
        for r in rows:
            t.add_row(v, f"{m['m']:.3g}", f"[{m['ci95'][0]:.3g}, {m['ci95'][1]:.3g}]", f"{r['compute']:.3g}",
                      f"{r['cm']:.3g}", f"[{r['ci95'][0]:.3g}, {r['ci95'][1]:.3g}]", f"{r['p_below_1']:.2f}")
    console.print(t)


def compare(
    data: Data,
    x: X, y: Y,
    laws: Annotated[Optional[str], typer.Option("--laws", help="Comma-separated law forms, e.g. power,chinchilla; "
                                                "default with one x power,power_noconst,broken_power, with two "
                                                "chinchilla,kaplan,power (a default form that cannot be fitted is "
                                                "skipped, with the reason).")] = None, holdout: Annotated[str, typer.Option(help="Held-out split for the extrapolation error.")] = "largest:1",
    budget: Annotated[Optional[str], typer.Option("--budget", help="Compute-budget column: adds Approach 2.")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Run-id column of loss curves (a table's rows, or a study "
                                               "folder's curves): adds Approach 1.")] = None,
    flops: Annotated[str, typer.Option("--flops", help="Cumulative-FLOPs column (with --run; Approach 1 uses it only "
                                                       "when the curves lack the D column, else C = 6·N·D).")] = "flops",
    target_compute: Annotated[float, typer.Option(help="Compute for tokens per parameter (approaches).")] = 1e24,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for the approaches' intervals.",
                                           callback=bootstrap_count)] = 200,
    seed: Seed = 0, loss: Loss = "huber", delta: Delta = "1e-3", where: Where = None, derive: Derive = None,
    as_json: AsJson = False,
) -> None:
    """Rank law forms by held-out error on the largest runs, AIC and BIC (same rows).

    With two x columns (N, D) it also compares Chinchilla's approaches 1-3 where the columns
    allow."""
    from scaling.laws.agreement import approach_agreement, compare_forms, default_forms, verdict
    from scaling.laws.cli_support import load_study_curves, load_table
    from scaling.laws.validation import mixed_series

    df = load_table(data, where, derive)
    curves = None
    if run:  # a study folder's curves, else the table's rows are the curves
        curves = load_study_curves(data, where, derive)
        curves = df if curves is None else curves
    opts = {"loss": loss, "delta": parse_delta(delta)}
    skipped: dict[str, str] | None = None
    if laws is None:
        forms, skipped = default_forms(x), {}
    else:
        forms = [s.strip() for s in laws.split(",") if s.strip()]
    table = compare_forms(df, forms, x, y, holdout, opts, skipped=skipped)
    res: dict = {"forms": json.loads(table.to_json(orient="records")), "holdout": holdout, "skipped": skipped or {}}
    res["warnings"] = mixed_series(df, [*x, *([budget] if budget else [])], y)
    if len(x) >= 2:
        res["approaches"] = approach_agreement(df, n=x[0], d=x[1], y=y, budget=budget, curves=curves,
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
    for name, why in res["skipped"].items():
        console.print(f"  {name} not ranked: {why}")
    for w in res["warnings"]:
        console.print(f"  [yellow]warning:[/yellow] {w}")
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
        console.print(f"  exponent a: {verdict(ag, 'a')}")
        console.print(f"  tokens per parameter: {verdict(ag, 'tokens_per_param')}")


def print_fit(res: dict, title: str) -> None:
    console.print(f"[bold]{title}[/bold]: {res['n_points']} points, objective {res['objective']:.6g}"
                  f"{'' if res['converged'] else ' [red](NOT CONVERGED)[/red]'}")
    table = Table()
    for c in ("parameter", "value", "95% interval"):
        table.add_column(c, justify="right")
    for name, value in res["params"].items():
        ci = res.get("ci95", {}).get(name)
        table.add_row(name, f"{value:.6g}", f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "–")
    console.print(table)
    if res["params"] and not res.get("ci95"):  # the point estimates alone: say how to get their uncertainty
        console.print("  no intervals: add --bootstrap 200 (or --ci profile) for 95% intervals")
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
    b = res.get("best_over")
    if b:
        picks = [", ".join(f"{k}={v}" for k, v in c["choice"].items()) for c in b["choices"]]
        chosen = (f"{picks[0]} at every input value" if len(set(picks)) == 1 else "; ".join(
            ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["x"].items()) + f": {p}"
            for c, p in zip(b["choices"], picks)))
        console.print(f"  best over {', '.join(b['columns'])} ({b['n_kept']} rows kept, {b['n_dropped']} dropped): {chosen}")
    a = res.get("allocation_ci95")
    if a:
        iv = lambda v: "" if v["lo"] is None else f" [{v['lo']:.3g}, {v['hi']:.3g}]"  # noqa: E731
        how = (f"95% {a['method']} intervals" if a.get("method") else
               "intervals with --bootstrap N or --ci profile")
        console.print(f"  compute-optimal at C = {a['C']:.3g} (6ND; {how}): N_opt {a['N_opt']['value']:.3g}"
                      f"{iv(a['N_opt'])}, D_opt {a['D_opt']['value']:.3g}{iv(a['D_opt'])}, tokens/parameter "
                      f"{a['tokens_per_param']['value']:.3g}{iv(a['tokens_per_param'])}, loss {a['loss']:.4g}")
    h = res.get("holdout") or {}
    if h:
        console.print(f"  held-out ({h.get('split', '')}): {h.get('n_test')} points, mean |rel. error| "
                      f"{h.get('mean_abs_rel_error', float('nan')):.3%}, max {h.get('max_abs_rel_error', float('nan')):.3%}")
