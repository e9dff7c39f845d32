"""Which runs a size law may pool, and how: never average across what matters.

A study's runs differ in size and in its other axes. Before a law in N is fitted:

- seeds are averaged (and only seeds);
- each token budget gets its own law (fixed D per run, or fixed tokens per parameter);
- each value of another data or family axis (`data.*`, `extra.*`) gets its own law;
- tuning axes (`train.*` such as lr or warm-up, or several shapes of one size) are reduced to
  the per-size best, since a law of the best achievable loss is what the study asks for.

`size_groups` returns one `SizeGroup` per law to fit, with the notes the report shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling import schema

SIZE = schema.N_PARAMS_NONEMB
TOKENS = schema.TOKENS
C_6ND = schema.C_6ND
SEEDS = (schema.SEED, schema.EXTRA_PREFIX + "base_seed")
BUDGET_KEYS = {"train.steps", "train.tokens", "train.tokens_per_param", "train.min_steps", "steps"}
OPERATIONAL = {"train.device", "train.threads", "train.checkpoint_every", "train.eval_points", "train.loss_impl",
               "train.executor", "train.compile", "train.dtype", "train.micro_batch"}
"""Settings that do not change a run's result: never an axis."""
CONFIG_PREFIXES = ("model.", "data.", "train.", "extra.")


def tokens_label(d: float) -> str:
    """4032000 -> '4.0M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if d >= scale:
            return f"{d / scale:.1f}{unit}" if d / scale < 10 else f"{d / scale:.0f}{unit}"
    return f"{d:.0f}"


@dataclass
class SizeGroup:
    """The runs of one law in N (one budget, one value of every other axis), reduced to one
    row per size for `loss_col`."""

    label: str
    """The fixed budget and axes values, e.g. "D = 4.0M tokens per run"."""
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    budget: str = ""
    """What the law's L_inf is the limit at: "D = 4.0M tokens per run" or "D/N = 20 tokens per parameter"."""


def _varying(done: pd.DataFrame, cols: list[str], x: str = SIZE) -> list[str]:
    """Columns that take several values at one size (a column that changes only with size,
    such as a shape's width, is part of the size)."""
    return [c for c in cols if c in done and x in done and (done[c].astype(str).groupby(done[x]).nunique() > 1).any()]


def classify_axes(done: pd.DataFrame, x: str = SIZE) -> dict[str, list[str]]:
    """Config columns that vary across the runs, by what a size law does with them."""
    config = [c for c in done.columns if c.startswith(CONFIG_PREFIXES) and c not in OPERATIONAL
              and c not in BUDGET_KEYS and c not in SEEDS]
    varying = _varying(done, config, x)
    return {
        "seed": _varying(done, [c for c in SEEDS if c in done], x),
        # shapes set the size; several shapes of one size are a tuning choice
        "tuning": [c for c in varying if c.startswith(("train.", "model."))],
        "group": [c for c in varying if c.startswith(("data.", "extra."))],
    }


def budget_key(done: pd.DataFrame, x: str = SIZE) -> tuple[pd.Series, str]:
    """Per run, the token budget it belongs to, and the kind ("D", "D/N" or "" for one budget)."""
    if TOKENS not in done:
        return pd.Series("", index=done.index), ""
    tokens = done[TOKENS].astype(float)
    per_size = tokens.groupby(done[x]).nunique()
    if (per_size <= 1).all():  # one budget per size: one law
        return pd.Series("", index=done.index), ""
    sets = tokens.groupby(done[x]).apply(lambda s: tuple(sorted(s.unique())))
    if sets.nunique() == 1:
        return tokens, "D"
    tpp = (tokens / done[x].astype(float)).map(lambda r: float(f"{r:.2g}"))
    return tpp, "D/N"


def _budget_label(kind: str, value: float, part: pd.DataFrame, x: str) -> str:
    if kind == "D":
        return f"D = {tokens_label(value)} tokens per run"
    if kind == "D/N":
        return f"D/N = {value:.2g} tokens per parameter"
    if TOKENS not in part or part.empty:
        return ""
    lo, hi = float(part[TOKENS].min()), float(part[TOKENS].max())
    if np.isclose(lo, hi, rtol=1e-6):
        return f"D = {tokens_label(lo)} tokens per run"
    ratio = part[TOKENS].astype(float) / part[x].astype(float)
    return f"D = {tokens_label(lo)}–{tokens_label(hi)} tokens per run (D/N {ratio.min():.2g}–{ratio.max():.2g})"


def reduce_runs(part: pd.DataFrame, loss_col: str, x: str, seed: list[str], tuning: list[str],
                keep: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Average seeds, then keep the best tuning choice per size; notes say what was done."""
    notes = []
    by = [x] + [c for c in tuning if c in part]
    value_cols = [loss_col] + [c for c in keep if c in part and c != loss_col and c not in by]
    numeric = [c for c in value_cols if pd.api.types.is_numeric_dtype(part[c])]
    keys = part[by].astype(str) if tuning else part[by]
    mean = part.groupby([keys[c] for c in by], sort=False)[numeric].mean()
    mean[x] = part.groupby([keys[c] for c in by], sort=False)[x].first()
    for c in tuning:
        mean[c] = part.groupby([keys[k] for k in by], sort=False)[c].first()
    counts = part.groupby([keys[c] for c in by], sort=False).size()
    mean = mean.reset_index(drop=True)
    if seed:
        n = counts.to_numpy()
        notes.append(f"averaged over seeds only ({n.min()}–{n.max()} per point)" if n.min() != n.max()
                     else f"averaged over seeds only ({n.min()} per point)")
    if tuning:
        best = mean.loc[mean.groupby(x)[loss_col].idxmin()].sort_values(x).reset_index(drop=True)
        picks = [", ".join(f"{c}={v}" for c, v in zip(tuning, row)) for row in best[tuning].itertuples(index=False)]
        chosen = (f"{picks[0]} at every size" if len(set(picks)) == 1
                  else "; ".join(f"N={n:.3g}: {p}" for n, p in zip(best[x], picks)))
        notes.append(f"per-size best over {', '.join(tuning)} (the lowest {loss_col} at each size; chosen: {chosen})")
        return best, notes
    return mean.sort_values(x).reset_index(drop=True), notes


def size_groups(runs: pd.DataFrame, loss_col: str, x: str = SIZE, keep: tuple[str, ...] = ()) -> list[SizeGroup]:
    """One group per law in N on `loss_col`: per budget and per value of every other axis."""
    done = runs[(runs.status == "done") & runs[loss_col].notna()] if "status" in runs else runs[runs[loss_col].notna()]
    axes = classify_axes(done, x)
    key, kind = budget_key(done, x)
    keep = tuple(keep) + tuple(c for c in (TOKENS, C_6ND) if c in done)
    groups = []
    group_cols = axes["group"]
    parts = done.groupby([key.rename("_budget")] + [done[c].astype(str) for c in group_cols], sort=True) \
        if (kind or group_cols) else [((), done)]
    for values, part in parts:
        values = values if isinstance(values, tuple) else (values,)
        budget_value, axis_values = (values[0], values[1:]) if (kind or group_cols) else (None, ())
        budget = _budget_label(kind, float(budget_value), part, x) if kind else _budget_label("", 0.0, part, x)
        # a token budget that is not an axis is still a tuning choice within a size (e.g. min_steps)
        data, notes = reduce_runs(part, loss_col, x, axes["seed"], axes["tuning"], list(keep))
        if kind:
            notes.append("one law per token budget" + (" (budgets in tokens per parameter)" if kind == "D/N" else ""))
        label = ", ".join([budget] * bool(budget) + [f"{c} = {v}" for c, v in zip(group_cols, axis_values)])
        if group_cols:
            notes.append(f"one law per value of {', '.join(group_cols)}")
        groups.append(SizeGroup(label, data, notes, budget))
    return groups


def budget_table(runs: pd.DataFrame, loss_col: str, x: str = SIZE) -> pd.DataFrame | None:
    """Per (size, budget), seeds averaged and tuning axes at their best, for a law in (N, D);
    None when the study has a single budget per size."""
    done = runs[(runs.status == "done") & runs[loss_col].notna()] if "status" in runs else runs
    key, kind = budget_key(done, x)
    if not kind or TOKENS not in done:
        return None
    axes = classify_axes(done, x)
    if axes["group"]:
        return None  # a law in (N, D) would pool the other axes
    rows = []
    for _, part in done.groupby(key.rename("_budget"), sort=True):
        data, _ = reduce_runs(part, loss_col, x, axes["seed"], axes["tuning"], [TOKENS])
        rows.append(data)
    return pd.concat(rows, ignore_index=True)
