"""`prepare_corpus`: tokenise a document stream once into a prepared corpus folder (see prepared.py).

Documents are read, split and encoded a batch at a time and appended to the token files, so
memory stays flat however large the corpus. A document goes to validation iff the hash of (seed,
document id) falls below `valid_fraction`, the rule the in-memory text sources use (text.py), so
the split does not depend on corpus order. Everything is written into a hidden temporary folder
beside `out` and renamed into place at the end: a killed prepare leaves `out` as it was (at
worst a `.<name>.tmp-*` folder to delete). Preparing again with the same source fingerprint,
tokenizer and settings finds the folder up to date and does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from scaling.data.documents import DocumentStream
from scaling.data.prepared import DTYPES, FORMAT, META, SPLITS, TOKENIZER_FILE, index_file, read_meta, token_file
from scaling.data.text import _unit as split_unit
from scaling.data.tokenizers import ByteTokenizer, Tokenizer, load_tokenizer_json, train_bpe
from scaling.errors import DataError, SpecError

# A batch is encoded at once (tokenizers parallelise within it); both caps bound memory.
BATCH_DOCS = 256
BATCH_BYTES = 1 << 20


@dataclass(frozen=True)
class Prepared:
    path: Path
    meta: dict[str, Any]
    up_to_date: bool
    """True when the folder already held this corpus and nothing was written."""


def _tokenizer_spec(tokenizer: str | os.PathLike, bpe_vocab_size: int, eos_token: str | None) -> tuple[dict, Any]:
    """(identity of the tokenizer setting, tokenizer or None when it must be trained first)."""
    name = str(tokenizer)
    if name in ("byte", "bpe"):
        if eos_token is not None:
            raise SpecError(f"`--eos-token` applies to a tokenizer.json; tokenizer `{name}` has its own")
        if name == "byte":
            return {"kind": "byte"}, ByteTokenizer()
        return {"kind": "bpe", "bpe_vocab_size": bpe_vocab_size}, None
    tok = load_tokenizer_json(tokenizer, eos_token=eos_token)
    return {"kind": "json", "fingerprint": tok.fingerprint}, tok


def _dtype_for(tok: Tokenizer, dtype: str) -> str:
    if dtype == "auto":
        return "uint16" if tok.vocab_size <= 1 << 16 else "uint32"
    if dtype not in DTYPES:
        raise SpecError(f"`--dtype` must be auto, uint16 or uint32, got {dtype!r}")
    if dtype == "uint16" and tok.vocab_size > 1 << 16:
        raise DataError(
            f"tokenizer {tok.name} has {tok.vocab_size} ids, more than uint16 holds (65536); "
            f"use --dtype uint32 (or auto)"
        )
    return dtype


def _capped(docs: Iterable[tuple[str, str]], max_bytes: int | None) -> Iterator[tuple[str, str, bytes]]:
    """(id, text, utf-8 bytes) of non-empty documents, stopping after `max_bytes` (last one cut)."""
    total = 0
    for doc_id, text in docs:
        raw = text.encode("utf-8")
        if max_bytes is not None:
            if total >= max_bytes:
                return
            if total + len(raw) > max_bytes:
                raw = raw[: max_bytes - total]
                text = raw.decode("utf-8", errors="ignore")
        if raw:
            total += len(raw)
            yield doc_id, text, raw


class _SplitWriter:
    """Appends documents to <split>.bin and their offsets to <split>.idx."""

    def __init__(self, folder: Path, split: str, dtype: str, eos_id: int) -> None:
        self.dtype = np.dtype(DTYPES[dtype]).newbyteorder("<")
        self.eos = np.array([eos_id], dtype=np.int64)
        self.tokens: BinaryIO = open(folder / token_file(split), "wb")
        self.index: BinaryIO = open(folder / index_file(split), "wb")
        self.n_tokens = self.n_docs = 0
        self.index.write(np.zeros(1, dtype="<u8").tobytes())

    def write(self, docs: list[np.ndarray]) -> None:
        if not docs:
            return
        ids = np.concatenate([p for d in docs for p in (d, self.eos)])
        self.tokens.write(ids.astype(self.dtype).tobytes())
        ends = self.n_tokens + np.cumsum([len(d) + 1 for d in docs])
        self.index.write(ends.astype("<u8").tobytes())
        self.n_tokens, self.n_docs = int(ends[-1]), self.n_docs + len(docs)

    def close(self) -> None:
        for f in (self.tokens, self.index):
            f.flush()
            os.fsync(f.fileno())
            f.close()


def _encode_into(stream: Iterable[tuple[str, str, bytes]], tok: Tokenizer, writers: dict[str, _SplitWriter],
                 valid_fraction: float, seed: int) -> int:  # fmt: skip
    """Tokenise the stream into the writers a batch at a time; returns the text bytes read."""
    n_bytes, batch, batch_bytes = 0, [], 0

    def flush() -> None:
        nonlocal batch_bytes
        texts = [t for _, t in batch]
        enc = tok.encode_batch(texts) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in texts]
        for split in SPLITS:
            docs = [e for (s, _), e in zip(batch, enc) if s == split]
            if docs and max(int(d.max(initial=0)) for d in docs) >= tok.vocab_size:
                raise DataError(f"tokenizer {tok.name} produced an id >= its vocab_size {tok.vocab_size}")
            writers[split].write(docs)
        batch.clear()
        batch_bytes = 0

    for doc_id, text, raw in stream:
        n_bytes += len(raw)
        batch_bytes += len(raw)
        batch.append(("valid" if split_unit(seed, doc_id) < valid_fraction else "train", text))
        if len(batch) >= BATCH_DOCS or batch_bytes >= BATCH_BYTES:
            flush()
    if batch:
        flush()
    return n_bytes


def _check_out(out: Path, corpus_id: str, force: bool) -> dict[str, Any] | None:
    """The existing meta if `out` already holds this corpus; errors if it holds something else."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise DataError(f"{out} exists and is not a folder; choose another --out")
    if not (out / META).is_file():
        if any(out.iterdir()):
            raise DataError(f"{out} exists and is not a prepared corpus (no {META}); choose another --out")
        return None
    meta = read_meta(out) if not force else None
    if meta is not None and meta.get("corpus_id") != corpus_id:
        raise DataError(
            f"{out} holds a different prepared corpus (other source, tokenizer or settings); "
            f"pass --force to replace it or choose another --out"
        )
    return meta


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished temporary folder to `out`, replacing an old corpus there."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "corpus")
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_corpus(
    stream: DocumentStream,
    out: str | Path,
    *,
    tokenizer: str | os.PathLike = "byte",
    valid_fraction: float = 0.05,
    seed: int = 0,
    bpe_vocab_size: int = 4096,
    eos_token: str | None = None,
    dtype: str = "auto",
    max_bytes: int | None = None,
    force: bool = False,
) -> Prepared:
    """Tokenise `stream` into the folder `out` (see the module doc); returns its metadata."""
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) or not 0 < valid_fraction < 1:
        raise SpecError(f"`--valid-fraction` must be a number in (0, 1), got {valid_fraction!r}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise SpecError(f"`--max-bytes` must be a positive integer (omit it for no cap), got {max_bytes!r}")
    out = Path(out).expanduser()
    tok_id, tok = _tokenizer_spec(tokenizer, bpe_vocab_size, eos_token)
    identity = {"format": FORMAT, "source": stream.kind, "source_options": stream.options,
                "source_fingerprint": stream.fingerprint, "tokenizer": tok_id, "valid_fraction": valid_fraction,
                "seed": seed, "max_bytes": max_bytes, "dtype": dtype}  # fmt: skip
    corpus_id = hashlib.blake2b(json.dumps(identity, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()
    existing = _check_out(out, corpus_id, force)
    if existing is not None:
        return Prepared(out, existing, up_to_date=True)

    t0 = time.perf_counter()
    if tok is None:  # BPE: trained on the train split only, streamed
        train_texts = (t for i, t, _ in _capped(stream, max_bytes) if split_unit(seed, i) >= valid_fraction)
        tok = train_bpe(train_texts, bpe_vocab_size)
    dtype_name = _dtype_for(tok, dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the corpus is as shareable as the umask says
        writers = {s: _SplitWriter(tmp, s, dtype_name, tok.eos_id) for s in SPLITS}
        try:
            n_bytes = _encode_into(_capped(stream, max_bytes), tok, writers, valid_fraction, seed)
        finally:
            for w in writers.values():
                w.close()
        counts = {s: {"n_tokens": w.n_tokens, "n_docs": w.n_docs} for s, w in writers.items()}
        n_docs = counts["train"]["n_docs"] + counts["valid"]["n_docs"]
        if n_docs == 0:
            raise DataError(f"source `{stream.kind}` {stream.options or ''}: no documents found (or all are empty)")
        for split, what in (("train", "--valid-fraction is too high"), ("valid", "raise --valid-fraction")):
            if counts[split]["n_docs"] == 0:
                raise DataError(
                    f"no {split} documents: {n_docs} documents, valid_fraction={valid_fraction}; {what} or add "
                    f"documents (the split is by document)"
                )
        if tok_id["kind"] != "byte":
            tok.save(tmp / TOKENIZER_FILE)
        meta = {
            "format": FORMAT,
            "corpus_id": corpus_id,
            "source": {"kind": stream.kind, "options": stream.options, "fingerprint": stream.fingerprint},
            "tokenizer": {"kind": tok_id["kind"], "name": tok.name, "vocab_size": tok.vocab_size,
                          "eos_id": tok.eos_id, "eos_token": getattr(tok, "eos_token", None),
                          "fingerprint": tok.fingerprint,
                          "file": TOKENIZER_FILE if tok_id["kind"] != "byte" else None},  # fmt: skip
            "dtype": dtype_name,
            "split": {"by": "document", "valid_fraction": valid_fraction, "seed": seed,
                      "rule": "validation iff blake2b(seed, document id) / 2**64 < valid_fraction"},  # fmt: skip
            "max_bytes": max_bytes,
            "n_text_bytes": n_bytes,
            **counts,
            "prepare_seconds": round(time.perf_counter() - t0, 3),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "identity": identity,
        }
        with open(tmp / META, "w") as f:  # written last: a folder with meta.json is complete
            json.dump(meta, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Prepared(out, meta, up_to_date=False)
