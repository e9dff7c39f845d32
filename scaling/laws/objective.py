"""Robust fitting objective: sum of (weighted) Huber or squared residuals, batched over starts."""

from __future__ import annotations

from typing import Callable, Literal

import torch

from scaling.errors import FitError

# forward_vjp(theta[s, P], X[n, k]) -> (pred[s, n], vjp) with vjp(c[s, n]) = sum_n c * dpred/dtheta
ForwardVJP = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]]


BLOCK = 32768  # elements per block of rows


def huber(r: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Huber loss and its derivative (scipy.special.huber convention: 0.5 r² inside delta)."""
    d = r.clamp(-delta, delta)
    return d * (r - 0.5 * d), d  # equals 0.5 r² inside, delta (|r| - delta/2) outside


# loss="mae" is |r| smoothed within this width, so the line search has a gradient to follow.
MAE_SMOOTH = 1e-6

LOSSES = ("huber", "mse", "mae", "asymmetric")


def residual_loss(
    r: torch.Tensor, loss: Literal["huber", "mse", "mae", "asymmetric"], delta: float, asymmetry: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-residual loss and derivative. "asymmetric" is Huber with over-predictions (r > 0)
    weighted `asymmetry` times, so the fit hugs the lower envelope of the points (as OLMo's ladder
    fits do); "mae" is the absolute residual."""
    if loss == "huber":
        return huber(r, delta)
    if loss == "mse":
        return r * r, 2.0 * r
    if loss == "mae":
        rho, d = huber(r, MAE_SMOOTH)
        return rho / MAE_SMOOTH, d / MAE_SMOOTH
    if loss == "asymmetric":
        rho, d = huber(r, delta)
        k = torch.where(r > 0, asymmetry, 1.0).to(r.dtype)
        return rho * k, d * k
    raise FitError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")


def make_objective(
    forward_vjp: ForwardVJP,
    X: torch.Tensor,
    target: torch.Tensor,
    loss: Literal["huber", "mse"] = "huber",
    delta: float = 1e-3,
    weights: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    asymmetry: float = 10.0,
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """fg(theta, idx) for the engine: objective and gradient per start.

    weights[R, n] are per-point weights (bootstrap counts); start i uses row group[i]. A 2-D
    target[R, n] gives each group its own targets (residual bootstrap)."""
    residual_loss(torch.zeros(1, dtype=torch.float64), loss, delta, asymmetry)  # validate `loss` early

    # Rows per block so a block's [rows, n] temporaries stay in cache.
    block = max(1, BLOCK // max(len(target), 1))

    def fg(theta: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(theta) <= block:
            return fg_block(theta, idx)
        parts = [fg_block(th, ix) for th, ix in zip(theta.split(block), idx.split(block))]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def fg_block(theta: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred, vjp = forward_vjp(theta, X)
        tgt = target if target.dim() == 1 else target[group[idx] if group is not None else idx]
        rho, drho = residual_loss(pred - tgt, loss, delta, asymmetry)
        if weights is not None:
            w = weights[group[idx]] if group is not None else weights[idx]
            rho = rho * w
            drho = drho * w
        f = rho.sum(-1)
        # Non-finite predictions (overflow at wild starts) become +inf so line searches reject them.
        f = torch.where(torch.isfinite(f), f, torch.full_like(f, float("inf")))
        g = vjp(drho)  # non-finite entries make g non-finite: the engine rejects such points
        return f, g

    return fg
