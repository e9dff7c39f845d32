"""The chunked CPU path against the plain torch reference (which materialises the logits)."""

from __future__ import annotations

import pytest
import torch

import scaling.kernels.chunked as chunked_mod
from scaling.kernels import linear_cross_entropy


def make_inputs(n=67, d=48, v=301, bias=True, ignore_every=7, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g).to(dtype).requires_grad_()
    weight = (torch.randn(v, d, generator=g) * 0.3).to(dtype).requires_grad_()
    b = torch.randn(v, generator=g).to(dtype).requires_grad_() if bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    if ignore_every:
        targets[::ignore_every] = -100
    return hidden, weight, b, targets


def loss_and_grads(impl, hidden, weight, bias, targets, lse_weight=0.0, **kw):
    """Loss, lse and grads of (loss summed) + lse_weight * sum(lse) under one impl."""
    for t in (hidden, weight, bias):
        if t is not None:
            t.grad = None
    loss, lse = linear_cross_entropy(hidden, weight, targets, bias=bias, impl=impl, return_lse=True, **kw)
    # a fixed random weighting so the per-token grads are not all equal
    w = torch.linspace(0.5, 1.5, loss.numel()).reshape(loss.shape) if loss.dim() else 1.0
    ((loss * w).sum() + lse_weight * lse.sum()).backward()
    grads = [t.grad.clone() for t in (hidden, weight, bias) if t is not None]
    return [loss.detach(), lse.detach(), *grads]


# one: a single chunk; many: several chunks (the tiny-problem shortcut is off in both)
@pytest.fixture(params=["one", "many"])
def mode(request, monkeypatch):
    monkeypatch.setattr(chunked_mod, "SMALL_BYTES", 0)
    if request.param == "many":
        monkeypatch.setattr(chunked_mod, "CHUNK_BYTES", 16 * 301 * 4)  # 16-row chunks
    return request.param


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_reference(mode, reduction, softcap, bias):
    h, w, b, t = make_inputs(bias=bias)
    ours = loss_and_grads("chunked", h, w, b, t, reduction=reduction, softcap=softcap)
    ref = loss_and_grads("torch", h, w, b, t, reduction=reduction, softcap=softcap)
    for x, y in zip(ours, ref):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_lse_gradient_matches_reference(mode):
    h, w, b, t = make_inputs()
    ours = loss_and_grads("chunked", h, w, b, t, lse_weight=0.3, reduction="none")
    ref = loss_and_grads("torch", h, w, b, t, lse_weight=0.3, reduction="none")
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_tiny_problem_runs_unchunked_and_matches(monkeypatch):
    calls = []
    real = chunked_mod.ChunkedLinearCrossEntropy.apply
    monkeypatch.setattr(chunked_mod.ChunkedLinearCrossEntropy, "apply", lambda *a: calls.append(1) or real(*a))
    h, w, b, t = make_inputs()
    ours = loss_and_grads("chunked", h, w, b, t, softcap=3.0)
    ref = loss_and_grads("torch", h, w, b, t, softcap=3.0)
    assert calls == []
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_ignored_tokens_give_zero_loss_and_mean_skips_them(mode):
    h, w, b, t = make_inputs()
    per = linear_cross_entropy(h, w, t, bias=b, reduction="none", impl="chunked")
    assert torch.all(per[t == -100] == 0)
    mean = linear_cross_entropy(h, w, t, bias=b, impl="chunked")
    torch.testing.assert_close(mean, per.sum() / (t != -100).sum())


def test_ignore_index_can_be_a_real_class(mode):
    h, w, b, t = make_inputs(ignore_every=0)
    t[::3] = 5
    ours = loss_and_grads("chunked", h, w, b, t, ignore_index=5)
    ref = loss_and_grads("torch", h, w, b, t, ignore_index=5)
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_all_ignored_mean_is_nan_like_torch_and_grads_are_zero(mode):
    h, w, b, t = make_inputs()
    t[:] = -100
    loss = linear_cross_entropy(h, w, t, bias=b, impl="chunked", reduction="sum")
    loss.backward()
    assert loss.item() == 0.0 and torch.all(h.grad == 0) and torch.all(w.grad == 0)
    assert torch.isnan(linear_cross_entropy(h, w, t, impl="chunked"))
    assert torch.isnan(linear_cross_entropy(h, w, t, impl="torch"))


def test_batched_shapes_are_restored(mode):
    h, w, _, t = make_inputs(n=60, bias=False)
    h3, t3 = h.detach().reshape(4, 15, -1), t.reshape(4, 15)
    loss, lse = linear_cross_entropy(h3, w, t3, reduction="none", return_lse=True)
    assert loss.shape == (4, 15) and lse.shape == (4, 15)
    ref = linear_cross_entropy(h3, w, t3, reduction="none", impl="torch")
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_larger_shapes_several_chunks(monkeypatch, softcap):
    monkeypatch.setattr(chunked_mod, "CHUNK_BYTES", 2**20)  # ~52-row chunks at V=5003
    h, w, b, t = make_inputs(n=1000, d=128, v=5003, ignore_every=11, seed=1)
    ours = loss_and_grads("chunked", h, w, b, t, softcap=softcap)
    ref = loss_and_grads("torch", h, w, b, t, softcap=softcap)
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_on_cpu(mode, dtype):
    h, w, b, t = make_inputs(dtype=dtype)
    ours = loss_and_grads("chunked", h, w, b, t)
    ref = loss_and_grads("torch", h, w, b, t)
    for x, y in zip(ours, ref):
        assert x.dtype == y.dtype
        torch.testing.assert_close(x.float(), y.float(), rtol=2e-2, atol=2e-2)


def test_auto_is_chunked_on_cpu(monkeypatch):
    monkeypatch.setattr(chunked_mod, "SMALL_BYTES", 0)
    calls = []
    real = chunked_mod.ChunkedLinearCrossEntropy.apply
    monkeypatch.setattr(chunked_mod.ChunkedLinearCrossEntropy, "apply", lambda *a: calls.append(1) or real(*a))
    h, w, b, t = make_inputs()
    linear_cross_entropy(h, w, t)
    assert calls == [1]


def test_training_loss_matches_reference_on_tiny_model(mode):
    """A tiny embedding + head LM trained with impl='chunked' and impl='torch' in lockstep."""
    losses = {}
    for impl in ("chunked", "torch"):
        torch.manual_seed(0)
        emb, head = torch.nn.Embedding(97, 32), torch.nn.Linear(32, 97, bias=False)
        opt = torch.optim.Adam([*emb.parameters(), *head.parameters()], lr=1e-2)
        data = torch.randint(0, 97, (8, 33), generator=torch.Generator().manual_seed(1))
        out = []
        for _ in range(20):
            x, y = data[:, :-1], data[:, 1:]
            hidden = torch.tanh(emb(x))
            loss = linear_cross_entropy(hidden.reshape(-1, 32), head.weight, y.reshape(-1), impl=impl)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        losses[impl] = torch.tensor(out)
    assert losses["chunked"][-1] < losses["chunked"][0] - 0.1  # it actually trains
    torch.testing.assert_close(losses["chunked"], losses["torch"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("softcap, bias", [(None, False), (None, True), (3.0, True)])
def test_eager_grads_for_mean_and_sum_match_reference(mode, reduction, softcap, bias, monkeypatch):
    """Without return_lse, mean/sum take the path that computes grads during forward."""
    used = []
    real = chunked_mod._scale_eager
    monkeypatch.setattr(chunked_mod, "_scale_eager", lambda *a: _record(real, used, *a))
    h, w, b, t = make_inputs(bias=bias)
    out = {}
    for impl in ("chunked", "torch"):
        loss = linear_cross_entropy(h, w, t, bias=b, reduction=reduction, softcap=softcap, impl=impl)
        (2.5 * loss).backward()  # an upstream grad other than 1 must scale the eager grads
        out[impl] = [loss.detach()] + [x.grad.clone() for x in (h, w, b) if x is not None]
        for x in (h, w, b):
            if x is not None:
                x.grad = None
    assert used == [True]  # backward only scaled the forward's grads
    for x, y in zip(out["chunked"], out["torch"]):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def _record(real, used, *args):
    result = real(*args)
    used.append(result is not None)
    return result


@pytest.mark.parametrize("use", ["weighted", "lse", "twice"])
def test_eager_falls_back_to_recomputation(mode, use):
    """Per-token weights, a grad through lse, or a second backward still get exact grads."""
    h, w, b, t = make_inputs()
    weights = torch.linspace(0.5, 1.5, t.numel())
    per, lse = chunked_mod.chunked_linear_cross_entropy(h, w, t, b, rows=16, eager=True)
    ref_logits = torch.nn.functional.linear(h, w, b)
    ref_per = torch.nn.functional.cross_entropy(ref_logits, t, reduction="none")
    if use == "weighted":
        ours_total, ref_total = (per * weights).sum(), (ref_per * weights).sum()
    elif use == "lse":
        ours_total = per.sum() + 0.3 * lse.sum()
        ref_total = ref_per.sum() + 0.3 * torch.logsumexp(ref_logits, 1).sum()
    else:
        ours_total, ref_total = per.sum(), ref_per.sum()
    ours = torch.autograd.grad(ours_total, (h, w, b), retain_graph=True)
    if use == "twice":
        ours = torch.autograd.grad(ours_total, (h, w, b))
    ref = torch.autograd.grad(ref_total, (h, w, b))
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
