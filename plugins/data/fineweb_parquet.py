"""``fineweb_parquet``: parquet text tokenized on the fly and packed into ``[B, T+1]`` windows.

For small runs without a preprocessing step. The parquet rows are cut into chunks of at most
``chunk_rows`` rows (inside row groups); each epoch visits the chunks in file order or, with
``shuffle``, in a seeded order (documents inside a chunk are shuffled too). Rank ``r`` takes every
``world``-th chunk, so ranks read disjoint documents. Chunks are tokenized by ``num_workers``
processes (or inline) and packed with EOS separators into windows exactly like ``bin_shards``
(consecutive windows share one token). Empty/None rows are counted.

The position (next chunk and the tokens left over from packing) is per rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from argonne_kit.contracts.data import DataContext, DataSize, DataSource
from argonne_kit.data.order import Permutation, derive_seed, ordered_map
from argonne_kit.data.preprocess import flatten_encodings, list_parquet_files, open_parquet_column, text_rows
from argonne_kit.data.tokenizer import tokenizer_hash
from argonne_kit.errors import DataError

from .common import check_state, digest, log, resolve_path
from .configs import FineWebParquetConfig


class _ChunkTokens:
    """Picklable ``unit index → (tokens, empty rows)`` for one rank."""

    def __init__(
        self,
        files: list[Path],
        chunks: np.ndarray,
        column: str,
        eos: int | None,
        tokenizer: Any,
        per_rank: int,
        rank: int,
        world: int,
        seed: int,
        shuffle: bool,
    ):
        self.files, self.chunks, self.column, self.eos, self.tokenizer = files, chunks, column, eos, tokenizer
        self.per_rank, self.rank, self.world, self.seed, self.shuffle = per_rank, rank, world, seed, shuffle
        self._cached: tuple[tuple[int, int], list[Any]] | None = None

    def __getstate__(self):
        return {**self.__dict__, "_cached": None}

    def _row_group(self, file_index: int, group: int) -> list[Any]:
        import pyarrow.parquet as pq

        if self._cached is None or self._cached[0] != (file_index, group):
            path = self.files[file_index]
            try:
                values = pq.ParquetFile(path).read_row_group(group, columns=[self.column]).column(0).to_pylist()
            except Exception as exc:
                raise DataError(f"{path}: cannot read row group {group}: {exc}") from None
            self._cached = ((file_index, group), values)
        return self._cached[1]

    def __call__(self, unit: int) -> tuple[np.ndarray, int]:
        epoch, k = divmod(unit, self.per_rank)
        position = k * self.world + self.rank
        if self.shuffle:
            position = Permutation(len(self.chunks), derive_seed(self.seed, "fineweb-chunks", epoch))(position)
        file_index, group, first, count, first_row = (int(v) for v in self.chunks[position])
        values = self._row_group(file_index, group)[first : first + count]
        order = range(len(values))
        if self.shuffle:
            order = Permutation(len(values), derive_seed(self.seed, "fineweb-docs", epoch, position))(
                np.arange(len(values))
            )
        texts, empty = text_rows(values, order, self.files[file_index], first_row, self.column)
        suffix = [self.eos] if self.eos is not None else []
        encodings = self.tokenizer.encode_batch_fast(texts, add_special_tokens=False) if texts else []
        return flatten_encodings(encodings, [], suffix)[0].astype(np.int64), empty


def _plan_chunks(files: list[Path], column: str, chunk_rows: int) -> np.ndarray:
    """Rows ``[file, row_group, first, count, first_row_in_file]`` of every chunk."""
    plan = []
    for file_index, path in enumerate(files):
        parquet = open_parquet_column(path, column, "set text_column")
        row = 0
        for group in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            for first in range(0, rows, chunk_rows):
                plan.append((file_index, group, first, min(chunk_rows, rows - first), row + first))
            row += rows
    return np.array(plan, dtype=np.int64).reshape(-1, 5)


class FineWebParquetSource(DataSource):
    """See the module docstring."""

    name = "fineweb_parquet"

    def __init__(self, config: FineWebParquetConfig, ctx: DataContext):
        if ctx.tokenizer is None:
            raise DataError("fineweb_parquet: needs the run's tokenizer (DataContext.tokenizer is None)")
        self.config, self.ctx = config, ctx
        if config.path is None:
            from argonne_kit.data.embedded import ensure_quickstart_assets

            assets = ensure_quickstart_assets()
            root = assets.train_parquet_dir if config.split == "train" else assets.validation_parquet_dir
        else:
            root = resolve_path(config.path, ctx.recipe_dir)
        self.files = list_parquet_files(root)
        chunks = _plan_chunks(self.files, config.text_column, config.chunk_rows)
        self.per_rank = len(chunks) // ctx.dp_world
        if self.per_rank == 0:
            raise DataError(
                f"{root}: {len(chunks)} chunks of ≤{config.chunk_rows} rows cannot feed {ctx.dp_world} "
                f"ranks; lower chunk_rows"
            )
        if len(chunks) % ctx.dp_world and not config.shuffle:
            log.warning(
                "fineweb_parquet: the last %d chunks are never read (not divisible by %d ranks)",
                len(chunks) % ctx.dp_world,
                ctx.dp_world,
            )
        eos = ctx.tokenizer.eos_token_id if config.append_eos else None
        if config.append_eos and eos is None:
            raise DataError(
                f"fineweb_parquet: tokenizer {ctx.tokenizer.name_or_path} has no EOS token; set append_eos = false"
            )
        self.work = _ChunkTokens(
            self.files,
            chunks,
            config.text_column,
            eos,
            ctx.tokenizer.backend_tokenizer,
            self.per_rank,
            ctx.dp_rank,
            ctx.dp_world,
            ctx.seed,
            config.shuffle,
        )
        self.rows = int(chunks[:, 3].sum())
        self.batch_tokens = ctx.micro_batch_size * ctx.seq_len
        self._fingerprint = digest(
            "fineweb_parquet",
            [(p.name, p.stat().st_size) for p in self.files],
            config.text_column,
            config.shuffle,
            config.chunk_rows,
            config.append_eos,
            ctx.seq_len,
            ctx.seed,
            tokenizer_hash(ctx.tokenizer),
        )
        self.next_unit = 0
        self.buffer = np.zeros(0, dtype=np.int64)
        self.empty_rows = 0

    def __iter__(self):
        units = ordered_map(self.work, self.next_unit, self.config.num_workers)
        needed = self.batch_tokens + 1
        while True:
            while len(self.buffer) < needed:
                tokens, empty = next(units)
                self.next_unit += 1
                self.empty_rows += empty
                self.buffer = np.concatenate([self.buffer, tokens])
            flat = self.buffer[:needed]
            rows = np.lib.stride_tricks.sliding_window_view(flat, self.ctx.seq_len + 1)[:: self.ctx.seq_len]
            self.buffer = self.buffer[self.batch_tokens :]  # keep the shared last token
            yield {"input_ids": torch.from_numpy(np.array(rows))}

    @property
    def epoch(self) -> int:
        return self.next_unit // self.per_rank

    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "fingerprint": self._fingerprint,
            "dp_rank": self.ctx.dp_rank,
            "dp_world": self.ctx.dp_world,
            "micro_batch_size": self.ctx.micro_batch_size,
            "next_unit": self.next_unit,
            "buffer": torch.from_numpy(self.buffer.copy()),
            "empty_rows": self.empty_rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state(self.name, state, self._fingerprint, self.ctx)
        self.next_unit = int(state["next_unit"])
        self.buffer = torch.as_tensor(state["buffer"]).numpy().astype(np.int64)
        self.empty_rows = int(state["empty_rows"])

    def size(self) -> DataSize:
        # Tokens are unknown until tokenized; the trainer then needs train.max_steps or max_tokens.
        return DataSize(tokens=None, examples=None)

    def fingerprint(self) -> str:
        return self._fingerprint

    def stats(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "chunks": self.next_unit, "empty_rows": self.empty_rows, "rows": self.rows}


def make_fineweb_parquet(config: FineWebParquetConfig, ctx: DataContext) -> FineWebParquetSource:
    return FineWebParquetSource(config, ctx)
