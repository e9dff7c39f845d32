"""`perplexity`: score documents by their mean loss under a small reference model (Ankner et al. 2024).

The reference model trains on a held-apart split of the pool (`ref_share` of the documents,
drawn by seed); those documents are not candidates (their score is NaN, ranked last). The band
says which documents rank first: `low` the lowest loss, `high` the highest (the known failure
case on pools with junk: uniform noise has the highest loss), `mid` the closest to the median.
"""

from __future__ import annotations

import numpy as np

from scaling.data.base import hash_uniform, stream_key
from scaling.data.selection.features import pool_documents
from scaling.data.selection.probes import PROBE_OPTIONS, document_losses, train_probe

OPTIONS = {"band": "low", "ref_share": 0.1, **PROBE_OPTIONS}
BANDS = ("low", "mid", "high")


def held_apart(n_docs: int, share: float, seed: int) -> np.ndarray:
    u = hash_uniform(stream_key("perplexity/ref", int(seed)), np.arange(n_docs, dtype=np.uint64), 1)[:, 0]
    return u < share


def band_scores(loss: np.ndarray, band: str) -> np.ndarray:
    """Higher is better under the band's preference."""
    if band == "low":
        return -loss
    if band == "high":
        return loss.copy()
    return -np.abs(loss - np.nanmedian(loss))


def score(pool, opts: dict, seed: int) -> tuple[np.ndarray, float, dict]:
    ref = held_apart(pool.n_docs, float(opts["ref_share"]), seed)
    if not ref.any() or ref.all():
        ref[:] = False
        ref[: max(1, pool.n_docs // 10)] = True
    probe = train_probe(pool, np.where(ref)[0], opts, seed)
    loss, fwd = document_losses(probe, pool_documents(pool))
    loss = np.where(ref, np.nan, loss)
    return band_scores(loss, opts["band"]), probe.flops + fwd, {"loss": loss, "held_apart": ref}
