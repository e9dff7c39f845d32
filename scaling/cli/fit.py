"""`scaling fit LAW DATA` (the generic fit of a law), `scaling plot LAW DATA`, and the `scaling fit` group
whose other commands live in `scaling.cli.fit_commands`.

`fit` is a group whose first argument is either one of its subcommands (the Chinchilla
approaches 1 and 2, the comparison of forms) or a law name for the generic fit. Only numpy,
scipy, pandas and the law's own module load for a fit: no torch unless the law needs it, no
matplotlib, report or training modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from scaling.cli.console import Table, console
from scaling.cli.fit_commands import compare, frontier, isoflop, print_fit, select
from scaling.cli.options import (Bootstrap, Data, Delta, Derive, LawOption, Loss, Noise, Where, X, Y,
                                 law_options, parse_delta, parse_noise, resolve_noise)
from scaling.errors import ScalingError
from scaling.laws import get_law


def _known_law(name: str) -> str:
    """The LAW argument checked as it is parsed: before any required option, file or fit."""
    from scaling.laws.registry import law_class

    law_class(name)  # an unknown name is a FitError: one `error:` line naming every law
    return name


LawName = Annotated[str, typer.Argument(help="Law: power, chinchilla, encdec, dcpt, bleu_ce, bleu_log, ...",
                                        callback=_known_law)]
Init = Annotated[str, typer.Option(help="Start grid: default, or hoffmann (chinchilla).")]
Holdout = Annotated[Optional[str], typer.Option(help="Held-out split, e.g. 'largest:1' or 0.2 (see docs).")]
BootMethod = Annotated[Optional[str], typer.Option(
    help="Bootstrap: pairs (resample points; the default), residual (few points) or parametric (Gaussian noise of --noise; the default when --noise is given).")]
GroupBy = Annotated[Optional[str], typer.Option("--by", help="Fit one law per value of this column.")]
BestOver = Annotated[Optional[list[str]], typer.Option(
    "--best-over", help="Tuning column (repeatable, e.g. train.lr): at each value of the inputs keep only the rows of "
                        "its best value (lowest mean y over replicates such as seeds).")]
# Uncertainty, sensitivity, weights, fixed and tied parameters (scaling.laws.profile/sensitivity/manifest).
CI = Annotated[str, typer.Option("--ci", help="Intervals in ci95: bootstrap (with --bootstrap N) or profile.")]
Cluster = Annotated[Optional[str], typer.Option(help="Bootstrap whole clusters of rows (e.g. run_id).")]
Weight = Annotated[Optional[str], typer.Option(help="Column of per-point weights (>= 0; relative: scaled so the positive ones average 1).")]
Fix = Annotated[Optional[list[str]], typer.Option("--fix", help="Pin a parameter, e.g. E=1.69 (repeatable).")]
Tie = Annotated[Optional[list[str]], typer.Option("--tie", help="Fit parameters equal, e.g. alpha=beta (repeatable).")]
Asym = Annotated[float, typer.Option(help="--loss asymmetric: weight on over-predictions.")]
Sens = Annotated[bool, typer.Option("--sensitivity", help="Refit along the (Mis)Fitting checklist; one row per choice.")]
Target = Annotated[Optional[float], typer.Option(
    help="Compute C (= 6ND): N_opt, D_opt, tokens/parameter and loss there, with intervals (laws with an allocation); "
         "with --sensitivity, the compute its table answers at (default 10x the data's max 6ND).")]


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


def _check_allocation(law: str, target: float) -> None:
    """--target-compute asks for N_opt: only laws with a compute-optimal allocation have one."""
    from scaling.errors import FitError
    from scaling.laws.allocation import ComputeOptimal, allocating_laws
    from scaling.laws.registry import law_class

    if not issubclass(law_class(law), ComputeOptimal):  # allocating_laws() imports every law: only to say which
        raise FitError(f"--target-compute gives the compute-optimal allocation; the {law} law has none "
                       f"(laws with one: {', '.join(allocating_laws())})")
    if not target > 0:
        raise FitError(f"--target-compute must be > 0 FLOPs, got {target:g}")


def _best_rows(df, x: list[str], y: str, over: list[str] | None):
    """--best-over: the rows of the best tuning choice at each input value, and what was chosen."""
    if not over:
        return df, None
    from scaling.laws.cli_support import keep_best

    kept, choices = keep_best(df, list(x), y, list(over))
    return kept, {"columns": list(over), "n_kept": len(kept), "n_dropped": len(df) - len(kept), "choices": choices}


def _uncertainty(model, ci, target, res: dict) -> None:
    """--ci profile, the allocation at --target-compute (with intervals), warnings (keys added to res)."""
    from scaling.laws.identifiability import identifiability_warnings

    if ci == "profile":
        model.profile()
        res["ci95"] = {k: [float(a), float(b)] for k, (a, b) in model.ci_.items()}
        res["ci_method"] = "profile"
    if target:
        boot = getattr(model, "boot_params_", None) is not None
        res["allocation_ci95"] = model.allocation_at(target, ci="profile" if ci == "profile" else ("bootstrap" if boot else None))
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
    best_over: BestOver = None,
) -> None:
    """Fit LAW to DATA: parameters with 95% intervals, objective, convergence, held-out error.

    With --holdout the law is first fitted without the held-out rows to report its extrapolation
    error; the parameters shown are then those of the fit on all rows.
    """
    from scaling.laws.cli_support import fit_result_json, load_table
    from scaling.laws.validation import mixed_series_of

    noise = parse_noise(noise)
    bootstrap_method = _bootstrap_method(bootstrap_method, noise, bootstrap)
    options = _fit_options(law, fix, tie, asymmetry, option)
    # a plain CSV fit loads no pandas
    df = load_table(data, where, derive, frame=bool(sensitivity or by or noise == "seeds" or best_over))
    if ci not in ("bootstrap", "profile"):
        from scaling.errors import FitError

        raise FitError(f"--ci must be 'bootstrap' or 'profile', got {ci!r}")
    if target_compute is not None and not sensitivity:
        _check_allocation(law, target_compute)
    if sensitivity:
        df = _best_rows(df, x, y, best_over)[0]
        return _sensitivity(get_law(law, loss=loss, delta=parse_delta(str(delta)), init=init, seed=seed, **options), df, x, y,
                            target_compute, weight, as_json)
    dropped = []
    if where:
        dropped.append({"rule": f"--where {where}", "n": int(len(load_table(data, None, derive)) - len(df))})
    groups = [(None, df)] if by is None else list(_groups(df, by))
    results = {}
    for key, part in groups:
        try:
            part, best = _best_rows(part, x, y, best_over)
            model, (sigma, source) = _fit_one(law, part, x, y, loss, delta, init, holdout, bootstrap, seed,
                                              bootstrap_method, weight, cluster, noise, **options)
            res = {**fit_result_json(model), **_fit_quality(model)}
            if source:
                res["noise"], res["noise_source"] = sigma, source
            if best:
                res["best_over"] = best
            _uncertainty(model, ci, target_compute, res)
            res["warnings"] += mixed_series_of(model, part, best_over=True)
        except ScalingError as e:
            if key is not None:  # which group: e.g. "too few points" in one of many
                e.args = (f"[{by} = {key}, {len(part)} rows] {e}",)
            raise
        results[key] = (model, res)
        if save is not None:
            from scaling.laws.manifest import manifest_path, write_manifest

            path = save if key is None else save.with_name(f"{save.stem}-{key}{save.suffix}")
            model.save(path)
            rules = dropped + ([{"rule": f"--best-over {', '.join(best_over)}", "n": best["n_dropped"]}] if best else [])
            write_manifest(model, manifest_path(path), dropped=rules, source=str(data),
                           counting={"x": list(x), "y": y, "C": "6ND (allocation)"})
    if as_json:
        out = results[None][1] if by is None else {"law": law, "by": by, "fits": {str(k): r for k, (_, r) in results.items()}}
        typer.echo(json.dumps(out, default=float))
        return
    for key, (_, res) in results.items():
        print_fit(res, title=f"{law}" + ("" if key is None else f" [{by} = {key}]"))


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


def plot(
    law: LawName, data: Data, x: X, y: Y, where: Where = None, derive: Derive = None, loss: Loss = "huber",
    delta: Delta = "1e-3", init: Init = "default", holdout: Holdout = None, bootstrap: Bootstrap = 200,
    bootstrap_method: BootMethod = None, noise: Noise = None,
    out: Annotated[Path, typer.Option(help="Prediction plot (PNG, SVG or PDF); the residual plot goes beside it.")] = Path("fit.png"),
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    weight: Weight = None, fix: Fix = None, tie: Tie = None, asymmetry: Asym = 10.0, option: LawOption = None,
    best_over: BestOver = None,
) -> None:
    """Plot the fit `scaling fit` reports for the same flags, with its residuals.

    The prediction plot shows the fit on all rows; the residual plot goes beside it. With
    --holdout it also draws the check: the law fitted without the held-out rows, drawn against
    them (OUT-holdout.png)."""
    from scaling.laws.cli_support import load_table
    from scaling.plots import plot_fit, plot_residuals

    noise = parse_noise(noise)
    bootstrap_method = _bootstrap_method(bootstrap_method, noise, bootstrap)
    options = _fit_options(law, fix, tie, asymmetry, option)
    df, _ = _best_rows(load_table(data, where, derive), x, y, best_over)
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
            ctx.fail("Missing argument 'LAW' (a law name, or isoflop, frontier, compare, select).")
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
for _name, _command in (("isoflop", isoflop), ("frontier", frontier), ("select", select), ("compare", compare)):
    fit_app.command(_name)(_command)
