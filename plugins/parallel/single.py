"""``single``: one process, one device, no process group."""

from __future__ import annotations

from .base import Strategy, pick_device


class SingleStrategy(Strategy):
    """Runs the model as it is. Reductions, broadcasts and barriers are identities; checkpoints
    are full ``torch.save`` files that every other strategy can load, and it loads theirs —
    including sharded DCP checkpoints, without a process group."""

    name = "single"

    def setup(self, device: str = "auto") -> None:
        self.device = pick_device(device, local_rank=0)
