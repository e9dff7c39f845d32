"""Source fingerprints: metadata + sampled blocks; they change with content and read little."""

import io
import os

import numpy as np

import scaling.data.fingerprint as fpmod
from scaling.data.documents import document_stream
from scaling.data.fingerprint import BLOCK_SIZE, N_BLOCKS, block_offsets, file_fingerprint, files_fingerprint


class _Counting(io.BufferedReader):
    read_bytes = 0

    def read(self, n=-1):
        data = super().read(n)
        _Counting.read_bytes += len(data)
        return data


def _counting_open(path, mode="r", *args, **kwargs):
    assert mode == "rb"
    return _Counting(io.FileIO(path, "rb"))


def _write(path, data: bytes, mtime_ns: int | None = None) -> None:
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_block_offsets_cover_start_and_end():
    assert block_offsets(100) == [0]
    size = 10 * N_BLOCKS * BLOCK_SIZE
    offs = block_offsets(size)
    assert len(offs) == N_BLOCKS and offs[0] == 0 and offs[-1] == size - BLOCK_SIZE
    assert all(b - a >= BLOCK_SIZE for a, b in zip(offs, offs[1:]))


def test_reads_only_sampled_blocks_of_a_large_file(tmp_path, monkeypatch):
    path = tmp_path / "big.bin"
    path.write_bytes(np.random.default_rng(0).bytes(8 << 20))  # 8 MiB
    monkeypatch.setattr(fpmod, "open", _counting_open, raising=False)
    _Counting.read_bytes = 0
    file_fingerprint(path)
    assert _Counting.read_bytes == N_BLOCKS * BLOCK_SIZE  # 320 KiB of 8 MiB
    _Counting.read_bytes = 0
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 1000)
    file_fingerprint(small)
    assert _Counting.read_bytes == 1000  # small files are read whole


def test_changes_with_content_size_mtime_and_path(tmp_path):
    rng = np.random.default_rng(1)
    data = bytearray(rng.bytes(2 << 20))
    path = tmp_path / "a.bin"
    t = 1_700_000_000 * 10**9
    _write(path, bytes(data), t)
    base = file_fingerprint(path)
    assert file_fingerprint(path) == base  # deterministic
    # Same size, same mtime: an edit inside each sampled block is still seen.
    for off in block_offsets(len(data)):
        edited = bytearray(data)
        edited[off + 17] ^= 0xFF
        _write(path, bytes(edited), t)
        assert file_fingerprint(path) != base
    _write(path, bytes(data), t)
    assert file_fingerprint(path) == base  # restoring the bytes restores the fingerprint
    _write(path, bytes(data), t + 1)
    assert file_fingerprint(path) != base  # mtime alone
    _write(path, bytes(data) + b"!", t)
    assert file_fingerprint(path) != base  # size alone
    other = tmp_path / "b.bin"
    _write(other, bytes(data), t)
    assert file_fingerprint(other) != base  # path
    _write(path, bytes(data), t)
    named = files_fingerprint([path], names=["a.bin"])
    (tmp_path / "moved").mkdir()
    path.rename(tmp_path / "moved" / "a.bin")  # a move keeps size and mtime: same name, same fingerprint
    assert files_fingerprint([tmp_path / "moved" / "a.bin"], names=["a.bin"]) == named


def test_set_fingerprint_is_order_free_and_keyed_by_options(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("alpha")
    b.write_text("beta")
    assert files_fingerprint([a, b]) == files_fingerprint([b, a])
    assert files_fingerprint([a, b], "field=text") != files_fingerprint([a, b], "field=body")
    assert files_fingerprint([a]) != files_fingerprint([a, b])


def test_document_stream_fingerprint_follows_the_files(tmp_path):
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "one.txt"
    f.write_text("first version")
    (tmp_path / "d" / "two.txt").write_text("second")
    before = document_stream(str(tmp_path / "d")).fingerprint
    assert document_stream(str(tmp_path / "d")).fingerprint == before
    st = f.stat()
    f.write_text("FIRST version")  # same size, mtime kept: only sampled content differs
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert document_stream(str(tmp_path / "d")).fingerprint != before
