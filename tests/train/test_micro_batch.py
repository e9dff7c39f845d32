"""Gradient accumulation: micro-batches give the full batch's training within float tolerance."""

import pandas as pd
import pytest
import torch

from scaling.config import spec_from_dict
from scaling.store import Store
from scaling.train import expand, get_family
from scaling.train.loop import split_rows, train_run

LM = {
    "study": {"name": "mb"},
    "data": {"source": "zipf_facts", "eval_tokens": 400, "options": {"n_symbols": 8, "n_keys": 12}},
    "model": {"shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}]},
    "train": {"steps": 12, "batch_size": 8, "seq_len": 9, "lr": 1e-2, "eval_points": 3},
}
# pairs are padded (targets -100), so micro-batches hold different numbers of targets
ED = {
    "study": {"name": "mb-ed", "family": "encdec"},
    "data": {"source": "transduction", "eval_tokens": 120, "options": {"n_words": 12, "min_len": 1, "max_len": 5}},
    "model": {"shapes": [{"d_model": 16, "enc_layers": 1, "dec_layers": 1, "n_heads": 2}]},
    "train": {"steps": 12, "batch_size": 8, "lr": 1e-2, "eval_points": 3},
    "encdec": {"bleu_pairs": 4},
}


def _train(raw, tmp_path, name, micro):
    raw = {k: dict(v) for k, v in raw.items()}
    if micro:
        raw["train"]["micro_batch_size"] = micro
    run = expand(spec_from_dict(raw))[0]
    store = Store(tmp_path / name)
    row = train_run(run, get_family(run.family).build_task(run, torch.device("cpu")), store)
    return row, pd.read_parquet(store.run_dir(run.run_id) / "curves.parquet")


@pytest.mark.parametrize("raw", [LM, ED], ids=["decoder", "encdec"])
def test_micro_batches_match_the_full_batch(tmp_path, raw):
    full, full_curve = _train(raw, tmp_path, "full", None)
    for micro in (3, 4):  # 3 leaves a smaller last micro-batch
        row, curve = _train(raw, tmp_path, f"m{micro}", micro)
        assert row["train_loss"] == pytest.approx(full["train_loss"], rel=1e-5)
        assert row["loss"] == pytest.approx(full["loss"], rel=1e-5)
        pd.testing.assert_series_equal(curve.loss, full_curve.loss, rtol=1e-5)


def test_split_rows():
    x, y = torch.arange(10).reshape(5, 2), torch.arange(5)
    parts = split_rows((x, y), 2)
    assert [p[0].shape[0] for p in parts] == [2, 2, 1]
    assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert split_rows((x, y), 0) == [(x, y)]


@pytest.mark.slow
def test_compiled_model_trains_like_eager(tmp_path):
    """`[train] compile = true` (inductor, CPU here) follows the eager curve within float tolerance."""
    pytest.importorskip("torch._inductor")
    eager, _ = _train(LM, tmp_path, "eager", None)
    raw = {k: dict(v) for k, v in LM.items()}
    raw["train"]["compile"] = True
    compiled, _ = _train(raw, tmp_path, "compiled", None)
    assert compiled["status"] == "done"
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-4)
