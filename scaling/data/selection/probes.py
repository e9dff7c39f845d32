"""Small reference language models trained on a set of pool documents, and per-document losses.

Used by `perplexity` (one reference model on a held-apart split of the pool) and
`predictive_strength` (a ladder of probes that differ in their training data). Training is a
plain AdamW loop with linear warm-up and cosine decay on windows cut from the documents'
concatenation; everything is seeded, so a score is a pure function of the pool, the options and
the seed. Costs are counted as the decoder's exact training FLOPs plus forward FLOPs of scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from scaling.data.pool import PoolStream
from scaling.model import DecoderConfig, DecoderLM, flops_per_token, forward_flops_per_token

PROBE_OPTIONS = {"d_model": 32, "n_layers": 1, "n_heads": 2, "steps": 300, "batch_size": 16, "seq_len": 48,
                 "lr": 1e-2}


@dataclass
class Probe:
    model: DecoderLM
    seq_len: int
    flops: float
    """Training FLOPs (forward + backward)."""
    fwd_per_token: float


def train_probe(pool, docs: np.ndarray, opts: dict, seed: int, d_model: int | None = None) -> Probe:
    """Train a small decoder on pool documents `docs` (repeated as needed)."""
    seq_len, batch, steps = int(opts["seq_len"]), int(opts["batch_size"]), int(opts["steps"])
    docs = np.asarray(docs, np.int64)
    stream = PoolStream(pool, docs, name="probe")
    cfg = DecoderConfig(vocab_size=pool.vocab_size, d_model=int(d_model or opts["d_model"]),
                        n_layers=int(opts["n_layers"]), n_heads=int(opts["n_heads"]), max_seq_len=seq_len)
    torch.manual_seed(seed)
    model = DecoderLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=float(opts["lr"]), betas=(0.9, 0.95), weight_decay=0.0)
    warm = max(1, steps // 20)
    for step in range(steps):
        lr = float(opts["lr"]) * (min(1.0, (step + 1) / warm) if step < warm else
                                  0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = stream.train_batch(step, batch, seq_len, seed)
        loss = model.loss(x, y, impl="torch")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    fpt = flops_per_token(cfg, seq_len)
    return Probe(model.eval(), seq_len, fpt * steps * batch * seq_len, forward_flops_per_token(cfg, seq_len))


@torch.no_grad()
def document_losses(probe: Probe, docs: list[np.ndarray], batch: int = 256) -> tuple[np.ndarray, float]:
    """Mean next-token loss of every document (cut into windows of the probe's length) and the
    forward FLOPs spent."""
    L = probe.seq_len
    rows, owner = [], []
    for i, d in enumerate(docs):
        for s in range(0, max(1, len(d) - 1), L):
            piece = d[s:s + L + 1]
            if len(piece) < 2:
                continue
            row = np.full(L + 1, -1, np.int64)
            row[:len(piece)] = piece
            rows.append(row)
            owner.append(i)
    tokens = torch.from_numpy(np.stack(rows))
    owner_t = torch.from_numpy(np.asarray(owner))
    x = tokens[:, :-1].clamp_min(0)
    y = tokens[:, 1:]
    total = torch.zeros(len(docs), dtype=torch.float64)
    count = torch.zeros(len(docs), dtype=torch.float64)
    for i in range(0, len(x), batch):
        logits = probe.model.logits(x[i:i + batch]).float()
        yy = y[i:i + batch]
        mask = yy >= 0
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), yy.clamp_min(0), reduction="none") * mask
        total.index_add_(0, owner_t[i:i + batch], nll.sum(1).double())
        count.index_add_(0, owner_t[i:i + batch], mask.sum(1).double())
    return (total / count.clamp_min(1)).numpy(), float(count.sum()) * probe.fwd_per_token
