"""`classifier`: a fastText-style quality filter (as DCLM's; Li et al. 2024), without fastText.

Hashed n-gram frequencies (counts over the document's n-gram total) feed an L2-regularised
logistic regression: positives are the target documents, negatives an equal number of pool
documents drawn by seed (the pool is mostly unlabelled, so it stands in for "not target").
A document's score is its logit; fitted by L-BFGS on the sparse features. `classify` is the
same classifier on any labelled pool documents (PreSelect's distillation uses it).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit

from scaling.data.selection.features import target_documents, ngram_features, pool_documents

OPTIONS = {"n": 2, "buckets": 4096, "l2": 1e-3, "negatives": 0}
"""negatives: pool documents used as negatives (0: as many as there are target documents)."""


def normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    rows = np.asarray(m.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(rows, 1.0)) @ m


def fit_logistic(X: sp.csr_matrix, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weights and bias minimising mean log-loss + l2/2 · |w|^2."""
    n, d = X.shape

    def f(theta):
        w, b = theta[:d], theta[d]
        z = X @ w + b
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w
        r = (expit(z) - y) / n
        return loss, np.concatenate([X.T @ r + l2 * w, [r.sum()]])

    res = minimize(f, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:d], float(res.x[d])


def classify(positives: sp.csr_matrix, negatives: sp.csr_matrix, docs: sp.csr_matrix, l2: float
             ) -> tuple[np.ndarray, float, dict]:
    """Logits over the rows of `docs` of a classifier of hashed n-gram counts, positives against
    negatives; and the FLOPs of fitting and applying it (hashing counted by the caller)."""
    X = sp.vstack([normalise(positives), normalise(negatives)]).tocsr()
    y = np.concatenate([np.ones(positives.shape[0]), np.zeros(negatives.shape[0])])
    w, b = fit_logistic(X, y, l2)
    logit = normalise(docs) @ w + b
    flops = 2.0 * X.nnz * 100 + 2.0 * docs.nnz  # ~100 L-BFGS passes, one pass to apply
    return np.asarray(logit).ravel(), flops, {"weights": w, "bias": b}


def score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    n, buckets = int(opts["n"]), int(opts["buckets"])
    docs = ngram_features(pool_documents(pool), n, buckets)
    target = ngram_features(target_documents(pool, "classifier"), n, buckets)
    k = int(opts["negatives"]) or target.counts.shape[0]
    rng = np.random.default_rng([0xC1A55, int(seed)])
    neg = rng.choice(pool.n_docs, size=min(k, pool.n_docs), replace=False)
    logit, flops, extra = classify(target.counts, docs.counts[neg], docs.counts, float(opts["l2"]))
    return logit, flops + 2.0 * float(docs.n_ngrams.sum() + target.n_ngrams.sum()), extra
