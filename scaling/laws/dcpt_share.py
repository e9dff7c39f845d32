"""What a pair of fitted D-CPT laws answers: the domain share of the continual pre-training mix.

The domain loss is fitted on the domain share r and the general loss on the general share 1 - r
(`scaling.laws.dcpt`). `optimal_domain_share` picks the share minimising the predicted domain loss
with the general loss at most (1 + threshold) x the base model's, with a bootstrap interval;
`loss_vs_share_curves` gives both losses over the shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from scaling.errors import FitError
from scaling.laws.base import Law


@dataclass(frozen=True)
class ShareChoice:
    """The recommended domain share for one target (N, D), with its bootstrap interval."""

    N: float
    D: float
    domain_share: float
    """Share minimising the predicted domain loss subject to the general-loss limit (NaN if none)."""
    lo: float
    hi: float
    """Bootstrap percentile interval of the share (NaN without a bootstrap)."""
    domain_loss: float
    general_loss: float
    general_limit: float
    """(1 + threshold) x the base model's general loss."""
    feasible: bool
    """Whether some share keeps the predicted general loss within the limit."""
    binding: bool
    """Whether the general-loss limit (not the domain loss's own minimum) sets the share."""
    boot_feasible: float
    """Fraction of bootstrap replicates with a feasible share."""


def _share_grid(shares: np.ndarray | None) -> np.ndarray:
    s = np.linspace(0.0, 1.0, 1001) if shares is None else np.asarray(shares, dtype=float)
    if s.ndim != 1 or len(s) == 0 or (s < 0).any() or (s > 1).any():
        raise FitError("shares must be a non-empty 1-d array of values in [0, 1]")
    return s


def _check_pair(law_domain: Law, law_general: Law) -> None:
    for role, law in (("law_domain", law_domain), ("law_general", law_general)):
        law._check_fitted()
        if law.n_inputs != 3:
            raise FitError(f"{role}: expected a CPT law with x = [N, D, share], got {law.name} with {law.n_inputs} input(s)")


def _curves(law: Law, N: float, D: float, shares: np.ndarray, boot: bool) -> np.ndarray:
    """Predicted losses [R, len(shares)]: the fit (R = 1) or every bootstrap replicate."""
    X = np.stack([np.full_like(shares, N), np.full_like(shares, D), shares], axis=1)
    F = law._as_features(X)
    theta = law.boot_theta_ if boot else law.theta_[None]
    with torch.no_grad():
        return law.pred(torch.as_tensor(theta), F).numpy()


def _argmin_feasible(dom: np.ndarray, gen: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: index of the lowest domain loss among shares with gen <= limit, and feasibility."""
    ok = gen <= limit
    masked = np.where(ok, dom, np.inf)
    return np.argmin(masked, axis=1), ok.any(axis=1)


def optimal_domain_share(
    law_domain: Law, law_general: Law, N: float, D: float, base_general_loss: float,
    threshold: float = 0.03, shares: np.ndarray | None = None, level: float = 0.95,
) -> ShareChoice:
    """The domain share r minimising L_domain(N, D, r) subject to
    L_general(N, D, 1 - r) <= (1 + threshold) · base_general_loss.

    `law_domain` is fitted with x = [N, D, domain share], `law_general` with x = [N, D,
    general share]. Shares are searched on a grid (default 1001 points in [0, 1]). With
    bootstrap replicates on both laws, replicate i of each gives one share; the interval is
    their percentile interval over feasible replicates.
    """
    _check_pair(law_domain, law_general)
    if not (N > 0 and D > 0):
        raise FitError(f"optimal_domain_share: N and D must be > 0, got N={N}, D={D}")
    if not base_general_loss > 0:
        raise FitError(f"optimal_domain_share: base_general_loss must be > 0, got {base_general_loss}")
    if threshold < 0:
        raise FitError(f"optimal_domain_share: threshold must be >= 0 (e.g. 0.03 for 3%), got {threshold}")
    s = _share_grid(shares)
    limit = (1.0 + threshold) * base_general_loss
    dom, gen = _curves(law_domain, N, D, s, False), _curves(law_general, N, D, 1.0 - s, False)
    i, ok = _argmin_feasible(dom, gen, limit)
    feasible = bool(ok[0])
    best = int(i[0])
    binding = feasible and int(np.argmin(dom[0])) != best
    lo = hi = np.nan
    boot_feasible = np.nan
    if getattr(law_domain, "boot_theta_", None) is not None and getattr(law_general, "boot_theta_", None) is not None:
        n = min(len(law_domain.boot_theta_), len(law_general.boot_theta_))
        bd = _curves(law_domain, N, D, s, True)[:n]
        bg = _curves(law_general, N, D, 1.0 - s, True)[:n]
        bi, bok = _argmin_feasible(bd, bg, limit)
        boot_feasible = float(bok.mean())
        if bok.any():
            q = [(1 - level) / 2, (1 + level) / 2]
            lo, hi = (float(v) for v in np.quantile(s[bi[bok]], q))
    return ShareChoice(
        N=float(N), D=float(D), domain_share=float(s[best]) if feasible else np.nan, lo=lo, hi=hi,
        domain_loss=float(dom[0, best]) if feasible else np.nan,
        general_loss=float(gen[0, best]) if feasible else np.nan, general_limit=float(limit),
        feasible=feasible, binding=bool(binding), boot_feasible=boot_feasible,
    )


def loss_vs_share_curves(
    law_domain: Law, law_general: Law, N: float, D: float, shares: np.ndarray | None = None, level: float = 0.95,
) -> pd.DataFrame:
    """Predicted domain and general loss against the domain share at (N, D), with bootstrap bands.

    Columns: domain_share, domain_loss, domain_lo, domain_hi, general_loss, general_lo,
    general_hi (bands NaN for a law without bootstrap replicates).
    """
    _check_pair(law_domain, law_general)
    s = _share_grid(shares if shares is not None else np.linspace(0.0, 1.0, 201))
    out = {"domain_share": s}
    for role, law, x in (("domain", law_domain, s), ("general", law_general, 1.0 - s)):
        out[f"{role}_loss"] = _curves(law, N, D, x, False)[0]
        if getattr(law, "boot_theta_", None) is not None:
            lo, hi = np.quantile(_curves(law, N, D, x, True), [(1 - level) / 2, (1 + level) / 2], axis=0)
        else:
            lo = hi = np.full_like(s, np.nan)
        out[f"{role}_lo"], out[f"{role}_hi"] = lo, hi
    return pd.DataFrame(out)


__all__ = ["ShareChoice", "loss_vs_share_curves", "optimal_domain_share"]
