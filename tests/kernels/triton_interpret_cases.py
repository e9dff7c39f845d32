"""Run the Triton kernels under TRITON_INTERPRET=1 against the torch reference; print JSON.

Executed in a subprocess by test_triton_interpret.py: the interpreter flag must be set before
triton is first imported, which a shared pytest process cannot guarantee.
"""

from __future__ import annotations

import json
import os

if __name__ == "__main__":  # only as a script: importing this from pytest must not set it
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from scaling.kernels import linear_cross_entropy  # noqa: E402

N, D, V = 67, 48, 301


def run(impl: str, reduction: str, softcap, bias: bool, lse_weight: float, filter_eps=None):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, D, generator=g).requires_grad_()
    w = (torch.randn(V, D, generator=g) * 0.3).requires_grad_()
    b = torch.randn(V, generator=g).requires_grad_() if bias else None
    t = torch.randint(0, V, (N,), generator=g)
    t[::7] = -100
    kw = dict(filter_eps=filter_eps) if filter_eps is not None else {}
    loss, lse = linear_cross_entropy(
        h, w, t, bias=b, reduction=reduction, softcap=softcap, return_lse=True, impl=impl, **kw
    )
    scale = torch.linspace(0.5, 1.5, N) if reduction == "none" else 1.0
    ((loss * scale).sum() + lse_weight * lse.sum()).backward()
    out = {"loss": loss, "lse": lse, "grad_hidden": h.grad, "grad_weight": w.grad}
    if bias:
        out["grad_bias"] = b.grad
    return {k: v.detach() for k, v in out.items()}


def compare(case: dict) -> dict:
    ours = run("triton", **case)
    ref_case = {k: v for k, v in case.items() if k != "filter_eps"}
    ref = run("torch", **ref_case)
    return {k: float((ours[k] - ref[k]).abs().max()) for k in ref} | {
        "max_abs_ref_grad_weight": float(ref["grad_weight"].abs().max())
    }


def cases() -> dict[str, dict]:
    out = {}
    combos = [(r, None, True) for r in ("mean", "sum", "none")]
    combos += [(r, 5.0, False) for r in ("mean", "sum", "none")] + [("mean", 5.0, True)]
    for reduction, softcap, bias in combos:
        name = f"{reduction}-softcap{softcap}-bias{bias}"
        out[name] = dict(reduction=reduction, softcap=softcap, bias=bias, lse_weight=0.0)
    out["lse-grad"] = dict(reduction="none", softcap=None, bias=True, lse_weight=0.3)
    # a tiny eps filters nothing measurable: results must still match
    out["filter-tiny"] = dict(reduction="mean", softcap=None, bias=True, lse_weight=0.0, filter_eps=1e-30)
    return out


def filtered_everything() -> float:
    """Largest grad entry when every tile is below filter_eps (must be exactly 0)."""
    ours = run("triton", "mean", None, True, 0.0, filter_eps=1e9)
    return max(float(ours[k].abs().max()) for k in ("grad_hidden", "grad_weight", "grad_bias"))


if __name__ == "__main__":
    result = {name: compare(case) for name, case in cases().items()}
    result["filter-huge"] = {"max_abs_grad": filtered_everything()}
    print(json.dumps(result))
