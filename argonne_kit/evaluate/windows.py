"""Token windows to score: the run's own validation batches, or a file cut the way training cuts it.

Training packs documents into one stream with the tokenizer's EOS after every document and reads
windows of ``seq_len + 1`` tokens that share one token with the next window (``bin_shards`` packed
mode, ``fineweb_parquet``). Evaluating a file does the same, one epoch in order, and also scores
the last, shorter window so every token but the first is predicted once. ``document`` mode takes
the first ``seq_len + 1`` tokens of every document at least that long (positions are then
positions inside the document, as long-context NLL curves need).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from argonne_kit.errors import DataError


def validation_batches(resolved, tokenizer, max_batches: int | None) -> Iterator[torch.Tensor]:
    """The batches the trainer validates on: the recipe's ``[val_data]`` from its start, with the
    rows of every data-parallel rank in one batch (``train.val_batches`` of them by default)."""
    from argonne_kit.contracts.data import DataContext
    from argonne_kit.registry import get_registry

    recipe = resolved.recipe
    if recipe.val_data is None:
        raise DataError(f"{resolved.source}: the recipe has no [val_data]; pass --data")
    train = recipe.train
    world = resolved.derived.get("train", {}).get("dp_world_assumed", 1)
    ctx = DataContext(
        dp_rank=0,
        dp_world=1,
        micro_batch_size=train.micro_batch_size * world,
        seq_len=train.seq_len,
        seed=train.seed,
        tokenizer=tokenizer,
        recipe_dir=str(resolved.base_dir),
    )
    source = get_registry().get("data", recipe.val_data.kind).factory(recipe.val_data.config, ctx)
    batches = iter(source)
    for _ in range(max_batches or train.val_batches):
        yield next(batches)["input_ids"]


def documents(
    path: str | Path, tokenizer, text_column: str = "text", split_shards: bool = True
) -> Iterator[np.ndarray]:
    """Token ids of every document in ``path`` (token shards, parquet or JSONL text), EOS included.
    ``split_shards=False`` yields each token shard whole (packing does not need the boundaries)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    if path.suffix == ".jsonl":
        yield from _text_documents(_jsonl_texts(path, text_column), tokenizer)
    elif path.suffix == ".parquet" or (path.is_dir() and any(path.rglob("*.parquet"))):
        yield from _text_documents(_parquet_texts(path, text_column), tokenizer)
    else:
        yield from _shard_documents(path, split_shards)


def _eos(tokenizer) -> list[int]:
    if tokenizer.eos_token_id is None:
        raise DataError(f"tokenizer {tokenizer.name_or_path} has no EOS token to separate documents")
    return [tokenizer.eos_token_id]


def _text_documents(texts: Iterator[str], tokenizer) -> Iterator[np.ndarray]:
    eos = _eos(tokenizer)
    for text in texts:
        yield np.array(tokenizer(text, add_special_tokens=False)["input_ids"] + eos, dtype=np.int64)


def _jsonl_texts(path: Path, column: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get(column), str):
                raise DataError(f"{path}:{number}: expected an object with a string {column!r} field")
            if row[column]:
                yield row[column]


def _parquet_texts(path: Path, column: str) -> Iterator[str]:
    from argonne_kit.data.preprocess import list_parquet_files, open_parquet_column

    for file in list_parquet_files(path):
        parquet = open_parquet_column(file, column, "pass --text-column")
        for group in range(parquet.metadata.num_row_groups):
            for value in parquet.read_row_group(group, columns=[column]).column(0).to_pylist():
                if value:
                    yield value


def _shard_documents(path: Path, split: bool) -> Iterator[np.ndarray]:
    from argonne_kit.data.manifest import find_shards

    shard_set = find_shards(path)
    for index, shard in enumerate(shard_set.shards):
        tokens = shard.memmap()
        if not split:
            yield np.asarray(tokens, dtype=np.int64)
            continue
        lengths = shard_set.doc_lengths(index)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for start, length in zip(starts, lengths):
            yield np.asarray(tokens[start : start + length], dtype=np.int64)


def windows(docs: Iterator[np.ndarray], seq_len: int, mode: str = "packed") -> Iterator[np.ndarray]:
    """``seq_len + 1``-token windows (see the module docstring); the last packed one may be shorter."""
    if mode == "document":
        for doc in docs:
            if len(doc) >= seq_len + 1:
                yield doc[: seq_len + 1]
        return
    buffer = np.zeros(0, dtype=np.int64)
    for doc in docs:
        buffer = np.concatenate([buffer, doc])
        while len(buffer) >= seq_len + 1:
            yield buffer[: seq_len + 1]
            buffer = buffer[seq_len:]  # the next window starts with this one's last token
    if len(buffer) >= 2:
        yield buffer


def batched(rows: Iterator[np.ndarray], batch_size: int, max_batches: int | None = None) -> Iterator[torch.Tensor]:
    """Rows of equal length stacked into batches (a shorter final row is a batch of its own)."""
    pending: list[np.ndarray] = []
    produced = 0
    for row in rows:
        if pending and len(row) != len(pending[0]):
            yield torch.from_numpy(np.stack(pending))
            produced += 1
            pending = []
            if max_batches and produced >= max_batches:
                return
        pending.append(row)
        if len(pending) == batch_size:
            yield torch.from_numpy(np.stack(pending))
            produced += 1
            pending = []
            if max_batches and produced >= max_batches:
                return
    if pending:
        yield torch.from_numpy(np.stack(pending))
