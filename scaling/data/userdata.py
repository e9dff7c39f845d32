"""User text: files or globs (`files`), JSONL with a text field (`jsonl`), parquet with a text
column (`parquet`). One document per file / line / row, split by document like the stdlib
corpora. Files are identified by path, JSONL lines and parquet rows by a hash of their text
(so duplicated rows always land in the same split). The `iter_*` readers stream documents, for
`scaling data prepare`; the sources here hold them in memory.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from scaling.data.fingerprint import files_fingerprint
from scaling.data.text import TEXT_OPTIONS, Documents, TextSource
from scaling.errors import DataError, SpecError


def _text_id(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def _fingerprint(kind: str, files: list[tuple[str, Path]], extra: str) -> str:
    """Metadata + sampled-content fingerprint of the files (see scaling.data.fingerprint), plus
    their document ids and the options that change what is read."""
    return files_fingerprint([p for _, p in files], extra=f"{kind}-v2|{extra}", names=[n for n, _ in files])


def iter_jsonl(path: Path, field: str) -> Iterator[tuple[str, str]]:
    """(text hash, text) per non-blank line of a JSONL file, streamed; bad lines name file:line."""
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
            yield _text_id(row[field]), row[field]


def check_parquet_column(path: Path, column: str) -> None:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    if column not in names:
        raise DataError(f"{path}: missing column `{column}`; columns are {names} (set option `column`)")


def iter_parquet(path: Path, column: str, batch_rows: int = 4096) -> Iterator[tuple[str, str]]:
    """(text hash, text) per non-empty row of a parquet column, read in record batches."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[column]):
        for v in batch.column(0).to_pylist():
            if v is not None and not isinstance(v, str):
                raise DataError(f"{path}: column `{column}` must hold strings, found {type(v).__name__}")
            if v:
                yield _text_id(v), v


def file_ids(files: list[Path]) -> list[str]:
    """Ids relative to the files' common folder: the split survives moving the data elsewhere."""
    root = os.path.commonpath([str(p.resolve().parent) for p in files])
    return [os.path.relpath(p.resolve(), root).replace(os.sep, "/") for p in files]


def iter_files(ids: list[str], files: list[Path]) -> Iterator[tuple[str, str]]:
    for i, p in zip(ids, files):
        yield i, p.read_bytes().decode("utf-8", errors="replace")


def read_from(path: str | os.PathLike) -> str:
    """Where a relative path was looked for, for a not-found message: a spec's paths are read from
    the folder scaling runs in, not the spec's folder, and the user may not expect that."""
    if os.path.isabs(os.path.expanduser(str(path))):
        return ""
    return f" (relative paths are read from the current folder, {os.getcwd()})"


def required_path(kind: str, value: Any) -> Path:
    """The existing file named by a source's `path` option; errors name the key and where it looked."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise SpecError(f"data source `{kind}` needs option `path` (a file path), got {value!r}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise DataError(f"data source `{kind}`: file not found: {path}{read_from(path)}")
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
                raise DataError(f"data source `files`: no files match {pattern!r}{read_from(pattern)}")
            found.update(matches)
        elif os.path.isfile(pattern):
            found.add(Path(pattern))
        else:
            raise DataError(f"data source `files`: file not found: {pattern}{read_from(pattern)}")
    return sorted(found)


class FilesSource(TextSource):
    """Plain text files, one document per file."""

    kind: ClassVar[str] = "files"
    OPTIONS: ClassVar[dict[str, Any]] = {"paths": None, **TEXT_OPTIONS}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> FilesSource:
        files = expand_paths(options["paths"])
        ids = file_ids(files)

        def load() -> Documents:
            return list(iter_files(ids, files))

        fingerprint = _fingerprint("files", list(zip(ids, files)), "")
        return cls("files", fingerprint, load, **cls.text_kwargs(options, tokenizer, seed))


class JsonlSource(TextSource):
    """JSON Lines, one document per line, text in `field`."""

    kind: ClassVar[str] = "jsonl"
    OPTIONS: ClassVar[dict[str, Any]] = {"path": None, "field": "text", **TEXT_OPTIONS}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> JsonlSource:
        path, field = required_path("jsonl", options["path"]), options["field"]

        def load() -> Documents:
            return list(iter_jsonl(path, field))

        kwargs = cls.text_kwargs(options, tokenizer, seed)
        return cls("jsonl", _fingerprint("jsonl", [(path.name, path)], field), load, **kwargs)


class ParquetSource(TextSource):
    """A parquet file, one document per row, text in `column` (nulls skipped)."""

    kind: ClassVar[str] = "parquet"
    OPTIONS: ClassVar[dict[str, Any]] = {"path": None, "column": "text", **TEXT_OPTIONS}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> ParquetSource:
        path, column = required_path("parquet", options["path"]), options["column"]
        check_parquet_column(path, column)

        def load() -> Documents:
            return list(iter_parquet(path, column))

        kwargs = cls.text_kwargs(options, tokenizer, seed)
        return cls("parquet", _fingerprint("parquet", [(path.name, path)], column), load, **kwargs)
