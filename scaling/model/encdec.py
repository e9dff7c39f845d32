"""Encoder-decoder transformer (pre-norm, learned positions) with exact parameter and FLOP counts.

Encoder and decoder depths and widths are set independently, as in Ghorbani et al. (2021):
when the encoder is narrower or wider than the decoder, its final-normed output (the
"memory") goes through one bias-free projection to the decoder width.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.errors import SpecError
from scaling.model.common import Block, block_matmul_params, block_params, init_weights


@dataclass(kw_only=True)
class EncDecConfig:
    """Shape of an encoder-decoder. Give `vocab_size` (shared) or both side-specific sizes."""

    vocab_size: int | None = None
    """Shared source/target vocabulary size (fills `src_vocab_size`/`tgt_vocab_size`)."""
    src_vocab_size: int | None = None
    """Source vocabulary size; defaults to `vocab_size`."""
    tgt_vocab_size: int | None = None
    """Target vocabulary size (rows of the head); defaults to `vocab_size`."""
    d_model: int = 64
    """Decoder residual width."""
    enc_layers: int = 2
    """Encoder blocks."""
    dec_layers: int = 2
    """Decoder blocks (each with self- and cross-attention)."""
    n_heads: int = 4
    """Decoder attention heads; must divide `d_model`."""
    d_ff: int | None = None
    """Decoder MLP width; None means 4 * d_model."""
    enc_d_model: int | None = None
    """Encoder width; None means `d_model`."""
    enc_n_heads: int | None = None
    """Encoder heads; None means `n_heads`. Widen an encoder with its heads, not its head size:
    with the head count fixed, a wider encoder learnt worse (see `EncoderDecoder.lr_scales`)."""
    enc_d_ff: int | None = None
    """Encoder MLP width; None means 4 * enc_d_model."""
    max_src_len: int = 64
    """Rows of the source position embedding."""
    max_tgt_len: int = 64
    """Rows of the target position embedding."""
    pad_id: int = 0
    """Source token id treated as padding (masked out of attention)."""
    dropout: float = 0.0
    """Dropout on attention weights and residual branches."""
    enc_lr_width: int | None = None
    """If set, the encoder's hidden matrices (the weight matrices of its blocks, and the memory
    projection: every matrix whose fan-in is the encoder width) train at
    lr · min(1, enc_lr_width / enc_d_model), Adam's 1/width rule (muP) for a wide encoder; its
    embeddings, norms and biases keep lr (see `EncoderDecoder.lr_scales`). None keeps one
    learning rate for the whole model."""

    def __post_init__(self) -> None:
        if self.vocab_size is not None:
            _check_int("vocab_size", self.vocab_size)
            self.src_vocab_size = self.src_vocab_size if self.src_vocab_size is not None else self.vocab_size
            self.tgt_vocab_size = self.tgt_vocab_size if self.tgt_vocab_size is not None else self.vocab_size
        for name in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(self, name) is None:
                raise SpecError(f"`{name}` is missing: give `vocab_size` (shared) or `{name}`")
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "enc_layers", "dec_layers", "n_heads",
                     "max_src_len", "max_tgt_len"):
            _check_int(name, getattr(self, name))
        if self.enc_d_model is None:
            self.enc_d_model = self.d_model
        if self.enc_n_heads is None:
            self.enc_n_heads = self.n_heads
        _check_int("enc_d_model", self.enc_d_model)
        _check_int("enc_n_heads", self.enc_n_heads)
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.enc_d_ff is None:
            self.enc_d_ff = 4 * self.enc_d_model
        _check_int("d_ff", self.d_ff)
        _check_int("enc_d_ff", self.enc_d_ff)
        for width, heads in (("d_model", "n_heads"), ("enc_d_model", "enc_n_heads")):
            if getattr(self, width) % getattr(self, heads) != 0:
                raise SpecError(
                    f"`{width}` ({getattr(self, width)}) must be divisible by `{heads}` ({getattr(self, heads)})"
                )
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or not (
            0 <= self.pad_id < self.src_vocab_size
        ):
            raise SpecError(f"`pad_id` must be an integer in [0, src_vocab_size), got {self.pad_id!r}")
        if self.enc_lr_width is not None:
            _check_int("enc_lr_width", self.enc_lr_width)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise SpecError(f"`dropout` must be a number in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _check_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SpecError(f"`{name}` must be a positive integer, got {v!r}")


@dataclass(frozen=True)
class EncDecCounts:
    """Exact parameter counts. `nonemb = enc_nonemb + dec_nonemb`; `total = nonemb + embedding`.

    enc_nonemb: encoder blocks + encoder final LayerNorm (+ memory projection when widths differ).
    dec_nonemb: decoder blocks including cross-attention + decoder final LayerNorm.
    embedding: source/target token and position embeddings and the output head.
    """

    total: int
    nonemb: int
    enc_nonemb: int
    dec_nonemb: int
    embedding: int


class EncoderDecoder(nn.Module):
    """`forward(src, tgt_in)` returns final-normed decoder states; the caller applies `head`
    through `scaling.kernels.linear_cross_entropy` (see `loss`)."""

    def __init__(self, cfg: EncDecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        de, dd = cfg.enc_d_model, cfg.d_model
        self.src_wte = nn.Embedding(cfg.src_vocab_size, de)
        self.src_wpe = nn.Embedding(cfg.max_src_len, de)
        self.enc_blocks = nn.ModuleList(
            Block(de, cfg.enc_n_heads, cfg.enc_d_ff, dropout=cfg.dropout) for _ in range(cfg.enc_layers)
        )
        self.enc_ln = nn.LayerNorm(de)
        self.mem_proj = nn.Linear(de, dd, bias=False) if de != dd else None
        self.tgt_wte = nn.Embedding(cfg.tgt_vocab_size, dd)
        self.tgt_wpe = nn.Embedding(cfg.max_tgt_len, dd)
        self.dec_blocks = nn.ModuleList(
            Block(dd, cfg.n_heads, cfg.d_ff, causal=True, cross=True, dropout=cfg.dropout)
            for _ in range(cfg.dec_layers)
        )
        self.dec_ln = nn.LayerNorm(dd)
        self.head = nn.Linear(dd, cfg.tgt_vocab_size, bias=False)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        # GPT-2 depth scaling per stack: 3 residual branches per decoder block, 2 per encoder block.
        init_weights(self, n_residual=3 * cfg.dec_layers)
        init_weights(self.enc_blocks, n_residual=2 * cfg.enc_layers)
        if self.mem_proj is not None:
            # Keep the normalised memory at unit scale: with std 0.02 it reached cross-attention at
            # ~0.02·sqrt(d_enc) of that, and wider-encoder runs learnt measurably worse
            # (enc 48 / dec 64: 0.551 vs 0.435 with this init, 2,500 steps).
            nn.init.normal_(self.mem_proj.weight, std=1.0 / math.sqrt(de))

    def lr_scales(self) -> list[tuple[list[nn.Parameter], float]]:
        """Parameter groups with their learning-rate multipliers (the trainer's optimizer reads this).

        Adam moves every weight by ~lr per step, so a matrix's output moves by ~fan_in x lr: too
        fast at encoder width 64 for the rate tuned at width 16. Only matrices with the encoder
        width as fan-in scale (muP); embeddings, norms and biases move each output by ~lr at any
        width. Measured (agreement-marker transduction, decoder 64, 2,500 steps of 128 pairs,
        AdamW 1e-2, enc_lr_width 16): encoder 48 / 64 reached 0.333 / 0.351 with the whole
        encoder (embeddings and norms too) scaled, and 0.321 / 0.311 with only its matrices
        scaled; with one learning rate a wider encoder trained worse than a narrow one.

        The learning rate was one cause; the head count is the other. At decoder 16 (runs/encdec-
        synthetic.toml's trainer, seeds 0 / 1, 2026-12-06), with 2 encoder heads at every width
        encoders 16 / 32 / 48 / 64 reached 0.796 / 0.791, 0.829 / 0.825, 0.749 / 0.751, 0.758 / 0.678:
        32 worse than 16. With the head size fixed at 4 (4, 8, 12, 16 heads) every encoder wider
        than 16 learns more than 16 does: 0.768 / 0.778, 0.742 / 0.723, 0.707 / 0.677, 0.731 / 0.668
        (48 and 64 tie within the seed noise). Our reading: the encoder's job (the class of a
        neighbouring source word) is a positional lookup, and more heads make more lookups. With
        one learning rate 64 / 16 reached 0.949 (an earlier task: 1.05 against 0.97 for 16 / 16)."""
        cfg = self.cfg
        scale = 1.0 if cfg.enc_lr_width is None else min(1.0, cfg.enc_lr_width / cfg.enc_d_model)
        hidden = [p for n, p in self.named_parameters()
                  if (n.startswith("enc_blocks.") and p.dim() == 2) or n.startswith("mem_proj.")]
        ids = {id(p) for p in hidden}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [(hidden, scale), (rest, 1.0)] if scale != 1.0 else [(hidden + rest, 1.0)]

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) source ids -> memory (B, S, d_model) and its padding mask (B, S), True = pad."""
        S = src.shape[1]
        if S > self.cfg.max_src_len:
            raise SpecError(f"source length {S} exceeds `max_src_len` ({self.cfg.max_src_len})")
        pad = src == self.cfg.pad_id  # (B, S)
        x = self.drop(self.src_wte(src) + self.src_wpe(torch.arange(S, device=src.device)))  # (B, S, De)
        for block in self.enc_blocks:
            x = block(x, self_padding_mask=pad)
        x = self.enc_ln(x)
        if self.mem_proj is not None:
            x = self.mem_proj(x)  # (B, S, D)
        return x, pad

    def decode(self, memory: torch.Tensor, memory_pad: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Decoder states (B, T, d_model) for teacher-forced inputs `tgt_in` (B, T)."""
        T = tgt_in.shape[1]
        if T > self.cfg.max_tgt_len:
            raise SpecError(f"target length {T} exceeds `max_tgt_len` ({self.cfg.max_tgt_len})")
        # Causal self-attention needs no padding mask: padding only follows EOS and is ignored.
        y = self.drop(self.tgt_wte(tgt_in) + self.tgt_wpe(torch.arange(T, device=tgt_in.device)))
        for block in self.dec_blocks:
            y = block(y, memory, memory_padding_mask=memory_pad)
        return self.dec_ln(y)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """(B, S) source, (B, T) target inputs -> (B, T, d_model) hidden states."""
        memory, pad = self.encode(src)
        return self.decode(memory, pad, tgt_in)

    def loss(self, src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        """Mean per-target-token cross-entropy; targets of -100 are ignored."""
        hidden = self(src, tgt_in)
        D = hidden.shape[-1]
        return _linear_cross_entropy(hidden.reshape(-1, D), self.head.weight, tgt_out.reshape(-1), impl)

    def logits(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """(B, T, V) logits; for decoding and tests, not training."""
        return self.head(self(src, tgt_in))


_warned_fallback = False


def _linear_cross_entropy(hidden, weight, targets, impl: str) -> torch.Tensor:
    global _warned_fallback
    try:
        from scaling.kernels import linear_cross_entropy
    except ImportError as e:  # the same maths with the logits materialised: say so, once per process
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(f"scaling.kernels failed to import ({e}); the encoder-decoder loss materialises the full "
                          f"(tokens x vocab) logits instead of the memory-lean kernel. Fix that import to get it back.",
                          RuntimeWarning, stacklevel=3)
        return F.cross_entropy(hidden @ weight.T, targets, ignore_index=-100)
    return linear_cross_entropy(hidden, weight, targets, ignore_index=-100, impl=impl)


def count_params_encdec(cfg: EncDecConfig) -> EncDecCounts:
    """Exact counts for `EncoderDecoder(cfg)`; `total` equals sum(p.numel()) over its parameters."""
    de, dd = cfg.enc_d_model, cfg.d_model
    enc = cfg.enc_layers * block_params(de, cfg.enc_d_ff) + 2 * de + (de * dd if de != dd else 0)
    dec = cfg.dec_layers * block_params(dd, cfg.d_ff, cross=True) + 2 * dd
    emb = (cfg.src_vocab_size + cfg.max_src_len) * de + (2 * cfg.tgt_vocab_size + cfg.max_tgt_len) * dd
    return EncDecCounts(total=enc + dec + emb, nonemb=enc + dec, enc_nonemb=enc, dec_nonemb=dec, embedding=emb)


def forward_flops_encdec(cfg: EncDecConfig, src_len: int, tgt_len: int) -> float:
    """Forward FLOPs of one (source, target) pair of these lengths.

    2 FLOPs per multiply-add of every matmul: encoder blocks and memory projection per source
    token, cross-attention key/value projections per source token (once per pair), the rest of
    each decoder block and the head per target token; attention scores and weighted sums count
    4·d per (query, key) pair per layer over the full (not causal-half) score matrix.
    Embedding lookups, biases, norms, GELU and softmax are not counted."""
    de, dd, S, T = cfg.enc_d_model, cfg.d_model, src_len, tgt_len
    enc_mm = cfg.enc_layers * block_matmul_params(de, cfg.enc_d_ff) + (de * dd if de != dd else 0)
    cross_kv = cfg.dec_layers * 2 * dd * dd
    dec_mm = cfg.dec_layers * (block_matmul_params(dd, cfg.d_ff, cross=True) - 2 * dd * dd)
    per_src = 2 * (enc_mm + cross_kv) + 4 * cfg.enc_layers * de * S
    per_tgt = 2 * (dec_mm + cfg.tgt_vocab_size * dd) + 4 * cfg.dec_layers * dd * (T + S)
    return float(S * per_src + T * per_tgt)


def real_lengths(src: torch.Tensor, tgt_out: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair counts of real (not padding) source tokens and target tokens: (B,), (B,).

    Source padding is `pad_id`; target padding is -100 in `tgt_out` (the positions the loss skips)."""
    return (src != pad_id).sum(-1), (tgt_out != -100).sum(-1)


def train_flops_encdec(cfg: EncDecConfig, src_lens, tgt_lens) -> float:
    """Training FLOPs (3 × forward) of pairs with these real lengths, padding excluded:
    3 · Σ forward_flops_encdec(cfg, s_i, t_i). Lengths are integer arrays or tensors."""
    S = np.asarray(src_lens, dtype=np.int64)
    T = np.asarray(tgt_lens, dtype=np.int64)
    de, dd = cfg.enc_d_model, cfg.d_model
    enc_mm = cfg.enc_layers * block_matmul_params(de, cfg.enc_d_ff) + (de * dd if de != dd else 0)
    cross_kv = cfg.dec_layers * 2 * dd * dd
    dec_mm = cfg.dec_layers * (block_matmul_params(dd, cfg.d_ff, cross=True) - 2 * dd * dd)
    # the same terms as forward_flops_encdec, summed over pairs in exact integer arithmetic
    fwd = (S * (2 * (enc_mm + cross_kv)) + 4 * cfg.enc_layers * de * S * S
           + T * (2 * (dec_mm + cfg.tgt_vocab_size * dd)) + 4 * cfg.dec_layers * dd * T * (T + S))
    return float(3 * int(fwd.sum()))


def flops_per_token_encdec(cfg: EncDecConfig, src_len: int, tgt_len: int) -> float:
    """Training FLOPs (forward + backward = 3 × forward) per target token, the encoder's share
    of each pair included: 3 · forward_flops_encdec(cfg, src_len, tgt_len) / tgt_len."""
    return 3.0 * forward_flops_encdec(cfg, src_len, tgt_len) / tgt_len


__all__ = [
    "EncDecConfig",
    "EncDecCounts",
    "EncoderDecoder",
    "count_params_encdec",
    "flops_per_token_encdec",
    "forward_flops_encdec",
    "real_lengths",
    "train_flops_encdec",
]
