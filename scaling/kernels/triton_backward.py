"""Triton backward kernel: recompute logit tiles from the saved lse, accumulate grads in fp32.

One program per (row block, vocabulary tile). It recomputes the logits tile, forms
g = (a * softmax - b * onehot(target)) * dsoftcap, and adds g @ W into grad_hidden,
g.T @ h into grad_weight and sum(g) into grad_bias with fp32 atomics. With FILTER, tiles
whose |g| are all below `filter_eps` are skipped (their contribution is negligible).
"""

from __future__ import annotations

import triton
import triton.language as tl

from scaling.kernels.triton_forward import logits_tile, tanh_


@triton.jit
def _accumulate(
    g, h_ptr, w_ptr, gh_ptr, gw_ptr, gb_ptr, rows, cols, row_mask, col_mask, D,
    stride_hn, stride_hd, stride_wv, stride_wd,
    NEED_H: tl.constexpr, NEED_W: tl.constexpr, NEED_B: tl.constexpr,
    BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    if NEED_B:
        tl.atomic_add(gb_ptr + cols, tl.sum(g, axis=0), mask=col_mask)
    gc = g.to(w_ptr.dtype.element_ty)  # the matmuls run in the input dtype, accumulate in fp32
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_mask = ds < D
        if NEED_H:
            w = tl.load(
                w_ptr + cols[:, None] * stride_wv + ds[None, :] * stride_wd,
                mask=col_mask[:, None] & d_mask[None, :], other=0.0,
            )
            gh = tl.dot(gc, w, input_precision=PRECISION)  # (BLOCK_N, BLOCK_D)
            tl.atomic_add(gh_ptr + rows[:, None] * D + ds[None, :], gh,
                          mask=row_mask[:, None] & d_mask[None, :])
        if NEED_W:
            h = tl.load(
                h_ptr + rows[:, None] * stride_hn + ds[None, :] * stride_hd,
                mask=row_mask[:, None] & d_mask[None, :], other=0.0,
            )
            gw = tl.dot(tl.trans(gc), h, input_precision=PRECISION)  # (BLOCK_V, BLOCK_D)
            tl.atomic_add(gw_ptr + cols[:, None] * D + ds[None, :], gw,
                          mask=col_mask[:, None] & d_mask[None, :])


@triton.jit
def lce_backward_kernel(
    h_ptr, w_ptr, b_ptr, t_ptr, lse_ptr, a_ptr, bcoef_ptr, gh_ptr, gw_ptr, gb_ptr,
    N, V, D, stride_hn, stride_hd, stride_wv, stride_wd, softcap, filter_eps,
    HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
    NEED_H: tl.constexpr, NEED_W: tl.constexpr, NEED_B: tl.constexpr, FILTER: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    GROUP_N: tl.constexpr, PRECISION: tl.constexpr,
):
    # grouped order: GROUP_N row blocks sweep the vocabulary together so W tiles stay in L2
    pid = tl.program_id(0)
    blocks_n = tl.cdiv(N, BLOCK_N)
    blocks_v = tl.cdiv(V, BLOCK_V)
    per_group = GROUP_N * blocks_v
    first_n = (pid // per_group) * GROUP_N
    group_size = tl.minimum(blocks_n - first_n, GROUP_N)
    pid_n = first_n + (pid % per_group) % group_size
    pid_v = (pid % per_group) // group_size

    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    cols = (pid_v * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
    row_mask = rows < N
    col_mask = cols < V
    z = logits_tile(
        h_ptr, w_ptr, b_ptr, rows, cols, row_mask, col_mask, D,
        stride_hn, stride_hd, stride_wv, stride_wd, softcap,
        HAS_BIAS, False, BLOCK_N, BLOCK_V, BLOCK_D, PRECISION,
    )
    if HAS_SOFTCAP:
        t = tanh_(z / softcap)
        z = softcap * t
    lse = tl.load(lse_ptr + rows, mask=row_mask, other=0.0)
    a = tl.load(a_ptr + rows, mask=row_mask, other=0.0)
    bc = tl.load(bcoef_ptr + rows, mask=row_mask, other=0.0)
    tgt = tl.load(t_ptr + rows, mask=row_mask, other=-1)
    g = a[:, None] * tl.exp(z - lse[:, None])
    g -= tl.where(cols[None, :] == tgt[:, None], bc[:, None], 0.0)
    if HAS_SOFTCAP:
        g *= 1.0 - t * t
    g = tl.where(row_mask[:, None] & col_mask[None, :], g, 0.0)
    if FILTER:
        if tl.max(tl.max(tl.abs(g), axis=1), axis=0) >= filter_eps:
            _accumulate(g, h_ptr, w_ptr, gh_ptr, gw_ptr, gb_ptr, rows, cols, row_mask, col_mask, D,
                        stride_hn, stride_hd, stride_wv, stride_wd,
                        NEED_H, NEED_W, NEED_B, BLOCK_D, PRECISION)
    else:
        _accumulate(g, h_ptr, w_ptr, gh_ptr, gw_ptr, gb_ptr, rows, cols, row_mask, col_mask, D,
                    stride_hn, stride_hd, stride_wv, stride_wd,
                    NEED_H, NEED_W, NEED_B, BLOCK_D, PRECISION)
