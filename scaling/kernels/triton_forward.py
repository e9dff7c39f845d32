"""Triton forward kernel: per-token log-sum-exp and target logit of softcap(h @ W.T + b).

Grid (row blocks, vocabulary splits). Each program walks its split of the vocabulary tile
by tile, multiplying a (BLOCK_N, D) slab of hidden by a (BLOCK_V, D) slab of the weight
along D, and keeps an online (max, sum-exp) per row in fp32. It writes one partial lse and
one partial target logit per (row, split); the launcher combines the splits. The logits
only ever live in registers.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tanh_(x):
    """tanh from exp so no libdevice is needed (the interpreter lacks it); saturates to +-1."""
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def logits_tile(
    h_ptr, w_ptr, b_ptr, rows, cols, row_mask, col_mask, D,
    stride_hn, stride_hd, stride_wv, stride_wd, softcap,
    HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """(BLOCK_N, BLOCK_V) fp32 tile of softcap(h @ W.T + b); shared with the backward kernel."""
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_mask = ds < D
        h = tl.load(
            h_ptr + rows[:, None] * stride_hn + ds[None, :] * stride_hd,
            mask=row_mask[:, None] & d_mask[None, :], other=0.0,
        )
        w = tl.load(
            w_ptr + cols[:, None] * stride_wv + ds[None, :] * stride_wd,
            mask=col_mask[:, None] & d_mask[None, :], other=0.0,
        )
        acc = tl.dot(h, tl.trans(w), acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_SOFTCAP:
        acc = softcap * tanh_(acc / softcap)
    return acc


@triton.jit
def lce_forward_kernel(
    h_ptr, w_ptr, b_ptr, t_ptr, lse_part_ptr, tgt_part_ptr,
    N, V, D, n_splits, tiles_per_split,
    stride_hn, stride_hd, stride_wv, stride_wd, softcap,
    HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    row_mask = rows < N
    # the launcher set ignored targets to -1, so they match no column
    tgt = tl.load(t_ptr + rows, mask=row_mask, other=-1)
    m = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    tgt_logit = tl.zeros((BLOCK_N,), dtype=tl.float32)
    v0 = pid_s * tiles_per_split * BLOCK_V
    for i in range(0, tiles_per_split):
        cols = (v0 + i * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
        col_mask = cols < V
        z = logits_tile(
            h_ptr, w_ptr, b_ptr, rows, cols, row_mask, col_mask, D,
            stride_hn, stride_hd, stride_wv, stride_wd, softcap,
            HAS_BIAS, HAS_SOFTCAP, BLOCK_N, BLOCK_V, BLOCK_D, PRECISION,
        )
        z = tl.where(col_mask[None, :], z, float("-inf"))
        tgt_logit += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), axis=1)
        # the first tile of every split has a real column, so m is finite from here on
        m_new = tl.maximum(m, tl.max(z, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
        m = m_new
    out = rows * n_splits + pid_s
    tl.store(lse_part_ptr + out, m + tl.log(s), mask=row_mask)
    tl.store(tgt_part_ptr + out, tgt_logit, mask=row_mask)
