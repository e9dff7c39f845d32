"""Decoder-only language model (GPT-2 style, pre-norm) with exact parameter and FLOP counts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from scaling.errors import SpecError
from scaling.kernels import linear_cross_entropy
from scaling.model.common import Block, ParamCounts, block_matmul_params, block_params, init_weights


@dataclass
class DecoderConfig:
    """Shape of a decoder-only LM."""

    vocab_size: int
    """Number of token ids."""
    d_model: int
    """Residual stream width."""
    n_layers: int
    """Number of transformer blocks."""
    n_heads: int
    """Attention heads; must divide `d_model`."""
    d_ff: int | None = None
    """MLP hidden width; None means 4 * d_model."""
    max_seq_len: int = 256
    """Rows of the learned position embedding: the longest sequence the model accepts."""
    tie_embeddings: bool = False
    """Share the token embedding with the output head."""
    dropout: float = 0.0
    """Dropout on attention weights and residual branches."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"`{name}` must be a positive integer, got {v!r}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        elif isinstance(self.d_ff, bool) or not isinstance(self.d_ff, int) or self.d_ff < 1:
            raise SpecError(f"`d_ff` must be a positive integer or None, got {self.d_ff!r}")
        if self.d_model % self.n_heads != 0:
            raise SpecError(
                f"`d_model` ({self.d_model}) must be divisible by `n_heads` ({self.n_heads})"
            )
        if not isinstance(self.tie_embeddings, bool):
            raise SpecError(f"`tie_embeddings` must be true or false, got {self.tie_embeddings!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise SpecError(f"`dropout` must be a number in [0, 1), got {self.dropout!r}")


def decoder_config_from_rule(
    vocab_size: int,
    n_layers: int,
    *,
    aspect_ratio: int = 64,
    head_dim: int = 64,
    **kwargs,
) -> DecoderConfig:
    """Width from depth: d_model = aspect_ratio * n_layers rounded to a multiple of
    `head_dim` (at least one head); n_heads = d_model / head_dim. Other DecoderConfig
    fields (d_ff, max_seq_len, ...) pass through `kwargs`."""
    for name, v in (("n_layers", n_layers), ("aspect_ratio", aspect_ratio), ("head_dim", head_dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"`{name}` must be a positive integer, got {v!r}")
    n_heads = max(1, round(aspect_ratio * n_layers / head_dim))
    return DecoderConfig(
        vocab_size=vocab_size, d_model=n_heads * head_dim, n_layers=n_layers, n_heads=n_heads, **kwargs
    )


class DecoderLM(nn.Module):
    """Causal LM. `forward` returns final-normed hidden states; the caller applies the head
    through `scaling.kernels.linear_cross_entropy` so (B·T, V) logits are never stored."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.wte = nn.Embedding(cfg.vocab_size, d)
        self.wpe = nn.Embedding(cfg.max_seq_len, d)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            Block(d, cfg.n_heads, cfg.d_ff, causal=True, dropout=cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        init_weights(self, n_residual=2 * cfg.n_layers)
        if cfg.tie_embeddings:
            self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, D) hidden states after the final LayerNorm."""
        T = idx.shape[1]
        if T > self.cfg.max_seq_len:
            raise SpecError(
                f"sequence length {T} exceeds `max_seq_len` ({self.cfg.max_seq_len}); raise `max_seq_len`"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, D)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        """Mean next-token cross-entropy (targets of -100 are ignored)."""
        hidden = self(idx)
        D = hidden.shape[-1]
        return linear_cross_entropy(hidden.reshape(-1, D), self.head.weight, targets.reshape(-1), impl=impl)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, V) logits; for generation and tests, not training."""
        return self.head(self(idx))


def count_params(cfg: DecoderConfig) -> ParamCounts:
    """Exact counts for `DecoderLM(cfg)`; `total` equals sum(p.numel()) over its parameters."""
    d, V = cfg.d_model, cfg.vocab_size
    nonemb = cfg.n_layers * block_params(d, cfg.d_ff) + 2 * d  # blocks + final LayerNorm
    embedding = V * d + cfg.max_seq_len * d + (0 if cfg.tie_embeddings else V * d)
    return ParamCounts(total=nonemb + embedding, nonemb=nonemb, embedding=embedding)


def matmul_params(cfg: DecoderConfig) -> int:
    """Weights that enter a matmul per token: every block's projections plus the head."""
    return cfg.n_layers * block_matmul_params(cfg.d_model, cfg.d_ff) + cfg.vocab_size * cfg.d_model


def forward_flops_per_token(cfg: DecoderConfig, seq_len: int) -> float:
    """Forward FLOPs per token: 2·(matmul params incl. head) + 4·n_layers·d_model·seq_len.

    The attention term (QKᵀ and AV) counts the full T×T score matrix, not the causal half,
    as nanoGPT and PaLM (Chowdhery et al. 2022, app. B) do and as the math kernel performs it.
    Kaplan et al. (2020, table 1) count half of it (2·n_layer·n_ctx·d_attn); a causal flash
    kernel also performs about half.
    Embedding lookups, biases, norms, GELU and softmax are not counted."""
    return float(2 * matmul_params(cfg) + 4 * cfg.n_layers * cfg.d_model * seq_len)


def flops_per_token(cfg: DecoderConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 3 × forward):
    6·(matmul params incl. head) + 12·n_layers·d_model·seq_len, attention counted in full
    (see `forward_flops_per_token`)."""
    return 3.0 * forward_flops_per_token(cfg, seq_len)


__all__ = [
    "DecoderConfig",
    "DecoderLM",
    "ParamCounts",
    "count_params",
    "decoder_config_from_rule",
    "flops_per_token",
    "forward_flops_per_token",
    "matmul_params",
]
