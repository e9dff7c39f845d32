"""The search over sets of runs behind `scaling.advise.design.advise`: each draw's inverse
information and target variance updated one run at a time (rank-one), the greedy choice within
a budget, Fedorov-style exchange, and the fewest runs that keep most of the narrowing."""

from __future__ import annotations

import numpy as np

from scaling.laws.validation import Z95


def _avg(widths: np.ndarray) -> np.ndarray:
    """The criterion over draws (axis 0): the geometric mean width. The arithmetic mean is ruled by
    the few draws whose interval is widest (a far target under a draw with a tiny exponent), so it
    buys designs for those; the geometric mean values the same relative narrowing under every draw."""
    return np.exp(np.mean(np.log(np.maximum(widths, 1e-300)), axis=0))


class _Design:
    """Per-draw inverse information and target variance, updated one run at a time. Jacobians come
    scaled by 1/noise, so a run adds information J J^T; a run may observe several losses (a CPT run:
    its domain and its general loss), J [.., m, P], added one after the other (exact)."""

    def __init__(self, M0: np.ndarray, g: np.ndarray, free: np.ndarray):
        self.free = free
        Mf = M0[:, free][:, :, free]
        self.Minv = np.linalg.inv(Mf + 1e-12 * np.eye(int(free.sum()))[None])
        self.g = g[:, free]
        self.var = np.einsum("rp,rpq,rq->r", self.g, self.Minv, self.g)

    def width(self, var: np.ndarray | None = None) -> float:
        v = self.var if var is None else var
        return float(_avg(2 * Z95 * np.sqrt(np.maximum(v, 0.0))))

    def widths_after(self, Jc: np.ndarray) -> np.ndarray:
        """Expected width after adding each candidate alone: Jc [R, K, m, P] -> [K]."""
        J = Jc[..., self.free]
        var = np.repeat(self.var[:, None], J.shape[1], axis=1)
        prev: list[tuple[np.ndarray, np.ndarray]] = []
        for j in range(J.shape[2]):
            v = J[:, :, j]
            u = np.einsum("rpq,rkq->rkp", self.Minv, v)
            for up, dp in prev:  # (M + earlier observations)^-1 v, by Sherman-Morrison
                u = u - up * (np.einsum("rkp,rkp->rk", up, v) / dp)[..., None]
            d = 1.0 + np.einsum("rkp,rkp->rk", v, u)
            var = var - np.einsum("rp,rkp->rk", self.g, u) ** 2 / d
            prev.append((u, d))
        return _avg(2 * Z95 * np.sqrt(np.maximum(var, 0.0)))

    def add(self, Jk: np.ndarray) -> None:
        for v in Jk[:, :, self.free].transpose(1, 0, 2):  # each observation of the run: [R, P]
            u = np.einsum("rpq,rq->rp", self.Minv, v)
            d = 1.0 + np.einsum("rp,rp->r", v, u)
            self.Minv = self.Minv - np.einsum("rp,rq->rpq", u, u) / d[:, None, None]
            self.var = self.var - np.einsum("rp,rp->r", self.g, u) ** 2 / d

    def copy(self) -> "_Design":
        new = object.__new__(_Design)
        new.free, new.Minv, new.g, new.var = self.free, self.Minv.copy(), self.g, self.var.copy()
        return new


def _greedy(design: _Design, Jc: np.ndarray, cost: np.ndarray, budget: float, n_runs: int | None,
            per_flop: bool, uses: np.ndarray) -> list[int]:
    """Add, while the budget lasts, the run that narrows the expected width most (per FLOP, or
    outright); `uses` [K] is how many more times each candidate may be chosen (updated)."""
    chosen: list[int] = []
    left = budget
    while n_runs is None or len(chosen) < n_runs:
        ok = (uses > 0) & (cost <= left)
        if not ok.any():
            break
        now = design.width()
        gain = np.where(ok, now - design.widths_after(Jc), -np.inf)
        score = gain / cost if per_flop else gain
        k = int(np.argmax(score))
        if not np.isfinite(score[k]) or gain[k] <= 1e-12 * max(now, 1e-300):
            break
        design.add(Jc[:, k])
        chosen.append(k)
        uses[k] -= 1
        left -= cost[k]
    return chosen


def _with(design: _Design, Jc: np.ndarray, chosen: list[int]) -> _Design:
    d = design.copy()
    for k in chosen:
        d.add(Jc[:, k])
    return d


EXCHANGE_MAX = 48
"""Designs of more runs than this skip the exchange pass."""


CORE_SHARE = 0.9  # of the expected narrowing: the rest is what the last runs buy
CORE_MAX = 40  # runs; the search refits the design O(runs^3) times


def _core(design: _Design, Jc: np.ndarray, chosen: list[int], share: float = CORE_SHARE) -> tuple[list[int], float]:
    """Positions in `chosen` of the fewest runs that keep `share` of its narrowing, and their
    expected width: runs are dropped one at a time, the one whose loss widens the interval least
    first. Diminishing returns made visible: a user may stop there and keep the rest of the budget."""
    before, width = design.width(), _with(design, Jc, chosen).width()
    allowed = before - share * (before - width)
    keep = list(range(len(chosen)))
    while len(keep) > 1:
        widths = [_with(design, Jc, [chosen[j] for j in keep if j != i]).width() for i in keep]
        i = int(np.argmin(widths))
        if widths[i] > allowed:
            break
        keep.pop(i)
        width = widths[i]
    return keep, width


def _exchange(design: _Design, Jc: np.ndarray, cost: np.ndarray, budget: float, chosen: list[int],
              repeats: np.ndarray, rounds: int = 3) -> list[int]:
    """Fedorov-style exchange after the greedy pass: replace one chosen run at a time by the
    affordable candidate that narrows the expected interval most, until no swap helps."""
    chosen = list(chosen)
    if len(chosen) > EXCHANGE_MAX:  # O(runs^2) updates per round; greedy is near-optimal for many runs
        return chosen
    best = _with(design, Jc, chosen).width()
    for _ in range(rounds):
        improved = False
        for i in range(len(chosen)):
            others = chosen[:i] + chosen[i + 1:]
            d = _with(design, Jc, others)
            after = d.widths_after(Jc)
            ok = (cost <= budget - cost[others].sum()) & (np.bincount(others, minlength=len(cost)) < repeats)
            after = np.where(ok, after, np.inf)
            k = int(np.argmin(after))
            if after[k] < best * (1 - 1e-9):
                chosen[i], best, improved = k, float(after[k]), True
        if not improved:
            break
    return chosen
