"""The `select` study's own tables, written beside runs.parquet.

    scores.parquet   doc_id, method, score, rank, tokens (and type where the pool knows it)
    kept.parquet     method, keep, doc_id: the documents each selection kept
    selections.parquet  method, keep: kept docs and tokens, precision (where types are known) and
                     DSIR's KL reduction of the kept hashed-bigram distribution towards the target's
    select.parquet   finished select runs with plain select_method / select_keep / select_variant
                     columns, N (non-embedding parameters), D (training tokens) and C (6ND), ready for
                     `scaling fit select runs/<study>/select.parquet --variant select_variant
                     --baseline none --x N --x D --y loss --unique-tokens unique_tokens`
                     (add `--floor-column select_floor` on synthetic pools, `--r-star fit` where
                     selections repeat for several epochs)

Scores come from the per-pool cache the runs filled (computed here if missing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling import schema
from scaling.config import StudySpec, plain
from scaling.store import Store, atomic_write_parquet
from scaling.train.select import _axes, pool_of, select_options
from scaling.data.pool import GOOD_TYPES
from scaling.data.selection import score_pool
from scaling.train.grid import where


def selection_stats(pool, kept: np.ndarray, target_counts: np.ndarray, features) -> dict[str, float]:
    from scaling.data.selection.dsir import kl_reduction

    lengths = pool.doc_lengths[kept]
    out = {schema.KEPT_DOCS: len(kept), schema.KEPT_TOKENS: int(lengths.sum()), schema.UNIQUE_TOKENS: pool.unique_tokens(kept),
           schema.SELECT_KL_REDUCTION: kl_reduction(target_counts, features.total(), features.total(kept), 1.0)}
    if pool.has_types:
        out[schema.PRECISION_GOOD] = float(lengths[np.isin(pool.doc_types[kept], GOOD_TYPES)].sum() / lengths.sum())
    return out


def scores_frame(spec: StudySpec) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(scores, kept, selections) frames for every method and keep share of the spec."""
    from scaling.data.selection.features import ngram_features, pool_documents
    opts = select_options(spec)
    methods, keeps, _ = _axes(spec, opts)
    pool = pool_of(plain(spec.data), where(spec))
    frames, kept_rows, stats = [], [], []
    ids = np.arange(pool.n_docs)
    features = ngram_features(pool_documents(pool), 2, 4096)
    target = pool.target_documents()
    target_counts = ngram_features(target, 2, 4096).total() if target else None
    for m in methods:
        kind, mopts = opts["methods"][m]
        s = score_pool(pool, kind, mopts, int(opts["score_seed"]))
        f = pd.DataFrame({schema.DOC_ID: ids, schema.SELECT_METHOD: m, schema.SCORE: s.scores,
                          schema.RANK: s.rank(), schema.TOKENS: pool.doc_lengths})
        if pool.has_types:
            f[schema.DOC_TYPE] = pool.doc_types
        frames.append(f)
        for k in keeps:
            kept = s.keep(pool, k)
            kept_rows.append(pd.DataFrame({schema.SELECT_METHOD: m, schema.SELECT_KEEP: k, schema.DOC_ID: kept}))
            if target_counts is not None:
                stats.append({schema.SELECT_METHOD: m, schema.SELECT_KEEP: k,
                              **selection_stats(pool, kept, target_counts, features)})
    return (pd.concat(frames, ignore_index=True), pd.concat(kept_rows, ignore_index=True) if kept_rows else
            pd.DataFrame(), pd.DataFrame(stats))


def select_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished select runs with plain variant columns, N, D and C."""
    if runs.empty or "family" not in runs:
        return pd.DataFrame()
    df = runs[(runs["family"] == "select") & (runs[schema.STATUS] == "done")].copy()
    for col in (schema.SELECT_METHOD, schema.SELECT_VARIANT):
        df[col] = df[schema.EXTRA_PREFIX + col].astype(str)
    df[schema.SELECT_KEEP] = df[schema.EXTRA_PREFIX + schema.SELECT_KEEP].astype(float)
    df["N"] = df[schema.N_PARAMS_NONEMB].astype(float)
    df["D"] = df[schema.TOKENS].astype(float)
    df["C"] = df[schema.C_6ND].astype(float)
    return df.reset_index(drop=True)


def select_tables(spec: StudySpec, store: Store) -> dict[str, pd.DataFrame]:
    """Write scores.parquet, kept.parquet and select.parquet into the study folder; return them."""
    scores, kept, stats = scores_frame(spec)
    try:
        runs = select_runs(store.runs())
    except Exception:  # no runs table yet: the selection tables still stand on their own
        runs = pd.DataFrame()
    atomic_write_parquet(store.root / schema.SCORES_TABLE, scores)
    atomic_write_parquet(store.root / schema.KEPT_TABLE, kept)
    atomic_write_parquet(store.root / schema.SELECT_TABLE, runs)
    atomic_write_parquet(store.root / schema.SELECTIONS_TABLE, stats)
    return {"scores": scores, "kept": kept, "select": runs, "selections": stats}


__all__ = ["scores_frame", "select_runs", "select_tables", "selection_stats"]
