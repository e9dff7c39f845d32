"""Argument checks shared by every implementation of `linear_cross_entropy`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scaling.errors import ScalingError

REDUCTIONS = ("mean", "sum", "none")
IMPLS = ("auto", "triton", "chunked", "torch")
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class KernelInputError(ScalingError, ValueError):
    """A tensor or option passed to `linear_cross_entropy` is unusable; the message names it."""


@dataclass(frozen=True, slots=True)
class Checked:
    """Flattened, validated inputs: hidden (N, D), targets (N,), and the batch shape to restore."""

    hidden: torch.Tensor
    targets: torch.Tensor
    batch_shape: torch.Size


def check_inputs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    softcap: float | None,
    impl: str,
    check_targets: bool = True,
) -> Checked:
    """Raise `KernelInputError` naming the bad argument; return hidden/targets flattened to 2-D/1-D."""
    if reduction not in REDUCTIONS:
        raise KernelInputError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    if impl not in IMPLS:
        raise KernelInputError(f"`impl` must be one of {IMPLS}, got {impl!r}")
    if softcap is not None and not softcap > 0:
        raise KernelInputError(f"`softcap` must be a positive number or None, got {softcap!r}")
    for name, t in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(t, torch.Tensor):
            raise KernelInputError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if weight.dim() != 2:
        raise KernelInputError(f"`weight` must have shape (V, D), got {tuple(weight.shape)}")
    vocab, dim = weight.shape
    if hidden.dim() < 1 or hidden.shape[-1] != dim:
        raise KernelInputError(
            f"`hidden` must have shape (..., D) with D={dim} to match `weight` (V, D)="
            f"{tuple(weight.shape)}, got {tuple(hidden.shape)}"
        )
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise KernelInputError(
            f"`targets` must have shape {tuple(hidden.shape[:-1])} (hidden's shape without D), "
            f"got {tuple(targets.shape)}"
        )
    if hidden.dtype not in FLOAT_DTYPES:
        raise KernelInputError(f"`hidden` dtype must be float32, bfloat16 or float16, got {hidden.dtype}")
    if weight.dtype != hidden.dtype:
        raise KernelInputError(f"`weight` dtype {weight.dtype} must match `hidden` dtype {hidden.dtype}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise KernelInputError(f"`targets` must hold class indices (int64 or int32), got {targets.dtype}")
    if weight.device != hidden.device or targets.device != hidden.device:
        raise KernelInputError(
            f"`hidden` ({hidden.device}), `weight` ({weight.device}) and `targets` "
            f"({targets.device}) must be on the same device"
        )
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (vocab,):
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise KernelInputError(f"`bias` must have shape (V,)=({vocab},), got {shape}")
        if bias.dtype != hidden.dtype or bias.device != hidden.device:
            raise KernelInputError(
                f"`bias` must match `hidden` in dtype and device ({hidden.dtype}, {hidden.device}), "
                f"got ({bias.dtype}, {bias.device})"
            )
    flat_h = hidden.reshape(-1, dim)
    flat_t = targets.reshape(-1)
    if check_targets and flat_t.numel() > 0:
        lo, hi = torch.aminmax(flat_t)
        in_range = bool((lo >= 0) & (hi < vocab))  # one sync on the common path
    if check_targets and flat_t.numel() > 0 and not in_range:
        bad = ((flat_t < 0) | (flat_t >= vocab)) & (flat_t != ignore_index)
        if bool(bad.any()):
            first = int(flat_t[bad][0])
            raise KernelInputError(
                f"`targets` must lie in [0, {vocab}) or equal ignore_index={ignore_index}; "
                f"found {first}"
            )
    return Checked(flat_h, flat_t, targets.shape)
