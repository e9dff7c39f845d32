"""`build_source(kind, options)`: one entry point from a study spec's [data] table to a source."""

from __future__ import annotations

import copy
from typing import Any

from scaling.errors import SpecError, did_you_mean


def _kinds() -> dict[str, type]:
    # Imported here so that importing the registry stays cheap and cycle-free.
    from scaling.data.corpora import StdlibCodeSource, StdlibDecimalSource, StdlibDocsSource, StdlibTestsSource
    from scaling.data.markov import MarkovSource
    from scaling.data.mixture import MixtureSource
    from scaling.data.pool_facts import FactsPoolSource
    from scaling.data.pool_text import TextPoolSource
    from scaling.data.prepared import PreparedSource
    from scaling.data.synthetic import ZipfFactsSource
    from scaling.data.userdata import FilesSource, JsonlSource, ParquetSource

    classes = [ZipfFactsSource, MarkovSource, StdlibCodeSource, StdlibDocsSource, StdlibTestsSource,
               StdlibDecimalSource, FilesSource, JsonlSource, ParquetSource, PreparedSource, MixtureSource, FactsPoolSource,
               TextPoolSource]  # fmt: skip
    return {c.kind: c for c in classes}


def source_kinds() -> list[str]:
    return list(_kinds())


def source_options(kind: str) -> dict[str, Any]:
    """Valid option keys of a source kind with their defaults (None = required or derived)."""
    return copy.deepcopy(_source_class(kind).OPTIONS)


def _source_class(kind: str) -> type:
    kinds = _kinds()
    if kind not in kinds:
        raise SpecError(f"unknown data source `{kind}`{did_you_mean(kind, kinds)}; expected one of {', '.join(kinds)}")
    return kinds[kind]


def _check_value(kind: str, key: str, value: Any, default: Any) -> Any:
    where = f"data source `{kind}` option `{key}`"
    if default is None or isinstance(default, (dict, list)):
        return value  # structured / optional options are checked by the source itself
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SpecError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SpecError(f"{where} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where} must be a number, got {value!r}")
        return float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise SpecError(f"{where} must be a string, got {value!r}")
    return value


def check_options(kind: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Options merged over the kind's defaults; unknown keys and wrong types raise SpecError."""
    defaults = source_options(kind)
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SpecError(
            f"unknown option(s) {', '.join(f'`{k}`' for k in unknown)}{did_you_mean(unknown[0], defaults)} "
            f"for data source `{kind}`; "
            f"valid options: {', '.join(defaults) or '(none)'}"
        )
    return {k: _check_value(kind, k, options[k], d) if k in options else d for k, d in defaults.items()}


def build_source(kind: str, options: dict[str, Any] | None = None, *, tokenizer: Any = "byte", seed: int = 0) -> Any:
    """Build a source. `tokenizer` is "byte", "bpe", a tokenizer.json path or a Tokenizer; `seed` is
    the world/split seed.

    The per-run data-order seed is the `seed` argument of `train_batch`, not this one.
    """
    if not isinstance(kind, str):
        raise SpecError(f"data source kind must be a string, got {kind!r}")
    cls = _source_class(kind)
    from scaling.data.tokenizers import is_tokenizer_file

    if isinstance(tokenizer, str) and tokenizer not in ("byte", "bpe") and not is_tokenizer_file(tokenizer):
        raise SpecError(f"unknown tokenizer `{tokenizer}`; expected `byte`, `bpe` or the path of a tokenizer.json")
    return cls.from_options(check_options(kind, options), tokenizer=tokenizer, seed=seed)
