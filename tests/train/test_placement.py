"""Device placement with a fake GPU count, and device consistency with the model on `meta`."""

import multiprocessing as mp

import pytest
import torch

from scaling.config import spec_from_dict
from scaling.errors import SpecError
from scaling.store import Store
from scaling.train import executors, expand, get_family
from scaling.train.loop import train_run
from scaling.train.placement import DeviceMismatch, StrictDevices, place, threads_per_worker, worker_gpus


def test_workers_get_their_own_gpu_round_robin():
    assert [str(place("auto", slot=s, n_gpus=4)) for s in range(6)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert place("auto", slot=3, n_gpus=0) == torch.device("cpu")
    # a DDP run of 2 processes per worker: slot 1 takes GPUs 2 and 3, slot 2 wraps to 0 and 1
    assert [str(place("auto", slot=1, rank=r, nproc=2, n_gpus=4)) for r in range(2)] == ["cuda:2", "cuda:3"]
    assert worker_gpus(2, 4, nproc=2) == [0, 1]
    assert worker_gpus(0, 0) == []


def test_train_device_overrides_placement():
    assert place("cpu", slot=2, n_gpus=8) == torch.device("cpu")
    assert place("cuda:5", slot=0, n_gpus=8) == torch.device("cuda", 5)
    assert place("cuda", slot=0, rank=1, nproc=2, n_gpus=8) == torch.device("cuda", 1)
    with pytest.raises(SpecError, match="device"):
        place("gpu0")
    # a CUDA device the machine lacks is named, not left to torch's assertion inside the first step
    with pytest.raises(SpecError, match=r"`device` = 'cuda', but this machine has no CUDA device; use 'auto' .* or 'cpu'"):
        place("cuda", n_gpus=0)
    with pytest.raises(SpecError, match=r"`device` = 'cuda:2', but this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        place("cuda:2", n_gpus=2)
    assert place("cuda:1", n_gpus=2) == torch.device("cuda", 1)


def test_cpu_threads_are_shared_out():
    assert threads_per_worker(4, cpu_count=16) == 4
    assert threads_per_worker(3, cpu_count=2) == 1


def test_pool_workers_take_distinct_slots():
    ctx = mp.get_context("spawn")
    slots = ctx.Value("i", 0)
    seen = []
    for _ in range(3):  # as three workers' initialisers would, one after another
        executors._init_worker(None, slots)
        seen.append(executors._slot)
    executors._slot = 0
    assert seen == [0, 1, 2]


SPEC = {
    "study": {"name": "dev", "family": "encdec"},
    "data": {"source": "transduction", "eval_tokens": 120, "options": {"n_words": 12, "min_len": 2, "max_len": 4}},
    "model": {"shapes": [{"d_model": 16, "enc_layers": 1, "dec_layers": 1, "n_heads": 2}]},
    "train": {"steps": 3, "batch_size": 4, "eval_points": 2},
    "encdec": {"bleu_pairs": 6},
}


@pytest.mark.parametrize("family", ["decoder", "encdec"])
def test_training_evaluation_and_metrics_stay_on_the_model_device(tmp_path, family):
    """A whole run (steps, evals, BLEU decoding, the result row) with the model on `meta`: any
    tensor made on the CPU and mixed with the model's raises, as it would on a GPU node."""
    raw = {k: dict(v) for k, v in SPEC.items()}
    if family == "decoder":
        raw["study"]["family"] = "decoder"
        raw.pop("encdec")
        raw["data"] = {"source": "zipf_facts", "eval_tokens": 200, "options": {"n_symbols": 8, "n_keys": 10}}
        raw["model"] = {"shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}]}
        raw["train"]["seq_len"] = 9
    run = expand(spec_from_dict(raw))[0]
    task = get_family(family).build_task(run, torch.device("meta"))
    with StrictDevices() as check:
        row = train_run(run, task, Store(tmp_path), keep_final=True)
    assert row["status"] == "done" and row["steps"] == 3 and check.ops > 100
    if family == "encdec":
        assert "bleu_src_original" in row


def test_strict_devices_catches_a_cpu_tensor_beside_a_meta_model():
    w = torch.nn.Linear(4, 4).to("meta")
    with StrictDevices(), pytest.raises(DeviceMismatch):
        w(torch.ones(2, 4))
