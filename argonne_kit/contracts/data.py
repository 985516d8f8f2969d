"""Data-source contract (a source's config: :class:`~argonne_kit.contracts.config.DataConfig`).

A source yields fixed-shape batches for one data-parallel rank, deterministically from
(rank, world, micro-batch size, seq_len, seed) and its own state, and can restore the exact next
batch after a resume (D-14). Token sources yield ``{"input_ids": LongTensor[B, T+1]}`` windows
(the objective shifts); chat sources yield ``input_ids``/``labels``/``attention_mask`` (and
optionally ``segment_ids``/``position_ids`` when packed); preference sources yield
``chosen_*``/``rejected_*`` fields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import attrs
import torch


@attrs.frozen
class DataContext:
    """Everything a source needs to know about where it runs."""

    dp_rank: int
    """This process's data-parallel rank (TP ranks of one DP group share it)."""
    dp_world: int
    """Number of data-parallel ranks."""
    micro_batch_size: int
    """Rows per batch on this rank."""
    seq_len: int
    """Tokens per row seen by the model (token sources return ``seq_len + 1`` for the shift)."""
    seed: int
    """The run's one seed (D-7); sources derive every RNG from it."""
    tokenizer: Any = None
    """A ``transformers`` tokenizer, for sources that tokenize or render chat templates."""
    recipe_dir: str = "."
    """Directory of the recipe file; relative paths in the data config resolve against it."""


@attrs.frozen
class DataSize:
    """How big a source is: tokens per epoch (token sources) and/or examples per epoch."""

    tokens: int | None = None
    examples: int | None = None


class DataSource(ABC):
    """An iterator of batches with exact, serialisable position."""

    @abstractmethod
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """Yield batches forever (epochs advance inside; see :attr:`epoch`)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Position such that :meth:`load_state_dict` on a fresh source resumes at the next batch."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position produced by :meth:`state_dict` (refuse an incompatible one)."""

    @abstractmethod
    def size(self) -> DataSize:
        """Size of one epoch."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A short stable hash of the underlying data and the settings that shape batches."""

    def stats(self) -> dict[str, Any]:
        """Diagnostic counters (epoch, rows dropped by reason, over-long examples…) for tools,
        tests and composing sources (a mixture reports its parts'); the trainer does not read
        them. Empty by default."""
        return {}

    @property
    def epoch(self) -> int:
        """Completed passes over the data (0 during the first)."""
        return 0
