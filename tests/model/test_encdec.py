"""Encoder-decoder: exact counts, FLOPs, masking, causality, validation, loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from scaling.errors import SpecError
from scaling.model.encdec import (
    EncDecConfig,
    EncoderDecoder,
    count_params_encdec,
    flops_per_token_encdec,
    forward_flops_encdec,
    real_lengths,
    train_flops_encdec,
)

SHAPES = [
    dict(vocab_size=37, d_model=24, enc_layers=3, dec_layers=1, n_heads=4, d_ff=40, max_src_len=16, max_tgt_len=12),
    dict(src_vocab_size=29, tgt_vocab_size=41, d_model=16, enc_d_model=24, enc_n_heads=3, enc_d_ff=20,
         enc_layers=1, dec_layers=2, n_heads=2, max_src_len=10, max_tgt_len=9),
]


def tiny(**kw) -> EncDecConfig:
    base = dict(vocab_size=31, d_model=16, enc_layers=2, dec_layers=2, n_heads=4, max_src_len=12, max_tgt_len=10)
    return EncDecConfig(**{**base, **kw})


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("shape", SHAPES)
def test_counts_match_module(shape):
    cfg = EncDecConfig(**shape)
    m = EncoderDecoder(cfg)
    c = count_params_encdec(cfg)
    assert c.total == _n(m)
    enc = _n(m.enc_blocks) + _n(m.enc_ln) + (_n(m.mem_proj) if m.mem_proj is not None else 0)
    dec = _n(m.dec_blocks) + _n(m.dec_ln)
    emb = _n(m.src_wte) + _n(m.src_wpe) + _n(m.tgt_wte) + _n(m.tgt_wpe) + _n(m.head)
    assert (c.enc_nonemb, c.dec_nonemb, c.embedding) == (enc, dec, emb)
    assert c.nonemb == enc + dec and c.total == c.nonemb + c.embedding


def test_counts_hand_computed():
    # d=8, d_ff=32, 1 enc + 1 dec layer, V=10, S=T=4, shared widths.
    cfg = EncDecConfig(vocab_size=10, d_model=8, enc_layers=1, dec_layers=1, n_heads=2, max_src_len=4, max_tgt_len=4)
    enc_block = 4 * 64 + 2 * 8 * 32 + 4 * 8 + (3 * 8 + 8 + 32 + 8)  # matmuls, 2 LN, biases
    dec_block = enc_block + 4 * 64 + 2 * 8 + 4 * 8  # + cross q/kv/proj, ln_x, cross biases
    c = count_params_encdec(cfg)
    assert c.enc_nonemb == enc_block + 16
    assert c.dec_nonemb == dec_block + 16
    assert c.embedding == 10 * 8 + 4 * 8 + 10 * 8 + 4 * 8 + 10 * 8


@pytest.mark.parametrize("shape", SHAPES)
def test_flops_match_flop_counter(shape):
    cfg = EncDecConfig(**shape)
    m = EncoderDecoder(cfg)
    B, S, T = 2, 7, 5
    src = torch.randint(1, cfg.src_vocab_size, (B, S))  # no padding: every key is attended
    tgt = torch.randint(0, cfg.tgt_vocab_size, (B, T))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        logits = m.logits(src, tgt)
        F.cross_entropy(logits.reshape(-1, cfg.tgt_vocab_size), tgt.reshape(-1)).backward()
    assert counter.get_total_flops() == B * 3 * forward_flops_encdec(cfg, S, T)
    assert flops_per_token_encdec(cfg, S, T) * T == 3 * forward_flops_encdec(cfg, S, T)


def test_forward_flops_hand_computed():
    cfg = EncDecConfig(vocab_size=10, d_model=8, enc_layers=1, dec_layers=1, n_heads=2, max_src_len=4, max_tgt_len=4)
    S, T = 3, 2
    enc = S * (2 * (4 * 64 + 2 * 8 * 32) + 2 * 2 * 64 + 4 * 8 * S)
    dec = T * (2 * (4 * 64 + 2 * 8 * 32 + 2 * 64 + 10 * 8) + 4 * 8 * (T + S))
    assert forward_flops_encdec(cfg, S, T) == enc + dec


def test_source_padding_is_masked():
    torch.manual_seed(0)
    m = EncoderDecoder(tiny()).eval()
    src = torch.tensor([[5, 6, 7, 0, 0]])
    tgt = torch.tensor([[1, 4, 9]])
    h = m(src, tgt)
    # Extra trailing padding changes nothing; a real source token does.
    torch.testing.assert_close(m(torch.tensor([[5, 6, 7, 0, 0, 0, 0]]), tgt), h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(m(torch.tensor([[5, 6, 7]]), tgt), h, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(m(torch.tensor([[5, 6, 8, 0, 0]]), tgt), h)


def test_decoder_is_causal():
    torch.manual_seed(0)
    m = EncoderDecoder(tiny()).eval()
    src = torch.randint(1, 31, (2, 6))
    tgt = torch.randint(0, 31, (2, 8))
    h = m(src, tgt)
    tgt2 = tgt.clone()
    tgt2[:, 5:] = (tgt2[:, 5:] + 1) % 31
    h2 = m(src, tgt2)
    torch.testing.assert_close(h2[:, :5], h[:, :5])
    assert not torch.allclose(h2[:, 5:], h[:, 5:])


def test_loss_equals_reference_cross_entropy_with_ignore():
    torch.manual_seed(0)
    m = EncoderDecoder(tiny(enc_d_model=8, enc_n_heads=2))
    src = torch.randint(1, 31, (3, 6))
    tgt_in = torch.randint(0, 31, (3, 5))
    tgt_out = torch.randint(0, 31, (3, 5))
    tgt_out[0, 3:] = -100
    ref = F.cross_entropy(m.logits(src, tgt_in).reshape(-1, 31), tgt_out.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(m.loss(src, tgt_in, tgt_out), ref, atol=1e-5, rtol=1e-5)


def test_learns_copy_task():
    torch.manual_seed(0)
    m = EncoderDecoder(tiny(d_model=32, enc_layers=1, dec_layers=1))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(150):
        x = torch.randint(3, 13, (32, 5))
        tgt_in = torch.cat([torch.ones(32, 1, dtype=torch.long), x[:, :-1]], 1)
        loss = m.loss(x, tgt_in, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1  # copying is deterministic: Bayes loss 0


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(vocab_size=None), "src_vocab_size"),
        (dict(d_model=18), "d_model"),
        (dict(enc_d_model=10, enc_n_heads=4), "enc_d_model"),
        (dict(enc_layers=0), "enc_layers"),
        (dict(dec_layers=1.5), "dec_layers"),
        (dict(d_ff=-1), "d_ff"),
        (dict(pad_id=31), "pad_id"),
        (dict(dropout=1.0), "dropout"),
        (dict(max_src_len=True), "max_src_len"),
    ],
)
def test_validation_names_field(kw, field):
    with pytest.raises(SpecError, match=f"`{field}`"):
        tiny(**kw)


def test_too_long_inputs_raise():
    m = EncoderDecoder(tiny())
    with pytest.raises(SpecError, match="max_src_len"):
        m(torch.ones(1, 13, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(SpecError, match="max_tgt_len"):
        m(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 11, dtype=torch.long))


def test_defaults_resolved():
    cfg = tiny(src_vocab_size=20)
    assert (cfg.src_vocab_size, cfg.tgt_vocab_size, cfg.enc_d_model, cfg.d_ff, cfg.enc_d_ff) == (20, 31, 16, 64, 64)
    assert EncDecConfig(**cfg.to_dict()) == cfg


def test_memory_projection_keeps_unit_scale():
    """A wider encoder's normalised memory reaches cross-attention at unit scale, as with equal widths."""
    import torch

    from scaling.model.encdec import EncDecConfig, EncoderDecoder

    torch.manual_seed(0)
    model = EncoderDecoder(EncDecConfig(vocab_size=32, d_model=16, n_heads=2, enc_d_model=64, enc_n_heads=4,
                                        enc_layers=1, dec_layers=1, max_src_len=12, max_tgt_len=12))
    src = torch.randint(3, 32, (64, 12))
    with torch.no_grad():
        memory, _ = model.encode(src)
    assert 0.7 < float(memory.std()) < 1.3


def test_train_flops_exclude_padding_hand_count():
    # The tiny config of test_forward_flops_hand_computed; two pairs padded to S=5, T=4.
    cfg = EncDecConfig(vocab_size=10, d_model=8, enc_layers=1, dec_layers=1, n_heads=2, max_src_len=5, max_tgt_len=4)
    src = torch.tensor([[5, 6, 7, 0, 0], [4, 0, 0, 0, 0]])
    tgt_out = torch.tensor([[1, 2, -100, -100], [3, 4, 5, 6]])
    s, t = real_lengths(src, tgt_out, cfg.pad_id)
    assert s.tolist() == [3, 1] and t.tolist() == [2, 4]

    def hand(S, T):  # forward FLOPs of one unpadded pair, term by term
        enc = S * (2 * (4 * 64 + 2 * 8 * 32) + 2 * 2 * 64 + 4 * 8 * S)
        dec = T * (2 * (4 * 64 + 2 * 8 * 32 + 2 * 64 + 10 * 8) + 4 * 8 * (T + S))
        return enc + dec

    assert train_flops_encdec(cfg, s, t) == 3 * (hand(3, 2) + hand(1, 4))
    # ...which is less than the padded batch costs: the padding is not counted
    assert train_flops_encdec(cfg, s, t) < 2 * 3 * forward_flops_encdec(cfg, 5, 4)


def test_train_flops_match_flop_counter_on_unpadded_pairs():
    cfg = EncDecConfig(**SHAPES[1])
    m = EncoderDecoder(cfg)
    total = 0
    for S, T in ((7, 3), (2, 5)):
        src = torch.randint(1, cfg.src_vocab_size, (1, S))
        tgt = torch.randint(0, cfg.tgt_vocab_size, (1, T))
        counter = FlopCounterMode(display=False)
        with sdpa_kernel(SDPBackend.MATH), counter:
            logits = m.logits(src, tgt)
            F.cross_entropy(logits.reshape(-1, cfg.tgt_vocab_size), tgt.reshape(-1)).backward()
        total += counter.get_total_flops()
    assert train_flops_encdec(cfg, [7, 2], [3, 5]) == total


def test_loss_fallback_warns_once(monkeypatch):
    import builtins

    import scaling.model.encdec as encdec

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "scaling.kernels":
            raise ImportError("simulated: no kernels")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    monkeypatch.setattr(encdec, "_warned_fallback", False)
    torch.manual_seed(0)
    m = EncoderDecoder(tiny())
    src, tgt = torch.randint(1, 31, (2, 6)), torch.randint(0, 31, (2, 5))
    with pytest.warns(RuntimeWarning, match=r"scaling.kernels failed to import \(simulated: no kernels\).*materialises"):
        fallback = m.loss(src, tgt, tgt)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call must not warn again
        m.loss(src, tgt, tgt)
    monkeypatch.setattr(builtins, "__import__", real_import)
    torch.testing.assert_close(fallback, m.loss(src, tgt, tgt))
