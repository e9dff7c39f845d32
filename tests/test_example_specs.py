"""The example studies under runs/ stay valid: they load, expand, and have the sizes their issues ask for."""

from pathlib import Path

import pytest

from scaling.config import load_spec
from scaling.train import expand, plan_rows

RUNS = Path(__file__).resolve().parents[1] / "runs"


@pytest.mark.parametrize("name", sorted(p.name for p in RUNS.glob("*.toml")))
def test_example_spec_expands(name):
    runs = expand(load_spec(RUNS / name))
    rows = plan_rows(runs)
    assert rows and all(r["flops"] > 0 and r["tokens"] > 0 for r in rows)


def test_example_grids_have_the_promised_shape():
    demo = plan_rows(expand(load_spec(RUNS / "demo.toml")))
    sizes = sorted(r["n_params_nonemb"] for r in demo)
    assert len(demo) == 7 and sizes[-1] / sizes[0] > 50  # ~1.8k to ~100k non-embedding parameters
    encdec = plan_rows(expand(load_spec(RUNS / "encdec-synthetic.toml")))
    assert len(encdec) >= 9
    for side in ("n_params_enc", "n_params_dec"):
        values = [r[side] for r in encdec]
        assert max(values) / min(values) >= 4
    cpt = expand(load_spec(RUNS / "cpt-stdlib.toml"))
    shares = {r.extra["domain_share"] for r in cpt if r.parent}
    assert {0.0, 1.0} <= shares and len(shares) >= 4
    assert all(r.parent is None for r in cpt[: sum(r.parent is None for r in cpt)])  # bases first
