"""Plain PyTorch reference: materialises the (N, V) logits. Tests and benchmarks compare to it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softcap_logits(logits: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """Gemma-2 style soft-capping `softcap * tanh(logits / softcap)`; identity when None."""
    if softcap is None:
        return logits
    return softcap * torch.tanh(logits / softcap)


def reference_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    softcap: float | None = None,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of `hidden @ weight.T + bias` on 2-D hidden / 1-D targets, in fp32."""
    logits = F.linear(hidden, weight, bias).float()  # (N, V); a no-op cast for fp32
    logits = softcap_logits(logits, softcap)
    loss = F.cross_entropy(logits, targets.long(), ignore_index=ignore_index, reduction=reduction)
    if return_lse:
        return loss, torch.logsumexp(logits, dim=-1)
    return loss
