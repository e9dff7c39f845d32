"""The encdec family through the runner: counts per side, Bayes loss, BLEU columns."""

from pathlib import Path

import pytest

from scaling.config import load_spec
from scaling.model.encdec import EncoderDecoder
from scaling.store import Store
from scaling.train import InProcessExecutor, expand, get_family, run_study

SPEC = """
[study]
name = "ed"
family = "encdec"
[data]
source = "transduction"
eval_tokens = 440
[data.options]
n_words = 20
min_len = 2
max_len = 5
[model]
defaults = { n_heads = 2 }
shapes = [{d_model = 16, enc_layers = 1, dec_layers = 1}, {d_model = 16, enc_layers = 2, dec_layers = 1}]
[train]
steps = 8
batch_size = 8
eval_points = 3
[encdec]
bleu_pairs = 16
"""


def test_encdec_grid(tmp_path: Path):
    p = tmp_path / "ed.toml"
    p.write_text(SPEC)
    runs = expand(load_spec(p))
    assert len(runs) == 2
    task = get_family("encdec").build_task(runs[1], __import__("torch").device("cpu"))
    assert isinstance(task.model, EncoderDecoder)
    counts = task.counts()
    assert counts["n_params_enc"] + counts["n_params_dec"] == counts["n_params_nonemb"]
    assert counts["n_params"] == sum(p.numel() for p in task.model.parameters())
    store = Store(tmp_path / "ed")
    assert run_study(runs, store, InProcessExecutor()) == {"done": 2}
    df = store.runs()
    for col in ("n_params_enc", "n_params_dec", "loss", "bayes_loss", "bleu_src_original"):
        assert col in df.columns, col
    assert (df.n_params_enc.iloc[0] < df.n_params_enc.iloc[1]) or (df.n_params_enc.iloc[1] < df.n_params_enc.iloc[0])
    assert ((df.bleu_src_original >= 0) & (df.bleu_src_original <= 100)).all()
    assert (df.loss > df.bayes_loss - 0.05).all()
    assert df.bayes_loss.notna().all()


def test_encdec_unknown_table_key(tmp_path: Path):
    from scaling.errors import SpecError

    p = tmp_path / "ed.toml"
    p.write_text(SPEC.replace("bleu_pairs = 16", "blue_pairs = 16"))
    with pytest.raises(SpecError, match=r"\[encdec\] unknown key `blue_pairs`"):
        expand(load_spec(p))


def test_tokens_and_flops_exclude_padding(tmp_path: Path):
    import torch

    from scaling.model.encdec import real_lengths, train_flops_encdec
    from scaling.train.encdec_family import encdec_tokens_per_step

    p = tmp_path / "ed.toml"
    p.write_text(SPEC)
    run = expand(load_spec(p))[0]
    task = get_family("encdec").build_task(run, torch.device("cpu"))
    # Hand count over the run's 8 batches: real target tokens (not -100) and per-pair FLOPs.
    tokens, flops = 0, 0.0
    for step in range(8):
        src, _, tgt_out = task.source.train_batch(step, 8, run.seed)
        assert (tgt_out == -100).any()  # the batches are padded
        s, t = real_lengths(src, tgt_out, task.source.pad_id)
        tokens += int((tgt_out != -100).sum())
        flops += train_flops_encdec(task.config, s, t)
    assert tokens < 8 * 8 * task.source.max_tgt_len
    # a fresh task recounts from the batches; one that trained steps counts as it goes
    assert task.consumed(8) == (tokens, flops)
    store = Store(tmp_path / "ed")
    assert run_study([run], store, InProcessExecutor()) == {"done": 1}
    row = store.runs().iloc[0]
    assert row.tokens == tokens and row.flops == flops
    assert row.c_6nd == 6 * row.n_params_nonemb * tokens
    curve = store.curves()
    last = curve[curve.step == 8].iloc[0]
    assert last.tokens == tokens and last.flops == flops
    # the plan uses the mean real target length, within 15% of what was trained
    assert abs(encdec_tokens_per_step(run) * 8 / tokens - 1) < 0.15
