"""The store's column names, in one place.

`runs.parquet` has one row per run: the run's identity and config (flattened as `model.*`,
`train.*`, `data.*`, `extra.*`), its parameter and compute counts, its final losses and its
timing. `curves.parquet` has one row per run x evaluation step x eval set. Families, laws and
reports refer to columns through these names, so renaming one is a change in one file.

Compute convention (see `COMPUTE_CONVENTION`): `flops` is the exact training FLOP count of the
model as built (attention, output head and all, forward + backward); `c_6nd` is 6 * N * D with
N = `n_params_nonemb` and D = `tokens`, the approximation the laws are written in.
"""

from __future__ import annotations

# identity
RUN_ID = "run_id"
LABEL = "label"
SEED = "seed"
PARENT = "parent"
STATUS = "status"
STEPS = "steps"

# parameter counts
N_PARAMS = "n_params"
N_PARAMS_NONEMB = "n_params_nonemb"
N_PARAMS_ENC = "n_params_enc"
N_PARAMS_DEC = "n_params_dec"
FLOPS_PER_TOKEN = "flops_per_token"

# data and compute
TOKENS = "tokens"
"""Training tokens the loss was computed on (for encoder-decoder runs: real target tokens, no padding)."""
FLOPS = "flops"
"""Exact training FLOPs (forward + backward, every matmul including the output head)."""
C_6ND = "c_6nd"
"""6 * n_params_nonemb * tokens: the compute the laws and the frontier use."""
BUDGET_FLOPS = "train.flops"
"""The compute budget C an IsoFLOP run was sized from ([train] `flops`); empty for other budgets."""

# results and timing
LOSS = "loss"
BAYES_LOSS = "bayes_loss"
TRAIN_LOSS = "train_loss"
WALL_TIME = "wall_time"
TOKENS_PER_S = "tokens_per_s"

# per-eval-set column prefixes: f"{LOSS_PREFIX}{eval_column(name)}"
LOSS_PREFIX = "loss_"
BAYES_PREFIX = "bayes_"
BLEU_PREFIX = "bleu_"
EXTRA_PREFIX = "extra."

# curves.parquet
STEP = "step"
EVAL_SET = "eval_set"
CURVE_COLUMNS = [RUN_ID, STEP, TOKENS, FLOPS, EVAL_SET, LOSS]

# data selection (family `select`): runs.parquet columns and the study's selection tables
SELECT_METHOD = "select_method"
"""The selection variant's method name ([select.methods] key); the baseline's is [select] `baseline`."""
SELECT_KEEP = "select_keep"
"""Share of the pool's tokens kept (1 for the unfiltered baseline)."""
SELECT_VARIANT = "select_variant"
"""Method and keep share in one label (e.g. `oracle@0.5`), the variant column of the select law."""
KEPT_TOKENS = "kept_tokens"
"""Tokens in the selection, repeated documents counted every time (the training stream's size)."""
UNIQUE_TOKENS = "unique_tokens"
"""Tokens of the selection's distinct documents (a repeated document counted once): the select
law's unique-token column, so that duplicates count as repetition (Muennighoff et al.)."""
KEPT_DOCS = "kept_docs"
EPOCHS = "epochs"
"""Training tokens / kept tokens: how many times the selection was seen."""
SELECT_FLOPS = "select_flops"
"""FLOPs spent scoring the pool with the run's method (shared by all runs of that method)."""
PRECISION_GOOD = "precision_good"
"""Share of kept tokens from documents of a good type (clean or its duplicates), where types are known."""
SHARE_PREFIX = "share_"
"""share_<type>: kept token share of each document type, where types are known."""
SELECT_FLOOR = "select_floor"
"""Exact loss floor of the kept mixture on the target eval set (synthetic pools)."""
SELECT_KL_REDUCTION = "select_kl_reduction"
"""DSIR's KL reduction of the selection's hashed n-gram distribution towards the target's."""
DOC_ID = "doc_id"
SCORE = "score"
RANK = "rank"
DOC_TYPE = "type"
SCORES_TABLE = "scores.parquet"
"""doc_id, method, score, rank, tokens (and type where known): one row per document and method."""
KEPT_TABLE = "kept.parquet"
"""method, keep, doc_id: the documents each selection kept."""
SELECTIONS_TABLE = "selections.parquet"
"""method, keep: kept docs/tokens, precision_good and select_kl_reduction of each selection."""
SELECT_TABLE = "select.parquet"
"""Finished select runs with plain select_method / select_keep / select_variant columns."""

# continual pre-training (family `cpt`): runs.parquet columns of its runs' `extra` values
CPT_ROLE = "extra.role"
"""`base` (trained on the general corpus) or `cpt` (continued from a base run on a mixture)."""
CPT_DOMAIN = "extra.domain"
"""The CPT run's domain: its [cpt] `domains` name (absent in single-`domain` studies)."""
CPT_SCHEDULE = "extra.rewarm"
"""The CPT run's continuation schedule: `rewarm` (warm-up, cosine decay), `constant` (the [cpt] lr
held) or `continue` (the base run's final lr held)."""
CPT_SHARE = "extra.domain_share"
CPT_TOKENS = "extra.cpt_tokens"
CPT_N = "extra.N"
CPT_BASE_SEED = "extra.base_seed"
CPT_TABLE = "cpt.parquet"
"""Finished CPT runs with fit-ready columns (N, D, r, r_general, domain, schedule, losses, base losses)."""

COMPUTE_CONVENTION = "6ND"
"""The compute the laws use: C = 6 * N * D with N non-embedding parameters and D training tokens."""
_COMPUTE_WORDS = {
    "6ND": "C = 6·N·D (N non-embedding parameters, D training tokens)",
    "flops": "C = exact training FLOPs of the model as built (attention and output head included)",
}


def describe_compute(convention: str) -> str:
    """A compute convention in words, for reports: describe_compute(law.compute_convention)."""
    return _COMPUTE_WORDS.get(convention, convention)


def eval_column(eval_set: str) -> str:
    """Eval set name as a column suffix: 'domain/valid' -> 'domain_valid'."""
    return "".join(ch if ch.isalnum() else "_" for ch in eval_set)


def loss_column(eval_set: str) -> str:
    return LOSS_PREFIX + eval_column(eval_set)


def bayes_column(eval_set: str) -> str:
    return BAYES_PREFIX + eval_column(eval_set)


def bleu_column(eval_set: str) -> str:
    return BLEU_PREFIX + eval_column(eval_set)


def c_6nd(n_params_nonemb: float, tokens: float) -> float:
    """The 6ND compute of the convention above."""
    return 6.0 * float(n_params_nonemb) * float(tokens)


__all__ = ["BAYES_LOSS", "BAYES_PREFIX", "BLEU_PREFIX", "BUDGET_FLOPS", "COMPUTE_CONVENTION", "CURVE_COLUMNS", "C_6ND", "EVAL_SET",
           "EXTRA_PREFIX", "FLOPS", "FLOPS_PER_TOKEN", "LABEL", "LOSS", "LOSS_PREFIX", "N_PARAMS", "N_PARAMS_DEC",
           "N_PARAMS_ENC", "N_PARAMS_NONEMB", "PARENT", "RUN_ID", "SEED", "STATUS", "STEP", "STEPS", "TOKENS",
           "TOKENS_PER_S", "TRAIN_LOSS", "WALL_TIME", "bayes_column", "bleu_column", "c_6nd", "describe_compute", "eval_column",
           "loss_column"]
__all__ += ["DOC_ID", "DOC_TYPE", "EPOCHS", "KEPT_DOCS", "KEPT_TABLE", "KEPT_TOKENS", "PRECISION_GOOD", "RANK", "SCORE",
            "SCORES_TABLE", "SELECT_FLOOR", "SELECT_FLOPS", "SELECT_KEEP", "SELECT_KL_REDUCTION", "SELECT_METHOD",
            "SELECTIONS_TABLE", "SELECT_TABLE", "SELECT_VARIANT", "SHARE_PREFIX", "UNIQUE_TOKENS"]
__all__ += ["CPT_BASE_SEED", "CPT_DOMAIN", "CPT_N", "CPT_ROLE", "CPT_SCHEDULE", "CPT_SHARE", "CPT_TABLE", "CPT_TOKENS"]
