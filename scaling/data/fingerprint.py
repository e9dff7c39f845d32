"""Cheap source fingerprints: file metadata plus a few sampled blocks, never every byte.

A fingerprint keys caches and tells `scaling data prepare` whether a prepared corpus is up to
date. Hashing whole files would make every worker read a 100 GB corpus before its first step, so
a file is identified by its path, size and modification time (which catch almost every edit)
and by `N_BLOCKS` blocks of `BLOCK_SIZE` bytes at fixed offsets (first, last and evenly spaced
between), which catch rewrites that kept size and mtime at sampled places. An edit that keeps
size and mtime and touches only unsampled bytes goes unnoticed: that is the price of not reading
the file. Files no larger than the blocks together are read whole.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

BLOCK_SIZE = 1 << 16
N_BLOCKS = 5
VERSION = "fp-v1"


def block_offsets(size: int, n_blocks: int = N_BLOCKS, block_size: int = BLOCK_SIZE) -> list[int]:
    """Start offsets of the sampled blocks of a file of `size` bytes (one block at 0 if it fits whole)."""
    if size <= n_blocks * block_size:
        return [0]
    last = size - block_size
    return sorted({round(k * last / (n_blocks - 1)) for k in range(n_blocks)})


def _update_file(h: "hashlib._Hash", name: str, path: Path, stat: os.stat_result) -> None:
    h.update(f"{name}\x00{stat.st_size}\x00{stat.st_mtime_ns}\x00".encode())
    size = stat.st_size
    whole = size <= N_BLOCKS * BLOCK_SIZE
    with open(path, "rb") as f:
        for off in block_offsets(size):
            f.seek(off)
            h.update(f.read(size if whole else BLOCK_SIZE))


def file_fingerprint(path: str | os.PathLike) -> str:
    """Fingerprint of one file from (path, size, mtime) and sampled content."""
    return files_fingerprint([Path(path)])


def files_fingerprint(paths: Iterable[str | os.PathLike], extra: str = "", names: Iterable[str] | None = None) -> str:
    """Fingerprint of a set of files (order-independent) plus options that change what is read.

    Each file counts under its absolute path, or under `names` (one per path, e.g. paths relative
    to the corpus folder) so that a corpus moved elsewhere keeps its fingerprint (a move keeps
    size and mtime).
    """
    paths = [Path(p) for p in paths]
    labels = [os.path.abspath(p) for p in paths] if names is None else list(names)
    if len(labels) != len(paths):
        raise ValueError("files_fingerprint: `names` needs one name per path")
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{VERSION}|{extra}\x00".encode())
    for name, p in sorted(set(zip(labels, paths)), key=lambda t: (t[0], str(t[1]))):
        _update_file(h, name, p, p.stat())
    return h.hexdigest()
