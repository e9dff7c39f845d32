"""Real text with no download: the Python standard library's code and its English docs.

`stdlib_code`: every `.py` file under sysconfig's stdlib path, minus test folders and
site-packages, one document per file (id = relative path). `stdlib_docs`: the pydoc help
topics (one document per topic) plus each module's docstrings (module, classes, functions;
one document per module), read with `ast` so nothing is imported or executed. Both split by
file (`stdlib_split_key`): a module held out of one is held out of the other, so continual
pre-training from docs to code (or back) never trains on its validation files' text.
`stdlib_tests`: the standard library's own test files, every `.py` file under a test folder
(`test/`, and the `tests`/`idle_test` folders of packages), one document per file. It is
disjoint from `stdlib_code` by construction: a file is a test file iff a folder of its path is
a test folder, which is exactly what `stdlib_code` skips (`stdlib_files(tests=True)`).
`stdlib_decimal`: the `decimal` module's arithmetic test vectors (`test/decimaltestdata/*.decTest`,
lines such as `addx003 add '5.75' '3.3' -> 9.05`), one document per file: a math-like domain of
terse formal text, disjoint from the three others (they read only `.py` files).
"""

from __future__ import annotations

import ast
import hashlib
import os
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from scaling.data.text import TEXT_OPTIONS, Documents, TextSource
from scaling.errors import DataError

_TEST_DIRS = {"test", "tests", "idle_test"}
_SKIP_DIRS = _TEST_DIRS | {"site-packages", "dist-packages", "__pycache__"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@lru_cache(maxsize=2)
def stdlib_files(tests: bool = False) -> tuple[str, ...]:
    """Relative paths of the stdlib's .py files, sorted, without site-packages: those outside any
    test folder (`stdlib_code`), or with `tests` those inside one (`stdlib_tests`)."""
    root = stdlib_root()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        in_tests = any(part in _TEST_DIRS for part in Path(rel_dir).parts)
        # Outside test folders skip everything in _SKIP_DIRS; inside, only the never-source folders.
        dirnames[:] = [d for d in dirnames if d not in (_SKIP_DIRS - _TEST_DIRS if tests else _SKIP_DIRS)]
        if in_tests != tests:
            continue
        for f in filenames:
            if f.endswith(".py"):
                out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    if not out:
        what = "test .py files (test folders)" if tests else ".py files"
        raise DataError(f"no {what} found under the standard library path {root}")
    return tuple(sorted(out))


def _files_fingerprint(files: tuple[str, ...]) -> str:
    """A hash of the files' paths and bytes: a cached tokenization is reused only for the same files."""
    h = hashlib.blake2b(digest_size=16)
    root = stdlib_root()
    for rel in files:
        h.update(rel.encode() + b"\x00" + (root / rel).read_bytes() + b"\x00")
    return h.hexdigest()


@lru_cache(maxsize=2)
def _stdlib_fingerprint(tests: bool = False) -> str:
    return _files_fingerprint(stdlib_files(tests))


def read_stdlib_file(rel: str) -> str:
    """A stdlib file's text (undecodable bytes replaced), by its path relative to the stdlib."""
    return (stdlib_root() / rel).read_bytes().decode("utf-8", errors="replace")


def _file_documents(files: tuple[str, ...]) -> Documents:
    """One document per file, id = its path relative to the stdlib."""
    return [(rel, read_stdlib_file(rel)) for rel in files]


def stdlib_split_key(doc_id: str) -> str:
    """One split decision per stdlib file, shared by `stdlib_code` (id = relative path) and
    `stdlib_docs` (id = "module:" + relative path), whatever the sources' seeds: a file whose
    code is validation has its docstrings in validation too. pydoc topics have keys of their own."""
    if doc_id.startswith("topic:"):
        return doc_id
    return "stdlib-file:" + doc_id.removeprefix("module:")


def stdlib_code_documents() -> Documents:
    return _file_documents(stdlib_files())


def stdlib_tests_documents() -> Documents:
    return _file_documents(stdlib_files(tests=True))


DECIMAL_DIR = "test/decimaltestdata"


@lru_cache(maxsize=1)
def decimal_files() -> tuple[str, ...]:
    """Relative paths of the decimal test vectors, sorted."""
    folder = stdlib_root() / DECIMAL_DIR
    out = sorted(f"{DECIMAL_DIR}/{p.name}" for p in folder.glob("*.decTest")) if folder.is_dir() else []
    if not out:
        raise DataError(f"no .decTest files found under {folder} (the standard library's test data; "
                        "some distributions ship it in a separate package, e.g. Debian's libpython3-testsuite)")
    return tuple(out)


def stdlib_decimal_documents() -> Documents:
    return _file_documents(decimal_files())


def stdlib_kind_files(kind: str) -> tuple[str, ...]:
    """The files of a one-document-per-file stdlib source (a key of STDLIB_FILE_KINDS)."""
    return {"stdlib_code": stdlib_files, "stdlib_tests": lambda: stdlib_files(tests=True),
            "stdlib_decimal": decimal_files}[kind]()


STDLIB_FILE_KINDS = ("stdlib_code", "stdlib_tests", "stdlib_decimal")


def module_docstrings(source: str) -> str:
    """The docstrings of a module, its classes and functions, each under its qualified name."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    parts = []
    if doc := ast.get_docstring(tree):
        parts.append(doc)

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if doc := ast.get_docstring(child):
                    parts.append(f"{name}\n{doc}")
                walk(child, name + ".")

    walk(tree, "")
    return "\n\n".join(parts)


def stdlib_docs_documents() -> Documents:
    return list(_stdlib_docs_documents())


@lru_cache(maxsize=1)
def _stdlib_docs_documents() -> tuple[tuple[str, str], ...]:
    # Parsing every module takes seconds; keep the result for other caps/seeds in this process.
    from pydoc_data.topics import topics

    docs = [(f"topic:{name}", text) for name, text in sorted(topics.items()) if text.strip()]
    root = stdlib_root()
    for rel in stdlib_files():
        text = module_docstrings((root / rel).read_bytes().decode("utf-8", errors="replace"))
        if text.strip():
            docs.append((f"module:{rel}", text))
    return tuple(docs)


def _docs_fingerprint() -> str:
    from pydoc_data.topics import topics

    h = hashlib.blake2b(digest_size=16)
    h.update(b"stdlib_docs-v2" + _stdlib_fingerprint().encode())
    for name, text in sorted(topics.items()):
        h.update(name.encode() + b"\x00" + text.encode() + b"\x00")
    return h.hexdigest()


class StdlibCodeSource(TextSource):
    """Python standard library source code (byte-level by default)."""

    kind: ClassVar[str] = "stdlib_code"
    OPTIONS: ClassVar[dict[str, Any]] = dict(TEXT_OPTIONS)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> StdlibCodeSource:
        return cls("stdlib_code", "stdlib_code-v2" + _stdlib_fingerprint(), stdlib_code_documents,
                   split_key=stdlib_split_key, **cls.text_kwargs(options, tokenizer, seed))  # fmt: skip


class StdlibDocsSource(TextSource):
    """English documentation of the standard library: pydoc topics and docstrings."""

    kind: ClassVar[str] = "stdlib_docs"
    OPTIONS: ClassVar[dict[str, Any]] = dict(TEXT_OPTIONS)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> StdlibDocsSource:
        kwargs = cls.text_kwargs(options, tokenizer, seed)
        return cls("stdlib_docs", _docs_fingerprint(), stdlib_docs_documents, split_key=stdlib_split_key, **kwargs)


class StdlibTestsSource(TextSource):
    """The standard library's test files (`test/` and packages' test folders): disjoint from `stdlib_code`."""

    kind: ClassVar[str] = "stdlib_tests"
    OPTIONS: ClassVar[dict[str, Any]] = dict(TEXT_OPTIONS)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> StdlibTestsSource:
        # Test paths never occur in stdlib_code or stdlib_docs, so the shared split key keeps them apart too.
        return cls("stdlib_tests", "stdlib_tests-v1" + _stdlib_fingerprint(tests=True), stdlib_tests_documents,
                   split_key=stdlib_split_key, **cls.text_kwargs(options, tokenizer, seed))  # fmt: skip


class StdlibDecimalSource(TextSource):
    """The `decimal` module's arithmetic test vectors: terse formal text, a math-like domain."""

    kind: ClassVar[str] = "stdlib_decimal"
    OPTIONS: ClassVar[dict[str, Any]] = dict(TEXT_OPTIONS)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> StdlibDecimalSource:
        # Its paths occur in no other stdlib source, so the shared split key keeps them apart too.
        return cls("stdlib_decimal", "stdlib_decimal-v1" + _files_fingerprint(decimal_files()), stdlib_decimal_documents,
                   split_key=stdlib_split_key, **cls.text_kwargs(options, tokenizer, seed))  # fmt: skip
