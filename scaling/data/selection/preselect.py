"""`predictive_strength`: PreSelect (Shum et al. 2025), "the data that predicts is the data that teaches".

A ladder of small probe models that differ in their training data: the pool's documents are
clustered on hashed n-gram frequencies (k-means, no labels), and probe i trains on documents
drawn with cluster weights pi_i ~ Dirichlet(`concentration`), optionally at sizes cycling
through `sizes`. (Probes trained on the same data differ only in size, and then every document
is ranked by how much it benefits from size; that carries no signal about the target.)

A probe's ability on the target is minus its mean loss on the target documents. A document's
predictive strength is the rank agreement between abilities and the probes' losses on it:

    S(d) = sum over probe pairs (i, j) with a_i > a_j of [c_i(d) < c_j(d)] (+ 1/2 on ties)
           / the number of such pairs,

so S = 1 when better probes always compress d better, 0 when always worse.

With `distill` (as PreSelect does at scale) the probes score only a seeded sample of
`distill_docs` of the pool; the sample's top `distill_labels` share by S are positives and its
bottom share negatives of the fastText-style classifier (`classifier.classify`, hashed n-grams of
orders 1..`distill_n`), whose logit then scores every document: one cheap pass over the pool
instead of K probe forwards.
"""

from __future__ import annotations

import numpy as np

from scaling.data.selection.features import target_documents, ngram_features, pool_documents
from scaling.data.selection.classifier import normalise
from scaling.data.selection.probes import PROBE_OPTIONS, document_losses, train_probe

OPTIONS = {"probes": 6, "sizes": [32], "clusters": 8, "concentration": 0.5, "probe_docs": 0.25,
           **{k: v for k, v in PROBE_OPTIONS.items() if k != "d_model"}, "steps": 200,
           "distill": False, "distill_docs": 0.25, "distill_labels": 0.3, "distill_n": 2, "distill_buckets": 4096,
           "distill_l2": 1e-3}
"""probe_docs: share of the pool each probe trains on; distill_*: see the module's docstring."""


def strength_bruteforce(ability: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """S(d) by looping over probe pairs: ability (K,), losses (n_docs, K)."""
    K = len(ability)
    num = np.zeros(losses.shape[0])
    pairs = 0
    for i in range(K):
        for j in range(K):
            if ability[i] > ability[j]:
                pairs += 1
                num += (losses[:, i] < losses[:, j]) + 0.5 * (losses[:, i] == losses[:, j])
    return num / max(pairs, 1)


def strength(ability: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """S(d) for all documents at once: the same sum over the (K, K) pair mask."""
    better = (ability[:, None] > ability[None, :]).astype(float)  # (K, K): i better than j
    diff = np.sign(losses[:, None, :] - losses[:, :, None])  # (n, i, j): sign(c_j - c_i)
    agree = (diff > 0) + 0.5 * (diff == 0)
    return np.einsum("nij,ij->n", agree, better) / max(better.sum(), 1.0)


def kmeans(X: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Cluster labels of the rows of X (dense, L2-normalised) by Lloyd's algorithm, k-means++ start."""
    rng = np.random.default_rng([0xC1, int(seed)])
    k = min(k, len(X))
    centres = [X[rng.integers(len(X))]]
    for _ in range(1, k):
        d2 = np.min(((X[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(X[rng.choice(len(X), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(X))])
    C = np.array(centres)
    for _ in range(iters):
        labels = np.argmax(X @ C.T - 0.5 * (C * C).sum(1)[None], axis=1)
        C = np.array([X[labels == c].mean(0) if (labels == c).any() else C[c] for c in range(k)])
    return labels


def probe_training_sets(pool, opts: dict, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    feats = ngram_features(pool_documents(pool), 2, 512)
    X = normalise(feats.counts).toarray()
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    labels = kmeans(X, int(opts["clusters"]), seed)
    rng = np.random.default_rng([0x9E5E1, int(seed)])
    n_take = max(1, int(round(float(opts["probe_docs"]) * pool.n_docs)))
    sets = []
    sizes = np.bincount(labels, minlength=labels.max() + 1).astype(float)
    for _ in range(int(opts["probes"])):
        pi = rng.dirichlet(np.full(len(sizes), float(opts["concentration"])))
        p = pi[labels] / np.maximum(sizes[labels], 1.0)
        # Gumbel top-k: a draw without replacement with probabilities p
        keys = np.log(np.maximum(p, 1e-300)) - np.log(-np.log(rng.random(pool.n_docs)))
        sets.append(np.sort(np.argsort(-keys)[:n_take]))
    return sets, labels


def distill_sample(n_docs: int, share: float, seed: int) -> np.ndarray:
    """Sorted ids of the documents the probes score when distilling (at least 2)."""
    rng = np.random.default_rng([0xD157, int(seed)])
    k = min(n_docs, max(2, int(round(share * n_docs))))
    return np.sort(rng.choice(n_docs, size=k, replace=False))


def distill(pool, sample: np.ndarray, s: np.ndarray, opts: dict) -> tuple[np.ndarray, float, dict]:
    """Classifier logits over the whole pool from the sample's strengths `s` (top share positive,
    bottom share negative; ties in S broken by document id, so the split is deterministic)."""
    from scaling.data.selection.classifier import classify

    k = max(1, int(round(float(opts["distill_labels"]) * len(sample))))
    order = sample[np.lexsort((sample, -s))]  # strongest first
    feats = ngram_features(pool_documents(pool), int(opts["distill_n"]), int(opts["distill_buckets"]))
    logit, flops, extra = classify(feats.counts[order[:k]], feats.counts[order[-k:]], feats.counts,
                                   float(opts["distill_l2"]))
    return logit, flops + 2.0 * float(feats.n_ngrams.sum()), {**extra, "positives": order[:k], "negatives": order[-k:]}


def score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    sets, labels = probe_training_sets(pool, opts, seed)
    sizes = list(opts["sizes"])
    docs, target = pool_documents(pool), target_documents(pool, "predictive_strength")
    scored = distill_sample(pool.n_docs, float(opts["distill_docs"]), seed) if opts["distill"] else np.arange(pool.n_docs)
    losses, ability, flops = [], [], 0.0
    for i, train_docs in enumerate(sets):
        probe = train_probe(pool, train_docs, opts, seed + i, d_model=int(sizes[i % len(sizes)]))
        doc_loss, f1 = document_losses(probe, [docs[j] for j in scored])
        target_loss, f2 = document_losses(probe, target)
        losses.append(doc_loss)
        ability.append(-float(np.mean(target_loss)))
        flops += probe.flops + f1 + f2
    L = np.stack(losses, axis=1)
    a = np.array(ability)
    s = strength(a, L)
    extra = {"ability": a, "losses": L, "clusters": labels, "scored": scored, "strength": s}
    if not opts["distill"]:
        return s, flops, extra
    logit, f3, more = distill(pool, scored, s, opts)
    return logit, flops + f3, {**extra, **more}
