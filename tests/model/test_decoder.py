"""Decoder-only LM: exact counts, FLOPs, causality, validation, loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from scaling.errors import SpecError
from scaling.model import (
    Attention,
    Block,
    DecoderConfig,
    DecoderLM,
    count_params,
    decoder_config_from_rule,
    flops_per_token,
    forward_flops_per_token,
    matmul_params,
)

SHAPES = [
    dict(vocab_size=37, d_model=24, n_layers=3, n_heads=4, d_ff=40, max_seq_len=16),
    dict(vocab_size=50, d_model=32, n_layers=2, n_heads=2, max_seq_len=20),
]


def tiny(**kw) -> DecoderConfig:
    base = dict(vocab_size=31, d_model=16, n_layers=2, n_heads=4, max_seq_len=12)
    return DecoderConfig(**{**base, **kw})


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_count_params_matches_module(shape, tie):
    cfg = DecoderConfig(**shape, tie_embeddings=tie)
    model = DecoderLM(cfg)
    counts = count_params(cfg)
    assert counts.total == sum(p.numel() for p in model.parameters())
    emb = {id(model.wte.weight), id(model.wpe.weight), id(model.head.weight)}
    assert counts.nonemb == sum(p.numel() for p in model.parameters() if id(p) not in emb)
    assert counts.total == counts.nonemb + counts.embedding


def test_count_params_hand_computed():
    # d=4, V=5, L=1, d_ff=8, T=3: block = 4·16 + 2·32 (matmuls) + 2·8 (two norms) + 12+4+8+4 (biases)
    cfg = DecoderConfig(vocab_size=5, d_model=4, n_layers=1, n_heads=2, d_ff=8, max_seq_len=3)
    c = count_params(cfg)
    assert c.nonemb == 64 + 64 + 16 + 28 + 8  # + final LayerNorm
    assert c.embedding == 20 + 12 + 20
    assert matmul_params(cfg) == 128 + 20


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("shape,B,T", [(SHAPES[0], 2, 12), (SHAPES[1], 3, 7)])
def test_flops_per_token_matches_flop_counter(shape, B, T, tie):
    cfg = DecoderConfig(**shape, tie_embeddings=tie)
    model = DecoderLM(cfg)
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    counter = FlopCounterMode(display=False)
    # The math backend decomposes SDPA into bmm's the counter sees (full T×T, as we count).
    with sdpa_kernel(SDPBackend.MATH), counter:
        logits = model.logits(idx)
        F.cross_entropy(logits.reshape(-1, cfg.vocab_size), idx.reshape(-1)).backward()
    by_op = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    n_tok = B * T
    # Dense layers: 2 FLOPs per MAC, forward + two backward matmuls.
    assert by_op["aten.mm"] + by_op["aten.addmm"] == 6 * matmul_params(cfg) * n_tok
    # Attention: QKᵀ and AV forward (4·T·d per token per layer), twice that backward.
    assert by_op["aten.bmm"] == 12 * cfg.n_layers * cfg.d_model * T * n_tok
    assert counter.get_total_flops() == flops_per_token(cfg, T) * n_tok
    assert flops_per_token(cfg, T) == 3 * forward_flops_per_token(cfg, T)


def test_forward_flops_per_token_matches_counter_forward_only():
    cfg = DecoderConfig(**SHAPES[0])
    model = DecoderLM(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, 9))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter, torch.no_grad():
        model.logits(idx)
    assert counter.get_total_flops() == forward_flops_per_token(cfg, 9) * 18


def test_forward_shapes_and_logits():
    cfg = tiny()
    model = DecoderLM(cfg)
    idx = torch.randint(0, cfg.vocab_size, (3, 10))
    seen = {}
    model.ln_f.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    h = model(idx)
    assert h.shape == (3, 10, cfg.d_model)
    # forward returns the residual stream after the final LayerNorm (weight 1, bias 0 at init).
    x = seen["x"]
    ref = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(h, ref, rtol=1e-4, atol=1e-5)
    logits = model.logits(idx)
    assert logits.shape == (3, 10, cfg.vocab_size)
    torch.testing.assert_close(logits, h @ model.head.weight.T)


def test_tied_head_shares_storage():
    model = DecoderLM(tiny(tie_embeddings=True))
    assert model.head.weight is model.wte.weight
    assert model.head.weight.data_ptr() == model.wte.weight.data_ptr()


def test_causality():
    torch.manual_seed(0)
    cfg = tiny()
    model = DecoderLM(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, 10))
    changed = idx.clone()
    changed[:, 6] = (changed[:, 6] + 1) % cfg.vocab_size
    h1, h2 = model(idx), model(changed)
    torch.testing.assert_close(h1[:, :6], h2[:, :6], rtol=0, atol=0)
    assert (h1[:, 6:] - h2[:, 6:]).abs().amax(-1).min() > 1e-4  # later positions all see it


@pytest.mark.parametrize("impl", ["auto", "chunked", "torch"])
def test_loss_matches_cross_entropy_reference(impl):
    torch.manual_seed(1)
    cfg = tiny()
    model = DecoderLM(cfg)
    idx = torch.randint(0, cfg.vocab_size, (3, 11))
    targets = torch.randint(0, cfg.vocab_size, (3, 11))
    targets[0, :4] = -100  # ignored positions
    loss = model.loss(idx, targets, impl=impl)
    ref = F.cross_entropy(model.logits(idx).reshape(-1, cfg.vocab_size), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    # Gradients agree too (the loss path never builds logits itself).
    g = torch.autograd.grad(loss, model.head.weight)[0]
    g_ref = torch.autograd.grad(ref, model.head.weight)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)


def test_init_std_and_residual_scaling():
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=64, d_model=128, n_layers=8, n_heads=4)
    model = DecoderLM(cfg)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.02)
    resid = 0.02 / (2 * cfg.n_layers) ** 0.5
    assert model.blocks[3].attn.proj.weight.std().item() == pytest.approx(resid, rel=0.03)
    assert model.blocks[3].mlp.proj.weight.std().item() == pytest.approx(resid, rel=0.03)
    assert model.blocks[0].attn.qkv.bias.abs().max().item() == 0.0


@pytest.mark.parametrize(
    "kw,field",
    [
        (dict(d_model=100, n_heads=3), "`d_model` (100) must be divisible by `n_heads` (3)"),
        (dict(n_layers=0), "`n_layers`"),
        (dict(vocab_size=-5), "`vocab_size`"),
        (dict(d_ff=0), "`d_ff`"),
        (dict(dropout=1.5), "`dropout`"),
        (dict(max_seq_len=2.5), "`max_seq_len`"),
    ],
)
def test_validation_messages_name_the_field(kw, field):
    with pytest.raises(SpecError, match=field.replace("(", r"\(").replace(")", r"\)")):
        tiny(**kw)


def test_default_d_ff_and_too_long_sequence():
    cfg = tiny()
    assert cfg.d_ff == 4 * cfg.d_model
    with pytest.raises(SpecError, match="`max_seq_len`"):
        DecoderLM(cfg)(torch.zeros(1, cfg.max_seq_len + 1, dtype=torch.long))


def test_config_from_rule():
    cfg = decoder_config_from_rule(256, 6, aspect_ratio=64, head_dim=64)
    assert (cfg.d_model, cfg.n_heads, cfg.n_layers) == (384, 6, 6)
    cfg = decoder_config_from_rule(256, 3, aspect_ratio=40, head_dim=32, max_seq_len=64)
    assert (cfg.d_model, cfg.n_heads, cfg.max_seq_len) == (128, 4, 64)  # 120 rounds to 128
    assert decoder_config_from_rule(256, 1, aspect_ratio=8, head_dim=64).d_model == 64  # >= 1 head
    with pytest.raises(SpecError, match="`head_dim`"):
        decoder_config_from_rule(256, 2, head_dim=0)


def test_attention_padding_and_cross_match_manual_softmax():
    torch.manual_seed(0)
    B, T, S, D, H = 2, 5, 7, 12, 3
    x, mem = torch.randn(B, T, D), torch.randn(B, S, D)
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[1, 4:] = True
    att = Attention(D, H, cross=True)

    def manual(att, q_in, kv_in, q_w, q_b, kv_w, kv_b, mask):
        K = D // H
        q = (q_in @ q_w.T + q_b).view(B, -1, H, K).transpose(1, 2)
        k, v = (kv_in @ kv_w.T + kv_b).view(B, -1, 2, H, K).permute(2, 0, 3, 1, 4)
        s = q @ k.transpose(-1, -2) / K**0.5
        s = s.masked_fill(~mask, float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, -1, D)
        return att.proj(y)

    out = att(x, mem, key_padding_mask=pad)
    ref = manual(att, x, mem, att.q.weight, att.q.bias, att.kv.weight, att.kv.bias, ~pad[:, None, None, :])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)

    # Causal self-attention combined with key padding: both masks apply.
    self_att = Attention(D, H, causal=True)
    pad_t = pad[:, :T]
    w, b = self_att.qkv.weight, self_att.qkv.bias
    mask = ~pad_t[:, None, None, :] & torch.ones(T, T, dtype=torch.bool).tril()
    got = self_att(x, key_padding_mask=pad_t)
    ref = manual(self_att, x, x, w[:D], b[:D], w[D:], b[D:], mask)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)

    # Bidirectional (encoder) self-attention with padding only.
    enc_att = Attention(D, H)
    w, b = enc_att.qkv.weight, enc_att.qkv.bias
    got = enc_att(x, key_padding_mask=pad_t)
    ref = manual(enc_att, x, x, w[:D], b[:D], w[D:], b[D:], ~pad_t[:, None, None, :])
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_block_with_cross_attention_shapes():
    blk = Block(16, 4, 32, causal=True, cross=True)
    out = blk(torch.randn(2, 5, 16), torch.randn(2, 9, 16), memory_padding_mask=torch.zeros(2, 9, dtype=torch.bool))
    assert out.shape == (2, 5, 16)


def test_config_round_trips_through_dict():
    from dataclasses import asdict

    cfg = tiny(d_ff=None, tie_embeddings=True, dropout=0.1)
    assert DecoderConfig(**asdict(cfg)) == cfg
    assert asdict(cfg)["d_ff"] == 64
