"""Shard directories and their JSON manifest; finding the shards a data path names.

``preprocess`` writes ``<dir>/manifest.json``::

    {"format": "argonne-kit-token-shards", "version": 1,
     "tokenizer": {"name", "sha256", "vocab_size", "eos_id", "bos_id"},
     "text_column", "append_eos", "prepend_bos", "dtype": "uint32",
     "sources": [{"file", "size", "rows", "docs", "empty_rows", "tokens", "shards": [...]}],
     "shards": [{"path", "lengths", "docs", "tokens", "source"}],
     "totals": {"rows", "docs", "empty_rows", "tokens", "shards"}}

Each shard ``X.bin`` holds whole documents; ``X.lengths.npy`` (uint32) their lengths in tokens,
separator included, which the per-document mode of ``bin_shards`` uses.

:func:`find_shards` also reads a single ``.bin`` file, a directory of ``*.bin`` without a manifest,
and the original pipeline's doc-manifest JSON (``files[].bin_path``/``lengths_path``: headerless
uint32 files with a lengths array; original.md §3.1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from argonne_kit.data.shards import ShardInfo, read_header
from argonne_kit.errors import DataError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "argonne-kit-token-shards"
MANIFEST_VERSION = 1
#: ``ShardInfo.version`` of the original doc-manifest's headerless files.
HEADERLESS = -1


@attrs.frozen
class ShardSet:
    """The shards of one data path, in reading order, with per-shard document lengths when known."""

    shards: tuple[ShardInfo, ...]
    lengths: tuple[Path | None, ...]
    manifest: dict[str, Any] | None = None

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.shards)

    def doc_lengths(self, index: int) -> np.ndarray:
        """Document lengths of shard ``index`` (checked to sum to its token count)."""
        path = self.lengths[index]
        shard = self.shards[index]
        if path is None:
            raise DataError(
                f"{shard.path}: no document lengths file; per-document mode needs shards written "
                f"by `argonne-kit preprocess` (X.lengths.npy) or the original doc-manifest format"
            )
        try:
            lengths = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read document lengths: {exc}") from None
        if int(lengths.sum(dtype=np.int64)) != shard.num_tokens:
            raise DataError(
                f"{path}: document lengths sum to {int(lengths.sum(dtype=np.int64)):,} "
                f"but {shard.path.name} holds {shard.num_tokens:,} tokens"
            )
        return np.asarray(lengths, dtype=np.int64)


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read manifest: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: manifest is not a JSON object")
    return data


def find_shards(path: str | Path) -> ShardSet:
    """The shards named by ``path``: a directory with ``manifest.json``, a directory of ``*.bin``,
    one ``.bin`` file, or an original doc-manifest ``.json``."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return _from_manifest(path / MANIFEST_NAME)
    if path.is_dir():
        bins = sorted(p for p in path.glob("*.bin"))
        if not bins:
            raise DataError(f"{path}: no manifest.json and no *.bin token shards in this directory")
        return ShardSet(tuple(read_header(p) for p in bins), tuple(_lengths_beside(p) for p in bins))
    if path.suffix == ".json" and path.is_file():
        return _from_manifest(path)
    if path.is_file():
        return ShardSet((read_header(path),), (_lengths_beside(path),))
    raise DataError(f"{path}: no such token shard file or directory")


def _lengths_beside(bin_path: Path) -> Path | None:
    candidate = bin_path.with_suffix(".lengths.npy")
    return candidate if candidate.is_file() else None


def _from_manifest(path: Path) -> ShardSet:
    data = read_manifest(path)
    root = path.parent
    if data.get("format") == MANIFEST_FORMAT:
        shards, lengths = [], []
        entries = data.get("shards", [])
        if not isinstance(entries, list):
            raise DataError(f"{path}: shards: expected a list of shard entries, got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            _check_entry(path, i, entry)
            info = read_header(root / entry["path"])
            if info.num_tokens != entry["tokens"]:
                raise DataError(f"{info.path}: holds {info.num_tokens:,} tokens but {path} lists {entry['tokens']:,}")
            shards.append(info)
            lengths.append(root / entry["lengths"] if entry.get("lengths") else None)
        if not shards:
            raise DataError(f"{path}: manifest lists no shards")
        return ShardSet(tuple(shards), tuple(lengths), data)
    if isinstance(data.get("files"), list):  # the original doc-manifest (preprocess_finemath.py)
        shards, lengths = [], []
        for i, entry in enumerate(data["files"]):
            try:
                bin_path, len_path = _resolve(root, entry["bin_path"]), _resolve(root, entry["lengths_path"])
            except (KeyError, TypeError):
                raise DataError(f"{path}: files[{i}] needs bin_path and lengths_path") from None
            if not bin_path.is_file():
                raise DataError(f"{path}: files[{i}]: {bin_path} does not exist")
            size = bin_path.stat().st_size
            if size % 4:
                raise DataError(f"{bin_path}: size {size} is not a whole number of uint32 tokens")
            shards.append(ShardInfo(bin_path, size // 4, np.dtype("<u4"), HEADERLESS, offset=0))
            lengths.append(len_path)
        return ShardSet(tuple(shards), tuple(lengths), data)
    raise DataError(f"{path}: not a token-shard manifest (no format {MANIFEST_FORMAT!r} and no 'files' list)")


def _check_entry(path: Path, index: int, entry: Any) -> None:
    """A manifest shard entry: an object with a string ``path`` and an integer ``tokens``."""
    if not isinstance(entry, dict):
        raise DataError(f"{path}: shards[{index}]: expected an object, got {type(entry).__name__}")
    for key, kind in (("path", str), ("tokens", int)):
        if key not in entry:
            raise DataError(f"{path}: shards[{index}].{key}: required key is missing")
        if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
            raise DataError(f"{path}: shards[{index}].{key}: expected {kind.__name__}, got {entry[key]!r}")
    if entry.get("lengths") is not None and not isinstance(entry["lengths"], str):
        raise DataError(f"{path}: shards[{index}].lengths: expected a file name, got {entry['lengths']!r}")


def _resolve(root: Path, value: str) -> Path:
    candidate = Path(value)
    return candidate if candidate.is_absolute() else root / candidate
