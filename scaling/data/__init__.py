"""Data for language-model training: synthetic sources with exact Bayes loss, stdlib text,
user text, tokenizers (byte, trained BPE, local tokenizer.json), exact-share mixtures and
prepared (memory-mapped) corpora made by `prepare_corpus(document_stream(...), out)`. Build a
source with `build_source(kind, options)`; source/target pairs for encoder-decoders with
`build_pair_source` (scaling.data.pairs)."""

from scaling.data.base import IGNORE_INDEX, EvalSet, IndexedSource, LMSource, hash_uniform
from scaling.data.corpora import StdlibCodeSource, StdlibDecimalSource, StdlibDocsSource, StdlibTestsSource
from scaling.data.documents import DocumentStream, document_stream
from scaling.data.fingerprint import file_fingerprint, files_fingerprint
from scaling.data.markov import MarkovSource
from scaling.data.mixture import MixtureSource
from scaling.data.prepare import Prepared, prepare_corpus
from scaling.data.prepared import PreparedSource, read_meta
from scaling.data.pairs import PairEvalSet, PairSource, build_pair_source, pair_source_kinds, pair_source_options
from scaling.data.registry import build_source, source_kinds, source_options
from scaling.data.synthetic import ZipfFactsSource
from scaling.data.text import TextSource, split_documents
from scaling.data.tokenizers import (BPETokenizer, ByteTokenizer, JsonTokenizer, Tokenizer, cache_dir, get_tokenizer,
                                     load_tokenizer_json, train_bpe)  # fmt: skip
from scaling.data.userdata import FilesSource, JsonlSource, ParquetSource

__all__ = [
    "IGNORE_INDEX",
    "BPETokenizer",
    "ByteTokenizer",
    "DocumentStream",
    "EvalSet",
    "FilesSource",
    "IndexedSource",
    "JsonTokenizer",
    "JsonlSource",
    "LMSource",
    "MarkovSource",
    "MixtureSource",
    "PairEvalSet",
    "PairSource",
    "ParquetSource",
    "Prepared",
    "PreparedSource",
    "StdlibCodeSource",
    "StdlibDocsSource",
    "StdlibTestsSource",
    "StdlibDecimalSource",
    "TextSource",
    "Tokenizer",
    "ZipfFactsSource",
    "build_pair_source",
    "build_source",
    "cache_dir",
    "document_stream",
    "file_fingerprint",
    "files_fingerprint",
    "get_tokenizer",
    "hash_uniform",
    "load_tokenizer_json",
    "pair_source_kinds",
    "pair_source_options",
    "prepare_corpus",
    "read_meta",
    "source_kinds",
    "source_options",
    "split_documents",
    "train_bpe",
]
