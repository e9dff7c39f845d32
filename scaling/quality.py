"""Translation quality: greedy decoding and corpus BLEU (Papineni et al. 2002), from scratch.

BLEU here is over whatever tokens the caller passes (word ids for the synthetic task, bytes for
text pairs), so figures compare runs of one study, not numbers from papers with other tokenisers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from scaling.errors import SpecError


@torch.no_grad()
def greedy_decode(model: Any, src: torch.Tensor, max_len: int, bos_id: int, eos_id: int,
                  batch_size: int = 256) -> list[list[int]]:  # fmt: skip
    """Greedy decoding for an `EncoderDecoder`-like model (needs `encode`, `decode`, `head`).

    Returns, per source row, the generated tokens up to (not including) EOS, at most `max_len`
    of them. `src` may live anywhere (eval sets stay on the CPU); each batch and every tensor
    decoding makes live on the model's device. Recomputes the decoder over the whole prefix
    each step: fine at these sizes."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise SpecError(f"`max_len` must be a positive integer, got {max_len!r}")
    limit = getattr(getattr(model, "cfg", None), "max_tgt_len", max_len)
    max_len = min(max_len, limit)  # the decoder cannot read inputs longer than its positions
    was_training = model.training
    model.eval()
    device = _model_device(model)
    out: list[list[int]] = []
    try:
        for start in range(0, src.shape[0], batch_size):
            batch = src[start : start + batch_size].to(device, non_blocking=True)
            out.extend(_greedy_batch(model, batch, max_len, bos_id, eos_id))
    finally:
        model.train(was_training)
    return out


def _model_device(model: Any) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _greedy_batch(model: Any, src: torch.Tensor, max_len: int, bos_id: int, eos_id: int) -> list[list[int]]:
    """One batch; `src` is already on the model's device, and so is everything made here."""
    memory, pad = model.encode(src)
    B = src.shape[0]
    ys = torch.full((B, 1), bos_id, dtype=torch.long, device=memory.device)
    done = torch.zeros(B, dtype=torch.bool, device=memory.device)
    for _ in range(max_len):
        logits = model.head(model.decode(memory, pad, ys)[:, -1])  # (B, V)
        nxt = logits.argmax(-1).masked_fill(done, eos_id)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    result = []
    for row in ys[:, 1:].tolist():
        result.append(row[: row.index(eos_id)] if eos_id in row else row)
    return result


def _ngrams(tokens: Sequence[Hashable], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]],
                max_n: int = 4, smooth: str = "exp") -> float:  # fmt: skip
    """Corpus BLEU in [0, 100] with one reference per hypothesis.

    Clipped n-gram counts and lengths are summed over the corpus before the geometric mean of
    the n-gram precisions (n = 1..max_n, equal weights) and the brevity penalty
    exp(1 - r/c) when the hypotheses are shorter (c < r) than the references.
    smooth: "exp" (sacrebleu's default: the k-th precision with zero matches becomes
    1 / (2^k · total)), or "none" (any zero precision gives BLEU 0)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if smooth not in ("exp", "none"):
        raise SpecError(f"unknown BLEU smoothing `{smooth}`; expected `exp` or `none`")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise SpecError(f"`max_n` must be a positive integer, got {max_n!r}")
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = list(hyp), list(ref)
        c, r = c + len(hyp), r + len(ref)
        for n in range(1, max_n + 1):
            h, g = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(k, g[gram]) for gram, k in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if c == 0:
        return 0.0
    log_p, zeros = 0.0, 0
    for m, t in zip(matches, totals):
        if t == 0:
            return 0.0  # no n-grams of this order at all: BLEU is undefined, report 0
        if m == 0:
            if smooth == "none":
                return 0.0
            zeros += 1
            log_p += -math.log(2**zeros * t)
        else:
            log_p += math.log(m / t)
    brevity = 0.0 if c >= r else 1.0 - r / c
    return 100.0 * math.exp(brevity + log_p / max_n)


def evaluate_bleu(model: Any, pair_eval_set: Any, source: Any, max_len: int | None = None) -> float:
    """Greedy-decode the set's sources and score them against its targets (the same token lists
    as `source.references(set.name)`). `source` gives bos/eos ids; `max_len` defaults to its
    `max_tgt_len`."""
    from scaling.data.pairs import pair_references

    max_len = source.max_tgt_len if max_len is None else max_len
    hyps = greedy_decode(model, pair_eval_set.src, max_len, source.bos_id, source.eos_id)
    return corpus_bleu(hyps, pair_references(pair_eval_set, source.eos_id))


__all__ = ["corpus_bleu", "evaluate_bleu", "greedy_decode"]
