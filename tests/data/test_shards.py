"""The token shard format (original.md §3.1): validated reading of every accepted variant, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from argonne_kit.data.shards import HEADER_BYTES, ShardWriter, read_header, write_shard
from argonne_kit.errors import DataError


def _raw_shard(path, magic, version, count_words, tokens):
    header = np.zeros(256, dtype="<i4")
    header[0], header[1] = magic, version
    header[2 : 2 + len(count_words)] = count_words
    path.write_bytes(header.tobytes() + tokens.tobytes())
    return path


def test_write_then_read_version7(tmp_path):
    tokens = np.array([5, 0, 151643, 2**32 - 1], dtype=np.uint32)
    info = read_header(write_shard(tmp_path / "a.bin", tokens))
    assert (info.version, info.num_tokens, info.dtype) == (7, 4, np.dtype("<u4"))
    assert info.memmap().tolist() == tokens.tolist()
    header = np.fromfile(tmp_path / "a.bin", dtype="<i4", count=3)
    assert header.tolist() == [20240801, 7, 4]


def test_reads_the_original_version0_with_64bit_count(tmp_path):
    tokens = np.arange(10, dtype="<u4")
    path = _raw_shard(tmp_path / "train.bin", 20240801, 0, [10, 0], tokens)
    info = read_header(path)
    assert (info.version, info.num_tokens) == (0, 10)
    assert info.memmap().tolist() == list(range(10))


def test_reads_llmc_gpt2_uint16(tmp_path):
    tokens = np.array([50256, 1, 2], dtype="<u2")
    info = read_header(_raw_shard(tmp_path / "gpt2.bin", 20240520, 1, [3], tokens))
    assert info.dtype == np.dtype("<u2") and info.memmap().tolist() == [50256, 1, 2]


def test_truncated_shard_is_refused(tmp_path):
    path = write_shard(tmp_path / "t.bin", np.arange(100, dtype=np.uint32))
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(DataError, match=r"t\.bin: truncated token shard: header says 100 tokens"):
        read_header(path)


def test_trailing_bytes_and_foreign_files_are_refused(tmp_path):
    path = write_shard(tmp_path / "x.bin", np.arange(4, dtype=np.uint32))
    path.write_bytes(path.read_bytes() + b"\0\0\0\0")
    with pytest.raises(DataError, match="after its 4 tokens"):
        read_header(path)
    foreign = tmp_path / "f.bin"
    foreign.write_bytes(b"PK" + b"\0" * 2000)
    with pytest.raises(DataError, match="not a token shard"):
        read_header(foreign)
    short = tmp_path / "s.bin"
    short.write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="shorter than the 1024-byte header"):
        read_header(short)
    with pytest.raises(DataError, match="unsupported version 3"):
        read_header(_raw_shard(tmp_path / "v3.bin", 20240801, 3, [0], np.zeros(0, "<u4")))


def test_interrupted_write_leaves_no_complete_looking_shard(tmp_path):
    target = tmp_path / "s.bin"
    with pytest.raises(RuntimeError), ShardWriter(target) as writer:
        writer.write(np.arange(1000, dtype=np.uint32))
        raise RuntimeError("killed")
    assert not target.exists() and not list(tmp_path.iterdir())
    # a writer that never closes leaves only the .tmp name, whose header still says 0 tokens
    writer = ShardWriter(target)
    writer.write(np.arange(10, dtype=np.uint32))
    writer._fh.flush()
    assert not target.exists()
    assert np.fromfile(writer.tmp_path, dtype="<i4", count=3).tolist() == [20240801, 7, 0]
    assert writer.tmp_path.stat().st_size == HEADER_BYTES + 40
    writer.abort()
