"""Typed launchers for the Triton kernels: check shapes, pick block sizes, allocate outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton

from scaling.kernels.triton_backward import lce_backward_kernel
from scaling.kernels.triton_forward import lce_forward_kernel


@dataclass(frozen=True, slots=True)
class Blocks:
    """Tile sizes and launch options for one kernel."""

    n: int
    v: int
    d: int
    warps: int
    stages: int


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _blocks(dtype: torch.dtype, backward: bool) -> Blocks:
    """Fixed configs (no autotuning: it needs a GPU driver and the backward accumulates)."""
    if _interpreted():
        return Blocks(32, 32, 16, 4, 1)  # few programs: the interpreter is slow
    if dtype == torch.float32:
        return Blocks(64, 64, 32, 4, 2)
    if backward:
        return Blocks(128, 128, 32, 8, 2)
    return Blocks(128, 128, 32, 8, 3)


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs get true fp32 products (not tf32) so results match the reference
    return "ieee" if dtype == torch.float32 else "tf32"


def _programs_wanted(device: torch.device) -> int:
    if _interpreted() or device.type != "cuda":
        return 0
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def _check(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           targets: torch.Tensor) -> tuple[int, int, int]:
    n, d = hidden.shape
    v, d_w = weight.shape
    assert d == d_w and targets.shape == (n,), "launcher got mismatched shapes"
    assert bias is None or (bias.shape == (v,) and bias.is_contiguous())
    assert targets.is_contiguous()
    return n, v, d


def forward_launch(
    hidden: torch.Tensor,  # (N, D)
    weight: torch.Tensor,  # (V, D)
    bias: torch.Tensor | None,  # (V,)
    targets: torch.Tensor,  # (N,), ignored rows already set to -1
    softcap: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token lse and target logit, both (N,) fp32."""
    n, v, d = _check(hidden, weight, bias, targets)
    cfg = _blocks(hidden.dtype, backward=False)
    blocks_n = triton.cdiv(n, cfg.n)
    tiles_v = triton.cdiv(v, cfg.v)
    # split the vocabulary across programs when there are too few row blocks to fill the GPU
    wanted = _programs_wanted(hidden.device)
    splits = max(1, min(tiles_v, triton.cdiv(wanted, blocks_n))) if wanted else min(2, tiles_v)
    tiles_per_split = triton.cdiv(tiles_v, splits)
    splits = triton.cdiv(tiles_v, tiles_per_split)  # every split starts on a real column
    lse_part = torch.empty(n, splits, dtype=torch.float32, device=hidden.device)
    tgt_part = torch.empty(n, splits, dtype=torch.float32, device=hidden.device)
    if n > 0:
        lce_forward_kernel[(blocks_n, splits)](
            hidden, weight, bias if bias is not None else hidden, targets, lse_part, tgt_part,
            n, v, d, splits, tiles_per_split,
            hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1),
            float(softcap) if softcap is not None else 1.0,
            HAS_BIAS=bias is not None, HAS_SOFTCAP=softcap is not None,
            BLOCK_N=cfg.n, BLOCK_V=cfg.v, BLOCK_D=cfg.d, PRECISION=_precision(hidden.dtype),
            num_warps=cfg.warps, num_stages=cfg.stages,
        )
    lse = torch.logsumexp(lse_part, dim=1) if splits > 1 else lse_part[:, 0]
    return lse, tgt_part.sum(dim=1)


def backward_launch(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,  # (N,), ignored rows set to -1
    lse: torch.Tensor,  # (N,) fp32
    a: torch.Tensor,  # (N,) fp32 coefficient of the softmax
    b: torch.Tensor,  # (N,) fp32 coefficient of the one-hot target
    softcap: float | None,
    filter_eps: float | None,
    need: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients of sum_i [a_i * lse_i - b_i * z_i,t_i] w.r.t. hidden, weight, bias."""
    n, v, d = _check(hidden, weight, bias, targets)
    need_h, need_w, need_b = need[0], need[1], need[2] and bias is not None
    cfg = _blocks(hidden.dtype, backward=True)
    f32 = dict(dtype=torch.float32, device=hidden.device)
    # fp32 accumulators (atomics); cast to the input dtype at the end
    gh = torch.zeros(n, d, **f32) if need_h else None
    gw = torch.zeros(v, d, **f32) if need_w else None
    gb = torch.zeros(v, **f32) if need_b else None
    if n > 0 and (need_h or need_w or need_b):
        dummy = lse
        grid = (triton.cdiv(n, cfg.n) * triton.cdiv(v, cfg.v),)
        lce_backward_kernel[grid](
            hidden, weight, bias if bias is not None else hidden, targets,
            lse.contiguous(), a.contiguous(), b.contiguous(),
            gh if gh is not None else dummy, gw if gw is not None else dummy,
            gb if gb is not None else dummy,
            n, v, d, hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1),
            float(softcap) if softcap is not None else 1.0,
            float(filter_eps) if filter_eps is not None else 0.0,
            HAS_BIAS=bias is not None, HAS_SOFTCAP=softcap is not None,
            NEED_H=need_h, NEED_W=need_w, NEED_B=need_b, FILTER=filter_eps is not None,
            BLOCK_N=cfg.n, BLOCK_V=cfg.v, BLOCK_D=cfg.d, GROUP_N=8,
            PRECISION=_precision(hidden.dtype), num_warps=cfg.warps, num_stages=cfg.stages,
        )
    return (
        None if gh is None else gh.to(hidden.dtype),
        None if gw is None else gw.to(weight.dtype),
        None if gb is None else gb.to(bias.dtype),
    )
