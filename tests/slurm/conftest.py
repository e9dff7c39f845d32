"""A real one-node Slurm cluster for the tests marked `slurm`, started once per session by cluster.sh.

Skipped, with the reason, only when the cluster cannot start here (not root, packages missing:
`.ci/run` installs them).
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("cluster.sh")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster needs root (its daemons run as root)")
    if not (shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists()):
        pytest.skip("Slurm packages are not installed (run: tests/slurm/cluster.sh install)")
    folder = tmp_path_factory.mktemp("slurm-cluster")
    res = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True)
        pytest.skip(f"the Slurm test cluster did not start: {res.stderr.strip()[-500:]}")
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    os.environ["PATH"] = "/usr/sbin:" + os.environ["PATH"]
    try:
        yield folder
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True)
        time.sleep(1)
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
