"""Document streams for `scaling data prepare`: a source named by kind or by path, read lazily.

`document_stream(source, options)` accepts a text source kind the package knows (`stdlib_code`,
`stdlib_docs`, `stdlib_tests`, `stdlib_decimal`, `files`, `jsonl`, `parquet`, with that kind's
options) or a path: a folder (every non-hidden file under it, one document per file), a glob, a
text file, a `.jsonl`/`.ndjson` file or a `.parquet` file. The stream yields (document id, text)
one document at a time, so preparing a corpus never holds it in memory; ids are those the
in-memory sources use, so the document split is the same rule everywhere. The fingerprint is
cheap (scaling.data.fingerprint).
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.data.corpora import STDLIB_FILE_KINDS
from scaling.data.fingerprint import files_fingerprint
from scaling.data.text import TEXT_OPTIONS
from scaling.errors import DataError, SpecError

TEXT_KINDS = (*STDLIB_FILE_KINDS, "stdlib_docs", "files", "jsonl", "parquet")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class DocumentStream:
    """A re-iterable stream of (document id, text) and what identifies it."""

    kind: str
    options: dict[str, Any]
    """The kind's options (paths as given), recorded in the prepared corpus's metadata."""
    fingerprint: str
    open: Callable[[], Iterator[tuple[str, str]]] = field(repr=False)
    """Start a fresh pass over the documents (BPE training reads them once more)."""

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.open()


def _source_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    from scaling.data.registry import check_options

    split_keys = sorted(set(options) & set(TEXT_OPTIONS))
    if split_keys:
        raise SpecError(
            f"option(s) {', '.join(f'`{k}`' for k in split_keys)} are settings of the prepared corpus, not of "
            f"source `{kind}`; pass them as flags (--valid-fraction, --max-bytes, --bpe-vocab-size)"
        )
    checked = check_options(kind, options)
    return {k: v for k, v in checked.items() if k not in TEXT_OPTIONS}


def _stdlib_files(kind: str) -> DocumentStream:
    """A stdlib source of one document per file (`corpora.STDLIB_FILE_KINDS`)."""
    from scaling.data.corpora import read_stdlib_file, stdlib_kind_files, stdlib_root

    rels = stdlib_kind_files(kind)

    def read() -> Iterator[tuple[str, str]]:
        for rel in rels:
            yield rel, read_stdlib_file(rel)

    fp = files_fingerprint([stdlib_root() / r for r in rels], kind, names=rels)
    return DocumentStream(kind, {}, fp, read)


def _stdlib_docs() -> DocumentStream:
    from pydoc_data.topics import topics

    from scaling.data.corpora import stdlib_docs_documents, stdlib_files, stdlib_root

    h = hashlib.blake2b(digest_size=16)
    for name, text in sorted(topics.items()):
        h.update(name.encode() + b"\x00" + text.encode() + b"\x00")
    root = stdlib_root()
    rels = stdlib_files()
    fp = files_fingerprint([root / r for r in rels], "stdlib_docs|" + h.hexdigest(), names=rels)
    # Docstrings are a few MB, parsed once per process by corpora; yielded from there.
    return DocumentStream("stdlib_docs", {}, fp, lambda: iter(stdlib_docs_documents()))


def _files(options: dict[str, Any]) -> DocumentStream:
    from scaling.data.userdata import expand_paths, file_ids, iter_files

    files = expand_paths(options["paths"])
    ids = file_ids(files)
    fp = files_fingerprint(files, "files", names=ids)
    return DocumentStream("files", options, fp, lambda: iter_files(ids, files))


def _single_file(kind: str, options: dict[str, Any]) -> DocumentStream:
    from scaling.data.userdata import check_parquet_column, iter_jsonl, iter_parquet, required_path

    path = required_path(kind, options["path"])
    key = options["field"] if kind == "jsonl" else options["column"]
    fp = files_fingerprint([path], f"{kind}|{key}", names=[path.name])
    if kind == "jsonl":
        return DocumentStream(kind, options, fp, lambda: iter_jsonl(path, key))
    check_parquet_column(path, key)
    return DocumentStream(kind, options, fp, lambda: iter_parquet(path, key))


def _from_path(source: str, options: dict[str, Any]) -> DocumentStream:
    path = Path(source).expanduser()
    if path.is_dir():
        kind, opts = "files", {"paths": str(path / "**" / "*"), **options}
    elif glob.has_magic(source):
        kind, opts = "files", {"paths": source, **options}
    elif path.is_file() and path.suffix.lower() in JSONL_SUFFIXES:
        kind, opts = "jsonl", {"path": str(path), **options}
    elif path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES:
        kind, opts = "parquet", {"path": str(path), **options}
    elif path.is_file():
        kind, opts = "files", {"paths": str(path), **options}
    else:
        raise DataError(
            f"no data source or file named {source!r}: give a source kind ({', '.join(TEXT_KINDS)}) or the "
            f"path of a folder of text files, a text file, a .jsonl or a .parquet file"
        )
    return document_stream(kind, opts)


def document_stream(source: str, options: dict[str, Any] | None = None) -> DocumentStream:
    """The documents of a text source kind (with its options) or of a path; see the module doc."""
    options = dict(options or {})
    if source not in TEXT_KINDS:
        from scaling.data.registry import source_kinds

        if source in source_kinds():
            raise SpecError(
                f"data source `{source}` has no documents to prepare (it generates or combines token streams); "
                f"prepare one of {', '.join(TEXT_KINDS)} or a path"
            )
        return _from_path(source, options)
    opts = _source_options(source, options)
    if source in STDLIB_FILE_KINDS:
        return _stdlib_files(source)
    if source == "stdlib_docs":
        return _stdlib_docs()
    if source == "files":
        return _files(opts)
    return _single_file(source, opts)
