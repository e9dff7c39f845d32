"""`ngram_importance`: data selection with importance resampling (DSIR; Xie et al. 2023).

Two bag-of-hashed-n-gram models, one fitted on the target documents and one on the raw pool,
both add-`smoothing` multinomials over the buckets. A document's log importance weight is

    log w(d) = sum_j c_j(d) · (log p_target[j] - log p_raw[j])

with c_j(d) the count of bucket j in d. `top_k` keeps the largest weights; `gumbel` (their
default) perturbs log w with Gumbel noise first, which samples documents without replacement
in proportion to w. Their KL-reduction figure says how much closer the selection's n-gram
distribution is to the target's than the raw pool's is:

    KL reduction = KL(p_target || p_raw) - KL(p_target || p_selected).
"""

from __future__ import annotations

import numpy as np

from scaling.data.base import hash_uniform, stream_key
from scaling.data.selection.features import target_documents, NgramFeatures, ngram_features, pool_documents

OPTIONS = {"n": 2, "buckets": 10000, "smoothing": 1.0, "sampling": "top_k", "normalize": False}


def bucket_logprobs(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """log of the add-`smoothing` multinomial over buckets."""
    c = np.asarray(counts, float) + smoothing
    return np.log(c / c.sum())


def importance_log_weights(doc_counts: NgramFeatures, target_counts: np.ndarray, raw_counts: np.ndarray,
                           smoothing: float) -> np.ndarray:
    """log w(d) for every document (rows of `doc_counts`)."""
    ratio = bucket_logprobs(target_counts, smoothing) - bucket_logprobs(raw_counts, smoothing)
    return np.asarray(doc_counts.counts @ ratio).ravel()


def kl(p_counts: np.ndarray, q_counts: np.ndarray, smoothing: float) -> float:
    lp, lq = bucket_logprobs(p_counts, smoothing), bucket_logprobs(q_counts, smoothing)
    return float((np.exp(lp) * (lp - lq)).sum())


def kl_reduction(target_counts: np.ndarray, raw_counts: np.ndarray, selected_counts: np.ndarray,
                 smoothing: float) -> float:
    return kl(target_counts, raw_counts, smoothing) - kl(target_counts, selected_counts, smoothing)


def score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    docs = ngram_features(pool_documents(pool), int(opts["n"]), int(opts["buckets"]))
    target = ngram_features(target_documents(pool, "ngram_importance"), int(opts["n"]), int(opts["buckets"]))
    logw = importance_log_weights(docs, target.total(), docs.total(), float(opts["smoothing"]))
    if opts["normalize"]:
        logw = logw / np.maximum(docs.n_ngrams, 1)
    if opts["sampling"] == "gumbel":
        u = hash_uniform(stream_key("dsir/gumbel", int(seed)), np.arange(len(logw), dtype=np.uint64), 1)[:, 0]
        logw = logw - np.log(-np.log(np.clip(u, 1e-300, 1.0 - 1e-16)))
    flops = 2.0 * float(docs.n_ngrams.sum() + target.n_ngrams.sum())  # hash + count per n-gram
    return logw, flops, {"features": docs, "target_counts": target.total()}
