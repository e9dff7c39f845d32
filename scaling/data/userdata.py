"""User text: files or globs (`files`), JSONL with a text field (`jsonl`), parquet with a text
column (`parquet`). One document per file / line / row, split by document like the stdlib
corpora. Files are identified by path, JSONL lines and parquet rows by a hash of their text
(so duplicated rows always land in the same split).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from scaling.data.text import TEXT_OPTIONS, Documents, TextSource
from scaling.errors import DataError, SpecError


def _text_id(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def _fingerprint(kind: str, files: list[tuple[str, Path]], extra: str) -> str:
    """Content hash of (id, file) pairs plus the options that change what is read."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{kind}-v1|{extra}".encode())
    for name, p in files:
        h.update(name.encode() + b"\x00" + p.read_bytes() + b"\x00")
    return h.hexdigest()


def _required_path(kind: str, value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise SpecError(f"data source `{kind}` needs option `path` (a file path), got {value!r}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise DataError(f"data source `{kind}`: file not found: {path}")
    return path


def expand_paths(paths: Any) -> list[Path]:
    """Files named by `paths` (a string or list of strings; globs allowed), sorted and unique."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise SpecError(f"data source `files` needs option `paths`: a path, glob or list of them, got {paths!r}")
    found: set[Path] = set()
    for pattern in paths:
        pattern = os.path.expanduser(str(pattern))
        if glob.has_magic(pattern):
            matches = [Path(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m)]
            if not matches:
                raise DataError(f"data source `files`: no files match {pattern!r}")
            found.update(matches)
        elif os.path.isfile(pattern):
            found.add(Path(pattern))
        else:
            raise DataError(f"data source `files`: file not found: {pattern}")
    return sorted(found)


class FilesSource(TextSource):
    """Plain text files, one document per file."""

    kind: ClassVar[str] = "files"
    OPTIONS: ClassVar[dict[str, Any]] = {"paths": None, **TEXT_OPTIONS}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> FilesSource:
        files = expand_paths(options["paths"])
        # Ids relative to the files' common folder: the split survives moving the data elsewhere.
        root = os.path.commonpath([str(p.resolve().parent) for p in files])
        ids = [os.path.relpath(p.resolve(), root).replace(os.sep, "/") for p in files]

        def load() -> Documents:
            return [(i, p.read_bytes().decode("utf-8", errors="replace")) for i, p in zip(ids, files)]

        fingerprint = _fingerprint("files", list(zip(ids, files)), "")
        return cls("files", fingerprint, load, **cls.text_kwargs(options, tokenizer, seed))


class JsonlSource(TextSource):
    """JSON Lines, one document per line, text in `field`."""

    kind: ClassVar[str] = "jsonl"
    OPTIONS: ClassVar[dict[str, Any]] = {"path": None, "field": "text", **TEXT_OPTIONS}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> JsonlSource:
        path, field = _required_path("jsonl", options["path"]), options["field"]

        def load() -> Documents:
            docs = []
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                    if not isinstance(row, dict) or field not in row:
                        raise DataError(f"{path}:{n}: missing field `{field}` (set option `field` to the text field)")
                    if not isinstance(row[field], str):
                        kind = type(row[field]).__name__
                        raise DataError(f"{path}:{n}: field `{field}` must be a string, got {kind}")
                    docs.append((_text_id(row[field]), row[field]))
            return docs

        kwargs = cls.text_kwargs(options, tokenizer, seed)
        return cls("jsonl", _fingerprint("jsonl", [(path.name, path)], field), load, **kwargs)


class ParquetSource(TextSource):
    """A parquet file, one document per row, text in `column` (nulls skipped)."""

    kind: ClassVar[str] = "parquet"
    OPTIONS: ClassVar[dict[str, Any]] = {"path": None, "column": "text", **TEXT_OPTIONS}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> ParquetSource:
        import pyarrow.parquet as pq

        path, column = _required_path("parquet", options["path"]), options["column"]
        try:
            names = pq.read_schema(path).names
        except Exception as e:  # pyarrow raises several types for unreadable files
            raise DataError(f"{path}: not a readable parquet file ({e})") from None
        if column not in names:
            raise DataError(f"{path}: missing column `{column}`; columns are {names} (set option `column`)")

        def load() -> Documents:
            values = pq.read_table(path, columns=[column]).column(column).to_pylist()
            bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
            if bad is not None:
                raise DataError(f"{path}: column `{column}` must hold strings, found {type(bad).__name__}")
            return [(_text_id(v), v) for v in values if v]

        kwargs = cls.text_kwargs(options, tokenizer, seed)
        return cls("parquet", _fingerprint("parquet", [(path.name, path)], column), load, **kwargs)
