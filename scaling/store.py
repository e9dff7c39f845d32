"""The parquet run store of one study.

Layout under the study folder (runs/<study>/):

    runs.parquet      one row per run: config columns, counts, final losses, status, timing
    curves.parquet    one row per run x evaluation step x eval set
    runs/<run_id>/    config.json, checkpoint.pt (while training), result.json, curves.parquet,
                      final.pt (final weights, kept for runs that others continue from)

Each run writes only into its own folder, so parallel workers never share a file; the study
tables are rebuilt from the run folders by the coordinating process. Every write goes to a
temporary file and is renamed into place, so a killed process leaves no half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from scaling.errors import DataError
from scaling.schema import CURVE_COLUMNS, N_PARAMS, RUN_ID, STATUS

RUNS_TABLE = "runs.parquet"
CURVES_TABLE = "curves.parquet"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Store:
    """Read and write one study's runs; see the module docstring for the layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def checkpoint_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint.pt"

    def final_weights_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "final.pt"

    def result(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / "result.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def status(self, run_id: str) -> str:
        result = self.result(run_id)
        if result is not None:
            return result[STATUS]
        return "unfinished" if self.run_dir(run_id).is_dir() else "pending"

    def write_config(self, run_id: str, config: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir(run_id) / "config.json", config)

    def write_result(self, run_id: str, row: dict[str, Any], curves: list[dict[str, Any]]) -> None:
        """Curves first, result last: a result.json always has its curves beside it."""
        frame = pd.DataFrame(curves, columns=CURVE_COLUMNS) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
        atomic_write_parquet(self.run_dir(run_id) / CURVES_TABLE, frame)
        atomic_write_json(self.run_dir(run_id) / "result.json", row)

    def run_ids(self) -> list[str]:
        base = self.root / "runs"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def rebuild(self) -> None:
        """Rewrite runs.parquet and curves.parquet from the run folders (one row per finished run)."""
        rows, curves = [], []
        for run_id in self.run_ids():
            result = self.result(run_id)
            if result is None:
                continue
            rows.append(result)
            path = self.run_dir(run_id) / CURVES_TABLE
            if path.is_file():
                curves.append(pd.read_parquet(path))
        runs = pd.DataFrame(rows)
        if not runs.empty:
            runs = runs.sort_values([N_PARAMS, RUN_ID] if N_PARAMS in runs else [RUN_ID], kind="stable")
        atomic_write_parquet(self.root / RUNS_TABLE, runs.reset_index(drop=True))
        curve_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
        atomic_write_parquet(self.root / CURVES_TABLE, curve_frame)

    def runs(self) -> pd.DataFrame:
        return self._read(RUNS_TABLE)

    def curves(self) -> pd.DataFrame:
        return self._read(CURVES_TABLE)

    def _read(self, name: str) -> pd.DataFrame:
        path = self.root / name
        if not path.is_file():
            raise DataError(f"{path}: no such table; run `scaling grid run` on the study first")
        return pd.read_parquet(path)
