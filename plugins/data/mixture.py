"""``mixture``: weighted sub-sources, one drawn per batch, the same on every rank (original.md §3.2
WeightedMultiLoader).

Recipe shape — each ``[[data.sources]]`` table names a registered data source with ``kind``,
its ``weight`` and, optionally, a ``name``; the remaining keys are that source's own config,
structured and checked by its config class at resolve time::

    [data]
    kind = "mixture"
    [[data.sources]]
    kind = "bin_shards"
    weight = 0.7
    path = "data/fineweb"
    [[data.sources]]
    kind = "bin_shards"
    weight = 0.3
    path = "data/finemath"

Draw ``i`` picks a source with probability ∝ weight from an RNG seeded by (seed, i) with no rank
term, so every rank draws the same source for the same batch and stays in lock-step. Progress is
counted in tokens per source (D-14: not in draws); the state holds the draw count and every
sub-source's own state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from argonne_kit.contracts.data import DataContext, DataSize, DataSource
from argonne_kit.data.order import derive_seed
from argonne_kit.errors import DataError

from .common import check_state, digest
from .configs import MixtureConfig


def _batch_tokens(batch: dict[str, Any]) -> int:
    """Tokens a batch trains on: unpadded tokens, or B·T for ``[B, T+1]`` windows."""
    for key in ("attention_mask", "chosen_attention_mask"):
        if key in batch:
            total = int(batch[key].sum())
            if key == "chosen_attention_mask":
                total += int(batch["rejected_attention_mask"].sum())
            return total
    ids = batch["input_ids"]
    return ids.shape[0] * (ids.shape[1] - 1)


class MixtureSource(DataSource):
    """See the module docstring."""

    name = "mixture"

    def __init__(self, config: MixtureConfig, ctx: DataContext):
        from argonne_kit.registry import get_registry

        registry = get_registry()
        self.config, self.ctx = config, ctx
        self.entries = config.entries
        self.sources: list[DataSource] = [registry.get("data", e.kind).factory(e.config, ctx) for e in self.entries]
        weights = np.array([e.weight for e in self.entries], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.draws = 0
        self.drawn_tokens = [0] * len(self.sources)
        self.fields: set[str] | None = None
        self._fingerprint = digest(
            "mixture", [(e.name, e.weight, s.fingerprint()) for e, s in zip(self.entries, self.sources)], ctx.seed
        )
        self._iterators: list[Any] = [None] * len(self.sources)

    def choose(self, draw: int) -> int:
        """The source of draw ``draw`` — a function of (seed, draw) only, identical on all ranks."""
        u = np.random.default_rng(derive_seed(self.ctx.seed, "mixture", draw)).random()
        return min(int(np.searchsorted(self.cumulative, u, side="right")), len(self.sources) - 1)

    def __iter__(self):
        self._iterators = [None] * len(self.sources)  # restart from each sub-source's current state
        while True:
            index = self.choose(self.draws)
            if self._iterators[index] is None:
                self._iterators[index] = iter(self.sources[index])
            batch = next(self._iterators[index])
            if self.fields is None:
                self.fields = set(batch)
            elif set(batch) != self.fields:
                raise DataError(
                    f"mixture: source {self.entries[index].name!r} yields {sorted(batch)}, the others "
                    f"{sorted(self.fields)}; mix sources of one type (token windows, chat or pairs)"
                )
            self.draws += 1
            self.drawn_tokens[index] += _batch_tokens(batch)
            yield batch

    @property
    def epoch(self) -> int:
        total = self.size().tokens
        return sum(self.drawn_tokens) * self.ctx.dp_world // total if total else 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "fingerprint": self._fingerprint,
            "draws": self.draws,
            "drawn_tokens": list(self.drawn_tokens),
            "sources": {e.name: s.state_dict() for e, s in zip(self.entries, self.sources)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state(self.name, state, self._fingerprint)
        self.draws = int(state["draws"])
        self.drawn_tokens = list(state["drawn_tokens"])
        for entry, source in zip(self.entries, self.sources):
            source.load_state_dict(state["sources"][entry.name])
        self._iterators = [None] * len(self.sources)

    def size(self) -> DataSize:
        if self.config.total_tokens is not None:
            return DataSize(tokens=self.config.total_tokens)
        sizes = [s.size() for s in self.sources]
        tokens = [s.tokens for s in sizes if s.tokens is not None]
        if len(tokens) == len(sizes):
            return DataSize(tokens=sum(tokens))
        examples = [s.examples for s in sizes if s.examples is not None]
        if len(examples) == len(sizes):
            return DataSize(examples=sum(examples))
        return DataSize()

    def fingerprint(self) -> str:
        return self._fingerprint

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"draws": self.draws, "epoch": self.epoch}
        for entry, tokens in zip(self.entries, self.drawn_tokens):
            out[f"tokens_{entry.name}"] = tokens
        return out


def make_mixture(config: MixtureConfig, ctx: DataContext) -> MixtureSource:
    return MixtureSource(config, ctx)
