"""`scaling advise DATA`: which runs to train next so the answer at the target scale is most certain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaling.cli.options import Derive, Noise, delta_option, or_spec_delta, parse_noise, replicate_count, resolve_noise


def _floats(text: str, option: str) -> list[float]:
    from scaling.errors import DataError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DataError(f"{option} must be comma-separated numbers, got {text!r}") from None


def advise(
    data: Annotated[Optional[str], typer.Argument(help="Runs done so far: a table, a study folder or a dataset name "
                                                       "(omit with --prior when there are none).")] = None,
    law: Annotated[str, typer.Option(help="Law to extrapolate with: power or chinchilla.")] = "power",
    x: Annotated[Optional[list[str]], typer.Option("--x", help="Input column(s), in the law's order.")] = None,
    y: Annotated[str, typer.Option("--y", help="Target column.")] = "loss",
    budget: Annotated[float, typer.Option(help="Compute to spend on new runs, FLOPs.")] = 0.0,
    target: Annotated[str, typer.Option(help="loss; n_opt or tokens_per_param (chinchilla); encoder_share "
                                             "(encdec); domain_share (dcpt laws, with --y-general); "
                                             "compute_multiplier (select, with --variant).")] = "loss",
    at: Annotated[float, typer.Option(help="Where the target is wanted: an x value (one-input laws) or a compute "
                                           "budget in FLOPs (chinchilla). Default: 10x the largest x (power).")] = 0.0,
    candidates: Annotated[Optional[Path], typer.Option(help="Study spec whose runs (shapes x grid, with steps "
                                                            "scaled by --step-multipliers) are the candidates.")] = None,
    step_multipliers: Annotated[str, typer.Option(help="Token budgets of spec candidates, as multiples of the "
                                                       "spec's steps (two-input laws).")] = "0.25,0.5,1,2,4",
    seeds: Annotated[str, typer.Option(help="Seeds a spec candidate may take (a new seed is a new run).")] = "0,1,2",
    sizes: Annotated[Optional[str], typer.Option(help="Without a spec: candidate sizes LO:HI:K (log-spaced).")] = None,
    tokens_per_param: Annotated[str, typer.Option(help="Without a spec: tokens per parameter (two-input laws).")]
    = "5,10,20,40,80",
    tokens: Annotated[float, typer.Option(help="Without a spec: tokens per run for one-input laws "
                                               "(default: the data's `tokens` column).")] = 0.0,
    repeats: Annotated[int, typer.Option(help="Without a spec: times one grid point may be chosen (new seeds).")] = 1,
    shares: Annotated[str, typer.Option(help="Without a spec: domain shares r of dcpt candidates.")] = "0.1,0.3,0.5,0.7,0.9",
    variant: Annotated[Optional[str], typer.Option(help="compute_multiplier: the selection variant.")] = None,
    variant_column: Annotated[str, typer.Option(help="select law: the variant column.")] = "variant",
    baseline: Annotated[Optional[str], typer.Option(help="select law: the unfiltered variant's value.")] = None,
    y_general: Annotated[Optional[str], typer.Option(help="domain_share: the general-loss column (its law is fitted "
                                                          "on the general share 1 - r).")] = None,
    at_tokens: Annotated[float, typer.Option(help="domain_share: CPT tokens D of the target run (--at is its N).")] = 0.0,
    base_loss: Annotated[float, typer.Option(help="domain_share: the base model's general loss.")] = 0.0,
    threshold: Annotated[float, typer.Option(help="domain_share: allowed rise of the general loss.")] = 0.03,
    n_runs: Annotated[Optional[int], typer.Option("--n-runs", help="At most this many new runs.", min=1)] = None,
    noise: Noise = None,
    prior: Annotated[Optional[Path], typer.Option(help="A saved fit (`scaling fit ... --bootstrap N --save F`) "
                                                       "whose replicates stand for the parameters when there are no runs.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Replicates of the current fit (residual bootstrap).",
                                           callback=replicate_count)] = 200,
    where: Annotated[Optional[str], typer.Option(help="Row filter expression, e.g. 'status == \"done\"'.")] = None,
    derive: Derive = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the draws.")] = 0,
    append: Annotated[bool, typer.Option(help="Append the advised runs to the --candidates study: the next "
                                               "`scaling grid run SPEC` trains them (new run ids, nothing retrained).")] = False,
    store: Annotated[Optional[Path], typer.Option(help="--append: the study folder to append to (default: DATA "
                                                       "when it is a study folder, else <study>/ beside the spec).")] = None,
    delta: Annotated[Optional[str], typer.Option(help="Huber delta of the fits: a number, or 'auto' (from the "
                                                      "residuals); default the --candidates spec's [report] delta, "
                                                      "else the laws' 1e-3.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Choose the runs that shrink the 95% interval of TARGET at AT most, within BUDGET FLOPs.

    Assumes the law's form is right and one run's loss has noise of constant scale; see the
    README's `scaling advise` section for the method and its failure modes.
    """
    import numpy as np

    from scaling.advise.design import advise as choose
    from scaling.advise.study import candidate_grid, spec_candidates
    from scaling.advise.targets import TargetOptions, check_target_name
    from scaling.errors import DataError
    from scaling.laws import get_law
    from scaling.laws.base import Law
    from scaling.laws.cli_support import load_table

    check_target_name(target, law)
    fit_options = delta_option(delta)
    spec = None
    if candidates is not None:
        from scaling.config import load_spec

        spec = load_spec(candidates)
        fit_options = or_spec_delta(fit_options, spec.report.delta)  # as the study's report and `grid run --advise`
    noise = parse_noise(noise)
    if budget <= 0:
        raise DataError("--budget (FLOPs to spend on new runs) is required and must be > 0")
    if target == "compute_multiplier" and not variant:
        raise DataError("--target compute_multiplier needs --variant (the selection variant to compare with --baseline)")
    if target == "domain_share" and not (y_general and at_tokens > 0 and base_loss > 0):
        raise DataError("--target domain_share needs --y-general COLUMN, --at N, --at-tokens D and --base-loss L")
    prior_law = Law.load(prior) if prior is not None else None
    fitted, df, general = None, None, None
    law_options = {**({"variant": variant_column, "baseline": baseline} if law == "select" else {}), **fit_options}
    if data is not None:
        if not x:
            raise DataError("--x is required with DATA (the law's input columns)")
        df = load_table(data, where, derive)
        fitted = get_law(law, seed=seed, **law_options).fit(df, x=x, y=y)
        fitted.bootstrap(bootstrap, seed=seed, method="residual")
        if target == "domain_share":
            if not y_general or len(x) != 3:
                raise DataError("--target domain_share needs --y-general COLUMN and --x N --x D --x SHARE (dcpt laws)")
            share = df.copy()
            share[x[2]] = 1.0 - share[x[2]]  # the general loss is modelled on the general share
            general = get_law(law, seed=seed, **fit_options).fit(share, x=x, y=y_general)
            general.bootstrap(bootstrap, seed=seed, method="residual")
    elif prior_law is None:
        raise DataError("give DATA (the runs done so far) or --prior FILE (a saved fit) when there are none")
    if noise == "seeds":
        if fitted is None:
            raise DataError("--noise seeds pools the noise from the runs' repeated seeds: give DATA, or the noise as a number")
        noise, _ = resolve_noise(noise, fitted, df, list(x), y)
    base = fitted or prior_law
    cols = list(x or base.x_)
    if not at and target != "encoder_share":
        if base.n_inputs != 1 or df is None:
            raise DataError("--at is required (a compute budget in FLOPs for chinchilla, an x value otherwise)")
        at = 10.0 * float(df[cols[0]].max())
    if candidates is not None:
        mult = _floats(step_multipliers, "--step-multipliers") if base.n_inputs >= 2 and base.name != "encdec" else [1.0]
        done = frozenset(df["run_id"]) if df is not None and "run_id" in df.columns else frozenset()
        cands = spec_candidates(str(candidates), cols, mult, seeds=[int(v) for v in _floats(seeds, "--seeds")],
                                exclude=done, columns=[variant_column] if base.name == "select" else [],
                                continuations=target == "domain_share")
    else:
        if sizes is None:
            if df is None:
                raise DataError("--sizes LO:HI:K or --candidates SPEC is required with no runs")
            lo, hi, k = float(df[cols[0]].min()), 10.0 * float(df[cols[0]].max()), 16
        else:
            try:
                lo, hi, k = (float(v) for v in sizes.split(":"))
            except ValueError:
                raise DataError(f"--sizes must look like LO:HI:K, e.g. 1e7:1e9:12, got {sizes!r}") from None
        if (base.n_inputs == 1 or base.name == "encdec") and not tokens:
            if df is None or "tokens" not in df.columns or df["tokens"].nunique() != 1:
                raise DataError("--tokens (tokens per run) is required to cost one-input and encdec candidates")
            tokens = float(df["tokens"].iloc[0])
        cands = candidate_grid(base, sizes=np.geomspace(lo, hi, int(k)),
                               tokens_per_param=_floats(tokens_per_param, "--tokens-per-param"), tokens=tokens,
                               repeats=repeats, shares=_floats(shares, "--shares"))
    opts = TargetOptions(variant=variant, tokens=at_tokens or None, base_loss=base_loss or None, threshold=threshold)
    advice = choose(fitted, cands, budget, target, at, n_runs=n_runs, noise=noise, prior=prior_law, seed=seed,
                    options=opts, partner=general)
    if fitted is not None:  # several series in DATA would be fitted, and advised on, as one
        from scaling.laws.validation import mixed_series_of

        advice.warnings[:0] = mixed_series_of(fitted, df)
    added, train_command = None, None
    if append and candidates is None:
        raise DataError("--append needs --candidates SPEC (the study the advised runs join)")
    if spec is not None:
        from scaling.store import RUNS_TABLE
        from scaling.train import study_root

        default = study_root(spec)
        if store is None:  # the folder the runs so far came from (`grid run --out DIR`), else the spec's default
            folder = Path(data) if data is not None else None
            store = folder if folder is not None and (folder / RUNS_TABLE).is_file() else default
        same = Path(store).resolve() == default.resolve()
        train_command = f"scaling grid run {candidates}" + ("" if same else f" --out {store}")
    if append:
        from scaling.advise.study import append_advised

        added = append_advised(store, advice)
    if as_json:
        out = advice.to_json()
        if added is not None:
            out["appended"] = len(added)
        typer.echo(json.dumps(out, default=float))
        return
    _print(advice, train_command, added)


def _print(advice, train_command: Optional[str], added: Optional[list]) -> None:
    from rich.table import Table

    from scaling.cli.console import console

    lo, hi = advice.ci95_before
    console.print(f"[bold]{advice.target}[/bold] at {advice.at:.4g} under the current {advice.law} fit: "
                  f"{advice.value:.4g}, 95% interval [{lo:.4g}, {hi:.4g}]")
    console.print(f"expected 95% width (linearised): {advice.expected_width_before:.4g} now, "
                  f"{advice.expected_width_after:.4g} after the {len(advice.runs)} advised runs "
                  f"(x{advice.expected_narrowing:.3g}); {advice.spent:.3g} of {advice.budget:.3g} FLOPs; "
                  f"noise {advice.noise:.3g} per run")
    for w in advice.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    if not advice.runs:
        return
    table = Table()
    for c in ("#", "run", "FLOPs", "expected width after", "why"):
        table.add_column(c)
    for i, r in enumerate(advice.runs, 1):
        table.add_row(str(i), r["label"], f"{r['flops']:.3g}", f"{r['expected_width_after']:.4g}", r["reason"])
    console.print(table)
    if advice.core:
        console.print(f"diminishing returns: {advice.core_summary()}: {', '.join(advice.core['runs'])}")
    if added is not None:
        console.print(f"appended {len(added)} new run(s) to the study; train them with: {train_command}")
    elif train_command is not None:
        console.print(f"add --append to add them to the study, then train them with: {train_command}")
