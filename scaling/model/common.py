"""Transformer building blocks shared by the decoder-only and encoder-decoder models.

Shapes in comments: B batch, T query length, S key length, D d_model, H heads, K head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ParamCounts:
    """Exact parameter counts of a model.

    `nonemb` is Kaplan et al.'s N: everything except token and position embeddings and the
    output head. `embedding` is those three (the head only when untied), so
    `total == nonemb + embedding`.
    """

    total: int
    nonemb: int
    embedding: int


def key_padding_to_attn_mask(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """(B, S) bool, True = padding (torch convention) -> (B, 1, 1, S) bool, True = attend."""
    if key_padding_mask.dtype != torch.bool:
        raise TypeError(f"key_padding_mask must be bool, got {key_padding_mask.dtype}")
    return ~key_padding_mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention through `F.scaled_dot_product_attention`.

    Three uses:
      * causal self-attention: `Attention(D, H, causal=True)(x)`
      * bidirectional self-attention with padding: `Attention(D, H)(x, key_padding_mask=pad)`
      * cross-attention: `Attention(D, H, cross=True)(x, memory, key_padding_mask=mem_pad)`
    Self-attention uses one fused (D, 3D) projection; cross-attention a (D, D) query and a
    fused (D, 2D) key/value projection. `key_padding_mask` is (B, S) bool, True = padding.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        causal: bool = False,
        cross: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if causal and cross:
            raise ValueError("cross-attention cannot be causal")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.causal, self.cross, self.dropout = causal, cross, dropout
        if cross:
            self.q = nn.Linear(d_model, d_model, bias=bias)
            self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.proj.is_residual_proj = True  # read by init_weights (GPT-2 depth scaling)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, D = x.shape
        H, K = self.n_heads, self.head_dim
        # One fused matmul, then strided views: SDPA accepts non-contiguous q/k/v. Splitting on
        # the feature dim (not unbind of a permuted 5-D view) makes the backward a single cat.
        if self.cross:
            if memory is None:
                raise ValueError("cross-attention needs `memory`")
            S = memory.shape[1]
            q = self.q(x).view(B, T, H, K).transpose(1, 2)  # (B, H, T, K)
            k, v = (t.view(B, S, H, K).transpose(1, 2) for t in self.kv(memory).split(D, dim=-1))
        else:
            q, k, v = (t.view(B, T, H, K).transpose(1, 2) for t in self.qkv(x).split(D, dim=-1))
        mask = None
        is_causal = self.causal
        if key_padding_mask is not None:
            mask = key_padding_to_attn_mask(key_padding_mask)  # (B, 1, 1, S)
            if self.causal:  # SDPA cannot take is_causal and a mask together
                causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
                mask = mask & causal
                is_causal = False
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.proj(y)


class MLP(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, d_model: int, d_ff: int, *, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.proj.is_residual_proj = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP.

    `Block(D, H, d_ff, causal=True)` is a GPT block; `Block(D, H, d_ff)` an encoder block;
    `Block(D, H, d_ff, causal=True, cross=True)` a decoder block of an encoder-decoder.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        causal: bool = False,
        cross: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, causal=causal, dropout=dropout, bias=bias)
        if cross:
            self.ln_x = nn.LayerNorm(d_model)
            self.xattn = Attention(d_model, n_heads, cross=True, dropout=dropout, bias=bias)
        else:
            self.ln_x = self.xattn = None
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_ff, bias=bias)
        # nn.Dropout(0) still costs a kernel call per use; skip it entirely when off.
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_padding_mask: torch.Tensor | None = None,
        memory_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), key_padding_mask=self_padding_mask))
        if self.xattn is not None:
            x = x + self.drop(self.xattn(self.ln_x(x), memory, key_padding_mask=memory_padding_mask))
        return x + self.drop(self.mlp(self.ln_2(x)))


def init_weights(model: nn.Module, n_residual: int, std: float = 0.02) -> None:
    """GPT-2 init: weights ~ N(0, std), biases 0, LayerNorm (1, 0); residual output
    projections get std / sqrt(n_residual), where n_residual is the number of residual
    additions in the stack (2 per decoder-only layer)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            s = std / math.sqrt(n_residual) if getattr(m, "is_residual_proj", False) else std
            nn.init.normal_(m.weight, mean=0.0, std=s)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def block_matmul_params(d_model: int, d_ff: int, cross: bool = False) -> int:
    """Weights of a Block that enter matmuls (no biases, no norms): 4D² + 2·D·d_ff (+4D² cross)."""
    n = 4 * d_model * d_model + 2 * d_model * d_ff
    return n + (4 * d_model * d_model if cross else 0)


def block_params(d_model: int, d_ff: int, cross: bool = False, bias: bool = True) -> int:
    """All parameters of a Block (biases and LayerNorms included)."""
    n = block_matmul_params(d_model, d_ff, cross) + 2 * 2 * d_model  # ln_1, ln_2
    if bias:
        n += 3 * d_model + d_model + d_ff + d_model  # qkv, proj, fc, mlp proj
    if cross:
        n += 2 * d_model + (4 * d_model if bias else 0)  # ln_x; q, kv, proj biases
    return n


__all__ = [
    "MLP",
    "Attention",
    "Block",
    "ParamCounts",
    "block_matmul_params",
    "block_params",
    "init_weights",
    "key_padding_to_attn_mask",
]
