"""The prepared GPU check (`bench/gpu_check.sh`) runs only where a GPU is lent, rarely and on a
tight budget; its `--dry-run` runs the same code on the CPU with tiny shapes, so a change that
breaks the script fails here, not on the GPU machine."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_dry_run_produces_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    sections = json.loads(out.read_text())["sections"]
    kernel = sections["kernel"]
    assert {row["dtype"] for row in kernel["correctness"]} == {"float32", "bfloat16"}
    for row in kernel["correctness"]:  # the memory-lean loss against the PyTorch reference
        assert row["ok"], row
        for key in ("loss_rel_err", "grad_hidden_rel_err", "grad_weight_rel_err"):
            assert row[key] <= row["tolerance"], (key, row)
    for row in kernel["gemma"]:  # every competitor row computes the same loss
        assert row["loss_rel_err_vs_reference"] < 1e-3, row
    for family in ("decoder", "encdec", "cpt"):  # one tiny study of each family trains to the end
        assert sections["families"][family]["ok"], sections["families"][family]
        assert set(sections["families"][family]["counts"]) == {"done"}
    throughput = sections["throughput"]
    # eager and compiled training take the same steps from the same seed
    assert throughput["compiled"]["loss"] == pytest.approx(throughput["eager"]["loss"], rel=1e-4)
    assert throughput["eager"]["tokens_per_s"] > 0 and throughput["compile_speedup"] > 0
