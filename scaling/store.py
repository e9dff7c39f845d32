"""The parquet run store of one study.

Layout under the study folder (runs/<study>/):

    runs.parquet      one row per run: config columns, counts, final losses, status, timing
    curves.parquet    one row per run x evaluation step x eval set
    runs/<run_id>/    config.json, checkpoint.pt (while training), result.json, curves.parquet,
                      final.pt (final weights, kept for runs that others continue from),
                      checkpoint.pt.corrupt-<time> (an unreadable checkpoint, moved aside)
    store.json        the run-id scheme of the folders and the renames an upgrade made
    superseded/       old run folders an upgrade found to duplicate a kept run

Each run writes only into its own folder, so parallel workers never share a file; the study
tables are rebuilt from the run folders by the coordinating process (and on read, when one
cannot be read: the run folders are the record). Every write goes to a
temporary file and is renamed into place, so a killed process leaves no half-written file, and
every file gets the mode the umask gives (shared-readable with the usual 022).
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from scaling.errors import DataError
from scaling.schema import CURVE_COLUMNS, N_PARAMS, PARENT, RUN_ID, STATUS

if TYPE_CHECKING:
    import pandas as pd

RUNS_TABLE = "runs.parquet"
CURVES_TABLE = "curves.parquet"


# ---------------------------------------------------------------- atomic writes (every file the tool writes)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A fresh temp file beside `path`, created 0666 & ~umask (mkstemp's 0600 would hide it from lab-mates)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """Write `path` through a binary file: unique temp name, fsync, rename; on error nothing changes.

    The file gets the mode the umask gives a new file (0644 with umask 022). Every writer of
    the tool goes through here (tables, json, checkpoints, weights, reports, figures).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def atomic_write_parquet(path: str | Path, df: pd.DataFrame) -> None:
    with atomic_open(path) as f:
        df.to_parquet(f, index=False)


STORE_META = "store.json"
ID_SCHEME = 2
"""1: run id = hash of the whole config; 2: hash of what changes the result (scaling.train.run_config)."""
SUPERSEDED = "superseded"
"""Folder (beside runs/) for old run folders that an upgrade found to duplicate a kept run."""
_RANK = {"done": 0, "unfinished": 1}


def _read_parquet(path: Path, fix: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable parquet table ({e})" + (f"; {fix}" if fix else "")) from None


class Store:
    """Read and write one study's runs; see the module docstring for the layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._upgraded = False

    def run_dir(self, run_id: str) -> Path:
        self._upgrade_once()
        return self.root / "runs" / run_id

    def _upgrade_once(self) -> None:
        """Every way into the run folders passes here first, so none sees the old names."""
        if self._upgraded:
            return
        self._upgraded = True
        try:
            self.upgrade()
        except OSError as e:  # e.g. a lab-mate's read-only store: read it as it is
            warnings.warn(f"{self.root}: could not rename runs to the current id scheme ({e}); "
                          "finished runs of the old scheme show as pending", RuntimeWarning, stacklevel=3)

    def upgrade(self) -> dict[str, str]:
        """Rename run folders of an older id scheme to today's ids, once; returns {old id: new id}.

        Finished runs then keep counting as finished: upgrading never retrains. Each folder's
        files are rewritten (atomically) before the folder is renamed (atomically), parents
        before the runs continuing from them, so an interrupted upgrade resumes on the next
        load. Two old folders that are one run today (say, trained once on CPU and once on GPU)
        keep the better one (done, then unfinished); the other moves to superseded/.
        """
        meta = self.root / STORE_META
        base = self.root / "runs"
        if not base.is_dir() or self._meta().get("id_scheme") == ID_SCHEME:
            return {}
        from scaling.train.run_config import RunConfig  # stdlib-only module; keeps store imports light

        configs: dict[str, dict[str, Any]] = {}
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            try:
                configs[folder.name] = json.loads((folder / "config.json").read_text())
            except (OSError, ValueError):
                continue  # no readable config: nothing to recompute the id from
        new: dict[str, str] = {}

        def new_id(old: str) -> str:
            if old not in new:
                cfg = dict(configs[old])
                if cfg.get("parent") in configs:
                    cfg["parent"] = new_id(cfg["parent"])
                try:
                    new[old] = RunConfig.from_dict(cfg).run_id
                except TypeError:  # not a config this version can read: leave the folder as it is
                    new[old] = old
            return new[old]

        def depth(old: str) -> int:  # parents are renamed before the runs that continue from them
            parent = configs[old].get("parent")
            return 1 + depth(parent) if parent in configs and parent != old else 0
        renamed: dict[str, str] = {}
        for old in sorted(configs, key=lambda k: (depth(k), k)):
            target = new_id(old)
            parent = configs[old].get("parent")
            parent_new = new[parent] if parent in configs else parent
            if target == old and parent_new == parent:
                continue
            folder = base / old
            self._rewrite_ids(folder, target, parent_new)
            if target == old:
                continue
            dest = base / target
            if dest.exists():
                keep_old = _RANK.get(self._status_in(folder), 2) < _RANK.get(self._status_in(dest), 2)
                loser, name = (dest, self._superseded_name(target)) if keep_old else (folder, old)
                (self.root / SUPERSEDED).mkdir(exist_ok=True)
                os.replace(loser, self.root / SUPERSEDED / name)
                if not keep_old:
                    continue
            os.replace(folder, dest)
            renamed[old] = target
        prior = self._meta().get("renamed", {})
        atomic_write_json(meta, {"id_scheme": ID_SCHEME, "renamed": {**prior, **renamed}})
        if renamed and (self.root / RUNS_TABLE).is_file():
            self.rebuild()
        return renamed

    def _meta(self) -> dict[str, Any]:
        meta = self.root / STORE_META
        if not meta.is_file():
            return {}
        try:
            return json.loads(meta.read_text())
        except ValueError as e:
            raise DataError(f"{meta}: not valid JSON ({e}); delete it: the next command re-derives the run ids "
                            "from the run folders' configs") from None

    def _superseded_name(self, run_id: str) -> str:
        n = 1
        while (self.root / SUPERSEDED / f"{run_id}.{n}").exists():
            n += 1
        return f"{run_id}.{n}"

    @staticmethod
    def _status_in(folder: Path) -> str:
        try:
            return json.loads((folder / "result.json").read_text())[STATUS]
        except (OSError, ValueError, KeyError):
            return "unfinished" if (folder / "checkpoint.pt").is_file() else "pending"

    @staticmethod
    def _rewrite_ids(folder: Path, run_id: str, parent: str | None) -> None:
        """Point a run folder's config, result row and curves at its new id (and its parent's)."""
        config = json.loads((folder / "config.json").read_text())
        if config.get("parent") != parent:
            atomic_write_json(folder / "config.json", {**config, "parent": parent})
        result_path = folder / "result.json"
        if result_path.is_file():
            row = json.loads(result_path.read_text())
            if row.get(RUN_ID) != run_id or (PARENT in row and row[PARENT] != (parent or "")):
                fixed = {**row, RUN_ID: run_id, **({PARENT: parent or ""} if PARENT in row else {})}
                atomic_write_json(result_path, fixed)
        curves_path = folder / CURVES_TABLE
        if curves_path.is_file():
            import pandas as pd

            curves = pd.read_parquet(curves_path)
            if RUN_ID in curves and (curves[RUN_ID] != run_id).any():
                atomic_write_parquet(curves_path, curves.assign(**{RUN_ID: run_id}))

    def checkpoint_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint.pt"

    def final_weights_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "final.pt"

    def final_optimizer_path(self, run_id: str) -> Path:
        """The optimiser state beside `final.pt`: a child with [train] `parent_optimizer` resumes it."""
        return self.run_dir(run_id) / "final_optimizer.pt"

    def result(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / "result.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e}); delete it and `scaling grid run` resumes the run from "
                            "its checkpoint (or trains it again)") from None

    def status(self, run_id: str) -> str:
        result = self.result(run_id)
        if result is not None:
            return result[STATUS]
        return "unfinished" if self.run_dir(run_id).is_dir() else "pending"

    def write_config(self, run_id: str, config: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir(run_id) / "config.json", config)

    def write_result(self, run_id: str, row: dict[str, Any], curves: list[dict[str, Any]]) -> None:
        """Curves first, result last: a result.json always has its curves beside it."""
        import pandas as pd

        frame = pd.DataFrame(curves, columns=CURVE_COLUMNS) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
        atomic_write_parquet(self.run_dir(run_id) / CURVES_TABLE, frame)
        atomic_write_json(self.run_dir(run_id) / "result.json", row)

    def run_ids(self) -> list[str]:
        self._upgrade_once()
        base = self.root / "runs"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def rebuild(self) -> None:
        """Rewrite runs.parquet and curves.parquet from the run folders (one row per finished run)."""
        import pandas as pd

        rows, curves = [], []
        for run_id in self.run_ids():
            result = self.result(run_id)
            if result is None:
                continue
            rows.append(result)
            path = self.run_dir(run_id) / CURVES_TABLE
            if path.is_file():
                curves.append(_read_parquet(path, "delete the run's folder to train it again"))
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
        """A study table; one that cannot be read is rebuilt from the run folders, which hold
        every result (the tables are derived from them)."""
        path = self.root / name
        if not path.is_file():
            raise DataError(f"{path}: no such table; run `scaling grid run` on the study first")
        try:
            return _read_parquet(path, "")
        except DataError as e:
            if not self.run_ids():
                raise
            warnings.warn(f"{e}; rebuilt it from the run folders", RuntimeWarning, stacklevel=3)
            try:
                self.rebuild()
            except OSError as err:
                raise DataError(f"{path}: unreadable, and it could not be rebuilt from the run folders ({err}); "
                                "run `scaling grid run` on the study where you can write to it") from None
            return _read_parquet(path, "")
