"""Tokenizers: raw bytes (vocab 256), a byte-level BPE trained locally with `tokenizers`, or a
pretrained one read from a local `tokenizer.json` (GPT-2, Llama, ...; nothing is downloaded).

All map text to int ids and reserve an end-of-document id (`eos_id`) that text sources put
between documents: byte 0 (NUL, absent from normal text) for bytes, `<|endoftext|>` (id 0) for
BPE, the vocabulary's own end token (`</s>`, `<|end_of_text|>`, ...) for a tokenizer.json.
`fingerprint` identifies the exact vocabulary, for caches and for checking that two sources
share one tokenizer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from scaling.errors import DataError, SpecError
from scaling.store import atomic_write_bytes  # the one atomic writer (umask-honouring); used by scaling.data.text

EOS_TOKEN = "<|endoftext|>"


def cache_dir() -> Path:
    """Where tokenized corpora and trained tokenizers are cached: $SCALING_CACHE or ~/.cache/scaling."""
    root = os.environ.get("SCALING_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scaling")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@runtime_checkable
class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eos_id: int
    fingerprint: str

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens; id 0 (NUL) doubles as the end-of-document marker."""

    name = "byte"
    vocab_size = 256
    eos_id = 0
    fingerprint = "byte-v1"

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return "ByteTokenizer()"


class _HFWrapped:
    """Shared by tokenizers backed by a `tokenizers.Tokenizer` (trained BPE, tokenizer.json)."""

    name: str
    _tok: Any

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), self._tok.to_str().encode())

    def encode(self, text: str) -> np.ndarray:
        # No BOS/EOS templates: documents are joined with `eos_id` by the sources themselves.
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


class BPETokenizer(_HFWrapped):
    """A trained byte-level BPE (wraps `tokenizers.Tokenizer`); round-trips any text exactly."""

    name = "bpe"

    def __init__(self, tok: Any) -> None:
        self._tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.eos_id = tok.token_to_id(EOS_TOKEN)
        self.fingerprint = "bpe-" + hashlib.blake2b(tok.to_str().encode(), digest_size=12).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_file(str(path)))


# End-of-document tokens of common pretrained vocabularies, tried in order when none is named.
EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "<|im_end|>")


class JsonTokenizer(_HFWrapped):
    """A pretrained tokenizer from a local `tokenizer.json` (GPT-2, Llama, Mistral, ...).

    `vocab_size` is the largest id + 1 (added tokens included), so every id fits the embedding.
    `name` is "json:<folder or file stem>", e.g. "json:gpt2" for gpt2/tokenizer.json.
    """

    def __init__(self, tok: Any, *, name: str = "json", eos_token: str | None = None) -> None:
        self._tok, self.name = tok, name
        vocab = tok.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1 if vocab else 0
        tried = (eos_token,) if eos_token is not None else EOS_CANDIDATES
        found = [t for t in tried if tok.token_to_id(t) is not None]
        if not found:
            what = f"no token `{eos_token}`" if eos_token is not None else f"none of {', '.join(EOS_CANDIDATES)}"
            raise DataError(
                f"tokenizer {name}: has {what} to end documents; name its end-of-document token "
                f"(`--eos-token` / option `eos_token`)"
            )
        self.eos_token = found[0]
        self.eos_id = int(tok.token_to_id(found[0]))
        digest = hashlib.blake2b(tok.to_str().encode() + b"\x00" + self.eos_token.encode(), digest_size=12)
        self.fingerprint = "json-" + digest.hexdigest()


def load_tokenizer_json(path: str | os.PathLike, eos_token: str | None = None) -> JsonTokenizer:
    """Read a `tokenizer.json` (or a folder holding one, as Hugging Face model folders do)."""
    p = Path(path).expanduser()
    if p.is_dir() and (p / "tokenizer.json").is_file():
        p = p / "tokenizer.json"
    if not p.is_file():
        from scaling.data.userdata import read_from

        raise DataError(
            f"tokenizer file not found: {p}{read_from(p)}; give `byte`, `bpe` or the path of a tokenizer.json "
            f"(or of a folder holding one)"
        )
    from tokenizers import Tokenizer as HFTokenizer

    try:
        tok = HFTokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises a bare Exception for malformed files
        raise DataError(f"{p}: not a `tokenizers` tokenizer.json ({e})") from None
    label = p.parent.name if p.name == "tokenizer.json" and p.parent.name else p.stem
    return JsonTokenizer(tok, name=f"json:{label}", eos_token=eos_token)


def is_tokenizer_file(tokenizer: object) -> bool:
    """Whether a tokenizer setting names a file/folder (anything but the built-in names)."""
    return isinstance(tokenizer, (str, os.PathLike)) and str(tokenizer) not in ("byte", "bpe") and (
        str(tokenizer).endswith(".json") or Path(tokenizer).expanduser().exists()
    )


def train_bpe(texts: Iterable[str], vocab_size: int = 4096, *, cache_key: str | None = None) -> BPETokenizer:
    """Train a byte-level BPE on `texts`; with `cache_key`, reuse/save it under cache_dir()."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 258:
        raise SpecError(f"`bpe_vocab_size` must be an integer >= 258 (bytes + end-of-document), got {vocab_size!r}")
    path = None
    if cache_key is not None:
        digest = hashlib.blake2b(f"{cache_key}|{vocab_size}".encode(), digest_size=12).hexdigest()
        path = cache_dir() / f"bpe-{digest}.json"
        if path.exists():
            return BPETokenizer.from_file(path)
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    out = BPETokenizer(tok)
    if path is not None:
        out.save(path)
    return out


def get_tokenizer(tokenizer: str | Tokenizer, texts: Iterable[str] | None = None, vocab_size: int = 4096,
                  cache_key: str | None = None) -> Tokenizer:  # fmt: skip
    """"byte", "bpe" (trained on `texts`), a tokenizer.json path, or an existing tokenizer (as is)."""
    if not isinstance(tokenizer, str):
        return tokenizer
    if tokenizer == "byte":
        return ByteTokenizer()
    if tokenizer == "bpe":
        if texts is None:
            raise SpecError("tokenizer `bpe` needs training text; this source has none (use `byte`)")
        return train_bpe(texts, vocab_size, cache_key=cache_key)
    if is_tokenizer_file(tokenizer):
        return load_tokenizer_json(tokenizer)
    raise SpecError(f"unknown tokenizer `{tokenizer}`; expected `byte`, `bpe` or the path of a tokenizer.json")
