"""`transduction`: a synthetic translation task whose conditional Bayes loss is exact.

The world (fixed by the source's seed):
  * `n_words` source words and `n_words` target words. Source sentences are i.i.d. words
    with Zipf(`zipf_exponent`) frequencies, length uniform in [`min_len`, `max_len`].
  * A stochastic lexicon: source word w translates to its main target word (a random
    permutation) with probability p_w ~ U[`main_prob_min`, `main_prob_max`], otherwise to one of
    k_w ~ U{0..`max_alternatives`} other target words, equally likely (k_w = 0: p_w = 1).
    Memorising this table, frequent words first, is the capacity bottleneck.
  * A local reordering R: a random `modifier_frac` of source words are modifiers; in each
    position pair (1,2), (3,4), ... whose two words differ in class the pair is swapped. R is
    an involution (R(R(x)) = x) and depends on the source only.
  * Channel: s = R(x) (source words in target order), y_t ~ lexicon(s_t) independently, then
    EOS. Length and order are fixed by x, so p(y_t | x, y_<t) = lexicon(s_t)[y_t] exactly and
    the EOS token costs 0 nats.

Multi-symbol words (`symbols_per_word` = k >= 2, alphabet `n_symbols`): every source and every
target word is a distinct random k-symbol code, and a source word's class (modifier or not)
is set by its first symbol. Embeddings of a small alphabet cannot hold the word -> word table,
so the encoder's and decoder's blocks (the non-embedding parameters) must memorise it: the
capacity signal an encoder/decoder size study needs. The symbols of a target word telescope
(p(c1|x,..) · p(c2|c1,x,..) = lexicon(s_t)[y_t]), so each pair's total log-loss is that of its
words and the per-token Bayes loss divides it by k·L + 1 tokens instead of L + 1.

Agreement markers (`agreement_classes` = S >= 2): every source word has a class in {0..S-1}
(a random per-word table), and each target word is followed by a marker token giving the class
of the source word *before* the one it translates (after it, for a sentence's first word; 0 in a
one-word sentence). The marker is a deterministic function of the source, so it costs 0 nats at
the Bayes loss, but a model that has not learnt a word's class pays up to log S for it. The
natural place for that table is the encoder (self-attention to the neighbour, then an MLP
lookup), so the encoder has capacity to spend, as the decoder does on the lexicon. The word
world (lexicon, order, codes) is the same with or without markers. Measured (S = 4 on the
runs/encdec-synthetic.toml world, 1 layer per side, batch 128, AdamW 1e-2, 2,000 steps; Bayes
0.152): (encoder, decoder) width 16/16 0.827, 64/16 0.961, 16/64 0.491, 64/64 0.521; marker nll
0.475 / 0.548 / 0.288 / 0.296: at one learning rate a wider encoder does not help. With the
encoder's matrices at lr x 16/width (EncDecConfig.enc_lr_width = 16, muP) it does: 2,500 steps,
decoder 64, encoder 16 / 32 / 48 / 64: 0.440 / 0.331 / 0.321 / 0.311 (runs/encdec-synthetic.toml).

Token layout (k = 1: vocab_size = n_words + 3, a token per word; k >= 2: n_symbols + 3, a
token per symbol; markers add S tokens after those): 0 pad, 1 bos, 2 eos, 3 + word (or symbol).
src = x + [eos] + pads; tgt_in = [bos] + y + pads; tgt_out = y + [eos] + (-100)s, where y has
k tokens per word, k + 1 with markers; lengths k·max_len + 1 (source), (k [+ 1])·max_len + 1.

Eval sets; each `bayes_loss` is the mean over its target tokens (EOS and markers included) of
-log p(y_t | x, y_<t) under the *training* channel, i.e. the loss of a perfectly trained model:
  * "src_original": sources from the source-language generator, targets through the channel
    (the training distribution; `bayes_loss_expected` is its expectation).
  * "tgt_original": natural target sentences (i.i.d. target words, Zipf(`target_zipf_exponent`)
    over a target-side ranking unrelated to the source's), sources by back-translation (each
    target word from a uniform choice among the source words that can produce it), reordered
    by R. This is composition bias in miniature (Ghorbani et al. 2021): translationese sources,
    more rare words and more alternative translations, so a higher floor and slower approach.
  * "src_uniform": source words uniform over the vocabulary: tail-word coverage.

Sizing (defaults, Bayes ≈ 0.35 nats/token): give CPU runs a step budget, not a time budget.
Every model first sits on a plateau (alignment and lexicon are learnt together) for 300-1000
steps, longer for deeper stacks and varying with the init seed. Measured excess over Bayes
on src_original, batch 64, AdamW 3e-3 with cosine decay: 2000 steps: d16/1+1 layers 0.78,
d32/1+1 0.18, d32/2+2 0.47-1.15 (3 runs), d64/2+2 0.10; 4000 steps: d32/1+1 0.025, d32/2+2 0.11.
Raise `n_words` to make the lexicon, not the optimiser, the bottleneck for larger models.
Word tokens put the lexicon in the embeddings, so non-embedding size barely matters (d32,
1-3 + 1-3 layers, 30k-90k non-emb params, 4000 steps: all within 0.02 of Bayes). Multi-symbol
words (k = 2 over 64 symbols, 3000 words, Zipf 1.2, 2-6 words; Bayes 0.216 on src_original)
measured at 1 layer per side, batch 128, AdamW 1e-2, 1500 steps: the decoder carries the
lexicon (decoder width 16 -> 64 at encoder 16: 1.08 -> 0.59; decoder MLP 16 -> 1024: 1.00 -> 0.39)
while encoder size helps only weakly and noisily (encoder MLP 16 -> 1024: no gain; encoder
width 16 -> 64 at decoder 64: 0.59 -> 0.51). Those encoder-width figures predate the unit-scale
init of the encoder-to-decoder memory projection (scaling/model/encdec.py); with it, at 2500
steps, encoder width 16 -> 64 at decoder 64 gives 0.423 / 0.406 / 0.435 / 0.440: no encoder-size
effect, so this task's capacity demand sits in the decoder.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from scaling.data.base import hash_uniform, stream_key
from scaling.data.pairs import IGNORE_INDEX, PairEvalSet, PairSourceBase, check_pair_options
from scaling.errors import SpecError

PAD, BOS, EOS, OFFSET = 0, 1, 2, 3


class TransductionSource(PairSourceBase):
    """Synthetic translation with an exact conditional Bayes loss (see module docstring)."""

    kind: ClassVar[str] = "transduction"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "n_words": 300,
        "zipf_exponent": 1.0,
        "min_len": 4,
        "max_len": 10,
        "modifier_frac": 0.3,
        "max_alternatives": 3,
        "main_prob_min": 0.6,
        "main_prob_max": 0.95,
        "target_zipf_exponent": 1.0,
        "symbols_per_word": 1,
        "n_symbols": 0,
        "agreement_classes": 0,
    }
    EVAL_NAMES: ClassVar[tuple[str, ...]] = ("src_original", "tgt_original", "src_uniform")

    def __init__(self, *, seed: int = 0, name: str = "transduction", **options: Any) -> None:
        o = check_pair_options(self.kind, self.OPTIONS, options)
        W, K = o["n_words"], o["max_alternatives"]
        if W < 2:
            raise SpecError(f"transduction: `n_words` must be >= 2, got {W}")
        if not 1 <= o["min_len"] <= o["max_len"]:
            raise SpecError(f"transduction: need 1 <= `min_len` <= `max_len`, got {o['min_len']}, {o['max_len']}")
        if not 0 <= K <= W - 1:
            raise SpecError(f"transduction: `max_alternatives` must be in [0, n_words - 1], got {K}")
        if not 0 < o["main_prob_min"] <= o["main_prob_max"] <= 1:
            raise SpecError("transduction: need 0 < `main_prob_min` <= `main_prob_max` <= 1")
        if not 0 <= o["modifier_frac"] <= 1:
            raise SpecError(f"transduction: `modifier_frac` must be in [0, 1], got {o['modifier_frac']}")
        for k in ("zipf_exponent", "target_zipf_exponent"):
            if not o[k] >= 0:
                raise SpecError(f"transduction: `{k}` must be >= 0, got {o[k]}")
        k_sym, n_sym = o["symbols_per_word"], o["n_symbols"]
        if k_sym < 1:
            raise SpecError(f"transduction: `symbols_per_word` must be >= 1, got {k_sym}")
        if k_sym == 1 and n_sym != 0:
            raise SpecError("transduction: `n_symbols` needs `symbols_per_word` >= 2 (with 1, each word is a token)")
        if k_sym > 1 and n_sym < 2:
            raise SpecError(f"transduction: `n_symbols` must be >= 2 with `symbols_per_word` >= 2, got {n_sym}")
        if k_sym > 1 and W > n_sym**k_sym:
            raise SpecError(f"transduction: `n_words` must be <= n_symbols**symbols_per_word = {n_sym**k_sym}, got {W}")
        n_agree = o["agreement_classes"]
        if n_agree == 1 or n_agree < 0:
            raise SpecError(f"transduction: `agreement_classes` must be 0 (off) or >= 2, got {n_agree}")
        self.options, self.seed, self.name = o, int(seed), name
        self.agreement_classes = n_agree
        self.n_words, self.min_len, self.max_len = W, o["min_len"], o["max_len"]
        self.symbols_per_word = k_sym
        n_tokens = W if k_sym == 1 else n_sym
        self.marker_offset = OFFSET + n_tokens  # agreement marker c is token marker_offset + c
        self.vocab_size, self.pad_id, self.bos_id, self.eos_id = n_tokens + n_agree + OFFSET, PAD, BOS, EOS
        self.tokens_per_word = k_sym + (1 if n_agree else 0)  # target tokens per word
        self.max_src_len = k_sym * self.max_len + 1
        self.max_tgt_len = self.tokens_per_word * self.max_len + 1

        # Word-level options only, so the word-token world (symbols_per_word = 1) keeps its seed.
        word_opts = sorted((k, v) for k, v in o.items()
                           if k not in ("symbols_per_word", "n_symbols", "agreement_classes"))
        rng = np.random.default_rng(stream_key("transduction/world", self.seed, *word_opts))
        main = rng.permutation(W)
        n_alt = rng.integers(0, K + 1, W)
        p_main = np.where(n_alt > 0, rng.uniform(o["main_prob_min"], o["main_prob_max"], W), 1.0)
        self.cand = np.full((W, K + 1), -1, dtype=np.int64)  # target words per source word; -1 unused
        self.prob = np.zeros((W, K + 1))
        self.cand[:, 0], self.prob[:, 0] = main, p_main
        for w in range(W):
            k = int(n_alt[w])
            if k:
                alt = rng.choice(W - 1, size=k, replace=False)
                self.cand[w, 1 : k + 1] = alt + (alt >= main[w])  # skip the main translation
                self.prob[w, 1 : k + 1] = (1 - p_main[w]) / k
        self.cum = np.cumsum(self.prob, axis=1)
        self.cum[np.arange(K + 1)[None, :] >= n_alt[:, None]] = 1.0  # no rounding gap at the top
        with np.errstate(divide="ignore"):
            plogp = np.where(self.prob > 0, self.prob * np.log(np.where(self.prob > 0, self.prob, 1)), 0.0)
        self.entropy = -plogp.sum(axis=1)  # (W,) nats per translated word
        self.modifier = rng.random(W) < o["modifier_frac"]
        if k_sym > 1:
            # Distinct k-symbol codes per side; a word's class is set by its first symbol, so the
            # reordering is a rule over symbols (per-word classes measured: a second table to
            # memorise, learnt too slowly for CPU runs) and the lexicon is the table to memorise.
            crng = np.random.default_rng(stream_key("transduction/codes", self.seed, k_sym, n_sym, *word_opts))
            self.src_code = _codes(crng, W, n_sym, k_sym)
            self.tgt_code = _codes(crng, W, n_sym, k_sym)
            self.modifier = (crng.random(n_sym) < o["modifier_frac"])[self.src_code[:, 0]]
        else:
            self.src_code = self.tgt_code = np.arange(W)[:, None]
        if n_agree:
            # A per-word table (not a symbol rule): knowing the class of a source word is
            # memorisation, which source-side self-attention plus the encoder's MLP can hold.
            arng = np.random.default_rng(stream_key("transduction/agreement", self.seed, n_agree, *word_opts))
            self.agree_class = arng.integers(0, n_agree, W)
        else:
            self.agree_class = np.zeros(W, dtype=np.int64)
        self.src_cdf = _zipf_cdf(np.arange(W), o["zipf_exponent"])
        self.tgt_cdf_words = rng.permutation(W)  # target word at each target-side Zipf rank
        self.tgt_cdf = _zipf_cdf(np.arange(W), o["target_zipf_exponent"])
        # Back-channel: for target word v, the source words that can produce it (CSR layout).
        ws, js = np.nonzero(self.prob > 0)
        vs = self.cand[ws, js]
        order = np.argsort(vs, kind="stable")
        self.pre_words = ws[order]
        self.pre_count = np.bincount(vs, minlength=W)
        self.pre_start = np.concatenate([[0], np.cumsum(self.pre_count)[:-1]])

        p_src = np.diff(np.concatenate([[0.0], self.src_cdf]))
        mean_len = (self.min_len + self.max_len) / 2
        # Token-averaged expectation: E[sum of word entropies] / E[tokens incl. EOS]. The symbols of
        # a target word telescope: their conditional log-probabilities sum to the word's.
        self.bayes_loss_expected = float(mean_len * (p_src @ self.entropy) / (self.tokens_per_word * mean_len + 1))

    # ------------------------------------------------------------ the channel

    def reorder(self, words: np.ndarray, lengths: np.ndarray, carry: np.ndarray | None = None):
        """R: swap each position pair (2i, 2i+1) inside the sentence whose words differ in class.
        With `carry` (an array shaped like `words`), also return it permuted the same way."""
        swap = self._swaps(words, lengths)
        out = _apply_swaps(words, swap)
        return out if carry is None else (out, _apply_swaps(carry, swap))

    def _swaps(self, words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        n, M = words.shape
        Me = M + (M % 2)
        a = np.full((n, Me), -1, dtype=np.int64)
        a[:, :M] = words
        left, right = a[:, 0::2], a[:, 1::2]
        inside = (2 * np.arange(Me // 2) + 1)[None, :] < lengths[:, None]
        return inside & (self.modifier[np.maximum(left, 0)] != self.modifier[np.maximum(right, 0)])

    def agreement(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Agreement class of each source position (source order): the class of the preceding
        source word, and of the following one for the first word (0 for one-word sentences)."""
        cls = self.agree_class[np.maximum(x, 0)]
        out = np.zeros_like(cls)
        out[:, 1:] = cls[:, :-1]
        out[:, 0] = np.where(lengths > 1, cls[:, 1] if x.shape[1] > 1 else 0, 0)
        return np.where(x >= 0, out, -1)

    def lexicon_logprob(self, s: np.ndarray, y: np.ndarray) -> np.ndarray:
        """log p(target word y | source word s), elementwise (-inf where impossible)."""
        p = ((self.cand[s] == y[..., None]) * self.prob[s]).sum(-1)
        with np.errstate(divide="ignore"):
            return np.log(p)

    def sample(self, key: int, index: np.ndarray, origin: str = "src_original") -> dict[str, np.ndarray]:
        """Pairs for global indices `index`: words x (source order), y (target order), lengths,
        and per-word log p(y_t | x, y_<t); word arrays are -1 beyond each length."""
        M = self.max_len
        u = hash_uniform(key, np.asarray(index, dtype=np.uint64), 1 + 2 * M)
        span = self.max_len - self.min_len + 1
        lengths = self.min_len + np.minimum((u[:, 0] * span).astype(np.int64), span - 1)
        inside = np.arange(M)[None, :] < lengths[:, None]
        u1, u2 = u[:, 1 : M + 1], u[:, M + 1 :]
        if origin in ("src_original", "src_uniform"):
            if origin == "src_original":
                x = np.minimum(np.searchsorted(self.src_cdf, u1, side="right"), self.n_words - 1)
            else:
                x = np.minimum((u1 * self.n_words).astype(np.int64), self.n_words - 1)
            x = np.where(inside, x, -1)
            s, a = self.reorder(x, lengths, self.agreement(x, lengths))
            sc = np.maximum(s, 0)
            j = np.minimum((u2[..., None] >= self.cum[sc]).sum(-1), self.cand.shape[1] - 1)
            y = self.cand[sc, j]
            logp = np.log(self.prob[sc, j])
        elif origin == "tgt_original":
            rank = np.minimum(np.searchsorted(self.tgt_cdf, u1, side="right"), self.n_words - 1)
            y = self.tgt_cdf_words[rank]
            pick = np.minimum((u2 * self.pre_count[y]).astype(np.int64), self.pre_count[y] - 1)
            s = np.where(inside, self.pre_words[self.pre_start[y] + pick], -1)
            x = self.reorder(s, lengths)  # R is an involution, so R(x) = s
            _, a = self.reorder(x, lengths, self.agreement(x, lengths))
            logp = self.lexicon_logprob(np.maximum(s, 0), y)
        else:
            raise SpecError(f"transduction: unknown origin `{origin}`; expected one of {', '.join(self.EVAL_NAMES)}")
        y = np.where(inside, y, -1)
        logp = np.where(inside, logp, 0.0)
        return {"x": x, "y": y, "lengths": lengths, "logp": logp, "agree": np.where(inside, a, -1)}

    def to_tensors(self, pairs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, lengths = pairs["x"], pairs["y"], pairs["lengths"]
        k = self.symbols_per_word
        n = len(x)
        # token ids (-1 = none): word codes on each side, then the agreement marker after each target word
        xs = np.where(x[..., None] >= 0, self.src_code[np.maximum(x, 0)] + OFFSET, -1).reshape(n, -1)
        yt = np.where(y[..., None] >= 0, self.tgt_code[np.maximum(y, 0)] + OFFSET, -1)
        if self.agreement_classes:
            marker = np.where(y >= 0, pairs["agree"] + self.marker_offset, -1)
            yt = np.concatenate([yt, marker[..., None]], axis=-1)
        yt = yt.reshape(n, -1)
        src_len, tgt_len = k * lengths, self.tokens_per_word * lengths
        rows = np.arange(n)
        src = np.full((n, xs.shape[1] + 1), PAD, dtype=np.int64)
        src[:, :-1] = np.where(xs >= 0, xs, PAD)
        src[rows, src_len] = EOS
        tgt_out = np.full((n, yt.shape[1] + 1), IGNORE_INDEX, dtype=np.int64)
        tgt_out[:, :-1] = np.where(yt >= 0, yt, IGNORE_INDEX)
        tgt_out[rows, tgt_len] = EOS
        tgt_in = np.full((n, yt.shape[1] + 1), PAD, dtype=np.int64)
        tgt_in[:, 0] = BOS
        tgt_in[:, 1:] = np.where(yt >= 0, yt, PAD)
        return torch.from_numpy(src), torch.from_numpy(tgt_in), torch.from_numpy(tgt_out)

    # ------------------------------------------------------------ PairSource interface

    def pair_tensors(self, index: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.to_tensors(self.sample(stream_key("transduction/train", self.seed, int(seed)), index))

    def build_eval_sets(self, n_pairs: int) -> dict[str, PairEvalSet]:
        out = {}
        for origin in self.EVAL_NAMES:
            pairs = self.sample(stream_key("transduction/eval", self.seed, origin), np.arange(n_pairs), origin)
            n_tokens = int((self.tokens_per_word * pairs["lengths"] + 1).sum())  # EOS, markers: 0 nats
            bayes = float(-pairs["logp"].sum() / n_tokens)
            out[origin] = PairEvalSet(origin, *self.to_tensors(pairs), bayes_loss=bayes)
        return out

    @classmethod
    def from_options(cls, options: dict[str, Any], *, seed: int = 0) -> TransductionSource:
        return cls(seed=seed, **options)


def _apply_swaps(a: np.ndarray, swap: np.ndarray) -> np.ndarray:
    n, M = a.shape
    b = np.full((n, M + (M % 2)), -1, dtype=a.dtype)
    b[:, :M] = a
    left, right = b[:, 0::2].copy(), b[:, 1::2].copy()
    b[:, 0::2] = np.where(swap, right, left)
    b[:, 1::2] = np.where(swap, left, right)
    return b[:, :M]


def _codes(rng: np.random.Generator, n_words: int, n_symbols: int, k: int) -> np.ndarray:
    """(n_words, k) distinct symbol codes, uniformly among the n_symbols**k possible."""
    flat = rng.choice(n_symbols**k, size=n_words, replace=False)
    return np.stack([(flat // n_symbols**j) % n_symbols for j in reversed(range(k))], axis=1)


def _zipf_cdf(rank: np.ndarray, exponent: float) -> np.ndarray:
    w = (rank + 1.0) ** -exponent
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


__all__ = ["TransductionSource"]
