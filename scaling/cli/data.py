"""`scaling data prepare SOURCE --tokenizer ... --out DIR` and `scaling data info DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from scaling.errors import SpecError

data_app = typer.Typer(help="Prepare real corpora: tokenise once into memory-mapped token files.",
                       no_args_is_help=True)  # fmt: skip


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as JSON when they parse (numbers, lists), else as text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"`--option` takes key=value (e.g. -o field=content), got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _summary(meta: dict[str, Any]) -> str:
    tok, tr, va = meta["tokenizer"], meta["train"], meta["valid"]
    return (f"{meta['source']['kind']} · tokenizer {tok['name']} (vocab {tok['vocab_size']}, eos {tok['eos_id']}) · "
            f"{meta['dtype']} · train {tr['n_tokens']:,} tokens / {tr['n_docs']:,} docs · "
            f"valid {va['n_tokens']:,} tokens / {va['n_docs']:,} docs")  # fmt: skip


@data_app.command()
def prepare(
    source: Annotated[str, typer.Argument(help="A text source kind (stdlib_code, stdlib_docs, stdlib_tests, "
                                               "stdlib_decimal, files, jsonl, parquet) or a path: folder of "
                                               "text files, glob, text file, .jsonl or .parquet.")],  # fmt: skip
    out: Annotated[Path, typer.Option("--out", help="Folder to write (created; replaced only with --force).")],
    tokenizer: Annotated[str, typer.Option(help="byte, bpe (trained on the train split) or the path of a "
                                                "tokenizer.json / a folder holding one.")] = "byte",  # fmt: skip
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Source option key=value, "
                      "e.g. -o field=content (jsonl), -o column=body (parquet); repeatable.")] = None,  # fmt: skip
    valid_fraction: Annotated[float, typer.Option(help="Share of documents held out for validation.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the document split.")] = 0,
    bpe_vocab_size: Annotated[int, typer.Option(help="Vocabulary size of a trained BPE.")] = 4096,
    eos_token: Annotated[Optional[str], typer.Option(help="End-of-document token of a tokenizer.json "
                                                          "(default: the first of <|endoftext|>, </s>, ...).")] = None,
    dtype: Annotated[str, typer.Option(help="Token dtype: auto (uint16 if the vocab fits), uint16, uint32.")] = "auto",
    max_bytes: Annotated[Optional[int], typer.Option(help="Stop after this many bytes of text (source order).")] = None,
    force: Annotated[bool, typer.Option(help="Replace a different prepared corpus at --out, or redo it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the corpus metadata as JSON.")] = False,
) -> None:
    """Tokenise a text source once into DIR (train/valid .bin + .idx, meta.json) for `source = "prepared"`."""
    from scaling.data.documents import document_stream
    from scaling.data.prepare import prepare_corpus

    stream = document_stream(source, _parse_options(option or []))
    result = prepare_corpus(stream, out, tokenizer=tokenizer, valid_fraction=valid_fraction, seed=seed,
                            bpe_vocab_size=bpe_vocab_size, eos_token=eos_token, dtype=dtype, max_bytes=max_bytes,
                            force=force)  # fmt: skip
    if as_json:
        typer.echo(json.dumps({**result.meta, "path": str(result.path), "up_to_date": result.up_to_date}))
        return
    verb = "up to date" if result.up_to_date else f"wrote in {result.meta['prepare_seconds']:.1f} s"
    typer.echo(f"{result.path}: {verb}: {_summary(result.meta)}")
    typer.echo(f'train on it with [data] source = "prepared", options = {{path = "{result.path}"}}')


@data_app.command()
def info(
    path: Annotated[Path, typer.Argument(help="A prepared corpus folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print meta.json as one JSON object.")] = False,
) -> None:
    """Describe a prepared corpus (and check its files against meta.json)."""
    from scaling.data.prepared import PreparedSource

    src = PreparedSource(path)  # opens every file: sizes are checked against the metadata
    if as_json:
        typer.echo(json.dumps(src.meta))
        return
    m = src.meta
    typer.echo(f"{path}: {_summary(m)}")
    typer.echo(f"source options {m['source']['options']} · fingerprint {m['source']['fingerprint']} · "
               f"split seed {m['split']['seed']}, valid_fraction {m['split']['valid_fraction']} · "
               f"created {m['created_utc']}")  # fmt: skip
