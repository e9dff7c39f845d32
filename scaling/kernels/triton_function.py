"""`autograd.Function` over the Triton launchers: saves inputs + lse, never the logits."""

from __future__ import annotations

import torch

from scaling.kernels.triton_launch import backward_launch, forward_launch


class TritonLinearCrossEntropy(torch.autograd.Function):
    """Per-token loss (0 where ignored) and lse of softcap(hidden @ weight.T + bias)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")  # backward replays forward's autocast state
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        ignore_index: int,
        softcap: float | None,
        filter_eps: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        valid = targets != ignore_index
        kernel_t = torch.where(valid, targets, -1).long().contiguous()
        lse, target_logit = forward_launch(hidden, weight, bias, kernel_t, softcap)
        loss = (lse - target_logit).masked_fill_(~valid, 0.0)
        ctx.save_for_backward(hidden, weight, bias, kernel_t, lse)
        ctx.softcap, ctx.filter_eps = softcap, filter_eps
        ctx.set_materialize_grads(False)  # an unused lse gets None, not a zero tensor
        return loss, lse

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_loss: torch.Tensor | None, grad_lse: torch.Tensor | None):  # type: ignore[override]
        hidden, weight, bias, kernel_t, lse = ctx.saved_tensors
        valid = kernel_t >= 0
        b = torch.zeros_like(lse) if grad_loss is None else grad_loss.float().masked_fill(~valid, 0.0)
        a = b if grad_lse is None else b + grad_lse.float()
        gh, gw, gb = backward_launch(
            hidden, weight, bias, kernel_t, lse, a, b, ctx.softcap, ctx.filter_eps,
            ctx.needs_input_grad[:3],
        )
        return gh, gw, gb, None, None, None, None


def triton_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
    filter_eps: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss and lse, both (N,) fp32, for 2-D hidden / 1-D targets (CUDA tensors)."""
    return TritonLinearCrossEntropy.apply(hidden, weight, bias, targets, ignore_index, softcap, filter_eps)
