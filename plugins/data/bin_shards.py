"""``bin_shards``: fixed-shape ``[B, T+1]`` token windows from preprocessed shards.

Packed mode (default; the original's flat loader, D-20): the shards form one token stream with
EOS separators; window ``g`` is tokens ``g·T … g·T+T`` (consecutive windows share one token, as
llm.c reads ``B·T+1``). Every global step takes ``B·world`` windows; rank ``r`` gets positions
``step·B·world + r·B + j`` of the epoch's order — the identity, or with ``shuffle`` a seeded
permutation per epoch (different seeds give different orders, D-7). Ranks never share a window.

Document mode (the original's doc-manifest loader, for long-context midtraining): each row is one
``T+1`` window inside a single document at a deterministic pseudo-random offset; documents
shorter than ``T+1`` are counted and skipped; an epoch is ``usable_docs·T`` tokens.

The position is global (epoch, step), the same on every rank, so the state resumes exactly with
the same layout and continues without overlap when the micro-batch or world size changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from argonne_kit.contracts.data import DataContext, DataSize, DataSource
from argonne_kit.data.manifest import ShardSet, find_shards
from argonne_kit.data.order import Permutation, derive_seed, ordered_map
from argonne_kit.errors import DataError

from .common import check_state, digest, log, resolve_path
from .configs import BinShardsConfig


class TokenStream:
    """The shards of a :class:`ShardSet` as one random-access token sequence."""

    def __init__(self, shard_set: ShardSet, vocab_size: int | None = None):
        self.shard_set = shard_set
        self.sizes = np.array([s.num_tokens for s in shard_set.shards], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.vocab_size = vocab_size
        self._maps: list[np.ndarray] | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self):  # memory maps are reopened in each worker process
        return {**self.__dict__, "_maps": None}

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens ``start … start+length-1`` as int64 (crossing shard boundaries as needed)."""
        if self._maps is None:
            self._maps = [s.memmap() for s in self.shard_set.shards]
        out = np.empty(length, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self.starts, start, side="right")) - 1
        while filled < length:
            local = start + filled - int(self.starts[shard])
            piece = self._maps[shard][local : local + length - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
            shard += 1
        if self.vocab_size is not None and length and int(out.max()) >= self.vocab_size:
            self._refuse_token(start, out)
        return out

    def _refuse_token(self, start: int, tokens: np.ndarray) -> None:
        """A token id the tokenizer cannot have produced: name the shard and the position (an
        embedding lookup would otherwise fail with a bare IndexError mid-run)."""
        at = int(np.argmax(tokens >= self.vocab_size))
        position = start + at
        shard = int(np.searchsorted(self.starts, position, side="right")) - 1
        local = position - int(self.starts[shard])
        raise DataError(
            f"{self.shard_set.shards[shard].path}: token {local:,}: id {int(tokens[at])} is outside "
            f"the tokenizer's vocabulary of {self.vocab_size:,} (shards written with another tokenizer?)"
        )

    def identity(self) -> list[Any]:
        """What the fingerprint covers: names, counts and a few tokens from each end of every shard."""
        parts = []
        for shard in self.shard_set.shards:
            tokens = shard.memmap()
            parts.append([shard.path.name, shard.num_tokens, tokens[:16].tolist(), tokens[-16:].tolist()])
        return parts


class _WindowBatches:
    """Picklable ``batch index → tensor`` for one rank (the work of :func:`ordered_map`)."""

    def __init__(
        self,
        stream: TokenStream,
        starts_of,
        *,
        steps_per_epoch: int,
        rows: int,
        world_rows: int,
        rank_offset: int,
        row_len: int,
        seed: int,
        shuffle: bool,
        population: int,
    ):
        self.stream, self.starts_of = stream, starts_of
        self.steps_per_epoch, self.rows, self.world_rows = steps_per_epoch, rows, world_rows
        self.rank_offset, self.row_len = rank_offset, row_len
        self.seed, self.shuffle, self.population = seed, shuffle, population

    def positions(self, batch: int) -> tuple[int, np.ndarray]:
        epoch, step = divmod(batch, self.steps_per_epoch)
        first = step * self.world_rows + self.rank_offset
        positions = np.arange(first, first + self.rows, dtype=np.int64)
        if self.shuffle:
            positions = Permutation(self.population, derive_seed(self.seed, "bin_shards", epoch))(positions)
        return epoch, positions

    def __call__(self, batch: int) -> torch.Tensor:
        epoch, positions = self.positions(batch)
        starts = self.starts_of(positions, epoch)
        rows = np.stack([self.stream.read(int(s), self.row_len) for s in starts])
        return torch.from_numpy(rows)


class _PackedStarts:
    def __init__(self, seq_len: int):
        self.seq_len = seq_len

    def __call__(self, positions: np.ndarray, epoch: int) -> np.ndarray:
        return positions * self.seq_len


class _DocumentStarts:
    """Start of a window inside document ``positions[i]`` at a pseudo-random offset that depends
    on (seed, document, epoch) only."""

    def __init__(self, doc_starts: np.ndarray, doc_lengths: np.ndarray, row_len: int, seed: int):
        self.doc_starts, self.doc_lengths, self.row_len, self.seed = doc_starts, doc_lengths, row_len, seed

    def __call__(self, positions: np.ndarray, epoch: int) -> np.ndarray:
        slack = self.doc_lengths[positions] - self.row_len + 1
        offsets = np.array([derive_seed(self.seed, "doc-offset", int(p), epoch) for p in positions], dtype=np.int64)
        return self.doc_starts[positions] + offsets % slack


class BinShardsSource(DataSource):
    """See the module docstring."""

    name = "bin_shards"

    def __init__(self, config: BinShardsConfig, ctx: DataContext):
        self.config, self.ctx = config, ctx
        path = _data_path(config, ctx)
        vocab = len(ctx.tokenizer) if ctx.tokenizer is not None else None
        self.stream = TokenStream(find_shards(path), vocab)
        self.row_len = ctx.seq_len + 1
        self.world_rows = ctx.micro_batch_size * ctx.dp_world
        self.skipped_docs = 0
        if config.mode == "packed":
            population = max(0, self.stream.num_tokens - 1) // ctx.seq_len
            starts_of: _PackedStarts | _DocumentStarts = _PackedStarts(ctx.seq_len)
            unit = "windows"
        else:
            doc_starts, doc_lengths = self._eligible_documents()
            population = len(doc_starts)
            starts_of = _DocumentStarts(doc_starts, doc_lengths, self.row_len, ctx.seed)
            unit = f"documents of at least {self.row_len} tokens"
        self.steps_per_epoch = population // self.world_rows
        if self.steps_per_epoch == 0:
            raise DataError(
                f"{path}: {population:,} {unit} ({self.stream.num_tokens:,} tokens) is less than one "
                f"global batch of {self.world_rows} rows (micro-batch {ctx.micro_batch_size} × "
                f"{ctx.dp_world} ranks)"
            )
        self.work = _WindowBatches(
            self.stream,
            starts_of,
            steps_per_epoch=self.steps_per_epoch,
            rows=ctx.micro_batch_size,
            world_rows=self.world_rows,
            rank_offset=ctx.dp_rank * ctx.micro_batch_size,
            row_len=self.row_len,
            seed=ctx.seed,
            shuffle=config.shuffle,
            population=population,
        )
        check_tokenizer(self.stream.shard_set.manifest, ctx.tokenizer, path)
        self._fingerprint = digest(
            "bin_shards", self.stream.identity(), config.mode, config.shuffle, ctx.seq_len, ctx.seed
        )
        self.next_batch = 0  # batches of this layout consumed, all epochs
        self.path = path

    def _eligible_documents(self) -> tuple[np.ndarray, np.ndarray]:
        starts, lengths = [], []
        for index in range(len(self.stream.shard_set.shards)):
            shard_lengths = self.stream.shard_set.doc_lengths(index)
            shard_starts = self.stream.starts[index] + np.concatenate([[0], np.cumsum(shard_lengths)[:-1]])
            keep = shard_lengths >= self.row_len
            self.skipped_docs += int((~keep).sum())
            starts.append(shard_starts[keep])
            lengths.append(shard_lengths[keep])
        if self.skipped_docs:
            log.info(
                "bin_shards: %d documents shorter than %d tokens are skipped in document mode",
                self.skipped_docs,
                self.row_len,
            )
        return np.concatenate(starts).astype(np.int64), np.concatenate(lengths).astype(np.int64)

    def __iter__(self):
        for batch in ordered_map(self.work, self.next_batch, self.config.num_workers):
            self.next_batch += 1
            yield {"input_ids": batch}

    @property
    def epoch(self) -> int:
        return self.next_batch // self.steps_per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "fingerprint": self._fingerprint,
            "epoch": self.epoch,
            "step_in_epoch": self.next_batch % self.steps_per_epoch,
            "rows_per_step": self.world_rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state(self.name, state, self._fingerprint)
        step = state["step_in_epoch"]
        if state["rows_per_step"] != self.world_rows:
            # A new micro-batch or world size: continue at the same place in the epoch's order.
            step = -(-step * state["rows_per_step"] // self.world_rows)
            log.warning(
                "bin_shards: global batch changed from %d to %d rows; resuming at step %d of the epoch",
                state["rows_per_step"],
                self.world_rows,
                step,
            )
            if step >= self.steps_per_epoch:
                state = {**state, "epoch": state["epoch"] + 1}
                step = 0
        self.next_batch = state["epoch"] * self.steps_per_epoch + step

    def size(self) -> DataSize:
        return DataSize(
            tokens=self.steps_per_epoch * self.world_rows * self.ctx.seq_len,
            examples=self.steps_per_epoch * self.world_rows,
        )

    def fingerprint(self) -> str:
        return self._fingerprint

    def stats(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.next_batch, "skipped_short_documents": self.skipped_docs}


def check_tokenizer(manifest: dict[str, Any] | None, tokenizer: Any, path: Path) -> None:
    """Refuse shards whose manifest names a tokenizer that cannot be the run's (EOS id or vocab differ)."""
    if manifest is None or tokenizer is None or "tokenizer" not in manifest:
        return
    recorded = manifest["tokenizer"]
    if recorded.get("eos_id") != tokenizer.eos_token_id or recorded.get("vocab_size") != len(tokenizer):
        raise DataError(
            f"{path}: shards were tokenized with {recorded.get('name')} (vocab {recorded.get('vocab_size')}, "
            f"EOS {recorded.get('eos_id')}) but the run's tokenizer {tokenizer.name_or_path} has vocab "
            f"{len(tokenizer)}, EOS {tokenizer.eos_token_id}"
        )


def _data_path(config: BinShardsConfig, ctx: DataContext) -> Path:
    if config.path is not None:
        return resolve_path(config.path, ctx.recipe_dir)
    from argonne_kit.data.embedded import ensure_quickstart_shards

    return ensure_quickstart_shards(config.split)


def make_bin_shards(config: BinShardsConfig, ctx: DataContext) -> BinShardsSource:
    return BinShardsSource(config, ctx)
