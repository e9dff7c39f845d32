"""Model families: decoder-only LM, encoder-decoder, and the transformer layers they share."""

from scaling.model.common import MLP, Attention, Block, ParamCounts, block_matmul_params, block_params, init_weights
from scaling.model.decoder import (
    DecoderConfig,
    DecoderLM,
    count_params,
    decoder_config_from_rule,
    flops_per_token,
    forward_flops_per_token,
    matmul_params,
)
from scaling.model.encdec import (
    EncDecConfig,
    EncDecCounts,
    EncoderDecoder,
    count_params_encdec,
    flops_per_token_encdec,
    forward_flops_encdec,
)

__all__ = [
    "MLP",
    "Attention",
    "Block",
    "DecoderConfig",
    "DecoderLM",
    "EncDecConfig",
    "EncDecCounts",
    "EncoderDecoder",
    "ParamCounts",
    "block_matmul_params",
    "block_params",
    "count_params",
    "count_params_encdec",
    "decoder_config_from_rule",
    "flops_per_token",
    "flops_per_token_encdec",
    "forward_flops_encdec",
    "forward_flops_per_token",
    "init_weights",
    "matmul_params",
]
