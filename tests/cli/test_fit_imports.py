"""`scaling fit` starts without torch, matplotlib, the report or the training code (nor rich for --json, nor
pandas or scipy for a CSV)."""

import json
import subprocess
import sys

from scaling.datasets import load_dataset

PROBE = """
import json, sys
from typer.testing import CliRunner
import scaling.cli
r = CliRunner().invoke(scaling.cli.app, sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'matplotlib')
               or m.startswith(('scaling.report', 'scaling.train', 'scaling.plots', 'scaling.model')))
rich = any(m.split('.')[0] == 'rich' for m in sys.modules)
frames = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow', 'scipy'))
print(json.dumps({"exit": r.exit_code, "out": r.output, "heavy": heavy, "rich": rich, "frames": frames}))
"""


def _probe(*args):
    p = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_fit_imports_no_torch_or_matplotlib(tmp_path):
    csv = tmp_path / "chin.csv"
    load_dataset("chinchilla_epoch")[["N", "D", "loss"]].to_csv(csv, index=False)
    r = _probe("fit", "chinchilla", str(csv), "--x", "N", "--x", "D", "--y", "loss", "--init", "hoffmann", "--json")
    assert r["exit"] == 0, r["out"]
    assert json.loads(r["out"])["solver"] == "varpro"
    assert r["heavy"] == []
    assert not r["rich"]  # JSON output needs no terminal tables
    assert r["frames"] == []  # a CSV is read without pandas (scaling.tables.read_columns); no scipy polish either
    r = _probe("fit", "isoflop", str(csv), "--n", "N", "--d", "D", "--budget", "N", "--y", "loss")
    assert r["heavy"] == []  # an error path (budgets without minima) loads nothing heavy either
