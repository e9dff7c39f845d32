"""Under autocast the loss kernel receives the autocast dtype (bf16), as F.linear would."""

import pytest
import torch

from scaling.kernels import chunked, linear_cross_entropy


@pytest.mark.parametrize("n,v", [(64, 100), (1200, 5000)])  # the fused shortcut and the chunked Function
def test_autocast_feeds_bf16_and_returns_fp32_grads(n, v, monkeypatch):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, 32, generator=g, requires_grad=True)
    w = torch.randn(v, 32, generator=g, requires_grad=True)
    t = torch.randint(0, v, (n,), generator=g)
    seen = []
    real = chunked.ChunkedLinearCrossEntropy.forward

    def spy(ctx, hidden, weight, *rest):
        seen.append((hidden.dtype, weight.dtype, torch.is_autocast_enabled("cpu")))
        return real(ctx, hidden, weight, *rest)

    monkeypatch.setattr(chunked.ChunkedLinearCrossEntropy, "forward", staticmethod(spy))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(h, w, t)
    under_autocast = list(seen)
    expected = linear_cross_entropy(h.detach().bfloat16(), w.detach().bfloat16(), t)
    assert loss.dtype == torch.float32
    assert loss.item() == expected.item()  # the same bf16 computation, bit for bit
    assert abs(loss.item() - linear_cross_entropy(h, w, t).item()) > 0  # and not the fp32 one
    if n * v * 4 > chunked.SMALL_BYTES:  # the chunked Function ran
        assert under_autocast == [(torch.bfloat16, torch.bfloat16, False)]  # bf16 in, autocast off inside
    loss.backward()
    assert h.grad.dtype == w.grad.dtype == torch.float32 and torch.isfinite(w.grad).all()
