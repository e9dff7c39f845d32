"""Prepared corpora: token files read through `np.memmap`, so memory does not grow with the corpus.

`scaling data prepare` (scaling.data.prepare) tokenises a text source once into a folder:

    meta.json        format, tokenizer, dtype, counts, source fingerprint, split settings
    train.bin        train-split tokens, flat uint16 (vocab <= 65536) or uint32, little-endian;
                     every document is followed by the tokenizer's eos id (as nanoGPT's .bin)
    train.idx        uint64 document offsets into train.bin, n_docs + 1 of them (first 0, last
                     n_tokens): document i is tokens [idx[i], idx[i+1]), its eos included
    valid.bin/.idx   the same for the validation split (split by document at prepare time)
    tokenizer.json   the tokenizer, unless it is `byte`

`PreparedSource` (`[data] source = "prepared"`, option `path`) trains on it like the in-memory
text sources: sequence i of the stream is a window at a hashed offset of train.bin, a pure function
of (i, seed); eval sets are consecutive windows of valid.bin. Only the pages a batch touches are
read, through the page cache, so workers share one copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from scaling.data.base import EvalSet, IndexedSource, hash_ints, n_eval_sequences, split_xy, stream_key
from scaling.data.tokenizers import BPETokenizer, ByteTokenizer, Tokenizer, load_tokenizer_json
from scaling.errors import DataError, SpecError

FORMAT = "scaling-prepared-v1"
META = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
SPLITS = ("train", "valid")
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


def token_file(split: str) -> str:
    return f"{split}.bin"


def index_file(split: str) -> str:
    return f"{split}.idx"


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a prepared corpus folder; errors say how to make one."""
    folder = Path(path).expanduser()
    meta_path = folder / META
    if not meta_path.is_file():
        what = "no such folder" if not folder.exists() else f"no {META} in it"
        from scaling.data.userdata import read_from

        raise DataError(f"{folder}: not a prepared corpus ({what}){read_from(folder)}; "
                        f"make one with `scaling data prepare SOURCE --out {folder}`")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{meta_path}: unreadable ({e}); prepare the corpus again with --force") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"{meta_path}: format {got!r}, expected {FORMAT!r}; prepare the corpus again with --force")
    return meta


def _memmap(folder: Path, name: str, dtype: Any, expected: int) -> np.memmap:
    path = folder / name
    if not path.is_file():
        raise DataError(f"{path}: missing; prepare the corpus again with --force")
    itemsize = np.dtype(dtype).itemsize
    size = path.stat().st_size
    if size != expected * itemsize:
        raise DataError(
            f"{path}: {size} bytes, but {META} says {expected} x {itemsize}; the folder was changed after "
            f"`scaling data prepare`: prepare it again with --force"
        )
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", shape=(expected,))


class PreparedSource(IndexedSource):
    """Token windows of a prepared corpus folder, read through np.memmap."""

    kind: ClassVar[str] = "prepared"
    OPTIONS: ClassVar[dict[str, Any]] = {"path": None}

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.meta = read_meta(self.path)
        tok = self.meta["tokenizer"]
        self.name = "prepared"
        self.vocab_size = int(tok["vocab_size"])
        self.dtype = self.meta["dtype"]
        self._tokenizer: Tokenizer | None = None
        # Windows depend on the corpus identity, not on where the folder lives.
        self._salt = ("prepared", self.meta["corpus_id"])
        self._open()

    def _open(self) -> None:
        dtype = DTYPES[self.dtype]
        for split in SPLITS:
            facts = self.meta[split]
            tokens = _memmap(self.path, token_file(split), dtype, int(facts["n_tokens"]))
            index = _memmap(self.path, index_file(split), np.uint64, int(facts["n_docs"]) + 1)
            setattr(self, f"{split}_tokens", tokens)
            setattr(self, f"{split}_index", index)

    # memmaps would pickle as full in-memory copies; workers reopen the files instead.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for split in SPLITS:
            state.pop(f"{split}_tokens", None)
            state.pop(f"{split}_index", None)
        state["_tokenizer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer the corpus was prepared with (loaded on first use)."""
        if self._tokenizer is None:
            tok = self.meta["tokenizer"]
            file = self.path / TOKENIZER_FILE
            if tok["kind"] == "byte":
                loaded: Tokenizer = ByteTokenizer()
            elif tok["kind"] == "bpe":
                loaded = BPETokenizer.from_file(file) if file.is_file() else None
            else:
                loaded = load_tokenizer_json(file, eos_token=tok["eos_token"]) if file.is_file() else None
            if loaded is None or loaded.fingerprint != tok["fingerprint"]:
                raise DataError(f"{file}: missing or not the tokenizer {META} records; "
                                f"prepare the corpus again with --force")  # fmt: skip
            self._tokenizer = loaded
        return self._tokenizer

    @property
    def n_train_tokens(self) -> int:
        return len(self.train_tokens)

    @property
    def n_valid_tokens(self) -> int:
        return len(self.valid_tokens)

    def n_documents(self, split: str = "train") -> int:
        return len(getattr(self, f"{split}_index")) - 1

    def document(self, i: int, split: str = "train") -> np.ndarray:
        """Token ids of document i of a split (its trailing eos dropped), int64."""
        index = getattr(self, f"{split}_index")
        if not 0 <= i < len(index) - 1:
            raise IndexError(f"document {i} out of range: the {split} split has {len(index) - 1}")
        lo, hi = int(index[i]), int(index[i + 1])
        return np.asarray(getattr(self, f"{split}_tokens")[lo : hi - 1], dtype=np.int64)

    def info(self) -> dict[str, Any]:
        m = self.meta
        return {**super().info(), "tokenizer": m["tokenizer"]["name"], "prepared_source": m["source"]["kind"],
                "prepared_corpus_id": m["corpus_id"], "n_train_tokens": self.n_train_tokens,
                "n_valid_tokens": self.n_valid_tokens, "n_train_docs": self.n_documents("train"),
                "n_valid_docs": self.n_documents("valid")}  # fmt: skip

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        n = self.n_train_tokens
        if n < seq_len + 2:
            raise DataError(f"{self.path}: training split has {n} tokens, fewer than seq_len + 2 = {seq_len + 2}")
        start = hash_ints(stream_key(*self._salt, int(seed)), index, n - seq_len)
        # Sorted reads touch the file front to back; the rows go back in stream order.
        order = np.argsort(start, kind="stable")
        out = np.empty((len(start), seq_len + 1), dtype=np.int64)
        out[order] = self.train_tokens[start[order][:, None] + np.arange(seq_len + 1)]
        return out

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        n_seq = min(n_eval_sequences(seq_len, n_tokens), (self.n_valid_tokens - 1) // seq_len)
        if n_seq < 1:
            raise DataError(
                f"{self.path}: validation split has {self.n_valid_tokens} tokens, fewer than seq_len + 1 = "
                f"{seq_len + 1}; prepare it again with a larger --valid-fraction"
            )
        idx = np.arange(n_seq)[:, None] * seq_len + np.arange(seq_len + 1)
        x, y = split_xy(self.valid_tokens[idx])
        return {"valid": EvalSet("valid", x, y, None)}

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> PreparedSource:
        path = options["path"]
        if not isinstance(path, str) or not path:
            raise SpecError(f"data source `prepared` needs option `path` (a prepared corpus folder), got {path!r}")
        src = cls(path)
        # The corpus carries its tokenizer and its split (made at prepare time; [data] seed has no
        # effect here). `byte` is the spec default, so it means "not set".
        if not (isinstance(tokenizer, str) and tokenizer == "byte") and not (
            getattr(tokenizer, "fingerprint", None) == src.meta["tokenizer"]["fingerprint"]
        ):
            raise SpecError(
                f"data source `prepared` uses the tokenizer it was prepared with "
                f"({src.meta['tokenizer']['name']}); leave [data] `tokenizer` unset, got {tokenizer!r}"
            )
        return src
