"""The token shard format (original.md §3.1) — reading with header validation, and atomic writing.

A shard is a 1024-byte header of 256 little-endian int32 followed by the token ids:

==========  ======================  =========================================================
magic       version (``header[1]``)  token count and dtype
==========  ======================  =========================================================
20240801    7 (what we write)        ``header[2]`` (int32) tokens of uint32 — llm.c's "llama-3"
20240801    0 (the original)         ``header[2..3]`` = 64-bit count (low, high words); uint32
20240520    1 (llm.c GPT-2)          ``header[2]`` tokens of uint16
==========  ======================  =========================================================

The reader checks the count against the file size, so a truncated copy or a file with trailing
bytes is refused instead of being read short (the original ignored the count). Writers go
through a temporary name and an atomic rename: an interrupted write never leaves a file that
looks like a complete shard.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import attrs
import numpy as np

from argonne_kit.errors import DataError
from argonne_kit.safe_io import TMP_SUFFIX, atomic_write

HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAGIC_UINT32 = 20240801
MAGIC_GPT2 = 20240520
VERSION_ORIGINAL = 0
VERSION_UINT32 = 7
VERSION_GPT2 = 1
#: A version-7 header stores the count in one int32, so one shard holds fewer than 2^31 tokens.
MAX_SHARD_TOKENS = 2**31 - 1


@attrs.frozen
class ShardInfo:
    """A validated shard: where its tokens start, their dtype and how many there are."""

    path: Path
    num_tokens: int
    dtype: np.dtype
    version: int
    offset: int = HEADER_BYTES

    def memmap(self) -> np.ndarray:
        """The shard's tokens as a read-only memory map (empty shards give an empty array)."""
        if self.num_tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(self.num_tokens,))


def read_header(path: str | Path) -> ShardInfo:
    """Validate a shard's header against its size; :class:`DataError` names the file and what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw = fh.read(HEADER_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read token shard: {exc.strerror or exc}") from None
    if len(raw) < HEADER_BYTES:
        raise DataError(f"{path}: not a token shard: {size} bytes is shorter than the {HEADER_BYTES}-byte header")
    header = np.frombuffer(raw, dtype="<i4")
    magic, version = int(header[0]), int(header[1])
    dtype: np.dtype
    if magic == MAGIC_UINT32 and version == VERSION_UINT32:
        count, dtype = int(header[2]), np.dtype("<u4")
    elif magic == MAGIC_UINT32 and version == VERSION_ORIGINAL:
        words = np.frombuffer(raw[8:16], dtype="<u4")
        count, dtype = int(words[0]) | (int(words[1]) << 32), np.dtype("<u4")
    elif magic == MAGIC_GPT2 and version == VERSION_GPT2:
        count, dtype = int(header[2]), np.dtype("<u2")
    elif magic in (MAGIC_UINT32, MAGIC_GPT2):
        raise DataError(
            f"{path}: token shard magic {magic} with unsupported version {version} "
            f"(supported: {MAGIC_UINT32} v{VERSION_ORIGINAL}/v{VERSION_UINT32}, {MAGIC_GPT2} v{VERSION_GPT2})"
        )
    else:
        raise DataError(f"{path}: not a token shard (magic {magic}; expected {MAGIC_UINT32} or {MAGIC_GPT2})")
    if count < 0:
        raise DataError(f"{path}: corrupt token shard header (negative token count {count})")
    expected = HEADER_BYTES + count * dtype.itemsize
    if size < expected:
        raise DataError(
            f"{path}: truncated token shard: header says {count:,} tokens "
            f"({expected:,} bytes) but the file has {size:,} bytes"
        )
    if size > expected:
        raise DataError(
            f"{path}: token shard has {size - expected:,} bytes after its {count:,} tokens "
            f"(header count and file size disagree)"
        )
    return ShardInfo(path, count, dtype, version)


def make_header(num_tokens: int) -> bytes:
    """A version-7 uint32 header for ``num_tokens`` tokens."""
    if not 0 <= num_tokens <= MAX_SHARD_TOKENS:
        raise ValueError(f"a shard holds 0..{MAX_SHARD_TOKENS} tokens, got {num_tokens}")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = MAGIC_UINT32, VERSION_UINT32, num_tokens
    return header.tobytes()


class ShardWriter:
    """Streams uint32 tokens into ``path`` through ``path.tmp``; :meth:`close` writes the real
    count into the header, flushes to disk and renames atomically. :meth:`abort` removes the
    temporary file. Use as a context manager: an exception aborts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(self.path.name + TMP_SUFFIX)
        self.num_tokens = 0
        self._stack = contextlib.ExitStack()
        self._fh = self._stack.enter_context(atomic_write(self.path))
        self._fh.write(make_header(0))

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.dtype.kind not in "ui" or int(tokens.min()) < 0 or int(tokens.max()) > 0xFFFFFFFF):
            raise ValueError("shard tokens must be integers in 0..2^32-1")
        if self.num_tokens + tokens.size > MAX_SHARD_TOKENS:
            raise ValueError(f"a shard holds at most {MAX_SHARD_TOKENS} tokens")
        self._fh.write(tokens.astype("<u4", copy=False).tobytes())
        self.num_tokens += int(tokens.size)

    def close(self) -> Path:
        self._fh.seek(0)
        self._fh.write(make_header(self.num_tokens))
        self._stack.close()  # flush, fsync, rename
        return self.path

    def abort(self) -> None:
        aborted = DataError(f"{self.path}: write aborted")
        self._stack.__exit__(DataError, aborted, None)  # removes the temporary

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_shard(path: str | Path, tokens: np.ndarray) -> Path:
    """Write one complete shard atomically."""
    with ShardWriter(path) as writer:
        writer.write(tokens)
    return Path(path)


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` through the atomic writer."""
    with atomic_write(path) as handle:
        np.save(handle, array)
