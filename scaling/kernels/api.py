"""Public entry point: validate, pick an implementation, reduce."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Literal

import torch

from scaling.kernels.chunked import chunked_linear_cross_entropy, fits_one_step
from scaling.kernels.reference import reference_linear_cross_entropy
from scaling.kernels.validate import KernelInputError, check_inputs


def triton_available() -> bool:
    """True when the Triton path can run: triton imports and CUDA (or the interpreter) is there."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def _resolve_impl(impl: str, device: torch.device) -> str:
    if impl == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "chunked"
    if impl == "triton":
        if not triton_available():
            raise KernelInputError(
                "`impl='triton'` needs the triton package and a CUDA device (or TRITON_INTERPRET=1); "
                "use impl='chunked' on CPU"
            )
        interpreted = os.environ.get("TRITON_INTERPRET") == "1"
        if device.type != "cuda" and not interpreted:
            raise KernelInputError(
                f"`impl='triton'` needs CUDA tensors, got tensors on {device}; use impl='chunked'"
            )
    return impl


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    softcap: float | None = None,
    return_lse: bool = False,
    impl: Literal["auto", "triton", "chunked", "torch"] = "auto",
    filter_eps: float | None = None,
    check_targets: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of `softcap(hidden @ weight.T + bias)` against `targets`, in fp32.

    hidden (..., D), weight (V, D), bias (V,), targets (...). `reduction="mean"` averages
    over tokens whose target is not `ignore_index` (NaN if there are none, as in
    `F.cross_entropy`); "none" returns per-token losses shaped like `targets` (0 where
    ignored). `return_lse=True` also returns the per-token log-sum-exp (differentiable).
    impl: "triton" (CUDA), "chunked" (CPU, never holds more than a chunk of logits; when
    all logits fit in one small chunk it runs them unchunked), "torch" (reference,
    materialises the logits), "auto" (triton on CUDA, chunked elsewhere). `filter_eps`
    (Triton only) skips backward tiles whose gradient entries are all below it; off by default.

    Under autocast (e.g. `torch.autocast("cuda", dtype=torch.bfloat16)`) hidden, weight and
    bias are cast to the autocast dtype first, as `F.linear` would be, so the kernels run on
    tensor cores; the loss and lse stay fp32 and the grads reach fp32 parameters in fp32.
    `check_targets=False` skips the range check of `targets`, which costs a host sync (for
    training loops that check their batches on the host).
    """
    hidden, weight, bias = _autocast_inputs(hidden, weight, bias)
    checked = check_inputs(hidden, weight, targets, bias, ignore_index, reduction, softcap, impl, check_targets)
    dev = checked.hidden.device.type
    off = torch.autocast(dev, enabled=False) if torch.amp.is_autocast_available(dev) else nullcontext()
    with off:  # the kernels choose their own precisions
        return _dispatch(checked, weight, bias, ignore_index, reduction, softcap, return_lse, impl, filter_eps)


def _autocast_inputs(hidden, weight, bias):
    """Cast the floating inputs to the autocast dtype when autocast is on for their device."""
    if not isinstance(hidden, torch.Tensor) or not torch.amp.is_autocast_available(hidden.device.type) \
            or not torch.is_autocast_enabled(hidden.device.type):
        return hidden, weight, bias
    dtype = torch.get_autocast_dtype(hidden.device.type)

    def cast(t):
        return t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != dtype else t

    return cast(hidden), cast(weight), cast(bias)


def _dispatch(checked, weight, bias, ignore_index, reduction, softcap, return_lse, impl, filter_eps):
    h2, t1 = checked.hidden, checked.targets
    chosen = _resolve_impl(impl, h2.device)
    if filter_eps is not None and chosen != "triton":
        raise KernelInputError(f"`filter_eps` is supported only by impl='triton', got impl={chosen!r}")

    # tiny problems: the whole logits are smaller than one chunk, so the fused reference is
    # both within the chunked memory bound and faster than a custom Function
    if chosen == "torch" or (chosen == "chunked" and fits_one_step(h2.shape[0], weight.shape[0])):
        out = reference_linear_cross_entropy(
            h2, weight, t1, bias, ignore_index, reduction, softcap, return_lse
        )
        loss, lse = out if return_lse else (out, None)
        if reduction == "none":
            loss = loss.reshape(checked.batch_shape)
        return (loss, lse.reshape(checked.batch_shape)) if return_lse else loss

    if chosen == "triton":
        from scaling.kernels.triton_function import triton_linear_cross_entropy

        per_token, lse = triton_linear_cross_entropy(
            h2, weight, t1, bias, ignore_index, softcap, filter_eps
        )
    else:
        # a plain mean/sum gives every token the same upstream grad: compute grads in forward
        eager = reduction != "none" and not return_lse and torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (h2, weight, bias)
        )
        per_token, lse = chunked_linear_cross_entropy(
            h2, weight, t1, bias, ignore_index, softcap, eager=eager
        )

    if reduction == "none":
        loss = per_token.reshape(checked.batch_shape)
    elif reduction == "sum":
        loss = per_token.sum()
    else:
        loss = per_token.sum() / (t1 != ignore_index).sum()
    return (loss, lse.reshape(checked.batch_shape)) if return_lse else loss
