"""Data for language-model training: synthetic sources with exact Bayes loss, stdlib text,
user text, tokenizers and exact-share mixtures. Build one with `build_source(kind, options)`;
source/target pairs for encoder-decoders with `build_pair_source` (scaling.data.pairs)."""

from scaling.data.base import IGNORE_INDEX, EvalSet, IndexedSource, LMSource, hash_uniform
from scaling.data.corpora import StdlibCodeSource, StdlibDocsSource
from scaling.data.markov import MarkovSource
from scaling.data.mixture import MixtureSource
from scaling.data.pairs import PairEvalSet, PairSource, build_pair_source, pair_source_kinds, pair_source_options
from scaling.data.registry import build_source, source_kinds, source_options
from scaling.data.synthetic import ZipfFactsSource
from scaling.data.text import TextSource, split_documents
from scaling.data.tokenizers import BPETokenizer, ByteTokenizer, Tokenizer, cache_dir, get_tokenizer, train_bpe
from scaling.data.userdata import FilesSource, JsonlSource, ParquetSource

__all__ = [
    "IGNORE_INDEX",
    "BPETokenizer",
    "ByteTokenizer",
    "EvalSet",
    "FilesSource",
    "IndexedSource",
    "JsonlSource",
    "LMSource",
    "MarkovSource",
    "MixtureSource",
    "PairEvalSet",
    "PairSource",
    "ParquetSource",
    "StdlibCodeSource",
    "StdlibDocsSource",
    "TextSource",
    "Tokenizer",
    "ZipfFactsSource",
    "build_pair_source",
    "build_source",
    "cache_dir",
    "get_tokenizer",
    "hash_uniform",
    "pair_source_kinds",
    "pair_source_options",
    "source_kinds",
    "source_options",
    "split_documents",
    "train_bpe",
]
