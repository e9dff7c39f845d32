"""Triton path on a real GPU: fp32 / bf16 / fp16 against the reference. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from scaling.kernels import linear_cross_entropy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# loss/lse tolerance, grad tolerance (relative to the largest reference entry)
TOL = {torch.float32: (1e-5, 1e-4), torch.bfloat16: (2e-2, 3e-2), torch.float16: (5e-3, 1e-2)}


def inputs(n, d, v, dtype, bias, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    h = torch.randn(n, d, device="cuda", generator=g).to(dtype).requires_grad_()
    w = (torch.randn(v, d, device="cuda", generator=g) / d**0.5).to(dtype).requires_grad_()
    b = torch.randn(v, device="cuda", generator=g).to(dtype).requires_grad_() if bias else None
    t = torch.randint(0, v, (n,), device="cuda", generator=g)
    t[::9] = -100
    return h, w, b, t


def run(impl, h, w, b, t, **kw):
    for x in (h, w, b):
        if x is not None:
            x.grad = None
    loss, lse = linear_cross_entropy(h, w, t, bias=b, impl=impl, return_lse=True, **kw)
    scale = torch.linspace(0.5, 1.5, loss.numel(), device="cuda") if loss.dim() else 1.0
    (loss * scale).sum().backward()
    return [loss.detach(), lse.detach()] + [x.grad.clone() for x in (h, w, b) if x is not None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(67, 48, 301), (252, 507, 123), (1031, 256, 8191)])
@pytest.mark.parametrize("softcap", [None, 20.0])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_triton_matches_reference(dtype, shape, softcap, reduction):
    h, w, b, t = inputs(*shape, dtype=dtype, bias=shape[0] == 67)
    ours = run("triton", h, w, b, t, softcap=softcap, reduction=reduction)
    ref = run("torch", h, w, b, t, softcap=softcap, reduction=reduction)
    loss_tol, grad_tol = TOL[dtype]
    for i, (x, y) in enumerate(zip(ours, ref)):
        assert x.shape == y.shape and x.dtype == y.dtype
        tol = loss_tol if i < 2 else grad_tol * float(y.abs().max())
        torch.testing.assert_close(x.float(), y.float(), rtol=loss_tol, atol=tol)


def test_auto_is_triton_on_cuda():
    h, w, b, t = inputs(67, 48, 301, torch.float32, bias=False)
    ours = linear_cross_entropy(h, w, t)
    torch.testing.assert_close(ours, linear_cross_entropy(h, w, t, impl="triton"))


def test_filtering_changes_little_in_bf16():
    h, w, b, t = inputs(512, 256, 32000, torch.bfloat16, bias=False)
    plain = run("triton", h, w, b, t)
    filtered = run("triton", h, w, b, t, filter_eps=2.0**-12)
    torch.testing.assert_close(filtered[0], plain[0])
    for x, y in zip(filtered[2:], plain[2:]):
        torch.testing.assert_close(x.float(), y.float(), rtol=0, atol=3e-2 * float(y.abs().max()))


def test_peak_memory_far_below_reference():
    h, w, b, t = inputs(4096, 512, 32768, torch.bfloat16, bias=False)
    peaks = {}
    for impl in ("torch", "triton"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run(impl, h, w, b, t)
        torch.cuda.synchronize()
        peaks[impl] = torch.cuda.max_memory_allocated() - base
    assert peaks["triton"] < peaks["torch"] / 4
