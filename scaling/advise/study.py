"""Where advice's candidate runs come from and where the advised runs go: a size grid (any law
family), the runs a study spec can express, and the study's `advised.json` that `grid run` trains."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scaling.advise.design import Advice, Candidate, TargetOptions, advise
from scaling.errors import FitError
from scaling.laws.base import Law

if TYPE_CHECKING:
    from scaling.config import StudySpec


def candidate_grid(law: Law, *, sizes: Sequence[float],
                   tokens_per_param: Sequence[float] = (5, 10, 20, 40, 80), tokens: float | None = None,
                   flops_per_param_token: float = 6.0, repeats: int = 1,
                   shares: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)) -> list[Candidate]:
    """Candidates on a size grid, costed 6 · params · tokens (the C = 6ND convention; use spec
    candidates for exact FLOPs), each choosable `repeats` times (new seeds):

    - one-input laws: N at `tokens` per run;
    - chinchilla and select: (N, D = tpp · N) for each tokens per parameter (select: for each variant);
    - encdec: every (Ne, Nd) pair of `sizes` at `tokens` per run (cost 6 · (Ne + Nd) · tokens);
    - dcpt laws: (N, D = tpp · N, r) for each domain share r in `shares`."""
    def need_tokens() -> float:
        if not tokens:
            raise FitError(f"advise: the {law.name} law needs the tokens per run (--tokens) to cost a candidate")
        return float(tokens)

    out, fpt = [], flops_per_param_token
    if law.name == "encdec":
        t = need_tokens()
        return [Candidate((float(ne), float(nd)), fpt * (ne + nd) * t, f"Ne={ne:.3g} Nd={nd:.3g}", repeats=repeats)
                for ne in sizes for nd in sizes]
    variants = list(getattr(law, "variants_", [None])) if law.name == "select" else [None]
    for n in sizes:
        if law.n_inputs == 1:
            out.append(Candidate((float(n),), fpt * n * need_tokens(), f"N={n:.3g}", repeats=repeats))
            continue
        for tpp in tokens_per_param:
            d = tpp * n
            if law.n_inputs == 3:
                out += [Candidate((float(n), float(d), float(r)), fpt * n * d, f"N={n:.3g} D={d:.3g} r={r:g}",
                                  repeats=repeats) for r in shares]
                continue
            for v in variants:
                cols = None if v is None else {law.variant: v}
                out.append(Candidate((float(n), float(d)), fpt * n * d,
                                     f"N={n:.3g} D={d:.3g}" + ("" if v is None else f" {v}"), columns=cols,
                                     repeats=repeats))
    return out


def spec_candidates(spec_path: str, x: Sequence[str], step_multipliers: Sequence[float] = (1.0,),
                    seeds: Sequence[int] = (), exclude: set[str] | frozenset[str] = frozenset(),
                    columns: Sequence[str] = (), continuations: bool = False) -> list[Candidate]:
    """The runs a study spec can express, as candidates: its grid (every shape × axis value), each
    with its training steps scaled by `step_multipliers` and, optionally, extra seeds; the law's
    inputs `x` are read from the plan's columns (e.g. n_params_nonemb, tokens) and the cost is the
    exact training FLOPs. Runs in `exclude` (run ids already trained) are not candidates. `columns`
    are other plan columns the law reads (select: the variant); `continuations` keeps runs that
    continue a parent (CPT runs; their base run must be trained first)."""
    from scaling.config import load_spec
    from scaling.errors import DataError
    from scaling.train import expand, plan_rows
    from scaling.train.run_config import RunConfig

    runs = expand(load_spec(spec_path))
    variants: list[RunConfig] = []
    for run in runs:
        if run.parent and not continuations:
            continue  # continuation runs are not free-standing candidates
        for m in step_multipliers:
            for seed in [run.seed, *[s for s in seeds if s != run.seed]]:
                d = copy.deepcopy(run.to_dict())
                d["train"]["steps"] = max(1, int(round(int(d["train"]["steps"]) * float(m))))
                d["seed"] = seed
                variants.append(RunConfig.from_dict(d))
    rows = plan_rows(variants)
    missing = [c for c in [*x, *columns] if c not in rows[0]]
    if missing:
        raise DataError(f"advise: candidate runs from {spec_path} have no column(s) {missing}; "
                        f"plan columns are {', '.join(rows[0])}")
    seen, out = set(), []
    for run, row in zip(variants, rows):
        if run.run_id in seen or run.run_id in exclude:
            continue
        seen.add(run.run_id)
        out.append(Candidate(tuple(float(row[c]) for c in x), float(row["flops"]),
                             f"{run.label} steps={row['steps']} seed={run.seed}", run.to_dict(),
                             columns={c: row[c] for c in columns} or None))
    return out


NEW_SEEDS = (0, 1, 2)
"""Seeds a spec candidate may take besides its own: a second seed of a shape is a new run whose
loss has its own noise (for a one-input law, the only new runs a fixed-shape spec can express)."""

ADVISED_FILE = "advised.json"
"""Runs appended to a study by advice (run configs), kept in the study folder beside the store."""


def advised_runs(study_root: str | Path) -> list[dict[str, Any]]:
    path = Path(study_root) / ADVISED_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def append_advised(study_root: str | Path, advice: Advice) -> list[dict[str, Any]]:
    """Add the advised runs that came from a spec to the study (new run ids only); returns the added."""
    from scaling.store import atomic_write_json
    from scaling.train.run_config import RunConfig

    have = advised_runs(study_root)
    ids = {RunConfig.from_dict(c).run_id for c in have}
    added = []
    for c in advice.chosen:
        if c.config is None:
            raise FitError("advise: only candidates from a study spec (--candidates SPEC) can be appended to it")
        rid = RunConfig.from_dict(c.config).run_id
        if rid not in ids:
            ids.add(rid)
            added.append(c.config)
    if added:
        atomic_write_json(Path(study_root) / ADVISED_FILE, have + added)
    return added


def advise_study(spec_path: str | Path, root: str | Path, budget: float, *, law: str | None = None,
                 target: str = "loss", at: float = 0.0, seed: int = 0, delta: float | str | None = None) -> Advice:
    """Advice for a study from its own finished runs and its spec's candidates (`grid run --advise`,
    the report's "which runs next"), by the spec's family:

    - decoder: L(N) = power on non-embedding parameters at 10x the largest N when the study's
      token budget is one value per run, else chinchilla on (N, tokens) at 100x the largest run's
      6ND (`target` and `at` override);
    - encdec: the encdec law L(Ne, Nd) on the first eval set's loss; target the optimal encoder
      share (the paper's question), candidates the spec's (Ne, Nd) shapes with new seeds;
    - select: the select law as the report fits it (`scaling.laws.select.study_law`); target the
      compute multiplier, at the largest run's compute, of the variant with the largest one there;
      candidates the spec's runs of trained variants, token budgets x0.25 to x4.
    CPT studies take their own inputs (general loss, base loss): advise them with
    `scaling advise DATA --law dcpt ...`. `delta`: the Huber delta of the fit (None: the law's
    default; for select, the spec's `[select] delta`)."""
    from scaling import schema
    from scaling.config import load_spec
    from scaling.laws.cli_support import load_table
    from scaling.laws.registry import get_law

    spec = load_spec(spec_path)
    family = spec.family
    if family not in ("decoder", "encdec", "select"):
        raise FitError(f"advice for a {family} study needs the law's own inputs: use scaling advise {root} "
                       f"--law dcpt ... --candidates {spec_path} (see README, `scaling advise`)")
    if family == "select":
        return _advise_select(spec, root, budget, at=at, seed=seed, delta=delta)
    fit_options = {} if delta is None else {"delta": delta}
    df = load_table(root)
    done = frozenset(df["run_id"]) if "run_id" in df.columns else frozenset()
    if family == "encdec":
        x = [schema.N_PARAMS_ENC, schema.N_PARAMS_DEC]
        fitted = get_law(law or "encdec", seed=seed, **fit_options).fit(df, x=x, y=schema.LOSS)
        fitted.bootstrap(200, seed=seed, method="residual")
        cands = spec_candidates(str(spec_path), x, (1.0,), seeds=NEW_SEEDS, exclude=done)
        return advise(fitted, cands, budget, "encoder_share" if target == "loss" else target, at, seed=seed)
    if law is None:
        law = "power" if df["tokens"].nunique() == 1 else "chinchilla"
    x = ["n_params_nonemb"] if law == "power" else ["n_params_nonemb", "tokens"]
    fitted = get_law(law, seed=seed, **fit_options).fit(df, x=x, y="loss")
    fitted.bootstrap(200, seed=seed, method="residual")
    if not at:
        at = 10.0 * float(df["n_params_nonemb"].max()) if law == "power" else \
            100.0 * float((6 * df["n_params_nonemb"] * df["tokens"]).max())
    mult = (1.0,) if law == "power" else (0.25, 0.5, 1.0, 2.0, 4.0)
    cands = spec_candidates(str(spec_path), x, mult, seeds=NEW_SEEDS, exclude=done)
    return advise(fitted, cands, budget, target, at, seed=seed)


def _advise_select(spec: StudySpec, root: str | Path, budget: float, *, at: float, seed: int,
                   delta: float | str | None = None) -> Advice:
    from scaling import schema
    from scaling.laws.select import study_law
    from scaling.store import Store
    from scaling.train.select import select_options
    from scaling.train.select_tables import select_runs

    select = select_runs(Store(root).runs())
    if select.empty:
        raise FitError(f"advise: {root} has no finished select runs to fit yet")
    options = select_options(spec)
    fitted = study_law(select, options["baseline"], seed=seed, floors=options["floors"],
                       delta=options["delta"] if delta is None else delta).fit(select, x=["N", "D"], y=schema.LOSS)
    fitted.bootstrap(200, seed=seed, method="residual")
    at = at or float(select["C"].max())
    others = [v for v in fitted.variants_ if v != fitted.baseline]
    if not others:
        raise FitError("advise: the select study has no trained variant besides the baseline")
    # What the law reads per variant beside N and D, from the variant's trained runs.
    per_variant = select.groupby(schema.SELECT_VARIANT).first()
    unique = per_variant[fitted.unique_tokens].to_dict()
    # The variant worth most compute at `at` (not the largest m: a high floor can undo any m).
    cm = {v: float(fitted.compute_multiplier(v, np.array([at]), unique=unique)[0][0]) for v in others}
    variant = max(others, key=lambda v: cm[v] if np.isfinite(cm[v]) else -1.0)
    extra = [c for c in (fitted.unique_tokens, fitted.floor_column if fitted.floors == "column" else None) if c]
    done = frozenset(select[schema.RUN_ID])
    plan_variant = schema.EXTRA_PREFIX + schema.SELECT_VARIANT  # the plan's column of a run's variant
    cands = []
    for c in spec_candidates(str(spec.path), [schema.N_PARAMS_NONEMB, schema.TOKENS], (0.25, 0.5, 1.0, 2.0, 4.0),
                             seeds=NEW_SEEDS, exclude=done, columns=[plan_variant]):
        v = str(c.columns[plan_variant])
        if v in fitted.variants_:  # probes, reference models and untrained variants are not candidates
            c.columns = {schema.SELECT_VARIANT: v, **{k: per_variant.loc[v, k] for k in extra}}
            cands.append(c)
    return advise(fitted, cands, budget, "compute_multiplier", at, seed=seed,
                  options=TargetOptions(variant=variant, unique=unique))


__all__ = ["ADVISED_FILE", "NEW_SEEDS", "advise_study", "advised_runs", "append_advised", "candidate_grid",
           "spec_candidates"]
