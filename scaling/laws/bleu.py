"""Laws for generation quality (Ghorbani et al. 2021, section 5).

* `bleu_ce`:  BLEU = C · exp(k · CE), x = [CE] (cross-entropy in nats); k < 0 when lower loss
  means better translations. Fitted in log space, where it is a line: log BLEU = log C + k·CE.
* `bleu_log`: BLEU(D) = (log(A · D^alpha))^beta, x = [D] (training tokens or pairs), fitted as
  log BLEU = beta · log(log A + alpha · log D); needs log A + alpha · log D > 0 on the data.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from scaling.laws.base import Law, Param
from scaling.laws.registry import register_law


@register_law
class BleuCELaw(Law):
    """BLEU = C · exp(k · CE); x = [CE]."""

    name = "bleu_ce"
    params = (Param("C", -20.0, 20.0, log=True), Param("k", -100.0, 100.0))
    n_inputs = 1
    log_inputs = False  # CE enters linearly

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        lc, k = theta.T
        return lc[:, None] + k[:, None] * F[:, 0]

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        # Least squares is exact on the log scale; a few neighbours guard against outliers.
        slope, icpt = np.polyfit(F[:, 0], t, 1) if len(t) > 1 else (0.0, float(t[0]))
        return np.array([(icpt + d, slope * s) for d, s in itertools.product([-0.5, 0.0, 0.5], [0.5, 1.0, 1.5])])


@register_law
class BleuLogLaw(Law):
    """BLEU(D) = (log(A · D^alpha))^beta; x = [D]."""

    name = "bleu_log"
    params = (Param("A", -200.0, 200.0, log=True), Param("alpha", 1e-6, 10.0), Param("beta", 1e-3, 20.0))
    n_inputs = 1

    def log_pred(self, theta: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        la, al, be = theta.T
        inner = la[:, None] + al[:, None] * F[:, 0]  # log(A · D^alpha)
        # Where the inner log is not positive the formula is undefined: a huge loss steers away.
        return be[:, None] * torch.log(inner.clamp_min(1e-30))

    def init_grid(self, F: np.ndarray, t: np.ndarray) -> np.ndarray:
        lD = F[:, 0]
        i = int(np.argsort(lD)[len(lD) // 2])
        grid = []
        for al, be in itertools.product([0.03, 0.1, 0.3, 1.0, 3.0], [0.5, 1.0, 2.0, 3.0, 5.0]):
            # Pass through the median point: log A = BLEU_med^(1/beta) - alpha · log D_med.
            grid.append((np.exp(t[i] / be) - al * lD[i], al, be))
        return np.array(grid, dtype=float)


__all__ = ["BleuCELaw", "BleuLogLaw"]
