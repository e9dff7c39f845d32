"""DDP on 2 gloo processes: the same curve as one process with the same global batch."""

import pandas as pd
import pytest

from scaling.config import spec_from_dict
from scaling.errors import SpecError
from scaling.store import Store
from scaling.train import expand
from scaling.train.executors import execute_run

RAW = {
    "study": {"name": "ddp", "family": "encdec"},
    "data": {"source": "transduction", "eval_tokens": 120, "options": {"n_words": 12, "min_len": 1, "max_len": 5}},
    "model": {"shapes": [{"d_model": 16, "enc_layers": 1, "dec_layers": 1, "n_heads": 2}]},
    "train": {"steps": 15, "batch_size": 8, "lr": 1e-2, "eval_points": 3, "device": "cpu"},
    "encdec": {"bleu_pairs": 8},
}


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    run = expand(spec_from_dict(RAW))[0]
    one, two = Store(tmp_path / "one"), Store(tmp_path / "two")
    single = execute_run((run.to_dict(), str(one.root), 1))
    # padded pairs: the two ranks hold different numbers of targets, micro-batches (3 + 1 rows) too
    raw = {k: dict(v) for k, v in RAW.items()}
    raw["train"]["micro_batch_size"] = 3
    run = expand(spec_from_dict(raw))[0]
    ddp = execute_run((run.to_dict(), str(two.root), 2, {"nproc": 2}))
    assert single["status"] == ddp["status"] == "done", ddp.get("error")
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert ddp["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    a = pd.read_parquet(one.run_dir(single["run_id"]) / "curves.parquet")
    b = pd.read_parquet(two.run_dir(run.run_id) / "curves.parquet")
    pd.testing.assert_series_equal(a.loss, b.loss, rtol=1e-5)
    assert not two.checkpoint_path(run.run_id).exists()
    assert sorted(p.name for p in two.run_dir(run.run_id).iterdir()) == ["config.json", "curves.parquet", "result.json"]


def test_nproc_must_divide_the_batch():
    raw = {k: dict(v) for k, v in RAW.items()}
    raw["train"]["nproc"] = 3
    with pytest.raises(SpecError, match="nproc"):
        spec_from_dict(raw)


class _RankAbortedAtExit:
    """torch's spawn context as it looks when rank 1 aborted (SIGABRT) on its way out."""

    processes: list = []

    def join(self, timeout=None):
        import torch.multiprocessing as tmp

        raise tmp.ProcessExitedException("process 1 terminated with signal SIGABRT", error_index=1,
                                         error_pid=0, exit_code=-6, signal_name="SIGABRT")


def test_a_rank_dying_after_the_run_is_stored_keeps_the_result_and_says_so(monkeypatch, capsys):
    import torch.multiprocessing as tmp

    from scaling.train import ddp

    monkeypatch.setattr(tmp, "start_processes", lambda *a, **k: _RankAbortedAtExit())
    ddp.launch(None, 2, stored=lambda: True)
    assert "SIGABRT after the run was stored; the stored result stands" in capsys.readouterr().err
    # before the run is stored (or with nothing to ask) the same death is the run's failure
    for stored in (lambda: False, None):
        with pytest.raises(tmp.ProcessExitedException, match="SIGABRT"):
            ddp.launch(None, 2, stored=stored)
