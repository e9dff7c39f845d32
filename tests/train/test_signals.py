"""SIGUSR1 / SIGTERM: the training process checkpoints at once and stops; the run resumes from there."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scaling.config import spec_from_dict
from scaling.store import Store
from scaling.train import expand, get_family
from scaling.train.loop import train_run
from scaling.train.signals import PREEMPTED_EXIT_CODE, PreemptFlag

RAW = {
    "study": {"name": "sig"},
    "data": {"source": "zipf_facts", "eval_tokens": 200, "options": {"n_symbols": 8, "n_keys": 12}},
    "model": {"shapes": [{"d_model": 16, "n_layers": 1, "n_heads": 2}]},
    "train": {"steps": 100000, "batch_size": 4, "seq_len": 9, "eval_points": 2, "checkpoint_every": 100000},
}
SCRIPT = """
import json, sys
from scaling.config import spec_from_dict
from scaling.train.executors import execute_run
from scaling.train.signals import Preempted, PREEMPTED_EXIT_CODE
run = __import__("scaling.train", fromlist=["expand"]).expand(spec_from_dict(json.loads(sys.argv[1])))[0]
try:
    execute_run((run.to_dict(), sys.argv[2], 1), progress=lambda r, s, t, l: print("step", s, flush=True))
except Preempted as p:
    print("preempted", p.step, flush=True)
    sys.exit(PREEMPTED_EXIT_CODE)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_writes_checkpoint_at_once(tmp_path: Path, signum):
    run = expand(spec_from_dict(RAW))[0]
    store = Store(tmp_path / "sig")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(RAW), str(store.root)],
                            stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # wait until it trains (well before any periodic checkpoint)
        if line.startswith("step") and int(line.split()[1]) >= 30:
            break
    assert not store.checkpoint_path(run.run_id).exists()
    proc.send_signal(signum)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == PREEMPTED_EXIT_CODE, out
    stopped = int(out.split("preempted")[1].split()[0])
    state = torch.load(store.checkpoint_path(run.run_id), weights_only=True)
    assert state["step"] == stopped and 30 <= stopped < 100000
    assert store.status(run.run_id) == "unfinished"  # not failed: it resumes from the checkpoint


def test_preempted_run_resumes_to_the_uninterrupted_result(tmp_path):
    raw = {k: dict(v) for k, v in RAW.items()}
    raw["train"] = {**RAW["train"], "steps": 20}
    run = expand(spec_from_dict(raw))[0]
    family = get_family("decoder")
    straight = train_run(run, family.build_task(run, torch.device("cpu")), Store(tmp_path / "a"))
    store = Store(tmp_path / "b")

    def signal_at_10(run_id, step, total, loss):
        if step == 10:
            os.kill(os.getpid(), signal.SIGUSR1)

    from scaling.train.signals import Preempted

    with pytest.raises(Preempted) as info:
        train_run(run, family.build_task(run, torch.device("cpu")), store, progress=signal_at_10)
    assert info.value.step == 11  # the signal lands during step 10's report; the next step finishes first
    assert torch.load(store.checkpoint_path(run.run_id), weights_only=True)["step"] == 11
    resumed = train_run(run, family.build_task(run, torch.device("cpu")), store)
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-6)
    assert not store.final_weights_path(run.run_id).exists()  # no child continues from it


def test_flag_restores_previous_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    with PreemptFlag() as flag:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)
        assert flag.requested == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is before


def test_preempted_survives_the_pickling_a_process_pool_does():
    import pickle

    from scaling.train.signals import Preempted

    p = pickle.loads(pickle.dumps(Preempted(signal.SIGINT, 812, "abc")))
    assert (p.signum, p.step, p.run_id) == (signal.SIGINT, 812, "abc")
    assert str(p) == "run abc checkpointed at step 812 on signal SIGINT"


@pytest.mark.parametrize("signum, expected", [(signal.SIGTERM, "Preempted"), (signal.SIGINT, "KeyboardInterrupt")])
def test_a_stop_that_comes_while_the_last_runs_answer_still_stops_the_study(signum, expected):
    """CI caught it (1 in about 10): the coordinator's SIGTERM came while its one wait returned every
    future at once (the runs in flight `unfinished`, the queued ones "not started"), the loop ended
    without looking at the stop again, and the command printed its summary and exited 0."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    from scaling.train.executors import _collect

    futures = []
    for status in ("unfinished", "unfinished", "not started", "not started"):
        f = Future()
        f.set_result({"run_id": status, "status": status})
        futures.append(f)
    stopping, seen = SimpleNamespace(value=0), []

    def on_done(row):  # the signal lands while the answers are handed on
        seen.append(row["status"])
        stopping.value = signum

    stop = _collect(futures, on_done, stopping)
    assert seen == ["unfinished", "unfinished"] and type(stop).__name__ == expected
    if expected == "Preempted":
        assert stop.signum == signal.SIGTERM
    # no signal: the study ends normally
    assert _collect(futures, lambda row: None, SimpleNamespace(value=0)) is None


@pytest.mark.slow
@pytest.mark.parametrize("signum, group, code", [(signal.SIGINT, True, 130), (signal.SIGTERM, False, PREEMPTED_EXIT_CODE)])
def test_ctrl_c_or_kill_stops_a_pool_study_at_once_and_it_resumes(tmp_path: Path, signum, group, code):
    """Ctrl-C (SIGINT to the terminal's process group) on `grid run -w 2`: before, each worker lost the
    steps since its last checkpoint and took the next queued run, and the command trained the whole
    study before it exited. Now the runs in flight checkpoint at the step in flight, no other run
    starts, the command exits 130 saying how to resume, and the next `grid run` resumes them from
    their checkpoints. `kill` (SIGTERM to the command alone) killed it and its workers exited without
    a checkpoint; now it stops the same way, with exit status 75. The runs are far too long to finish
    during the test (100000 steps, no periodic checkpoint: one written is the signal's)."""
    from scaling.config import load_spec
    from scaling.train.grid import training_flops

    raw = {**RAW, "model": {"shapes": [{"d_model": d, "n_layers": 1, "n_heads": 2} for d in (8, 12, 16, 20)]}}
    spec = tmp_path / "sig.toml"
    spec.write_text(_toml(raw))
    runs = sorted(expand(load_spec(spec)), key=training_flops, reverse=True)  # the order they train in
    store = Store(tmp_path / "sig")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scaling", "grid", "run", str(spec), "-w", "2"]

    def interrupted() -> str:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        started, out = 0, ""
        for line in proc.stdout:  # both workers are in their training loops
            out += line
            started += " step " in line
            if started == 2:
                break
        time.sleep(1.0)
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        out += proc.communicate(timeout=60)[0]
        assert proc.returncode == code, out
        assert "run `scaling grid run` again to resume" in out and "Traceback" not in out
        deadline = time.time() + 30  # no worker outlives the command (beyond its own exit)
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return out
            time.sleep(0.1)
        pytest.fail("processes of the interrupted study still run 30 s after it exited")

    def steps() -> list[int]:
        return [torch.load(store.checkpoint_path(r.run_id), weights_only=True)["step"] for r in runs[:2]]

    out = interrupted()
    assert [store.status(r.run_id) for r in runs] == ["unfinished", "unfinished", "pending", "pending"], out
    first = steps()
    assert all(1 <= s < 100000 for s in first)
    out = interrupted()  # again: the same two runs resume from their checkpoints, the others wait
    assert "training 4 runs (0 already done)" in out
    assert [store.status(r.run_id) for r in runs] == ["unfinished", "unfinished", "pending", "pending"], out
    for r, a, b in zip(runs, first, steps()):
        resumed_at = int(out.split(f"[{r.run_id}] step ")[1].split("/")[0])  # its first progress line
        assert a < resumed_at <= b, out


def _toml(raw: dict) -> str:
    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)
    return "\n".join(f"[{table}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in body.items()) for table, body in raw.items())
