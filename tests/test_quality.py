"""BLEU against hand-computed values; greedy decoding against a naive loop and a trained copier."""

from __future__ import annotations

import math

import pytest
import torch

from scaling.data.pairs import PairEvalSet, PairSourceBase
from scaling.errors import SpecError
from scaling.model.encdec import EncDecConfig, EncoderDecoder
from scaling.quality import corpus_bleu, evaluate_bleu, greedy_decode


def test_exact_match_is_100():
    refs = [[1, 2, 3, 4, 5], [7, 8, 9, 10]]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)


def test_hand_computed_precisions():
    # p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3; equal lengths, so no brevity penalty.
    bleu = corpus_bleu([[1, 2, 3, 4, 5, 6]], [[1, 2, 3, 4, 7, 6]])
    assert bleu == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert bleu == pytest.approx(53.7284965911771)


def test_brevity_penalty():
    # All precisions are 1; c = 4, r = 8: BP = exp(1 - 8/4).
    assert corpus_bleu([[1, 2, 3, 4]], [[1, 2, 3, 4, 5, 6, 7, 8]]) == pytest.approx(100 * math.exp(-1))
    # A longer hypothesis is not penalised by BP (only by precision).
    assert corpus_bleu([[1, 2, 3, 4, 5, 9]], [[1, 2, 3, 4, 5]]) == pytest.approx(
        100 * (5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    )


def test_corpus_level_sums_counts():
    hyps = [[1, 2, 3, 4], [5, 6, 7, 8]]
    refs = [[1, 2, 3, 4], [5, 6, 9, 8]]
    # unigrams 7/8, bigrams 4/6, trigrams 2/4, 4-grams 1/2 summed over both sentences.
    assert corpus_bleu(hyps, refs) == pytest.approx(100 * (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25)


def test_clipping_and_smoothing():
    hyp, ref = [[7, 7, 7, 7]], [[7, 1, 2, 3]]
    assert corpus_bleu(hyp, ref, smooth="none") == 0.0
    # p1 = 1/4 (clipped); zero matches at n = 2, 3, 4 become 1/(2·3), 1/(4·2), 1/(8·1).
    assert corpus_bleu(hyp, ref) == pytest.approx(100 * (1 / 4 * 1 / 6 * 1 / 8 * 1 / 8) ** 0.25)
    assert corpus_bleu([[1, 2]], [[1, 2]], max_n=2) == pytest.approx(100.0)
    assert corpus_bleu([[1, 2]], [[1, 2]]) == 0.0  # no 3- or 4-grams at all
    assert corpus_bleu([[]], [[1, 2]]) == 0.0
    with pytest.raises(ValueError):
        corpus_bleu([[1]], [])
    with pytest.raises(SpecError, match="smoothing"):
        corpus_bleu([[1]], [[1]], smooth="add1")


def _naive_greedy(model, src_row, max_len, bos, eos):
    ys = [bos]
    for _ in range(max_len):
        nxt = int(model.logits(src_row[None], torch.tensor([ys]))[0, -1].argmax())
        if nxt == eos:
            break
        ys.append(nxt)
    return ys[1:]


def test_greedy_matches_naive_loop():
    torch.manual_seed(0)
    m = EncoderDecoder(EncDecConfig(vocab_size=9, d_model=16, enc_layers=1, dec_layers=1, n_heads=2,
                                    max_src_len=6, max_tgt_len=5))  # fmt: skip
    with torch.no_grad():  # make EOS likely at some steps so stopping is exercised
        m.head.weight[2] += 0.3 * m.dec_ln.bias.new_ones(16)
    src = torch.tensor([[3, 4, 5, 2, 0, 0], [6, 2, 0, 0, 0, 0], [8, 7, 6, 5, 4, 2]])
    m.train()
    got = greedy_decode(m, src, max_len=10, bos_id=1, eos_id=2, batch_size=2)
    assert m.training  # mode restored
    m.eval()
    with torch.no_grad():
        assert got == [_naive_greedy(m, s, 5, 1, 2) for s in src]  # clamped to max_tgt_len
    with pytest.raises(SpecError, match="max_len"):
        greedy_decode(m, src, max_len=0, bos_id=1, eos_id=2)


class _CopySource(PairSourceBase):
    """Copy task: target = source words (ids 3..12), for an end-to-end BLEU check."""

    name, vocab_size, pad_id, bos_id, eos_id, max_src_len, max_tgt_len = "copy", 13, 0, 1, 2, 6, 6

    def pair_tensors(self, index, seed):
        g = torch.Generator().manual_seed(int(index[0]) * 7919 + seed)
        n = len(index)
        x = torch.randint(3, 13, (n, 5), generator=g)
        src = torch.cat([x, torch.full((n, 1), 2)], 1)
        return src, torch.cat([torch.ones(n, 1, dtype=torch.long), x], 1), src.clone()

    def build_eval_sets(self, n_pairs):
        s, ti, to = self.pair_tensors([10**6] * n_pairs, 1)
        return {"valid": PairEvalSet("valid", s, ti, to, 0.0)}


@pytest.mark.slow
def test_trained_copier_scores_100():
    torch.manual_seed(0)
    source = _CopySource()
    m = EncoderDecoder(EncDecConfig(vocab_size=13, d_model=32, enc_layers=1, dec_layers=1, n_heads=2,
                                    max_src_len=6, max_tgt_len=6))  # fmt: skip
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for step in range(200):
        loss = m.loss(*source.train_batch(step, 32, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ev = source.eval_sets(64)["valid"]
    assert evaluate_bleu(m, ev, source) == pytest.approx(100.0)
    assert evaluate_bleu(EncoderDecoder(m.cfg), ev, source) < 5.0  # an untrained model is not


def test_greedy_decoding_stays_on_the_model_device():
    """The model on `meta`, its inputs on the CPU (as eval sets are): under StrictDevices any op
    mixing devices raises, as CUDA would, so a CPU tensor built beside a GPU model is caught here."""
    from scaling.train.placement import DeviceMismatch, StrictDevices

    torch.manual_seed(0)
    m = EncoderDecoder(EncDecConfig(vocab_size=9, d_model=16, enc_layers=1, dec_layers=1, n_heads=2,
                                    max_src_len=6, max_tgt_len=5)).to("meta")  # fmt: skip
    src = torch.randint(3, 9, (5, 6))
    with StrictDevices() as check:
        got = greedy_decode(m, src, max_len=4, bos_id=1, eos_id=2, batch_size=2)
    assert len(got) == 5 and check.ops > 50  # decoding ran through, placeholders for values
    # the check does fire: the reported bug (decoder inputs built on the source's device)
    memory, pad = m.encode(src.to("meta"))
    with StrictDevices(), pytest.raises(DeviceMismatch, match="cpu"):
        m.decode(memory, pad, torch.full((5, 1), 1, dtype=torch.long, device=src.device))
