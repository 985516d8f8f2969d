"""``single``: one process, one device, no process group."""

from __future__ import annotations

import attrs

from argonne_kit.contracts.config import ParallelConfig

from .base import Strategy, pick_device


@attrs.define(kw_only=True)
class SingleConfig(ParallelConfig):
    """One process on one device (the device comes from ``train.device``); no settings."""

    def max_processes(self) -> int | None:
        return 1


class SingleStrategy(Strategy):
    """Runs the model as it is. Reductions, broadcasts and barriers are identities; checkpoints
    are full ``torch.save`` files that every other strategy can load, and it loads theirs —
    including sharded DCP checkpoints, without a process group."""

    name = "single"

    def setup(self, device: str = "auto") -> None:
        self.device = pick_device(device, local_rank=0)
